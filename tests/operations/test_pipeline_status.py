"""Failed/Stopped model-build executions -> the operations topic: the synthesized rule matched by
moto's EventBridge against AWS's documented sample event, and its input transformer rendered."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.conftest import EPHEMERAL_STAGE, SHARED_STAGES, resources_of_type
from tests.operations.eventbridge_render import render

REGION = "us-east-1"
STAGE = "mlops-dev"
PIPELINE = "mlops-dev-model-build"
ACCOUNT = "111111111111"
PIPELINE_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{PIPELINE}"
EXECUTION_ARN = f"{PIPELINE_ARN}/execution/p4jn9xou8a8s"


def aws_sample_event(**detail: Any) -> dict[str, Any]:
    """AWS's documented "Pipeline execution state change" example (SageMaker developer guide,
    "Events that Amazon SageMaker sends to Amazon EventBridge"), with this stage's pipeline in
    place of ``myPipeline-123``; ``detail`` overrides fields."""
    body = {
        "pipelineExecutionDisplayName": "SomeDisplayName",
        "currentPipelineExecutionStatus": "Succeeded",
        "previousPipelineExecutionStatus": "Executing",
        "executionStartTime": "2021-03-15T16:03:13Z",
        "executionEndTime": "2021-03-15T16:10:10Z",
        "pipelineExecutionDescription": "SomeDescription",
        "pipelineArn": PIPELINE_ARN,
        "pipelineExecutionArn": EXECUTION_ARN,
    }
    body.update(detail)
    return {
        "Source": "aws.sagemaker",
        "DetailType": "SageMaker Model Building Pipeline Execution Status Change",
        "Resources": [PIPELINE_ARN, EXECUTION_ARN],
        "Detail": json.dumps(body),
    }


def operations(templates: dict[str, Any], stage: str = STAGE) -> dict[str, Any]:
    return templates[stage]["Operations"]


def status_rule(template: dict[str, Any]) -> dict[str, Any]:
    rules = [
        r["Properties"]
        for r in resources_of_type(template, "AWS::Events::Rule").values()
        if r["Properties"]["EventPattern"].get("source") == ["aws.sagemaker"]
    ]
    assert len(rules) == 1
    return rules[0]


@pytest.fixture
def deliver(moto_aws: None, templates: dict[str, Any]) -> Any:
    """put_events -> the synthesized rule pattern (moto's matching) -> an SQS queue in place of
    the topic; returns the messages the target's input transformer renders from each event
    delivered (rendered as EventBridge documents it: see eventbridge_render)."""
    rule = status_rule(operations(templates))
    (target,) = rule["Targets"]
    events = boto3.client("events", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="topic")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name="status", EventPattern=json.dumps(rule["EventPattern"]))
    events.put_targets(
        Rule="status",
        Targets=[{"Id": "t", "Arn": arn}],
    )

    def send(entry: dict[str, Any]) -> list[dict[str, Any]]:
        assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [render(target["InputTransformer"], json.loads(m["Body"])) for m in messages]

    return send


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_failed_or_stopped_execution_renders_a_notice_with_the_link(
    deliver: Any, status: str
) -> None:
    (message,) = deliver(aws_sample_event(currentPipelineExecutionStatus=status))
    assert message["status"] == status
    assert message["execution"] == EXECUTION_ARN
    assert message["pipeline"] == PIPELINE
    assert message["displayName"] == "SomeDisplayName"
    assert message["stage"] == STAGE
    assert message["console"] == (
        f"https://{REGION}.console.aws.amazon.com/sagemaker/home?region={REGION}"
        f"#/pipelines/{PIPELINE}/executions"
    )


@pytest.mark.parametrize("status", ["Succeeded", "Executing", "Stopping"])
def test_routine_statuses_are_not_notified(deliver: Any, status: str) -> None:
    assert deliver(aws_sample_event(currentPipelineExecutionStatus=status)) == []


def test_other_pipelines_are_not_notified(deliver: Any) -> None:
    other = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/mlops-staging-model-build"
    event = aws_sample_event(currentPipelineExecutionStatus="Failed", pipelineArn=other)
    assert deliver(event) == []


def test_step_status_events_are_not_notified(deliver: Any) -> None:
    event = aws_sample_event(currentPipelineExecutionStatus="Failed")
    event["DetailType"] = "SageMaker Model Building Pipeline Execution Step Status Change"
    assert deliver(event) == []


@pytest.mark.parametrize("stage", [*SHARED_STAGES, EPHEMERAL_STAGE])
def test_each_stage_watches_its_own_pipeline(templates: dict[str, Any], stage: str) -> None:
    template = operations(templates, stage)
    pattern = status_rule(template)["EventPattern"]
    (arn,) = pattern["detail"]["pipelineArn"]
    model_build = templates[stage]["ModelBuild"]
    (pipeline,) = resources_of_type(model_build, "AWS::SageMaker::Pipeline").values()
    assert arn.endswith(f":pipeline/{pipeline['Properties']['PipelineName']}")
    assert arn.startswith("arn:aws:sagemaker:")


def test_eventbridge_publishes_through_a_role_only_this_rule_may_assume(
    templates: dict[str, Any],
) -> None:
    template = operations(templates)
    rule = status_rule(template)
    (target,) = rule["Targets"]
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    role = template["Resources"][role_id]["Properties"]
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule['Name']}"
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnEquals": {"aws:SourceArn": rule_arn},
    }
    # No topic-policy statement lets a service principal in (only the TLS deny).
    (policy,) = resources_of_type(template, "AWS::SNS::TopicPolicy").values()
    for stmt in policy["Properties"]["PolicyDocument"]["Statement"]:
        assert stmt["Effect"] == "Deny", stmt
    (topic,) = resources_of_type(template, "AWS::SNS::Topic").values()
    assert "DataLakeKey" in json.dumps(topic["Properties"]["KmsMasterKeyId"])  # the data key
