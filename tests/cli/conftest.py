"""The ``mlops`` CLI through Typer's CliRunner, against moto (or botocore's Stubber where moto
lacks an API); never AWS."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from cli.main import app


@pytest.fixture
def mlops(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """``mlops(*args)``: the CLI's result (exit code, stdout, stderr), tables 200 columns wide."""
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input)

    return invoke


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def one_error_line(result: Result, code: int) -> str:
    """The single stderr line of a failed command (no traceback), after checking its exit code."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert result.stderr.startswith("mlops: "), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr.rstrip("\n")
