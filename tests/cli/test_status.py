"""``mlops status`` against moto: the stage's pipeline executions (why they started), its model
versions (approval, metrics from the evaluation report), its endpoint (what it serves, since)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from typer.testing import Result

from tests.cli.conftest import as_json, one_error_line

REGION = "us-east-1"
ROLE = "arn:aws:iam::222222222222:role/pipeline"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
BUCKET = "mlops-staging-artifacts"
REPORT = {
    "version": 0.0,
    "dataset": {"item_count": 100},
    "binary_classification_metrics": {
        "auc": {"value": 0.97, "standard_deviation": "NaN"},
        "accuracy": {"value": 0.91, "standard_deviation": "NaN"},
        "precision": {"value": 0.9, "standard_deviation": "NaN"},
        "recall": {"value": 0.8, "standard_deviation": "NaN"},
        "f1": {"value": 0.85, "standard_deviation": "NaN"},
        "confusion_matrix": {"0": {"0": 50, "1": 5}, "1": {"0": 4, "1": 41}},
    },
}


def _package(sm: Any, group: str, report_uri: str, data_version: str, reason: str) -> str:
    return str(
        sm.create_model_package(
            ModelPackageGroupName=group,
            InferenceSpecification={
                "Containers": [{"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz"}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            ModelApprovalStatus="PendingManualApproval",
            ModelMetrics={
                "ModelQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": report_uri}
                }
            },
            CustomerMetadataProperties={"InputDataVersion": data_version, "TriggerReason": reason},
        )["ModelPackageArn"]
    )


@pytest.fixture
def staging(moto_aws: None) -> dict[str, Any]:
    sm = boto3.client("sagemaker", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="eval/1/evaluation.json", Body=json.dumps(REPORT).encode())
    sm.create_pipeline(
        PipelineName="mlops-staging-model-build",
        PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
        RoleArn=ROLE,
    )
    executions = [
        sm.start_pipeline_execution(
            PipelineName="mlops-staging-model-build",
            PipelineExecutionDisplayName=name,
            PipelineParameters=[
                {"Name": "TriggerReason", "Value": reason},
                {"Name": "InputDataVersion", "Value": version},
            ],
        )["PipelineExecutionArn"]
        for name, reason, version in (
            ("ingestion-0b9f", "ingestion", "glue:jr_1"),
            ("retrain-alarm-drift", "alarm:mlops-staging-drift", "glue:jr_2"),
        )
    ]
    group = "mlops-staging-models"
    sm.create_model_package_group(ModelPackageGroupName=group)
    first = _package(sm, group, f"s3://{BUCKET}/eval/1/evaluation.json", "glue:jr_1", "ingestion")
    second = _package(sm, group, f"s3://{BUCKET}/eval/2/missing.json", "glue:jr_2", "schedule")
    sm.update_model_package(  # moto drops metadata an update does not repeat (AWS keeps it)
        ModelPackageArn=first,
        ModelApprovalStatus="Approved",
        ApprovalDescription="looks good",
        CustomerMetadataProperties={"InputDataVersion": "glue:jr_1", "TriggerReason": "ingestion"},
    )
    sm.create_model(
        ModelName="mlops-staging-model-1",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz"},
    )
    sm.create_endpoint_config(
        EndpointConfigName="mlops-staging-config-1",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "mlops-staging-model-1",
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
            }
        ],
    )
    sm.create_endpoint(
        EndpointName="mlops-staging-endpoint",
        EndpointConfigName="mlops-staging-config-1",
        Tags=[
            {"Key": "model-package-arn", "Value": first},
            {"Key": "model-package-version", "Value": "1"},
            {"Key": "deployed-at", "Value": "2026-11-29T10:00:00.000Z"},
        ],
    )
    # another stage's endpoint is not this stage's
    sm.create_endpoint(
        EndpointName="mlops-dev-endpoint", EndpointConfigName="mlops-staging-config-1"
    )
    return {"executions": executions, "first": first, "second": second}


def test_status_json_reports_executions_versions_and_the_endpoint(
    staging: dict[str, Any], mlops: Callable[..., Result]
) -> None:
    report = as_json(mlops("status", "--env", "staging", "--output", "json"))
    assert (report["stage"], report["environment"], report["region"]) == (
        "mlops-staging",
        "staging",
        REGION,
    )
    (pipeline,) = report["pipelines"]
    assert pipeline["pipeline"] == "mlops-staging-model-build" and pipeline["found"]
    by_name = {e["display_name"]: e for e in pipeline["executions"]}
    assert set(by_name) == {"ingestion-0b9f", "retrain-alarm-drift"}
    drift = by_name["retrain-alarm-drift"]
    assert drift["trigger_reason"] == "alarm:mlops-staging-drift"
    assert drift["input_data_version"] == "glue:jr_2"
    assert drift["status"] == "Succeeded" and drift["running"] is False
    assert isinstance(drift["duration_seconds"], int) and drift["duration_seconds"] >= 0
    assert drift["started"]  # ISO 8601 in JSON

    versions = {v["arn"]: v for v in report["model_versions"]["versions"]}
    first, second = versions[staging["first"]], versions[staging["second"]]
    assert first["approval_status"] == "Approved"
    assert first["approval_description"] == "looks good"
    assert first["metrics"] == {
        "auc": 0.97,
        "accuracy": 0.91,
        "precision": 0.9,
        "recall": 0.8,
        "f1": 0.85,
    }
    assert (first["input_data_version"], first["trigger_reason"]) == ("glue:jr_1", "ingestion")
    assert second["approval_status"] == "PendingManualApproval"
    assert second["metrics"] == {}
    assert second["metrics_error"].startswith(f"cannot read s3://{BUCKET}/eval/2/missing.json: ")

    (endpoint,) = report["endpoints"]
    assert endpoint == {
        "name": "mlops-staging-endpoint",
        "status": endpoint["status"],
        "model_package_arn": staging["first"],
        "model_package_version": "1",
        "serving_since": "2026-11-29T10:00:00.000Z",
        "last_modified": endpoint["last_modified"],
    }


def test_status_table_shows_the_same(staging: dict[str, Any], mlops: Callable[..., Result]) -> None:
    result = mlops("status", "--env", "staging")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert out.startswith("stage mlops-staging (staging, branch main) account 222222222222")
    for text in (
        "pipeline mlops-staging-model-build",
        "alarm:mlops-staging-drift",
        "retrain-alarm-drift",
        "model versions in mlops-staging-models",
        "Approved",
        "0.9700",
        "looks good",
        "mlops-staging-endpoint",
        "2026-11-29T10:00:00.000Z",
    ):
        assert text in out, text


def test_status_of_a_stage_not_deployed_says_so(
    moto_aws: None, mlops: Callable[..., Result]
) -> None:
    report = as_json(mlops("status", "--branch", "feat/new-thing", "--output", "json"))
    assert report["stage"] == "mlops-br-feat-new-thing"
    assert report["pipelines"][0]["found"] is False
    assert report["model_versions"] == {
        "group": "mlops-br-feat-new-thing-models",
        "found": False,
        "versions": [],
    }
    assert report["endpoints"] == []
    table = mlops("status", "--branch", "feat/new-thing").stdout
    assert "pipeline mlops-br-feat-new-thing-model-build: not deployed" in table
    assert "endpoints: none deployed" in table


def test_no_metrics_reads_nothing_from_s3(
    staging: dict[str, Any], mlops: Callable[..., Result]
) -> None:
    report = as_json(mlops("status", "--env", "staging", "--no-metrics", "--output", "json"))
    assert all(v["metrics"] == {} for v in report["model_versions"]["versions"])


def _stubbed(monkeypatch: pytest.MonkeyPatch, error_code: str, message: str) -> Stubber:
    client = boto3.client(
        "sagemaker",
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    stubber = Stubber(client)
    stubber.add_client_error(
        "list_pipeline_executions",
        service_error_code=error_code,
        service_message=message,
        http_status_code=400,
        expected_params={
            "PipelineName": "mlops-prod-model-build",
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 5,
        },
    )
    stubber.activate()
    monkeypatch.setattr("cli.aws.client", lambda session, service, region=None: client)
    return stubber


def test_access_denied_is_one_line_exit_1(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, mlops: Callable[..., Result]
) -> None:
    stubber = _stubbed(
        monkeypatch,
        "AccessDeniedException",
        "User: arn:aws:sts::333333333333:assumed-role/x is not authorized to perform: "
        "sagemaker:ListPipelineExecutions",
    )
    line = one_error_line(mlops("status", "--env", "prod", "--no-metrics"), 1)
    assert line.startswith("mlops: ListPipelineExecutions refused: AccessDeniedException: User: ")
    assert line.endswith("(the caller lacks this permission: check the role or --profile)")
    stubber.assert_no_pending_responses()


def test_expired_credentials_are_exit_3(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, mlops: Callable[..., Result]
) -> None:
    _stubbed(monkeypatch, "ExpiredTokenException", "The security token included has expired")
    line = one_error_line(mlops("status", "--env", "prod", "--no-metrics"), 3)
    assert "ExpiredTokenException" in line and "refresh the credentials" in line


def test_missing_credentials_are_exit_3(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, mlops: Callable[..., Result]
) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    line = one_error_line(mlops("status", "--env", "staging"), 3)
    assert line.startswith("mlops: no usable AWS credentials: Unable to locate credentials (")
    line = one_error_line(mlops("status", "--env", "staging", "--profile", "nope"), 3)
    assert "nope" in line and "--profile" in line


def test_bad_config_is_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, mlops: Callable[..., Result], cdk_context: dict[str, Any]
) -> None:
    context = json.loads(json.dumps(cdk_context))
    context["mlops"]["environments"]["staging"]["region"] = "moon-1"
    monkeypatch.setattr("infra.workspace.load_cdk_json_context", lambda: context)
    line = one_error_line(mlops("status", "--env", "staging"), 2)
    assert line.startswith("mlops: config error: ") and "moon-1" in line


def test_unknown_env_is_a_usage_error(mlops: Callable[..., Result]) -> None:
    assert mlops("status", "--env", "qa").exit_code == 2


@pytest.fixture
def moto_accounts(monkeypatch: pytest.MonkeyPatch, cdk_context: dict[str, Any]) -> None:
    """cdk.json with real-looking accounts: staging in moto's account, prod in another."""
    context = json.loads(json.dumps(cdk_context))
    environments = context["mlops"]["environments"]
    environments["staging"]["account"] = "123456789012"  # moto's default account
    environments["prod"]["account"] = "999999999999"
    monkeypatch.setattr("infra.workspace.load_cdk_json_context", lambda: context)


def test_the_credentials_must_be_for_the_stage_account(
    moto_aws: None, moto_accounts: None, mlops: Callable[..., Result]
) -> None:
    assert as_json(mlops("status", "--env", "staging", "-o", "json"))["stage"] == "mlops-staging"
    line = one_error_line(mlops("status", "--env", "prod"), 3)
    assert line == (
        "mlops: the credentials are for account 123456789012; mlops-prod is in account "
        "999999999999 (use --profile with credentials for that account)"
    )
