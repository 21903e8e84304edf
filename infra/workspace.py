"""Where the project's inputs and outputs are, for the app and the tools alike: the ``cdk.json``
context, the checked-out git branch and which branch a command targets, and the summary file the
app writes next to the cloud assembly.

Ground floor: standard library and :mod:`infra.config` only (no CDK import), so the operator
CLI (``cli/``) resolves a stage without loading the app's stacks.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from infra.config import AppConfig, ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Written by the app next to the assembly (infra/app_builder.py), read by ``mlops synth-summary``.
SUMMARY_FILE = "mlops-summary.json"


def current_git_branch(cwd: Path = REPO_ROOT) -> str | None:
    """The checked-out branch, or None outside git or on a detached HEAD."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--abbrev-ref", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out if out and out != "HEAD" else None


def resolve_branch(context_branch: Any, config: AppConfig, git_branch: str | None) -> str:
    """``-c branch=...`` first, else the current git branch, else the default branch."""
    if context_branch is not None:
        if not isinstance(context_branch, str) or not context_branch.strip():
            raise ConfigError("branch", context_branch, "expected a git branch name")
        return context_branch.strip()
    return git_branch or config.default_branch


def load_cdk_json_context(path: Path = REPO_ROOT / "cdk.json") -> dict[str, Any]:
    """The context block of cdk.json (what the CDK CLI passes to the app), for tests and tools."""
    context = json.loads(path.read_text())["context"]
    assert isinstance(context, dict)
    return context
