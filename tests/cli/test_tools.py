"""``mlops teardown``, ``stage-name``, ``synth-summary`` and ``cost``: the tools that were
``python -m infra.*`` before (``make deploy/diff/destroy/synth`` call them)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import Result

from infra.naming import Naming
from tests.cli.conftest import as_json, one_error_line
from tests.sweeper.monitoring_fake import MonitoringSchedules

REGION = "us-east-1"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


@pytest.mark.parametrize(
    ("args", "stage"),
    [
        (("--env", "staging"), "mlops-staging"),
        (("--env", "prod", "--branch", "main"), "mlops-prod"),
        (("--branch", "feat/Drift_Alarm"), "mlops-br-feat-drift-alarm"),
    ],
)
def test_stage_name(
    mlops: Callable[..., Result],
    args: tuple[str, ...],
    stage: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Whatever the working copy has checked out: the default branch's stages are asked for.
    monkeypatch.setattr("infra.workspace.current_git_branch", lambda *_: "main")
    result = mlops("stage-name", *args)
    assert (result.exit_code, result.stdout) == (0, f"{stage}\n")


def test_stage_name_follows_the_checked_out_feature_branch(
    mlops: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("infra.workspace.current_git_branch", lambda *_: "fix/typo")
    assert mlops("stage-name", "--env", "prod").stdout == "mlops-br-fix-typo\n"


def test_stage_name_of_a_bad_branch_is_a_config_error(mlops: Callable[..., Result]) -> None:
    line = one_error_line(mlops("stage-name", "--branch", "///"), 2)
    assert line.startswith("mlops: config error: branch = '///': ")


def test_teardown_deletes_the_branch_stage_resources(
    moto_aws: None, mlops: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    sm = boto3.client("sagemaker", region_name=REGION)
    # The CLI's session, with the monitoring schedules moto lacks (monitoring_fake.py).
    cli_session = boto3.Session(region_name=REGION)
    schedules = MonitoringSchedules(cli_session.events, REGION)
    monkeypatch.setattr("cli.aws.session", lambda *_, **__: cli_session)
    for qualifier in ("br-feat-drift", "dev"):
        prefix = Naming("mlops", qualifier).model_monitor_prefix
        schedules.add(f"{prefix}-data-quality", f"mlops-{qualifier}-endpoint", f"{prefix}-dq-v1-a")
    for name in ("mlops-br-feat-drift-model-1", "mlops-dev-model-1"):
        sm.create_model(
            ModelName=name,
            ExecutionRoleArn="arn:aws:iam::111111111111:role/x",
            PrimaryContainer={"Image": IMAGE},
        )
    # (model versions: tests/foundation/test_teardown.py; moto cannot delete them)
    declined = mlops("teardown", "--branch", "feat/drift", input="n\n")
    assert declined.exit_code == 1 and declined.stdout.endswith("teardown: nothing deleted\n")
    no_terminal = mlops("teardown", "--branch", "feat/drift")  # no input at all: a no
    assert no_terminal.exit_code == 1 and no_terminal.stdout.endswith("nothing deleted\n")
    assert len(sm.list_models()["Models"]) == 2
    result = mlops("teardown", "--branch", "feat/drift", "--yes")
    assert result.exit_code == 0, result.stderr
    assert (
        result.stdout.splitlines()[-1] == "teardown: 2 resource(s) deleted from mlops-br-feat-drift"
    )
    assert [m["ModelName"] for m in sm.list_models()["Models"]] == ["mlops-dev-model-1"]
    assert list(schedules.schedules) == ["mlops-dev-mm-data-quality"]


def test_an_incomplete_teardown_is_one_line_exit_1(
    mlops: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sweeper import teardown

    def blocked(*_: Any) -> int:
        raise teardown.TeardownError("monitoring schedule(s) x still being deleted: rerun")

    monkeypatch.setattr(teardown, "teardown", blocked)
    monkeypatch.setattr("cli.aws.check_account", lambda *_: None)
    line = one_error_line(mlops("teardown", "--branch", "feat/drift", "--yes"), 1)
    assert line == "mlops: teardown incomplete: monitoring schedule(s) x still being deleted: rerun"


def _assembly(root: Path, gate: int = 3) -> Path:
    """A cloud assembly as make synth leaves it: the app's summary and one stage's stacks."""
    stage = root / "assembly-mlops-dev"
    stage.mkdir(parents=True)
    (stage / "manifest.json").write_text(
        json.dumps(
            {
                "artifacts": {
                    "a": {
                        "type": "aws:cloudformation:stack",
                        "properties": {"templateFile": "a.json", "stackName": "mlops-dev-stateful"},
                    },
                    "b": {"type": "cdk:asset-manifest", "properties": {}},
                }
            }
        )
    )
    (stage / "a.json").write_text(json.dumps({"Resources": {"X": {}, "Y": {}}}))
    (root / "mlops-summary.json").write_text(
        json.dumps(
            {
                "branch": "main",
                "rule_packs": ["A", "B", "C"],
                "stages": [
                    {
                        "stage": "mlops-dev",
                        "kind": "shared",
                        "environment": "dev",
                        "account": "111111111111",
                        "placeholder_account": True,
                        "region": REGION,
                        "stacks": ["mlops-dev-stateful"],
                        "nag_packs_passed": gate,
                    }
                ],
            }
        )
    )
    return root


def test_synth_summary_table_and_json(tmp_path: Path, mlops: Callable[..., Result]) -> None:
    out = _assembly(tmp_path / "cdk.out")
    text = mlops("synth-summary", str(out)).stdout
    assert "mlops-dev-stateful" in text and "1 stages, 2 resources" in text
    assert "security gate (A, B, C): 0 unacknowledged findings in every stage" in text
    assert "* placeholder account id" in text
    report = as_json(mlops("synth-summary", str(out), "--output", "json"))
    assert report["stages"][0]["resources"] == [{"stack": "mlops-dev-stateful", "resources": 2}]


def test_synth_summary_without_a_synth(tmp_path: Path, mlops: Callable[..., Result]) -> None:
    line = one_error_line(mlops("synth-summary", str(tmp_path)), 1)
    assert line == f"mlops: {tmp_path}/mlops-summary.json not found (run make synth first)"


def test_cost_not_available_without_the_costing_module(
    tmp_path: Path, mlops: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "costing", None)  # import costing... fails as if absent
    monkeypatch.delitem(sys.modules, "costing.estimate", raising=False)
    line = one_error_line(mlops("cost", str(tmp_path)), 4)
    assert line.startswith("mlops: cost report not available yet (")


def test_cost_of_the_synthesized_stages(synthesized: Any, mlops: Callable[..., Result]) -> None:
    """The command presents what costing computes from the session synth, number for number."""
    from costing import estimate

    outdir = Path(synthesized.assembly.directory)
    expected = {c.stage: c for c in estimate.stage_costs(outdir)}
    report = as_json(mlops("cost", str(outdir), "--output", "json"))
    assert [s["stage"] for s in report] == list(expected)
    for stage in report:
        cost = expected[stage["stage"]]
        assert stage["idle_monthly_usd"] == cost.idle_monthly_usd
        assert stage["budget_usd"] == cost.budget_usd
        if cost.endpoint is not None:
            per_1000 = stage["endpoint"]["per_1000_requests_usd"]
            assert per_1000 == cost.endpoint.per_1000_requests_usd
    table = mlops("cost", str(outdir)).stdout
    assert all(name in table for name in expected)


def test_preflight_runs_the_checks_on_the_assembly(
    aws_env: None, tmp_path: Path, mlops: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr("cli.preflight.main", lambda argv: calls.append(argv) or 1)
    result = mlops("preflight", "--cdk-out", str(tmp_path))
    assert (result.exit_code, calls) == (1, [["--cdk-out", str(tmp_path)]])


def test_preflight_without_credentials_checks_nothing(
    tmp_path: Path, mlops: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("boto3.Session.get_credentials", lambda self: None)
    monkeypatch.setattr("cli.preflight.main", lambda argv: pytest.fail("checked"))
    line = one_error_line(mlops("preflight"), 3)
    assert line.startswith("mlops: no AWS credentials found: nothing checked (")
