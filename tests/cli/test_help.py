"""``mlops --help`` lists every command and the exit codes; the console script is installed."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

from typer.testing import Result

from cli.errors import EXIT_CODES_HELP

REPO = Path(__file__).resolve().parents[2]
COMMANDS = (
    "status",
    "approve",
    "reject",
    "promote",
    "lineage",
    "teardown",
    "stage-name",
    "synth-summary",
    "preflight",
    "cost",
)


def test_help_lists_every_command_and_the_exit_codes(mlops: Callable[..., Result]) -> None:
    result = mlops("--help")
    assert result.exit_code == 0
    section = result.stdout.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    listed = [line.split()[0] for line in section.splitlines() if not line.startswith("   ")]
    assert tuple(listed) == COMMANDS
    assert " ".join(EXIT_CODES_HELP.split()) in " ".join(result.stdout.split())


def test_no_arguments_shows_the_help(mlops: Callable[..., Result]) -> None:
    result = mlops()
    assert "Commands:" in result.stdout + result.stderr


def test_read_commands_offer_json_output(mlops: Callable[..., Result]) -> None:
    for command in ("status", "lineage", "synth-summary", "cost", "approve", "reject", "promote"):
        assert "--output" in mlops(command, "--help").stdout, command


def test_console_script_is_declared_and_installed() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"mlops": "cli.main:app"}
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "mlops"]
    assert script.value == "cli.main:app"
    assert script.load().info.name == "mlops"
    installed = Path(sys.executable).parent / "mlops"
    out = subprocess.run(
        [str(installed), "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert all(command in out for command in COMMANDS)


def test_python_dash_m_cli_is_the_same_app() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cli", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert out.startswith("Usage: mlops ")
