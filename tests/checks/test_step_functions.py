"""Every Step Functions definition of every synthesized stage is valid ASL per the pinned npm
asl-validator, and every service-integration task calls its API with parameters botocore's model
of that API accepts. The negative tests prove both checks really reject broken input."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.checks.step_functions import (
    StateMachine,
    check_task,
    integration,
    run_asl_validator,
    state_machines,
    states,
)
from tests.conftest import EPHEMERAL_STAGE, SHARED_STAGES

ALL_STAGES = (*SHARED_STAGES, EPHEMERAL_STAGE)


@pytest.fixture(scope="module")
def machines(synthesized: Any) -> list[StateMachine]:
    return state_machines(Path(synthesized.assembly.directory))


def _by_stage(machines: list[StateMachine], stage: str) -> list[StateMachine]:
    return [m for m in machines if m.template_file.parent.name == f"assembly-{stage}"]


def _tasks(machine: StateMachine) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in states(machine.definition) if s["Type"] == "Task"}


def test_every_stage_has_its_deployment_workflow_rendered_without_tokens(
    machines: list[StateMachine],
) -> None:
    for stage in ALL_STAGES:
        assert _by_stage(machines, stage), f"no state machine found in {stage}"
    for machine in machines:
        text = json.dumps(machine.definition)
        assert "Fn::" not in text and '"Ref"' not in text, machine.label


def test_asl_validator_accepts_every_definition(machines: list[StateMachine]) -> None:
    result = run_asl_validator({m.label: m.definition for m in machines})
    assert result.returncode == 0, result.stdout + result.stderr


def _first_task(definition: dict[str, Any]) -> dict[str, Any]:
    return next(s for _, s in states(definition) if s["Type"] == "Task")


@pytest.mark.parametrize(
    "breakage",
    ["dangling Next", "unknown field", "bad resource ARN", "no StartAt"],
)
def test_asl_validator_rejects_broken_definitions(
    machines: list[StateMachine], breakage: str
) -> None:
    definition = copy.deepcopy(machines[0].definition)
    task = _first_task(definition)
    if breakage == "dangling Next":
        task["Next"] = "NoSuchState"
        task.pop("End", None)
    elif breakage == "unknown field":
        task["TimeoutSecond"] = 30
    elif breakage == "bad resource ARN":
        task["Resource"] = "lambda:function:plan"
    else:
        del definition["StartAt"]
    result = run_asl_validator({"broken": definition})
    assert result.returncode != 0, f"{breakage} passed asl-validator: {result.stdout}"


@pytest.mark.parametrize("stage", ALL_STAGES)
def test_service_integration_parameters_match_botocore(
    machines: list[StateMachine], stage: str
) -> None:
    checked = []
    for machine in _by_stage(machines, stage):
        for name, task in _tasks(machine).items():
            if integration(task["Resource"]) is None:  # a Lambda function: free-form payload
                continue
            assert check_task(task) == [], f"{machine.label} {name}"
            checked.append(name)
    # the deployment workflow calls SageMaker and SNS: nothing may be silently skipped
    assert {"CreateModel", "CreateEndpointConfig", "UpdateEndpoint", "NotifyFailure"} <= set(
        checked
    )


def _deployment_tasks(machines: list[StateMachine]) -> dict[str, dict[str, Any]]:
    (machine,) = [m for m in _by_stage(machines, "mlops-prod") if "Deployment" in m.label]
    return copy.deepcopy(_tasks(machine))


@pytest.mark.parametrize(
    ("state", "change", "expected"),
    [
        ("CreateModel", {"ExecutionRoleArn": "not-an-arn"}, "ExecutionRoleArn"),
        ("CreateModel", {"ModelNmae.$": "$.plan.modelName"}, "ModelNmae: unknown member"),
        ("CreateEndpoint", {"EndpointName": None}, "EndpointName"),
        ("CreateEndpoint", {"EndpointName": "bad_name!"}, "EndpointName"),
        ("UpdateEndpoint", {"RetainAllVariantProperties": "yes"}, "expected a boolean"),
        ("NotifyFailure", {"Message": None}, "Message: required member"),
        ("NotifyFailure", {"MessageGroupId": 5}, "expected a string"),
        # a context-object value checked in its typed form: an execution ARN is no endpoint name
        ("CreateEndpoint", {"EndpointName": None, "EndpointName.$": "$$.Execution.Id"}, "pattern"),
        # an intrinsic returning a number where the API wants a string
        ("CreateEndpoint", {"Tags": [{"Key": "k", "Value.$": "States.MathAdd(1, 2)"}]}, "Value"),
    ],
)
def test_botocore_check_rejects_broken_parameters(
    machines: list[StateMachine], state: str, change: dict[str, Any], expected: str
) -> None:
    task = _deployment_tasks(machines)[state]
    params = task["Parameters"]
    for key, value in change.items():
        if value is None:
            params.pop(key, None)
            params.pop(f"{key}.$", None)
        else:
            params[key] = value
    errors = check_task(task)
    assert any(expected in error for error in errors), errors


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("arn:aws:states:::aws-sdk:sagemaker:CreateEndpoint", "camelCase"),
        ("arn:aws:states:::aws-sdk:sagemaker:createEndpoints", "no operation CreateEndpoints"),
        ("arn:aws:states:::aws-sdk:sage-maker:createEndpoint", "no botocore service"),
        ("arn:aws:states:::sns:publishes", "no operation"),
    ],
)
def test_unknown_integrations_are_errors(resource: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        integration(resource)


@pytest.mark.parametrize(
    ("resource", "service", "operation"),
    [
        ("arn:aws:states:::aws-sdk:sfn:startExecution", "stepfunctions", "StartExecution"),
        (
            "arn:aws:states:::aws-sdk:applicationautoscaling:registerScalableTarget",
            "application-autoscaling",
            "RegisterScalableTarget",
        ),
        ("arn:aws:states:::aws-sdk:cloudwatch:describeAlarms", "cloudwatch", "DescribeAlarms"),
        ("arn:aws:states:::sagemaker:createTrainingJob.sync", "sagemaker", "CreateTrainingJob"),
        ("arn:aws:states:::states:startExecution.sync:2", "stepfunctions", "StartExecution"),
        ("arn:aws:states:::sns:publish", "sns", "Publish"),
    ],
)
def test_integration_names_map_to_botocore(resource: str, service: str, operation: str) -> None:
    target = integration(resource)
    assert target is not None and (target.service, target.operation) == (service, operation)
