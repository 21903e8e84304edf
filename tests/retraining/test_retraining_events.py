"""Which events start retraining: the synthesized rule pattern matched by moto's EventBridge
(put_events -> rule -> SQS target) against AWS's documented sample "CloudWatch Alarm State Change"
event, and what the workflow receives: the rule's input transformer applied to the matched event
as EventBridge documents it (a placeholder outside quotes becomes the JSON value; moto's own
transformer inserts strings unquoted, so it is not used)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.retraining.retraining_stages import ACCOUNT, REGION, SynthesizedRetraining

Deliver = Callable[[dict[str, Any]], "dict[str, Any] | None"]


def alarm_arn(name: str) -> str:
    return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"


def documented_sample(alarm_name: str, state: str = "ALARM") -> dict[str, Any]:
    """AWS's sample alarm state change event (CloudWatch User Guide, "Alarm events and
    EventBridge", single-metric alarm), with this stage's alarm name, ARN and account."""
    event: dict[str, Any] = {
        "version": "0",
        "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": ACCOUNT,
        "time": "2019-10-02T17:04:40Z",
        "region": REGION,
        "resources": [alarm_arn(alarm_name)],
        "detail": {
            "alarmName": alarm_name,
            "configuration": {
                "description": "Goes into alarm when server CPU utilization is too high!",
                "metrics": [
                    {
                        "id": "30b6c6b2-a864-43a2-4877-c09a1afc3b87",
                        "metricStat": {
                            "metric": {
                                "dimensions": {"InstanceId": "i-12345678901234567"},
                                "name": "CPUUtilization",
                                "namespace": "AWS/EC2",
                            },
                            "period": 300,
                            "stat": "Average",
                        },
                        "returnData": True,
                    }
                ],
            },
            "previousState": {
                "reason": "Threshold Crossed: 1 out of the last 1 datapoints "
                "[0.0666851903306472 (01/10/19 13:46:00)] was not greater than the threshold "
                "(50.0) (minimum 1 datapoint for ALARM -> OK transition).",
                "reasonData": '{"version":"1.0","queryDate":"2019-10-01T13:56:40.985+0000",'
                '"startDate":"2019-10-01T13:46:00.000+0000","statistic":"Average",'
                '"period":300,"recentDatapoints":[0.0666851903306472],"threshold":50.0}',
                "timestamp": "2019-10-01T13:56:40.987+0000",
                "value": "OK",
            },
            "state": {
                "reason": "Threshold Crossed: 1 out of the last 1 datapoints "
                "[99.50160229693434 (02/10/19 16:59:00)] was greater than the threshold (50.0) "
                '(minimum 1 datapoint for OK -> ALARM transition). "quoted"',
                "reasonData": '{"version":"1.0","queryDate":"2019-10-02T17:04:40.985+0000",'
                '"startDate":"2019-10-02T16:59:00.000+0000","statistic":"Average",'
                '"period":300,"recentDatapoints":[99.50160229693434],"threshold":50.0}',
                "timestamp": "2019-10-02T17:04:40.989+0000",
                "value": state,
            },
        },
    }
    return event


def entry(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Resources": event["resources"],
        "Detail": json.dumps(event["detail"]),
    }


def transform(transformer: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """EventBridge's input transformer for simple ``$.a.b`` paths and placeholders outside
    quotes (all CDK's ``EventField`` renders): each becomes the JSON text of its value."""
    values = {}
    for name, path in transformer["InputPathsMap"].items():
        assert re.fullmatch(r"\$(\.[A-Za-z0-9-]+)+", path), path
        value: Any = event
        for part in path.split(".")[1:]:
            value = value[part]
        values[name] = json.dumps(value)
    template = transformer["InputTemplate"]
    text = re.sub(r"<([A-Za-z0-9_.-]+)>", lambda m: values[m.group(1)], template)
    result: dict[str, Any] = json.loads(text)
    return result


@pytest.fixture
def deliver(aws_env: None, staging: SynthesizedRetraining) -> Iterator[Deliver]:
    """Sends one event to a bus with the synthesized rule (pattern and input transformer, the
    target an SQS queue); returns the transformed input when the rule matched, else None."""
    rule = staging.one("AWS::Events::Rule")["Properties"]
    (target,) = rule["Targets"]
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="matched")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(Name=rule["Name"], EventPattern=json.dumps(rule["EventPattern"]))
        events.put_targets(Rule=rule["Name"], Targets=[{"Id": "q", "Arn": queue_arn}])

        def send(event: dict[str, Any]) -> dict[str, Any] | None:
            assert events.put_events(Entries=[entry(event)])["FailedEntryCount"] == 0
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            for message in messages:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            assert len(messages) <= 1
            if not messages:
                return None
            matched = json.loads(messages[0]["Body"])
            assert matched["detail"] == event["detail"]
            return transform(target["InputTransformer"], event)

        yield send


@pytest.mark.parametrize(
    "suffix", ["retrain-drift", "retrain-endpoint-5xx", "retrain-endpoint-p99"]
)
def test_each_retraining_alarm_going_to_alarm_starts_the_workflow(
    deliver: Deliver, suffix: str
) -> None:
    name = f"mlops-staging-{suffix}"
    event = documented_sample(name)
    assert deliver(event) == {
        "reason": "alarm",
        "alarm": {
            "name": name,
            "reason": event["detail"]["state"]["reason"],
            "time": "2019-10-02T17:04:40Z",
        },
    }


@pytest.mark.parametrize("state", ["OK", "INSUFFICIENT_DATA"])
def test_other_state_changes_do_not_match(deliver: Deliver, state: str) -> None:
    assert deliver(documented_sample("mlops-staging-retrain-drift", state)) is None


@pytest.mark.parametrize(
    "name",
    [
        "mlops-staging-endpoint-5xx",  # the deployment's rollback alarm: not a retraining one
        "mlops-prod-retrain-drift",  # another stage's
        "mlops-staging-retrain-drift-2",  # a lookalike
        "ServerCpuTooHigh",  # the documentation's own alarm
    ],
)
def test_other_alarms_do_not_match(deliver: Deliver, name: str) -> None:
    assert deliver(documented_sample(name)) is None


def test_another_source_or_detail_type_does_not_match(deliver: Deliver) -> None:
    event = documented_sample("mlops-staging-retrain-drift")
    assert deliver(dict(copy.deepcopy(event), source="custom.cloudwatch")) is None
    assert deliver(dict(copy.deepcopy(event), **{"detail-type": "CloudWatch Alarm"})) is None
