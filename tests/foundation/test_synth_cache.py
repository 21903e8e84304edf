"""A cold synth (every pipeline definition rendered by the SageMaker SDK) and a warm one (every
definition read from the cache) write the same templates, byte for byte."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED_STAGES, no_network


def stage_files(outdir: Path, stage: str) -> dict[str, bytes]:
    """A stage's templates and asset manifests (what ``cdk deploy`` reads), by file name."""
    assembly = outdir / f"assembly-{stage}"
    files = [*assembly.glob("*.template.json"), *assembly.glob("*.assets.json")]
    return {path.name: path.read_bytes() for path in sorted(files)}


def test_cold_and_warm_synth_write_identical_templates(
    cdk_context: dict[str, Any],
    synthesized: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from infra.app_builder import synthesize
    from pipelines.model_build import definition_cache as dc

    # Sources edited earlier in this (long) test process are current for this test: the
    # cold synth stores its definitions unless they change while it runs.
    monkeypatch.setattr(dc, "PROCESS_START", time.time())
    directory = tmp_path / "definitions"
    context = dict(
        cdk_context,
        branch=cdk_context["mlops"]["default_branch"],
        **{dc.CONTEXT_KEY: str(directory)},
    )
    runs: dict[str, dict[str, int]] = {}
    for run in ("cold", "warm"):
        monkeypatch.setattr(dc, "_caches", {})  # a new process: nothing in memory
        with no_network() as attempts:
            synthesize(context, outdir=str(tmp_path / run))
        assert attempts == []
        runs[run] = dict(dc._caches[dc.resolve_directory(str(directory))].stats)

    stages = len(SHARED_STAGES)
    assert runs["cold"] == {"memory": 0, "disk": 0, "rendered": stages, "stored": stages}
    assert runs["warm"] == {"memory": 0, "disk": stages, "rendered": 0, "stored": 0}
    session = Path(synthesized.assembly.directory)  # the session's app: its own cache, 4 stages
    for stage in SHARED_STAGES:
        cold = stage_files(tmp_path / "cold", stage)
        assert len(cold) == 6, sorted(cold)  # three stacks
        assert stage_files(tmp_path / "warm", stage) == cold
        assert stage_files(session, stage) == cold
