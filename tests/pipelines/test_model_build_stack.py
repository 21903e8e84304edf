"""The deployed model-build pipeline, read back from each synthesized stage template."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pipeline_schema import schema_validator, schema_view

from pipelines.model_build import contract as c
from pipelines.model_build.packaging import build_code_bundle
from tests.conftest import EPHEMERAL_STAGE, SHARED_STAGES, resources_of_type

ALL_STAGES = (*SHARED_STAGES, EPHEMERAL_STAGE)


def render(value: Any) -> str:
    """An intrinsic-function string as text, references shown as <LogicalId.Attr> placeholders."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(render(p) for p in parts)
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    if isinstance(value, dict) and "Fn::GetStackOutput" in value:  # cross-stack reference
        return "<{StackName}.{OutputName}>".format(**value["Fn::GetStackOutput"])
    if isinstance(value, dict) and "Fn::ImportValue" in value:
        return "<import>"
    raise AssertionError(f"unexpected intrinsic in a pipeline definition: {value}")


@pytest.fixture(scope="module", params=ALL_STAGES)
def stage(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def pipeline(templates: dict[str, Any], stage: str) -> dict[str, Any]:
    (resource,) = resources_of_type(
        templates[stage]["ModelBuild"], "AWS::SageMaker::Pipeline"
    ).values()
    return resource["Properties"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def definition(pipeline: dict[str, Any]) -> dict[str, Any]:
    return json.loads(render(pipeline["PipelineDefinition"]["PipelineDefinitionBody"]))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def schema_errors() -> Callable[[dict[str, Any]], list[str]]:
    return schema_validator()


def _environment(cdk_context: dict[str, Any], stage: str) -> dict[str, Any]:
    env = "dev" if stage == EPHEMERAL_STAGE else stage.removeprefix("mlops-")
    return cdk_context["mlops"]["environments"][env]  # type: ignore[no-any-return]


def test_one_pipeline_per_stage_named_and_tagged_for_studio(
    pipeline: dict[str, Any], stage: str
) -> None:
    assert pipeline["PipelineName"] == f"{stage}-model-build"
    tags = {t["Key"]: t["Value"] for t in pipeline["Tags"]}
    assert tags["sagemaker:project-name"] == stage
    assert pipeline["RoleArn"]["Fn::GetAtt"][0].startswith("ModelBuildExecutionRole")


def test_deployed_definition_validates_against_the_schema(
    definition: dict[str, Any], schema_errors: Callable[[dict[str, Any]], list[str]]
) -> None:
    assert schema_errors(schema_view(definition)) == []


def test_step_graph_registers_into_the_stage_group(
    definition: dict[str, Any], stage: str, cdk_context: dict[str, Any]
) -> None:
    steps = {s["Name"]: s for s in definition["Steps"]}
    condition = steps[c.CONDITION_STEP]
    assert [s["Name"] for s in condition["Arguments"]["IfSteps"]] == [c.REGISTER_STEP]
    assert [s["Name"] for s in condition["Arguments"]["ElseSteps"]] == [c.FAIL_STEP]
    register = condition["Arguments"]["IfSteps"][0]
    assert register["Arguments"]["ModelPackageGroupName"] == f"{stage}-models"
    tuning = _environment(cdk_context, stage)["features"]["hyperparameter_tuning"]
    assert steps[c.TRAIN_STEP]["Type"] == ("Tuning" if tuning else "Training")
    params = {p["Name"]: p for p in definition["Parameters"]}
    expected = _environment(cdk_context, stage)["model_approval_threshold"]
    assert params["AucThreshold"]["DefaultValue"] == expected
    assert params["ModelApprovalStatus"]["DefaultValue"] == "PendingManualApproval"


def test_jobs_run_the_code_bundle_of_this_synth(definition: dict[str, Any], tmp_path: Path) -> None:
    code_hash = build_code_bundle(tmp_path / "bundle")
    preprocess = next(s for s in definition["Steps"] if s["Name"] == c.PREPROCESS_STEP)
    code = next(i for i in preprocess["Arguments"]["ProcessingInputs"] if i["InputName"] == "code")
    assert code["S3Input"]["S3Uri"].endswith(f"/code/model-build/{code_hash}/scripts/preprocess.py")
    arguments = preprocess["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert [a for a in arguments if isinstance(a, str)] == [
        a for a in c.PREPROCESS.arguments if isinstance(a, str)
    ]
    assert arguments[-len(c.INPUT_COLUMNS) :] == list(c.INPUT_COLUMNS)  # the fixed schema


def test_code_and_example_dataset_are_uploaded_by_the_stack(
    templates: dict[str, Any], stage: str
) -> None:
    uploads = [
        r["Properties"]
        for r in resources_of_type(
            templates[stage]["ModelBuild"], "Custom::CDKBucketDeployment"
        ).values()
    ]
    prefixes = sorted(u["DestinationBucketKeyPrefix"] for u in uploads)
    assert prefixes[0].startswith("code/model-build/") and prefixes[1] == c.RAW_DATASET_PREFIX
    dataset = next(u for u in uploads if u["DestinationBucketKeyPrefix"] == c.RAW_DATASET_PREFIX)
    assert dataset["Prune"] is False and dataset["RetainOnDelete"] is True


def test_execution_role_is_least_privilege(templates: dict[str, Any], stage: str) -> None:
    template = templates[stage]["ModelBuild"]
    role_id = next(
        k
        for k in resources_of_type(template, "AWS::IAM::Role")
        if k.startswith("ModelBuildExecutionRole")
    )
    role = template["Resources"][role_id]["Properties"]
    assert "ManagedPolicyArns" not in role
    (policy,) = [
        p["Properties"]
        for p in resources_of_type(template, "AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    statements = policy["PolicyDocument"]["Statement"]
    actions = [
        a
        for s in statements
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]
    assert not [a for a in actions if a in ("*", "s3:*", "kms:*", "sagemaker:*", "iam:*")]
    (pass_role,) = [s for s in statements if s["Action"] == "iam:PassRole"]
    assert pass_role["Resource"] == {"Fn::GetAtt": [role_id, "Arn"]}
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    jobs = next(s for s in statements if s.get("Sid") == "RunPipelineJobs")
    assert sorted(render(r).split(":", 5)[5] for r in jobs["Resource"]) == [
        "hyper-parameter-tuning-job/*",  # tuning job names: <= 32 characters, no prefix
        "processing-job/pipelines-*",
        "training-job/pipelines-*",
    ]
    assert {tuple(render(r).split(":")[:3]) for r in jobs["Resource"]} == {
        ("arn", "aws", "sagemaker")
    }


def _role_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    role_id = next(
        k
        for k in resources_of_type(template, "AWS::IAM::Role")
        if k.startswith("ModelBuildExecutionRole")
    )
    (policy,) = [
        p["Properties"]
        for p in resources_of_type(template, "AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    return policy["PolicyDocument"]["Statement"]  # type: ignore[no-any-return]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def _resources(statement: dict[str, Any]) -> list[str]:
    resource = statement["Resource"]
    return [render(r) for r in (resource if isinstance(resource, list) else [resource])]


def test_jobs_can_encrypt_volumes_with_the_data_key(templates: dict[str, Any], stage: str) -> None:
    """SageMaker creates KMS grants for job volumes (only for AWS resources); DescribeKey is
    allowed without that condition, which does not apply to it."""
    statements = _role_statements(templates[stage]["ModelBuild"])
    key = f"<{stage}-stateful.PublishOutputFnGetAttDataLakeKey6ACD72F9Arn81FAE894>"
    (grant,) = [s for s in statements if "kms:CreateGrant" in _actions(s)]
    assert _actions(grant) == ["kms:CreateGrant"] and _resources(grant) == [key]
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    (describe,) = [s for s in statements if "kms:DescribeKey" in _actions(s)]
    assert "Condition" not in describe and _resources(describe) == [key]
    assert {"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"} <= set(_actions(describe))


def test_jobs_can_pull_exactly_their_images(
    templates: dict[str, Any], stage: str, definition: dict[str, Any]
) -> None:
    images = {
        v
        for k, v in _walk(definition)
        if k in {"ImageUri", "TrainingImage", "Image"} and isinstance(v, str)
    }
    assert len(images) == 2  # scikit-learn (processing) and XGBoost (training, evaluate, serving)
    expected = sorted(
        f"arn:aws:ecr:{host.split('.')[3]}:{host.split('.')[0]}:repository/" + path.split(":")[0]
        for host, path in (uri.split("/", 1) for uri in images)
    )
    statements = _role_statements(templates[stage]["ModelBuild"])
    (pull,) = [s for s in statements if "ecr:BatchGetImage" in _actions(s)]
    assert sorted(_actions(pull)) == [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    ]
    assert sorted(_resources(pull)) == expected
    assert {r.rsplit("/", 1)[1] for r in expected} == {
        c.SKLEARN_IMAGE.repository,
        c.XGBOOST_IMAGE.repository,
    }
    (token,) = [s for s in statements if "ecr:GetAuthorizationToken" in _actions(s)]
    assert _actions(token) == ["ecr:GetAuthorizationToken"] and token["Resource"] == "*"


def test_code_bundle_is_read_only_and_outputs_writable(
    templates: dict[str, Any], stage: str
) -> None:
    statements = _role_statements(templates[stage]["ModelBuild"])
    code, outputs = [], []
    for statement in statements:
        for resource in _resources(statement):
            if resource.endswith("/code/model-build/*"):
                code += _actions(statement)
            if resource.endswith("/pipelines/*"):
                outputs += _actions(statement)
    assert code and outputs
    assert all(a.startswith(("s3:GetObject", "s3:GetBucket", "s3:List")) for a in code), code
    assert "s3:PutObject" in outputs


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)
