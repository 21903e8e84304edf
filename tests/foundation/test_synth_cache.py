"""A cold synth (the pipeline definition rendered by the SageMaker SDK) and a warm one (read
from the definition cache) write the same templates, byte for byte; the app hands its cache
directory to every stage's pipeline."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from infra.compliance import enforce
from infra.config import CONTEXT_KEY, load_config
from infra.stages import stage_class
from tests.conftest import no_network

REPO = Path(__file__).resolve().parents[2]


def stage_files(outdir: Path, stage: str) -> dict[str, bytes]:
    """A stage's templates and asset manifests (what ``cdk deploy`` reads), by file name."""
    assembly = outdir / f"assembly-{stage}"
    files = [*assembly.glob("*.template.json"), *assembly.glob("*.assets.json")]
    return {path.name: path.read_bytes() for path in sorted(files)}


def synth_dev_stage(context: dict[str, Any], outdir: Path) -> None:
    """The dev stage alone, as the app builds it: stage, gates, synth (network refused)."""
    app = cdk.App(context=context, outdir=str(outdir))
    config = load_config(context[CONTEXT_KEY])
    (dev,) = (sc for sc in config.stages_for_branch(config.default_branch) if sc.env_name == "dev")
    with no_network() as attempts:
        stage = stage_class(dev)(app, config=dev)
        enforce(stage)
        app.synth()
    assert attempts == []


def test_cold_and_warm_synth_write_identical_templates(
    cdk_context: dict[str, Any],
    synthesized: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipelines.model_build import definition_cache as dc

    # Sources edited earlier in this (long) test process are current for this test: the
    # cold synth stores its definition unless they change while it runs.
    monkeypatch.setattr(dc, "PROCESS_START", time.time())
    directory = tmp_path / "definitions"
    context = dict(cdk_context, **{dc.CONTEXT_KEY: str(directory)})
    stats: dict[str, dict[str, int]] = {}
    for run in ("cold", "warm"):
        monkeypatch.setattr(dc, "_caches", {})  # a new process: nothing in memory
        synth_dev_stage(context, tmp_path / run)
        stats[run] = dict(dc._caches[directory].stats)

    assert stats["cold"] == {"memory": 0, "disk": 0, "rendered": 1, "stored": 1}
    assert stats["warm"] == {"memory": 0, "disk": 1, "rendered": 0, "stored": 0}
    cold = stage_files(tmp_path / "cold", "mlops-dev")
    assert any("ModelBuild" in name for name in cold), sorted(cold)
    assert stage_files(tmp_path / "warm", "mlops-dev") == cold
    # The session's app (all stages, its own cache shared by the test workers) wrote the same.
    assert stage_files(Path(synthesized.assembly.directory), "mlops-dev") == cold


def test_the_app_passes_its_cache_directory_to_every_stage(
    synthesized: Any, definition_cache_dir: Path
) -> None:
    from pipelines.model_build import definition_cache as dc

    assert synthesized.app.node.try_get_context(dc.CONTEXT_KEY) == str(definition_cache_dir)
    from tests.conftest import SESSION_SYNTH_CACHE_STATS as stats

    # One definition per stage, each rendered here or read from another worker's render (other
    # apps of this worker, e.g. a module's variant stage, use the same cache: not counted).
    assert stats["rendered"] + stats["disk"] == len(synthesized.stages) == 4


def test_building_the_app_loads_neither_the_aws_sdk_nor_the_sagemaker_sdk() -> None:
    """Synth speed (issue 8): the app's modules import no boto3/botocore (about 0.2 s) and no
    SageMaker SDK (about 3 s); only a definition-cache miss loads the SDK, lazily. And every
    library they do load gets its optimized bytecode compiled by ``make install`` (cdk.json runs
    ``python -O``): the Makefile's OPTIMIZED_PACKAGES lists them all."""
    code = (
        "import sys, sysconfig, infra.app_builder, app\n"
        "site = sysconfig.get_paths()['purelib'] + '/'\n"
        "files = [getattr(m, '__file__', None) or '' for m in list(sys.modules.values())]\n"
        "print(sorted(m for m in ('boto3', 'botocore', 'sagemaker') if m in sys.modules))\n"
        "print(sorted({f[len(site):].split('/')[0] for f in files if f.startswith(site)}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    sdks, libraries = result.stdout.strip().splitlines()
    assert sdks == "[]"
    makefile = (REPO / "Makefile").read_text()
    listed = re.search(r"^OPTIMIZED_PACKAGES := ((?:.*\\\n)*.*)$", makefile, re.M)
    assert listed, "OPTIMIZED_PACKAGES is missing from the Makefile"
    optimized = set(listed.group(1).replace("\\", " ").split())
    loaded = set(ast.literal_eval(libraries)) - {"_distutils_hack"}  # setuptools' .pth hook
    assert loaded <= optimized, f"add to OPTIMIZED_PACKAGES: {sorted(loaded - optimized)}"
    assert json.loads((REPO / "cdk.json").read_text())["app"] == ".venv/bin/python -O app.py"
