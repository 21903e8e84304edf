"""The gate's answers as SageMaker requests: every string it produces is a valid
StartPipelineExecution request (botocore's model) and a data version the pipeline accepts, for
long and odd alarm names and execution names; bad triggers are refused before any call."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from lambdas.retrain_gate import handler as gate
from pipelines.model_build.contract import DATA_VERSION_PATTERN
from tests.botocore_shapes import validate

NOW = datetime(2026, 11, 30, 2, 5, tzinfo=UTC)


class NoCalls:
    """A client that fails the test when used (bad input must be refused before any call)."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected AWS call {name}")


class Idle:
    def list_pipeline_executions(self, **kwargs: Any) -> dict[str, Any]:
        return {"PipelineExecutionSummaries": []}

    def get_paginator(self, name: str) -> Any:
        class Paginator:
            def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
                return [{"executions": []}]

        return Paginator()


def _event(trigger: Any, execution_name: str = "abc", **changes: Any) -> dict[str, Any]:
    event = {
        "trigger": trigger,
        "pipelineName": "mlops-br-feat-some-branch-model-build",
        "cooldownMinutes": 60,
        "stateMachineArn": "arn:aws:states:us-east-1:111111111111:stateMachine:retrain",
        "executionArn": f"arn:aws:states:us-east-1:111111111111:execution:retrain:{execution_name}",
        "executionName": execution_name,
        "executionStartTime": NOW.isoformat().replace("+00:00", "Z"),
    }
    event.update(changes)
    return event


@pytest.mark.parametrize(
    ("trigger", "execution_name"),
    [
        ({"reason": "schedule"}, "e3b0c442-98fc-1c14-9afb-f4c8996fb924_0b1c2d3e"),
        (
            {"reason": "alarm", "alarm": {"name": "x" * 255, "reason": "r" * 1024}},
            "a" * 80,
        ),
        (
            {"reason": "alarm", "alarm": {"name": "Drift (copy) #2, é", "reason": 'ü\n"x"'}},
            "__--__",
        ),
        ({"reason": "manual", "note": "new labels, see ticket #12"}, "manual-2026-11-30"),
    ],
    ids=["schedule-uuid-name", "longest", "odd-characters", "manual"],
)
def test_every_answer_is_a_valid_start_request(trigger: Any, execution_name: str) -> None:
    decision = gate.decide(_event(trigger, execution_name), Idle(), Idle())
    assert decision.start is True
    request = {
        "PipelineName": "mlops-br-feat-some-branch-model-build",
        "PipelineExecutionDisplayName": decision.displayName,
        "PipelineExecutionDescription": decision.description,
        "ClientRequestToken": decision.clientRequestToken,
        "PipelineParameters": [
            {"Name": "InputDataUrl", "Value": "s3://curated/datasets/breast_cancer/"},
            {"Name": "InputDataVersion", "Value": decision.dataVersion},
            {"Name": "TriggerReason", "Value": decision.triggerReason},
        ],
    }
    assert validate("sagemaker", "StartPipelineExecution", request) == []
    assert re.fullmatch(DATA_VERSION_PATTERN, decision.dataVersion), decision.dataVersion
    assert decision.dataVersion.startswith("retrain-")


def test_the_description_carries_the_alarm_and_its_state_reason() -> None:
    trigger = {"reason": "alarm", "alarm": {"name": "mlops-dev-retrain-drift", "reason": "Crossed"}}
    decision = gate.decide(_event(trigger), Idle(), Idle())
    assert decision.description.startswith("Retraining: alarm mlops-dev-retrain-drift in ALARM: ")
    assert "Crossed" in decision.description and decision.triggerReason == (
        "alarm:mlops-dev-retrain-drift"
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"trigger": None}, "reason one of alarm, schedule, manual"),
        ({"trigger": {"reason": "alarm", "alarm": {"name": "a"}}}, "alarm.reason"),
        ({"trigger": {"reason": "manual", "note": 5}}, "note"),
        ({"cooldownMinutes": 0}, "cooldownMinutes 0"),
        ({"cooldownMinutes": True}, "cooldownMinutes True"),
        ({"pipelineName": ""}, "pipelineName"),
        ({"executionStartTime": "2026-11-30T02:05:00"}, "with a zone"),
        ({"executionStartTime": 1796000000}, "executionStartTime"),
    ],
)
def test_bad_input_is_refused_before_any_call(changes: dict[str, Any], message: str) -> None:
    event = _event({"reason": "schedule"})
    event.update(changes)
    with pytest.raises(gate.InvalidTrigger, match=re.escape(message)):
        gate.decide(event, NoCalls(), NoCalls())
