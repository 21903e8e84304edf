"""Which EventBridge events start a deployment: the synthesized rule pattern, matched by moto's
EventBridge (put_events -> rule -> SQS target), one event per case."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from aws_cdk.assertions import Capture
from deployment_stages import SynthesizedStage
from moto import mock_aws

REGION = "us-east-1"
GROUP = "mlops-dev-models"
ARN = f"arn:aws:sagemaker:{REGION}:111111111111:model-package/{GROUP}/3"


def _event(**changes: Any) -> dict[str, Any]:
    detail = {
        "ModelPackageGroupName": GROUP,
        "ModelPackageVersion": 3,
        "ModelPackageArn": ARN,
        "ModelApprovalStatus": "Approved",
        "ModelPackageStatus": "Completed",
    }
    detail.update(changes.pop("detail", {}))
    entry = {
        "Source": "aws.sagemaker",
        "DetailType": "SageMaker Model Package State Change",
        "Resources": [ARN],
        "Detail": json.dumps(detail),
    }
    entry.update(changes)
    return entry


@pytest.fixture
def deliver(aws_env: None, serverless_stage: SynthesizedStage) -> Iterator[Any]:
    """Sends one event to a bus with the synthesized rule; True when the rule matched it."""
    pattern = Capture()
    serverless_stage.template.has_resource_properties(
        "AWS::Events::Rule", {"EventPattern": pattern}
    )
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="matched")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(Name="deploy-on-approval", EventPattern=json.dumps(pattern.as_object()))
        events.put_targets(Rule="deploy-on-approval", Targets=[{"Id": "q", "Arn": queue_arn}])

        def send(entry: dict[str, Any]) -> bool:
            assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
            received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
            messages = received.get("Messages", [])
            for message in messages:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            return bool(messages)

        yield send


def test_an_approval_in_this_stage_group_matches(deliver: Any) -> None:
    assert deliver(_event()) is True


def test_extra_detail_fields_do_not_prevent_a_match(deliver: Any) -> None:
    assert deliver(_event(detail={"ApprovalDescription": "looks good", "Tags": {}})) is True


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            {"detail": {"ModelPackageGroupName": "mlops-staging-models"}}, id="other-group"
        ),
        pytest.param(
            {"detail": {"ModelPackageGroupName": "mlops-dev-models-2"}}, id="group-prefix"
        ),
        pytest.param({"detail": {"ModelApprovalStatus": "Rejected"}}, id="rejected"),
        pytest.param(
            {"detail": {"ModelApprovalStatus": "PendingManualApproval"}}, id="pending-approval"
        ),
        pytest.param({"Source": "custom.sagemaker"}, id="wrong-source"),
        pytest.param({"Source": "aws.sagemakerx"}, id="lookalike-source"),
        pytest.param({"DetailType": "SageMaker Model State Change"}, id="wrong-detail-type"),
    ],
)
def test_other_events_do_not_match(deliver: Any, case: dict[str, Any]) -> None:
    assert deliver(_event(**case)) is False


def _documented_sample(**detail: Any) -> dict[str, Any]:
    """AWS's sample "SageMaker Model Package State Change" event (SageMaker Developer Guide,
    "Events that Amazon SageMaker sends to Amazon EventBridge", model package state change),
    with this stage's group/ARN and the statuses under test, sent as EventBridge receives it."""
    body = {
        "ModelPackageGroupName": GROUP,
        "ModelPackageVersion": 3,
        "ModelPackageArn": ARN,
        "CreationTime": 1614185974496,
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": "257758044811.dkr.ecr.us-east-2.amazonaws.com/"
                    "sagemaker-xgboost:1.0-1-cpu-py3",
                    "ImageDigest": "sha256:4dc8a7e4a010a19bb9e0a6b063f355393f6e623603361bd8b105f554"
                    "d4f0c004",
                    "ModelDataUrl": "s3://sagemaker-project-p-idy6c3e1fiqj/versionedmp-p-idy6c3e1fiqj"
                    "/AbaloneTrain/pipelines-4r83jejmhorv-TrainAbaloneModel-xw869y8C4a/output/"
                    "model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
        "CertifyForMarketplace": False,
        "ModelApprovalStatus": "Approved",
        "MetadataProperties": {
            "GeneratedBy": "arn:aws:sagemaker:us-east-2:123456789012:pipeline/"
            "versionedmp-p-idy6c3e1fiqj/execution/4r83jejmhorv"
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": "s3://sagemaker-project-p-idy6c3e1fiqj/versionedmp-p-idy6c3e1fiqj/"
                    "script-2021-02-24-10-55-15-413/output/evaluation/evaluation.json",
                }
            }
        },
        "LastModifiedTime": 1614186023416,
    }
    body.update(detail)
    return {
        "Source": "aws.sagemaker",
        "DetailType": "SageMaker Model Package State Change",
        "Resources": [ARN],
        "Time": datetime(2021, 2, 24, 17, 0, 14, tzinfo=UTC),
        "Detail": json.dumps(body),
    }


def test_the_documented_sample_event_of_a_completed_approved_package_matches(
    deliver: Any,
) -> None:
    assert deliver(_documented_sample()) is True


@pytest.mark.parametrize("status", ["Pending", "InProgress", "Failed", "Deleting"])
def test_an_approved_package_that_is_not_completed_does_not_match(
    deliver: Any, status: str
) -> None:
    """The documented ModelPackageStatus values other than Completed: not deployable."""
    assert deliver(_documented_sample(ModelPackageStatus=status)) is False


def test_the_documented_sample_event_of_a_rejection_does_not_match(deliver: Any) -> None:
    assert deliver(_documented_sample(ModelApprovalStatus="Rejected")) is False
