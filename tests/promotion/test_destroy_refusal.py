"""``make destroy`` refuses the shared dev/staging/prod stages: ``mlops teardown`` (its first
command) exits 2 with one line naming the stage, before any AWS client or prompt, so ``cdk destroy``
never runs; a branch stage still goes through teardown as before."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    def refuse(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("teardown created an AWS client for a shared stage")

    monkeypatch.setattr(boto3, "client", refuse)
    monkeypatch.setattr("builtins.input", lambda prompt="": pytest.fail(f"prompted: {prompt}"))


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_shared_stage_is_refused_in_one_line(
    no_aws: None, env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = CliRunner().invoke(app, ["teardown", "--branch", "main", "--env", env, "--yes"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"mlops: refusing to destroy mlops-{env}: dev, staging and prod are shared stages of the "
        "default branch 'main'; make destroy removes branch stages only "
        "(make destroy BRANCH=feat/x)\n"
    )


def test_checked_out_default_branch_is_refused(
    no_aws: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("infra.workspace.current_git_branch", lambda *_: "main")
    result = CliRunner().invoke(app, ["teardown"])
    assert result.exit_code == 2
    assert result.stderr.startswith("mlops: refusing to destroy mlops-dev: ")


def test_branch_stage_still_goes_through_teardown(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt="": prompts.append(prompt) or "n")
    result = CliRunner().invoke(app, ["teardown", "--branch", "feat/drift", "--env", "prod"])
    assert result.exit_code == 1
    assert prompts == [
        "Delete monitoring schedules, endpoint, models and model versions of "
        "mlops-br-feat-drift? [y/N] "
    ]
    assert result.stdout == "teardown: nothing deleted\n"


def test_make_destroy_runs_the_refusal_before_cdk_destroy() -> None:
    """``make -n`` prints the recipe without running it: teardown (with the stage's ENV) comes
    first, and make stops at its non-zero exit."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", "destroy", "BRANCH=main", "ENV=staging"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    teardown_at = next(i for i, line in enumerate(lines) if "bin/mlops teardown" in line)
    destroy_at = next(i for i, line in enumerate(lines) if line.startswith("cdk destroy"))
    assert teardown_at < destroy_at
    assert "--env staging --branch 'main'" in lines[teardown_at]
    assert "'mlops-staging/*'" in lines[destroy_at]
