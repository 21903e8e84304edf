"""Which EventBridge events start a deployment: the synthesized rule pattern, matched by moto's
EventBridge (put_events -> rule -> SQS target), one event per case."""

from __future__ import annotations

import json
from collections.abc import Iterator
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
