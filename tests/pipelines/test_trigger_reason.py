"""The ``TriggerReason`` pipeline parameter: recorded in the registered model package's
CustomerMetadataProperties; every value the retraining gate produces is a valid CreateModelPackage
request (botocore's model), and a value the metadata pattern refuses is caught."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdas.retrain_gate.handler import Trigger
from pipelines.model_build import contract as c
from pipelines.model_build import definition as d
from tests.pipelines.test_job_arguments import BASE, _set_parameter_default, all_steps, errors_of


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return dict(json.loads(d.build_definition(BASE)))


def test_trigger_reason_is_a_parameter_recorded_on_the_model_package(doc: dict[str, Any]) -> None:
    (parameter,) = [p for p in doc["Parameters"] if p["Name"] == d.PARAM_TRIGGER_REASON]
    assert parameter == {"Name": "TriggerReason", "Type": "String", "DefaultValue": "manual"}
    register = all_steps(doc)[c.REGISTER_STEP]["Arguments"]
    assert register["CustomerMetadataProperties"]["TriggerReason"] == {
        "Get": "Parameters.TriggerReason"
    }


@pytest.mark.parametrize(
    "trigger",
    [
        Trigger("alarm", alarm_name="mlops-br-feat-some-branch-retrain-drift", detail="x"),
        Trigger("alarm", alarm_name="odd name (copy) #2, really", detail="x"),
        Trigger("schedule"),
        Trigger("manual", detail="operator asked: new data?"),
    ],
    ids=["alarm", "odd-alarm-name", "schedule", "manual"],
)
def test_every_value_the_gate_produces_registers(doc: dict[str, Any], trigger: Trigger) -> None:
    with_reason = _set_parameter_default(doc, d.PARAM_TRIGGER_REASON, trigger.metadata_value)
    assert errors_of(with_reason)[c.REGISTER_STEP] == []


def test_a_reason_the_metadata_pattern_refuses_is_caught(doc: dict[str, Any]) -> None:
    broken = _set_parameter_default(doc, d.PARAM_TRIGGER_REASON, "alarm: a,b")
    (error,) = errors_of(broken)[c.REGISTER_STEP]
    assert error.startswith("CustomerMetadataProperties.TriggerReason: 'alarm: a,b' does not match")
