"""The sweeper as synthesized (session synth): only in the shared dev stage, least-privilege IAM,
the schedule, a self-contained Lambda asset; the ephemeral stage's stacks carry the tags it
looks for; its deletion order matches the stage's stack dependencies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.config import DEPLOYED_BY_BRANCH_TAG, EPHEMERAL_TTL_TAG
from lambdas.sweeper.handler import DELETE_WAVES
from sweeper.infrastructure import ASSET_FILES
from tests.conftest import EPHEMERAL_STAGE, SHARED_STAGES, TEST_BRANCH, resources_of_type

SWEEPER = "BranchSweeper"


def sweeper_resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if k.startswith(SWEEPER)}


def test_only_the_shared_dev_stage_has_a_sweeper(templates: dict[str, Any]) -> None:
    for stage, stacks in templates.items():
        found = {name for name, t in stacks.items() if sweeper_resources(t)}
        assert found == ({"Operations"} if stage == "mlops-dev" else set()), stage


@pytest.fixture(scope="module")
def operations(templates: dict[str, Any]) -> dict[str, Any]:
    template: dict[str, Any] = templates["mlops-dev"]["Operations"]
    return template


def _statements(template: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    policies = [
        p
        for k, p in resources_of_type(template, "AWS::IAM::Policy").items()
        if k.startswith(role_prefix)
    ]
    assert len(policies) == 1
    statements: list[dict[str, Any]] = policies[0]["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _by_action(statements: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for statement in statements:
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            out[action] = statement
    return out


def test_delete_stack_only_on_branch_stacks_carrying_both_tags(operations: dict[str, Any]) -> None:
    actions = _by_action(_statements(operations, f"{SWEEPER}FunctionServiceRole"))
    stacks = "arn:aws:cloudformation:us-east-1:111111111111:stack/mlops-br-*/*"
    delete = actions["cloudformation:DeleteStack"]
    assert delete["Resource"] == stacks
    assert delete["Condition"] == {
        "StringLike": {
            f"aws:ResourceTag/{EPHEMERAL_TTL_TAG}": "*",
            f"aws:ResourceTag/{DEPLOYED_BY_BRANCH_TAG}": "*",
        }
    }
    assert actions["cloudformation:DescribeStacks"]["Resource"] == stacks
    assert actions["cloudformation:ListStacks"]["Resource"] == "*"  # no resource-level support
    # no role passing, no stack updates, nothing on the shared stages' names
    assert not any(a.startswith("iam:") for a in actions)
    assert set(a for a in actions if a.startswith("cloudformation:")) == {
        "cloudformation:ListStacks",
        "cloudformation:DescribeStacks",
        "cloudformation:DeleteStack",
    }
    for action in ("DeleteEndpoint", "DeleteEndpointConfig", "DeleteModel", "DeleteModelPackage"):
        resources = actions[f"sagemaker:{action}"]["Resource"]
        assert all(":mlops-br-" in r or "/mlops-br-" in r for r in resources), resources
    # what sweeper.teardown deletes of the model_monitor backend: branch names only
    delete = actions["sagemaker:DeleteMonitoringSchedule"]
    for action in ("DeleteDataQualityJobDefinition", "DeleteModelQualityJobDefinition"):
        assert actions[f"sagemaker:{action}"] is delete
    prefix = "arn:aws:sagemaker:us-east-1:111111111111"
    for kind in (
        "monitoring-schedule",
        "data-quality-job-definition",
        "model-quality-job-definition",
    ):
        assert f"{prefix}:{kind}/mlops-br-*" in delete["Resource"]
    for listing in ("ListMonitoringSchedules", "ListDataQualityJobDefinitions"):
        assert actions[f"sagemaker:{listing}"]["Resource"] == "*"  # no resource-level support
    assert "sns:Publish" in actions


def test_the_schedule_invokes_the_sweeper_with_a_confused_deputy_safe_role(
    operations: dict[str, Any],
) -> None:
    (schedule,) = (
        s
        for k, s in resources_of_type(operations, "AWS::Scheduler::Schedule").items()
        if k.startswith(SWEEPER)
    )
    props = schedule["Properties"]
    assert props["Name"] == "mlops-dev-branch-sweeper"
    assert props["ScheduleExpression"] == "cron(0 5 * * ? *)"  # cdk.json
    assert props["ScheduleExpressionTimezone"] == "UTC"
    assert json.loads(props["Target"]["Input"]) == {}
    function_id = props["Target"]["Arn"]["Fn::GetAtt"][0]
    assert function_id.startswith(f"{SWEEPER}Function")
    role_id = props["Target"]["RoleArn"]["Fn::GetAtt"][0]
    trust = operations["Resources"][role_id]["Properties"]["AssumeRolePolicyDocument"]
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": "111111111111"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == (
        "arn:aws:scheduler:us-east-1:111111111111:schedule/default/mlops-dev-branch-sweeper"
    )
    function = operations["Resources"][function_id]["Properties"]
    assert function["Environment"]["Variables"]["PROJECT"] == "mlops"
    assert function["Timeout"] == 900
    assert "TargetArn" in function["DeadLetterConfig"]


def test_lambda_asset_is_self_contained_and_imports_without_cdk(synthesized: Any) -> None:
    """The staged asset holds the handler and the modules it reuses, byte for byte, and
    imports with nothing but the asset on the path (as in Lambda: no CDK, no repo)."""
    out = Path(synthesized.assembly.directory)
    assets = [p for p in out.glob("asset.*") if (p / "sweeper" / "teardown.py").is_file()]
    assert len(assets) == 1
    asset = assets[0]
    assert sorted(str(p.relative_to(asset)) for p in asset.rglob("*.py")) == sorted(ASSET_FILES)
    for name, source in ASSET_FILES.items():
        assert (asset / name).read_bytes() == source.read_bytes(), name
    repo = str(Path(__file__).resolve().parents[2])
    check = (
        f"import sys; sys.path[:] = [p for p in sys.path if p not in ({repo!r}, '')]; "
        "sys.path.insert(0, '.'); import handler, infra; "
        f"assert not infra.__file__.startswith({repo!r}), infra.__file__; "
        "assert 'aws_cdk' not in sys.modules; print(handler.DELETE_WAVES)"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], cwd=asset, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "operations" in result.stdout


def test_ephemeral_stacks_carry_the_tags_the_sweeper_needs(synthesized: Any) -> None:
    for stage in synthesized.stages:
        for stack in stage.node.children:
            if not hasattr(stack, "artifact_id"):
                continue
            tags = synthesized.assembly.get_stack_artifact(stack.artifact_id).tags
            if stage.stage_name == EPHEMERAL_STAGE:
                assert tags[EPHEMERAL_TTL_TAG] == "7"
                assert tags[DEPLOYED_BY_BRANCH_TAG] == TEST_BRANCH
            else:
                assert stage.stage_name in SHARED_STAGES
                assert EPHEMERAL_TTL_TAG not in tags and DEPLOYED_BY_BRANCH_TAG not in tags


def test_delete_waves_follow_the_stage_dependencies(synthesized: Any) -> None:
    """Every stack is deleted in an earlier wave than the stacks it depends on."""
    stage = synthesized.stage(EPHEMERAL_STAGE)
    prefix = stage.config.naming.prefix
    wave_of = {suffix: i for i, wave in enumerate(DELETE_WAVES) for suffix in wave}
    stacks = [s for s in stage.node.children if hasattr(s, "artifact_id")]
    suffixes = {s.stack_name.removeprefix(prefix + "-") for s in stacks}
    assert suffixes == set(wave_of)  # every stack of a stage has its wave
    for stack in stacks:
        for dependency in stack.dependencies:
            dependent_suffix = stack.stack_name.removeprefix(prefix + "-")
            dependency_suffix = dependency.stack_name.removeprefix(prefix + "-")
            assert wave_of[dependent_suffix] < wave_of[dependency_suffix]
