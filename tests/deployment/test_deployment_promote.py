"""``deployment.promote`` (``mlops promote``): staging -> prod promotion, in moto (one account
stands in for both; the tool only ever sees two boto3 sessions)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from deployment_moto import XGBOOST_IMAGE
from moto import mock_aws

from deployment import promote
from lambdas.deploy_plan import handler as plan

REGION = "us-east-1"
NAMES = promote.PromotionNames.for_project("mlops", target_bucket="prod-artifacts")
ARTIFACT = b"model.tar.gz bytes" * 1000


@pytest.fixture
def staging(aws_env: None) -> Iterator[dict[str, Any]]:
    """A staging package, approved and served by the staging endpoint (tagged by the workflow)."""
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in ("staging-artifacts", "prod-artifacts"):
            s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket="staging-artifacts", Key="pipelines/run-7/model.tar.gz", Body=ARTIFACT)
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        for group in (NAMES.source_group, NAMES.target_group):
            sagemaker.create_model_package_group(ModelPackageGroupName=group)
        arn = _register(
            sagemaker, NAMES.source_group, "s3://staging-artifacts/pipelines/run-7/model.tar.gz"
        )
        _serve(sagemaker, arn)
        yield {"sagemaker": sagemaker, "s3": s3, "arn": arn}


def _register(sagemaker: Any, group: str, url: str, status: str = "Approved") -> str:
    return str(
        sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelApprovalStatus=status,
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": XGBOOST_IMAGE,
                        "ModelDataUrl": url,
                        "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
                    }
                ],
                "SupportedContentTypes": ["text/csv", "application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        )["ModelPackageArn"]
    )


def _serve(sagemaker: Any, arn: str, tag: str | None = None) -> None:
    sagemaker.create_model(
        ModelName="mlops-staging-deploy-v1-aaaa",
        PrimaryContainer={"ModelPackageName": arn},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/model",
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="mlops-staging-deploy-v1-aaaa",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "mlops-staging-deploy-v1-aaaa",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    endpoint = sagemaker.create_endpoint(
        EndpointName=NAMES.source_endpoint, EndpointConfigName="mlops-staging-deploy-v1-aaaa"
    )
    sagemaker.add_tags(
        ResourceArn=endpoint["EndpointArn"],
        Tags=[{"Key": "model-package-arn", "Value": tag or arn}],
    )


def _promote(arn: str, **kwargs: Any) -> promote.PromotionResult:
    session = boto3.Session(region_name=REGION)
    return promote.promote(arn, source=session, target=session, names=NAMES, **kwargs)


def _prod_packages(sagemaker: Any) -> list[dict[str, Any]]:
    summaries = sagemaker.list_model_packages(ModelPackageGroupName=NAMES.target_group)
    return [
        sagemaker.describe_model_package(ModelPackageName=s["ModelPackageArn"])
        for s in summaries["ModelPackageSummaryList"]
    ]


def test_promotion_copies_the_artifact_registers_and_approves_in_prod(
    staging: dict[str, Any],
) -> None:
    result = _promote(staging["arn"])

    assert (result.created, result.approved) == (True, True)
    (package,) = _prod_packages(staging["sagemaker"])
    assert package["ModelApprovalStatus"] == "Approved"
    metadata = package["CustomerMetadataProperties"]
    assert metadata["promoted-to-prod"] == "true"
    assert metadata["promoted-from"] == staging["arn"]
    assert metadata["promoted-by"].startswith("arn:aws:")
    assert metadata["model-data-sha256"] == hashlib.sha256(ARTIFACT).hexdigest()
    (container,) = package["InferenceSpecification"]["Containers"]
    assert container["Image"] == XGBOOST_IMAGE
    assert container["ModelDataUrl"] == result.model_data_url
    assert result.model_data_url is not None
    key = result.model_data_url.removeprefix("s3://prod-artifacts/")
    assert key.startswith("promoted-models/mlops-staging-models/v1/")
    copied = staging["s3"].get_object(Bucket="prod-artifacts", Key=key)["Body"].read()
    assert copied == ARTIFACT


class _NoOtherExecutions:
    """ListExecutions (RUNNING) of the deploy state machine: only the one planning."""

    def get_paginator(self, operation: str) -> Any:
        return self

    def paginate(self, **_: Any) -> list[dict[str, Any]]:
        return [{"executions": []}]


def test_prods_deploy_guard_accepts_a_promoted_version_only(staging: dict[str, Any]) -> None:
    sagemaker = staging["sagemaker"]
    approved_directly = _register(sagemaker, NAMES.target_group, "s3://prod-artifacts/x.tar.gz")
    promoted = _promote(staging["arn"]).target_package_arn

    def decide(arn: str | None) -> plan.Plan:
        event = plan.PlanEvent.model_validate(
            {
                "request": {"packageArn": arn},
                "executionName": "x",
                "executionArn": "arn:aws:states:us-east-1:333333333333:execution:deploy:x",
                "executionStartTime": "2026-01-01T00:00:00Z",
                "stateMachineArn": "arn:aws:states:us-east-1:333333333333:stateMachine:deploy",
                "stage": {
                    "modelPackageGroupName": NAMES.target_group,
                    "endpointName": "mlops-prod-endpoint",
                    "resourcePrefix": "mlops-prod-deploy",
                    "requirePromotion": True,
                    "endpointMode": "serverless",
                },
            }
        )
        return plan.plan_deployment(event, sagemaker=sagemaker, sfn=_NoOtherExecutions())

    assert decide(approved_directly).code == "NotPromoted"
    assert decide(promoted).action == "deploy"


def test_promotion_is_idempotent(staging: dict[str, Any]) -> None:
    first = _promote(staging["arn"])
    again = _promote(staging["arn"])

    assert (again.created, again.approved, again.message) == (False, True, "already promoted")
    assert again.target_package_arn == first.target_package_arn
    assert len(_prod_packages(staging["sagemaker"])) == 1


def test_dry_run_changes_nothing(staging: dict[str, Any]) -> None:
    result = _promote(staging["arn"], dry_run=True)

    assert (result.created, result.approved, result.target_package_arn) == (False, False, None)
    assert _prod_packages(staging["sagemaker"]) == []


def test_refuses_a_version_staging_does_not_serve(staging: dict[str, Any]) -> None:
    other = _register(
        staging["sagemaker"], NAMES.source_group, "s3://staging-artifacts/other.tar.gz"
    )

    with pytest.raises(promote.PromotionError, match="deploy it to staging first"):
        _promote(other)
    assert _prod_packages(staging["sagemaker"]) == []


def test_refuses_a_version_not_approved_in_staging(staging: dict[str, Any]) -> None:
    staging["sagemaker"].update_model_package(
        ModelPackageArn=staging["arn"], ModelApprovalStatus="Rejected"
    )
    with pytest.raises(promote.PromotionError, match="Rejected in staging"):
        _promote(staging["arn"])


def test_refuses_a_package_of_another_group(staging: dict[str, Any]) -> None:
    dev = "mlops-dev-models"
    staging["sagemaker"].create_model_package_group(ModelPackageGroupName=dev)
    arn = _register(
        staging["sagemaker"], dev, "s3://staging-artifacts/pipelines/run-7/model.tar.gz"
    )
    with pytest.raises(promote.PromotionError, match="not in the staging group"):
        _promote(arn)


def test_cli_prints_the_result_and_refuses_with_exit_code_1(staging: dict[str, Any]) -> None:
    """``mlops promote``: the result as JSON; a refusal in one line on stderr, exit 1."""
    from typer.testing import CliRunner

    from cli.main import app

    base = [
        "promote",
        "--package-arn",
        staging["arn"],
        "--region",
        REGION,
        "--target-bucket",
        "prod-artifacts",
    ]
    runner = CliRunner()
    result = runner.invoke(app, [*base, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["message"] == "checks passed (dry run)"
    result = runner.invoke(app, ["promote", "--package-arn", staging["arn"] + "9", *base[3:]])
    assert result.exit_code == 1
    assert result.stderr.startswith("mlops: promotion refused: ")
    assert result.stderr.count("\n") == 1


def test_promoted_artifacts_prefix_is_the_one_the_stacks_grant() -> None:
    from deployment.infrastructure import PROMOTED_MODELS_PREFIX
    from deployment.promote import PROMOTED_PREFIX

    assert PROMOTED_PREFIX == PROMOTED_MODELS_PREFIX
