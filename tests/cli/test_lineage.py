"""``mlops lineage`` with botocore's Stubber (moto has no ListPipelineExecutionSteps): every
request and response is checked against SageMaker's API model as it is stubbed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from typer.testing import Result

from tests.cli.conftest import as_json, one_error_line

REGION = "eu-west-1"
ACCOUNT = "222222222222"
GROUP = "mlops-staging-models"
PACKAGE = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/7"
PIPELINE = "mlops-staging-model-build"
PIPELINE_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}"
EXECUTION = f"{PIPELINE_ARN}/execution/k2mzb0h1q9xa"
OLDER = f"{PIPELINE_ARN}/execution/a1b2c3d4e5f6"
ARTIFACTS = "s3://mlops-staging-artifacts"
CODE = f"{ARTIFACTS}/code/model-build/5f1c0a9e"
RUN = f"{ARTIFACTS}/pipelines/{PIPELINE}/k2mzb0h1q9xa"
WHEN = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
JOB = "pipelines-k2mzb0h1q9xa-Preprocess-Xy12"


def _package(metadata: dict[str, str]) -> dict[str, Any]:
    return {
        "ModelPackageName": GROUP,
        "ModelPackageGroupName": GROUP,
        "ModelPackageVersion": 7,
        "ModelPackageArn": PACKAGE,
        "CreationTime": WHEN,
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
        "ModelApprovalStatus": "Approved",
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:1.7-1",
                    "ModelDataUrl": f"{RUN}/Train/output/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": f"{RUN}/Evaluate/evaluation/evaluation.json",
                }
            },
            "ModelDataQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": f"{RUN}/DataQualityBaseline/baseline/statistics.json",
                },
                "Constraints": {
                    "ContentType": "application/json",
                    "S3Uri": f"{RUN}/DataQualityBaseline/baseline/constraints.json",
                },
            },
        },
        "DriftCheckBaselines": {
            "ModelDataQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": f"{RUN}/DataQualityBaseline/baseline/statistics.json",
                },
                "Constraints": {
                    "ContentType": "application/json",
                    "S3Uri": f"{RUN}/DataQualityBaseline/baseline/constraints.json",
                },
            }
        },
        "CustomerMetadataProperties": metadata,
    }


STEPS = {
    "PipelineExecutionSteps": [
        {
            "StepName": "RegisterModel-RegisterModel",
            "StepStatus": "Succeeded",
            "Metadata": {"RegisterModel": {"Arn": PACKAGE}},
        },
        {
            "StepName": "Preprocess",
            "StepStatus": "Succeeded",
            "Metadata": {
                "ProcessingJob": {
                    "Arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/{JOB.lower()}"
                }
            },
        },
    ]
}
JOB_DESCRIPTION = {
    "ProcessingJobName": JOB.lower(),
    "ProcessingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/{JOB.lower()}",
    "ProcessingResources": {
        "ClusterConfig": {
            "InstanceCount": 1,
            "InstanceType": "ml.m5.large",
            "VolumeSizeInGB": 30,
        }
    },
    "AppSpecification": {"ImageUri": "img"},
    "ProcessingJobStatus": "Completed",
    "CreationTime": WHEN,
    "ProcessingInputs": [
        {
            "InputName": "raw",
            "S3Input": {
                "S3Uri": "s3://mlops-staging-curated/data/",
                "LocalPath": "/opt/ml/processing/input/raw",
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
            },
        },
        {
            "InputName": "code",
            "S3Input": {
                "S3Uri": f"{CODE}/scripts/preprocess.py",
                "LocalPath": "/opt/ml/processing/input/code",
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
            },
        },
    ],
}


def _execution_calls(stubber: Stubber, execution: str = EXECUTION) -> None:
    stubber.add_response(
        "describe_pipeline_execution",
        {
            "PipelineArn": PIPELINE_ARN,
            "PipelineExecutionArn": execution,
            "PipelineExecutionDisplayName": "retrain-alarm-mlops-staging-drift",
            "PipelineExecutionStatus": "Succeeded",
            "CreationTime": WHEN,
            "LastModifiedTime": WHEN,
        },
        {"PipelineExecutionArn": execution},
    )
    stubber.add_response(
        "list_pipeline_parameters_for_execution",
        {
            "PipelineParameters": [
                {"Name": "InputDataUrl", "Value": "s3://mlops-staging-curated/data/"},
                {"Name": "InputDataVersion", "Value": "glue:jr_4f2a"},
                {"Name": "TriggerReason", "Value": "alarm:mlops-staging-drift"},
            ]
        },
        {"PipelineExecutionArn": execution},
    )
    stubber.add_response(
        "list_pipeline_execution_steps", STEPS, {"PipelineExecutionArn": execution}
    )
    stubber.add_response(
        "describe_processing_job", JOB_DESCRIPTION, {"ProcessingJobName": JOB.lower()}
    )


@pytest.fixture
def stubber(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    client = boto3.client("sagemaker", region_name=REGION)
    regions: list[str | None] = []

    def make_client(session: Any, service: str, region: str | None = None) -> Any:
        regions.append(region or session.region_name)
        return client

    monkeypatch.setattr("cli.aws.client", make_client)
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()
    assert regions == [REGION]  # the ARN's region


def test_lineage_from_the_execution_the_version_records(
    stubber: Stubber, mlops: Callable[..., Result]
) -> None:
    metadata = {
        "InputDataVersion": "glue:jr_4f2a",
        "TriggerReason": "alarm:mlops-staging-drift",
        "CodeBundleHash": "5f1c0a9e",
        "PipelineExecutionArn": EXECUTION,
    }
    stubber.add_response(
        "describe_model_package", _package(metadata), {"ModelPackageName": PACKAGE}
    )
    _execution_calls(stubber)
    report = as_json(mlops("lineage", PACKAGE, "--output", "json"))
    assert report["pipeline_execution"]["arn"] == EXECUTION
    assert report["pipeline_execution"]["found_by"] == "model version metadata"
    assert report["pipeline_execution"]["status"] == "Succeeded"
    assert report["input_data"] == {
        "url": "s3://mlops-staging-curated/data/",
        "version": "glue:jr_4f2a",
        "trigger_reason": "alarm:mlops-staging-drift",
    }
    assert report["code_bundle"] == {"uri": CODE, "hash": "5f1c0a9e"}
    assert report["baseline"] == {
        "statistics": f"{RUN}/DataQualityBaseline/baseline/statistics.json",
        "constraints": f"{RUN}/DataQualityBaseline/baseline/constraints.json",
    }
    assert report["evaluation_report"] == f"{RUN}/Evaluate/evaluation/evaluation.json"
    assert report["model_version"]["model_data_url"] == f"{RUN}/Train/output/model.tar.gz"


def test_lineage_table(stubber: Stubber, mlops: Callable[..., Result]) -> None:
    stubber.add_response(
        "describe_model_package",
        _package({"PipelineExecutionArn": EXECUTION, "CodeBundleHash": "5f1c0a9e"}),
        {"ModelPackageName": PACKAGE},
    )
    _execution_calls(stubber)
    result = mlops("lineage", PACKAGE)
    assert result.exit_code == 0, result.stderr
    for text in (EXECUTION, "glue:jr_4f2a", CODE, "statistics.json", "constraints.json"):
        assert text in result.stdout, text


def test_older_version_found_by_its_register_step(
    stubber: Stubber, mlops: Callable[..., Result]
) -> None:
    """No recorded execution: the group's stage pipeline (cdk.json) is searched, newest first,
    for the execution whose RegisterModel step registered this version."""
    stubber.add_response("describe_model_package", _package({}), {"ModelPackageName": PACKAGE})
    stubber.add_response(
        "list_pipeline_executions",
        {
            "PipelineExecutionSummaries": [
                {"PipelineExecutionArn": OLDER, "StartTime": WHEN},
                {"PipelineExecutionArn": EXECUTION, "StartTime": WHEN},
            ]
        },
        {
            "PipelineName": PIPELINE,
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 50,
        },
    )
    stubber.add_response(
        "list_pipeline_execution_steps",
        {"PipelineExecutionSteps": [{"StepName": "Preprocess", "StepStatus": "Failed"}]},
        {"PipelineExecutionArn": OLDER},
    )
    stubber.add_response(
        "list_pipeline_execution_steps", STEPS, {"PipelineExecutionArn": EXECUTION}
    )
    _execution_calls(stubber)
    report = as_json(mlops("lineage", PACKAGE, "--output", "json"))
    assert report["pipeline_execution"]["arn"] == EXECUTION
    assert report["pipeline_execution"]["found_by"] == f"RegisterModel step of {PIPELINE}"
    assert report["input_data"]["version"] == "glue:jr_4f2a"
    assert report["code_bundle"] == {"uri": CODE, "hash": None}


def test_a_version_of_no_known_stage_needs_pipeline(
    stubber: Stubber, mlops: Callable[..., Result]
) -> None:
    other = PACKAGE.replace(GROUP, "someone-elses-models")
    stubber.add_response(
        "describe_model_package",
        {**_package({}), "ModelPackageArn": other, "ModelPackageGroupName": "someone-elses-models"},
        {"ModelPackageName": other},
    )
    line = one_error_line(mlops("lineage", other), 1)
    assert line == (
        f"mlops: {other} records no pipeline execution "
        "(pass --pipeline <name> to search that pipeline's executions)"
    )


def test_unknown_version_is_one_line(stubber: Stubber, mlops: Callable[..., Result]) -> None:
    stubber.add_client_error(
        "describe_model_package",
        service_error_code="ValidationException",
        service_message=f"Model Package {PACKAGE} does not exist.",
        expected_params={"ModelPackageName": PACKAGE},
    )
    line = one_error_line(mlops("lineage", PACKAGE), 1)
    assert line.startswith("mlops: DescribeModelPackage refused: ValidationException: ")
    assert line.endswith("(check the name, the stage (--env/--branch) and --region)")


def test_lineage_needs_an_arn(mlops: Callable[..., Result]) -> None:
    assert "not a model version ARN" in one_error_line(mlops("lineage", "group/7"), 2)


def test_an_execution_no_longer_kept_is_one_line(
    stubber: Stubber, mlops: Callable[..., Result]
) -> None:
    stubber.add_response(
        "describe_model_package",
        _package({"PipelineExecutionArn": EXECUTION}),
        {"ModelPackageName": PACKAGE},
    )
    stubber.add_client_error(
        "describe_pipeline_execution",
        service_error_code="ResourceNotFound",
        service_message="Pipeline execution not found",
        expected_params={"PipelineExecutionArn": EXECUTION},
    )
    line = one_error_line(mlops("lineage", PACKAGE), 1)
    assert line == (
        f"mlops: {PACKAGE} names execution {EXECUTION}, which cannot be read: ResourceNotFound "
        "(executions are kept for a limited time; the version's metadata remains)"
    )
