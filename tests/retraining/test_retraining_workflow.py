"""The synthesized retraining state machine EXECUTED in moto's Step Functions, calling moto's
SageMaker (ListPipelineExecutions, StartPipelineExecution) and SNS; the gate Lambda runs in-process
(moto runs Lambdas only in Docker): same event in, same JSON out, exceptions as a Lambda
``FunctionError`` with the exception's type, like the Lambda service.

moto's pipeline executions end ``Succeeded`` at once and start "now"; a test sets an execution's
status (``Executing``) or start time in moto's backend to play a running or an older execution.
"""

from __future__ import annotations

import json
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto.sagemaker.models import sagemaker_backends

from lambdas.retrain_gate import handler as gate
from tests.moto_lambda import in_process_lambda
from tests.retraining.retraining_stages import SynthesizedRetraining, state_machine_definition

MOTO_ACCOUNT = "123456789012"  # moto's default account: its SFN interpreter calls AWS as it
REGION = "us-east-1"
CURATED_BUCKET = "curated-bucket"
ALARM_REASON = (
    "Threshold Crossed: 1 out of the last 1 datapoints [0.7333 (30/11/26 02:00:00)] was greater "
    "than or equal to the threshold (0.5) (minimum 1 datapoint for OK -> ALARM transition)."
)


def drift_alarm(stage: SynthesizedRetraining) -> dict[str, Any]:
    """The workflow input the alarm rule's input transformer makes of a drift alarm event
    (test_retraining_events.py derives it from AWS's sample event)."""
    return {
        "reason": "alarm",
        "alarm": {
            "name": f"{stage.config.naming.prefix}-retrain-drift",
            "reason": ALARM_REASON,
            "time": "2026-11-30T02:05:00Z",
        },
    }


@dataclass
class Harness:
    stage: SynthesizedRetraining
    state_machine_arn: str
    pipeline_name: str
    queue_url: str
    gate_calls: list[dict[str, Any]]

    def run(self, payload: Any, name: str, timeout: float = 20) -> dict[str, Any]:
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = sfn.start_execution(
            stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload)
        )["executionArn"]
        deadline = time.monotonic() + timeout
        while True:
            description = sfn.describe_execution(executionArn=arn)
            if description["status"] != "RUNNING":
                return dict(description)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{arn} still running after {timeout}s")
            time.sleep(0.1)

    def pipeline_executions(self) -> list[dict[str, Any]]:
        backend = sagemaker_backends[MOTO_ACCOUNT][REGION]
        executions = backend.pipelines[self.pipeline_name].pipeline_executions
        return [
            {
                "arn": arn,
                "displayName": e.pipeline_execution_display_name,
                "description": e.pipeline_execution_description,
                "parameters": {p["Name"]: p["Value"] for p in e.pipeline_parameters},
                "token": e.client_request_token,
                "execution": e,
            }
            for arn, e in executions.items()
        ]

    def notifications(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=REGION)
        found = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                return found
            for message in batch:
                body = json.loads(message["Body"])
                found.append({"subject": body.get("Subject"), **json.loads(body["Message"])})
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def _in_process_gate(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    in_process_lambda(monkeypatch, gate.handler, "retrain-gate", calls)
    return calls


@pytest.fixture
def harness(
    moto_aws: None, staging: SynthesizedRetraining, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Harness]:
    calls = _in_process_gate(monkeypatch)
    resources = staging.template_json["Resources"]
    sns = boto3.client("sns", region_name=REGION)
    topic_arn = sns.create_topic(Name="operations")["TopicArn"]
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="operations-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    pipeline_name = staging.config.naming.pipeline
    boto3.client("sagemaker", region_name=REGION).create_pipeline(
        PipelineName=pipeline_name,
        PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
        RoleArn=f"arn:aws:iam::{MOTO_ACCOUNT}:role/model-build",
    )

    def resolve(token: dict[str, Any]) -> str:
        if token.get("Ref") == "AWS::Partition":
            return "aws"
        if "Ref" in token and resources[token["Ref"]]["Type"] == "AWS::SNS::Topic":
            return str(topic_arn)
        if "Fn::GetAtt" in token:
            logical_id, attribute = token["Fn::GetAtt"]
            resource = resources[logical_id]
            if resource["Type"] == "AWS::Lambda::Function" and attribute == "Arn":
                name = resource["Properties"]["FunctionName"]
                return f"arn:aws:lambda:{REGION}:{MOTO_ACCOUNT}:function:{name}"
        if "Fn::GetStackOutput" in token and "CuratedBucket" in json.dumps(token):
            return CURATED_BUCKET
        raise KeyError(f"no test value for token {token}")

    definition = state_machine_definition(staging, resolve)
    machine = staging.one("AWS::StepFunctions::StateMachine")
    arn = boto3.client("stepfunctions", region_name=REGION).create_state_machine(
        name=machine["Properties"]["StateMachineName"],
        definition=json.dumps(definition),
        roleArn=f"arn:aws:iam::{MOTO_ACCOUNT}:role/state-machine",
    )["stateMachineArn"]
    yield Harness(staging, arn, pipeline_name, queue_url, calls)


def test_a_drift_alarm_starts_exactly_one_pipeline_execution_with_the_reason(
    harness: Harness,
) -> None:
    result = harness.run(drift_alarm(harness.stage), "drift-1")
    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])
    (execution,) = harness.pipeline_executions()
    prefix = harness.stage.config.naming.prefix
    assert output["started"] is True
    assert output["pipelineExecutionArn"] == execution["arn"]
    assert output["triggerReason"] == f"alarm:{prefix}-retrain-drift"
    # The latest curated data, a data version unique to this retraining, the reason recorded.
    assert execution["parameters"] == {
        "InputDataUrl": f"s3://{CURATED_BUCKET}/datasets/breast_cancer/",
        "InputDataVersion": "retrain-drift-1",
        "TriggerReason": f"alarm:{prefix}-retrain-drift",
    }
    assert execution["displayName"] == f"retrain-alarm-{prefix}-retrain-drift-drift-1"
    assert f"alarm {prefix}-retrain-drift in ALARM: {ALARM_REASON}" in execution["description"]
    assert execution["token"] == gate.hashlib.sha256(result["executionArn"].encode()).hexdigest()
    (notice,) = harness.notifications()
    assert notice["subject"] == f"{prefix} retraining started"
    assert notice["pipelineExecutionArn"] == execution["arn"]


