"""The roles the pipeline's steps assume in staging and prod (session synth): trusted only by the
named CodeBuild roles of the tooling account, allowed exactly what the steps call. What the steps
call is recorded, not listed: ``deployment.promote`` runs in moto with one boto3 session per
account, and every API call each session makes must be allowed by that account's role."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from deployment import promote
from infra.config import load_config
from promotion.commands import PipelineNames
from tests.conftest import EPHEMERAL_STAGE, resources_of_type
from tests.served_version import serve_version

REGION = "us-east-1"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
#: API calls that need no IAM permission.
UNAUTHORIZED_CALLS = {"sts:GetCallerIdentity"}
#: IAM actions of API calls named differently (service prefix or action).
IAM_ACTION = {
    "sagemaker-runtime:InvokeEndpoint": "sagemaker:InvokeEndpoint",
    "s3:HeadObject": "s3:GetObject",  # HeadObject is authorized as GetObject
}


def _access(template: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    roles = {
        logical_id: r["Properties"]
        for logical_id, r in resources_of_type(template, "AWS::IAM::Role").items()
        if str(r["Properties"].get("RoleName", "")).endswith("-pipeline-access")
    }
    ((role_id, role),) = roles.items()
    policies = [
        p["Properties"]
        for p in [
            *resources_of_type(template, "AWS::IAM::ManagedPolicy").values(),
            *resources_of_type(template, "AWS::IAM::Policy").values(),
        ]
        if {"Ref": role_id} in p["Properties"].get("Roles", [])
    ]
    (policy,) = policies  # one customer managed policy, nothing else attached
    assert "ManagedPolicyArns" not in role and "Policies" not in role
    return role, list(policy["PolicyDocument"]["Statement"])


def _allowed(statements: list[dict[str, Any]]) -> set[str]:
    actions: set[str] = set()
    for statement in statements:
        assert statement["Effect"] == "Allow"
        value = statement["Action"]
        actions.update([value] if isinstance(value, str) else value)
    return actions


@pytest.fixture(scope="module")
def names(cdk_context: dict[str, Any]) -> PipelineNames:
    config = load_config(cdk_context["mlops"])
    assert config.delivery is not None
    return PipelineNames.of(config, config.delivery)


@pytest.mark.parametrize(
    ("stage", "trusted"),
    [("mlops-staging", ("checks_role", "promote_role")), ("mlops-prod", ("promote_role",))],
)
def test_access_role_trusts_only_the_named_tooling_roles(
    templates: dict[str, dict[str, dict[str, Any]]],
    names: PipelineNames,
    stage: str,
    trusted: tuple[str, ...],
) -> None:
    role, _ = _access(templates[stage]["Deployment"])
    assert role["RoleName"] == PipelineNames.access_role("mlops", stage.removeprefix("mlops-"))
    assert role["MaxSessionDuration"] == 3600
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    arns = [names.role_arn(getattr(names, attribute)) for attribute in trusted]
    assert statement == {
        "Action": "sts:AssumeRole",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{names.tooling_account}:root"},
        "Condition": {"ArnEquals": {"aws:PrincipalArn": arns}},
    }


def test_no_access_role_in_dev_or_branch_stages(
    templates: dict[str, dict[str, dict[str, Any]]],
) -> None:
    for stage in ("mlops-dev", EPHEMERAL_STAGE):
        for template in templates[stage].values():
            assert not any(
                str(r["Properties"].get("RoleName", "")).endswith("pipeline-access")
                for r in resources_of_type(template, "AWS::IAM::Role").values()
            )


def test_staging_role_reads_and_invokes_only_the_staging_endpoint_and_its_model(
    templates: dict[str, dict[str, dict[str, Any]]],
) -> None:
    _, statements = _access(templates["mlops-staging"]["Deployment"])
    assert _allowed(statements) == {
        "sagemaker:InvokeEndpoint",
        "sagemaker:DescribeEndpoint",
        "sagemaker:ListTags",
        "sagemaker:DescribeEndpointConfig",
        "sagemaker:DescribeModel",
        "sagemaker:DescribeModelPackage",
        "s3:GetObject",
        "kms:Decrypt",
    }
    by_sid = {s["Sid"]: s for s in statements}
    assert by_sid["TestEndpoint"]["Resource"] == (
        "arn:aws:sagemaker:us-east-1:222222222222:endpoint/mlops-staging-endpoint"
    )
    assert "mlops-staging-models/*" in str(by_sid["VerifyServedVersion"]["Resource"])
    assert str(by_sid["ReadModelArtifact"]["Resource"]).endswith(
        "/pipelines/mlops-staging-model-build/*/Train/model/*/output/model.tar.gz']]}"
    )
    # The files deployment.promote copies with the version (its drift baselines, its metrics).
    run = "/pipelines/mlops-staging-model-build/*"
    assert [r["Fn::Join"][1][-1] for r in by_sid["ReadBaselines"]["Resource"]] == [
        f"{run}/DataQualityBaseline/baseline/*",
        f"{run}/Evaluate/evaluation/evaluation.json",
    ]
    from pipelines.model_build import definition

    assert definition.MODEL_MONITOR_BASELINE_OUTPUT == "baseline"  # the check step's too


def test_prod_role_writes_only_prods_registry_and_promoted_prefix(
    templates: dict[str, dict[str, dict[str, Any]]],
) -> None:
    _, statements = _access(templates["mlops-prod"]["Deployment"])
    assert "sagemaker:InvokeEndpoint" not in _allowed(statements)
    by_sid = {s["Sid"]: s for s in statements}
    assert set(by_sid["RegisterAndApprove"]["Resource"]) == {
        "arn:aws:sagemaker:us-east-1:333333333333:model-package/mlops-prod-models/*",
        "arn:aws:sagemaker:us-east-1:333333333333:model-package-group/mlops-prod-models",
    }
    assert str(by_sid["CopyPromotedArtifact"]["Resource"]).endswith("/promoted-models/*']]}")
    assert by_sid["ReadArtifactsBucketName"]["Resource"] == (
        "arn:aws:cloudformation:us-east-1:333333333333:stack/mlops-prod-stateful/*"
    )
    assert by_sid["FindPromotedVersions"] == {
        "Action": "sagemaker:ListModelPackages",
        "Effect": "Allow",
        "Resource": "*",
        "Sid": "FindPromotedVersions",
    }
    # serving_image: custom versions name prod's own image once it has the tag (one repository)
    assert by_sid["FindServingImage"] == {
        "Action": "ecr:DescribeImages",
        "Effect": "Allow",
        "Resource": "arn:aws:ecr:us-east-1:333333333333:repository/mlops-prod-serving",
        "Sid": "FindServingImage",
    }


class _Recorder:
    """Every API call a boto3 session makes, as ``service:Operation``."""

    def __init__(self, session: boto3.Session) -> None:
        self.calls: set[str] = set()
        session.events.register("before-call", self._record)

    def _record(self, event_name: str, **_: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        self.calls.add(f"{service}:{operation}")

    def actions(self) -> set[str]:
        return {IAM_ACTION.get(call, call) for call in self.calls} - UNAUTHORIZED_CALLS


@pytest.fixture
def promoted(moto_aws: None) -> Iterator[dict[str, set[str]]]:
    """promote() in moto, staging and prod as two sessions: the calls each one made."""
    names = promote.PromotionNames.for_project("mlops", target_bucket="prod-artifacts")
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in ("staging-artifacts", "prod-artifacts"):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket="staging-artifacts", Key="run/model.tar.gz", Body=b"model" * 100)
    baseline = "pipelines/mlops-staging-model-build/exec-1/DataQualityBaseline/baseline"
    for name in ("statistics.json", "reference.csv"):
        s3.put_object(Bucket="staging-artifacts", Key=f"{baseline}/{name}", Body=b"{}")
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    for group in (names.source_group, names.target_group):
        sagemaker.create_model_package_group(ModelPackageGroupName=group)
    arn = sagemaker.create_model_package(
        ModelPackageGroupName=names.source_group,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [
                {"Image": IMAGE, "ModelDataUrl": "s3://staging-artifacts/run/model.tar.gz"}
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        DriftCheckBaselines={
            "ModelDataQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": f"s3://staging-artifacts/{baseline}/statistics.json",
                }
            }
        },
    )["ModelPackageArn"]
    serve_version(sagemaker, arn, endpoint=names.source_endpoint, name="mlops-staging-deploy-v1")
    source, target = boto3.Session(region_name=REGION), boto3.Session(region_name=REGION)
    recorded = _Recorder(source), _Recorder(target)
    result = promote.promote(arn, source=source, target=target, names=names)
    assert (result.created, result.approved) == (True, True)
    yield {"staging": recorded[0].actions(), "prod": recorded[1].actions()}


def test_every_call_of_the_promotion_is_allowed_in_its_account(
    templates: dict[str, dict[str, dict[str, Any]]], promoted: dict[str, set[str]]
) -> None:
    staging = _allowed(_access(templates["mlops-staging"]["Deployment"])[1])
    prod = _allowed(_access(templates["mlops-prod"]["Deployment"])[1])
    assert promoted["staging"] and promoted["staging"] <= staging, promoted["staging"] - staging
    # the tool's main() reads the bucket name from prod's stateful stack first
    assert promoted["prod"] | {"cloudformation:DescribeStacks"} <= prod, promoted["prod"] - prod
    assert "sagemaker:CreateModelPackage" in promoted["prod"]
    assert "s3:GetObject" in promoted["staging"] and "s3:PutObject" in promoted["prod"]
