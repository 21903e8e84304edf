"""The default branch synthesized once per test session (shared by the xdist workers: the first
one synthesizes into a shared directory under a lock, the others read its output): the pipeline
stack exists only there. The feature-branch session synth (tests/conftest.py) covers the rest."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import no_network, session_shared_dir

DEFAULT_BRANCH = "main"
PIPELINE_STACK = "mlops-pipeline-delivery"


@pytest.fixture(scope="session")
def default_branch_out(
    cdk_context: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
    definition_cache_dir: Path,
) -> Path:
    """cdk.out of ``synthesize`` on the default branch (gates included), network refused."""
    from infra.app_builder import synthesize
    from pipelines.model_build.definition_cache import CONTEXT_KEY

    root = session_shared_dir(tmp_path_factory, "promotion-default-branch")
    out, marker = root / "cdk.out", root / ".complete"
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            context = dict(
                cdk_context, branch=DEFAULT_BRANCH, **{CONTEXT_KEY: str(definition_cache_dir)}
            )
            with no_network() as attempts:
                synthesize(context, outdir=str(out))
            assert attempts == [], f"synth tried to reach the network: {attempts}"
            marker.write_text("complete\n")
    return out


@pytest.fixture(scope="session")
def pipeline_template(default_branch_out: Path) -> dict[str, Any]:
    template: dict[str, Any] = json.loads(
        (default_branch_out / f"{PIPELINE_STACK}.template.json").read_text()
    )
    return template