def test_a_second_alarm_while_the_pipeline_is_executing_starts_nothing(harness: Harness) -> None:
    assert harness.run(drift_alarm(harness.stage), "drift-1")["status"] == "SUCCEEDED"
    (first,) = harness.pipeline_executions()
    first["execution"].pipeline_execution_status = "Executing"
    # Far outside the cool-down: only the running execution holds the second trigger back.
    first["execution"].start_time -= timedelta(days=30)
    harness.notifications()

    alarm = drift_alarm(harness.stage)
    alarm["alarm"]["name"] = f"{harness.stage.config.naming.prefix}-retrain-endpoint-5xx"
    result = harness.run(alarm, "errors-1")
    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])
    assert output["started"] is False
    assert f"is already running: {first['arn']} is Executing" in output["why"]
    assert len(harness.pipeline_executions()) == 1
    (notice,) = harness.notifications()
    assert notice["subject"].endswith("retraining skipped") and notice["why"] == output["why"]


def test_within_the_cool_down_nothing_starts_and_after_it_one_does(harness: Harness) -> None:
    cooldown = harness.stage.config.environment.retraining.cooldown_minutes
    assert harness.run({"reason": "schedule"}, "schedule-1")["status"] == "SUCCEEDED"
    (first,) = harness.pipeline_executions()
    assert first["execution"].pipeline_execution_status == "Succeeded"  # not running
    first["execution"].start_time -= timedelta(minutes=cooldown - 2)

    result = harness.run(drift_alarm(harness.stage), "drift-in-cool-down")
    output = json.loads(result["output"])
    assert result["status"] == "SUCCEEDED" and output["started"] is False, result
    assert output["why"].startswith("cool-down: the last execution of")
    assert f"({cooldown} minutes)" in output["why"]
    assert len(harness.pipeline_executions()) == 1

    # The same trigger once the cool-down has passed: started.
    first["execution"].start_time -= timedelta(minutes=3)
    result = harness.run(drift_alarm(harness.stage), "drift-after-cool-down")
    assert json.loads(result["output"])["started"] is True
    assert len(harness.pipeline_executions()) == 2


def test_the_schedule_input_starts_exactly_one_execution(harness: Harness) -> None:
    result = harness.run({"reason": "schedule"}, "weekly")
    assert result["status"] == "SUCCEEDED", result
    (execution,) = harness.pipeline_executions()
    assert execution["parameters"]["TriggerReason"] == "schedule"
    assert execution["parameters"]["InputDataVersion"] == "retrain-weekly"
    assert execution["displayName"] == "retrain-schedule-weekly"
    assert execution["description"].startswith("Retraining: schedule (workflow execution ")


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"reason": "drift"},
        {"reason": "alarm"},
        {"reason": "alarm", "alarm": {"name": "", "reason": "x"}},
        {"reason": "alarm", "alarm": {"name": "a", "reason": 7}},
        ["reason", "schedule"],
    ],
    ids=["empty", "unknown-reason", "alarm-without-alarm", "empty-name", "reason-not-text", "list"],
)
def test_a_malformed_trigger_fails_the_execution_and_starts_nothing(
    harness: Harness, payload: Any
) -> None:
    result = harness.run(payload, "malformed")
    assert result["status"] == "FAILED", result
    assert result.get("error") == "InvalidTrigger", result
    assert harness.pipeline_executions() == []
    assert harness.notifications() == []


def test_an_earlier_running_trigger_holds_a_later_one_back() -> None:
    """Two triggers at once (5xx and latency alarms together): the later execution of the
    workflow sees the earlier one RUNNING and does not start (the earlier one decides)."""
    now = datetime(2026, 11, 30, 2, 5, tzinfo=UTC)
    me = "arn:aws:states:us-east-1:1:execution:retrain:b"
    other = "arn:aws:states:us-east-1:1:execution:retrain:a"

    class Sfn:
        def get_paginator(self, name: str) -> Any:
            assert name == "list_executions"
            page = {
                "executions": [
                    {"executionArn": me, "name": "b", "startDate": now},
                    {"executionArn": other, "name": "a", "startDate": now - timedelta(seconds=1)},
                ]
            }
            return types.SimpleNamespace(paginate=lambda **kwargs: [page])

    class SageMaker:
        def list_pipeline_executions(self, **kwargs: Any) -> dict[str, Any]:
            return {"PipelineExecutionSummaries": []}

    event = {
        "trigger": {"reason": "schedule"},
        "pipelineName": "p",
        "cooldownMinutes": 60,
        "stateMachineArn": "arn:aws:states:us-east-1:1:stateMachine:retrain",
        "executionArn": me,
        "executionName": "b",
        "executionStartTime": now.isoformat(),
    }
    decision = gate.decide(event, SageMaker(), Sfn())
    assert decision.start is False and "(execution a) started first" in decision.why
    # The earlier one itself is not held back by the later one.
    event.update(
        executionArn=other,
        executionName="a",
        executionStartTime=(now - timedelta(seconds=1)).isoformat(),
    )
    assert gate.decide(event, SageMaker(), Sfn()).start is True
