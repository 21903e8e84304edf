"""The retraining construct in every synthesized stage's operations stack (the session's app):
its alarms, workflow and (where configured) schedule, on the curated dataset the ingestion writes,
undeliverable alarm events to the operations dead-letter queue."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import EPHEMERAL_STAGE, SHARED_STAGES, resources_of_type

SCHEDULED = {"mlops-dev": False, "mlops-staging": True, "mlops-prod": True, EPHEMERAL_STAGE: False}


@pytest.mark.parametrize("stage", [*SHARED_STAGES, EPHEMERAL_STAGE])
def test_every_stage_has_its_retraining(templates: dict[str, Any], stage: str) -> None:
    operations = templates[stage]["Operations"]
    alarms = {
        a["Properties"]["AlarmName"]
        for a in resources_of_type(operations, "AWS::CloudWatch::Alarm").values()
    }
    # Branch stages: cost_controls.alarms false (README "Cost"): no alarms, no alarm rule.
    with_alarms = stage != EPHEMERAL_STAGE
    retrain_alarms = {f"{stage}-retrain-{n}" for n in ("drift", "endpoint-5xx", "endpoint-p99")}
    assert retrain_alarms & alarms == (retrain_alarms if with_alarms else set())
    machines = {
        m["Properties"]["StateMachineName"]: m
        for m in resources_of_type(operations, "AWS::StepFunctions::StateMachine").values()
    }
    definition = json.dumps(machines[f"{stage}-retrain"]["Properties"]["DefinitionString"])
    # InputDataUrl: the curated dataset prefix (the curated bucket's name comes from the
    # stateful stack), as the ingestion workflow passes it.
    assert '\\"Name\\":\\"InputDataUrl\\",\\"Value\\":\\"s3://' in definition
    assert "/datasets/breast_cancer/" in definition and "CuratedBucket" in definition
    # the retraining schedule only (the stack holds others: drift monitoring, dev's sweeper)
    schedules = [
        s
        for s in resources_of_type(operations, "AWS::Scheduler::Schedule").values()
        if s["Properties"]["Name"] == f"{stage}-retrain-schedule"
    ]
    assert len(schedules) == (1 if SCHEDULED[stage] else 0)
    rules = [
        r["Properties"]
        for r in resources_of_type(operations, "AWS::Events::Rule").values()
        if r["Properties"].get("Name") == f"{stage}-retrain-on-alarm"
    ]
    if not with_alarms:
        assert rules == []
        return
    (rule,) = rules
    (target,) = rule["Targets"]
    assert "DeadLetterConfig" in target
