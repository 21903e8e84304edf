"""The retraining workflow's ASL passes the pinned npm asl-validator, and its service-integration
tasks (StartPipelineExecution, SNS Publish) call their APIs with parameters botocore's models
accept (the checks of tests/checks, which also run over every state machine of the app)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.checks.step_functions import check_task, integration, run_asl_validator, states
from tests.retraining.retraining_stages import (
    ACCOUNT,
    REGION,
    SynthesizedRetraining,
    state_machine_definition,
)


def _resolved(stage: SynthesizedRetraining) -> dict[str, Any]:
    resources = stage.template_json["Resources"]

    def resolve(token: dict[str, Any]) -> str:
        if token.get("Ref") == "AWS::Partition":
            return "aws"
        if "Ref" in token and resources[token["Ref"]]["Type"] == "AWS::SNS::Topic":
            return f"arn:aws:sns:{REGION}:{ACCOUNT}:mlops-operations"
        if "Fn::GetAtt" in token:
            name = resources[token["Fn::GetAtt"][0]]["Properties"]["FunctionName"]
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        if "Fn::GetStackOutput" in token:
            return "mlops-staging-stateful-curatedbucket0123456789-abcdefghijkl"
        raise KeyError(token)

    return state_machine_definition(stage, resolve)


@pytest.mark.parametrize("env", ["staging", "dev"])
def test_asl_validator_and_botocore_accept_the_workflow(
    env: str, staging: SynthesizedRetraining, dev: SynthesizedRetraining
) -> None:
    definition = _resolved({"staging": staging, "dev": dev}[env])
    result = run_asl_validator({f"retrain-{env}": definition})
    assert result.returncode == 0, result.stdout + result.stderr
    checked = []
    for name, state in states(definition):
        if state["Type"] == "Task" and integration(state["Resource"]) is not None:
            assert check_task(state) == [], name
            checked.append(name)
    assert sorted(checked) == ["NotifySkipped", "NotifyStarted", "StartPipelineExecution"]


def test_a_broken_start_call_is_caught(staging: SynthesizedRetraining) -> None:
    definition = _resolved(staging)
    start = copy.deepcopy(dict(states(definition))["StartPipelineExecution"])
    start["Parameters"]["PipelineExecutionDisplayName"] = "retrain_on alarm!"
    start["Parameters"].pop("PipelineExecutionDisplayName.$")
    errors = check_task(start)
    assert any("PipelineExecutionDisplayName" in e for e in errors), errors
