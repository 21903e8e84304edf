"""``make bench``: wall times from one run, printed as numbers (never asserted).

* synth of every stage (the app, with the checked-out branch's stages) vs. synth of an empty CDK app
  (the floor: Python + jsii + Node start-up);
* the whole test suite, as CI runs it;
* the local model-build pipeline (``make pipeline-local``), when present.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from infra.app_builder import REPO_ROOT, load_cdk_json_context

EMPTY_APP = "import aws_cdk as cdk; cdk.App().synth()"


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, result.returncode, result.stdout + result.stderr


def main() -> int:
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as out_empty, tempfile.TemporaryDirectory() as out_app:
        base = dict(os.environ)
        floor, rc, log = _timed([sys.executable, "-c", EMPTY_APP], dict(base, CDK_OUTDIR=out_empty))
        rows.append(("synth: empty CDK app (floor)", floor, "ok" if rc == 0 else f"exit {rc}"))
        context = json.dumps(load_cdk_json_context())
        synth, rc, log = _timed(
            [sys.executable, "app.py"], dict(base, CDK_OUTDIR=out_app, CDK_CONTEXT_JSON=context)
        )
        stages = len(list(Path(out_app).glob("assembly-*")))
        rows.append((f"synth: all {stages} stages", synth, "ok" if rc == 0 else f"exit {rc}"))
        if rc != 0:
            print(log, file=sys.stderr)
    tests, rc, log = _timed(
        [sys.executable, "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider"]
    )
    summary = next(
        (ln for ln in reversed(log.splitlines()) if " passed" in ln or " failed" in ln), ""
    )
    rows.append(("test suite (pytest -n 2)", tests, summary.strip("= ") or f"exit {rc}"))
    local_run = REPO_ROOT / "pipelines" / "model_build" / "local_run.py"
    if local_run.exists():
        with tempfile.TemporaryDirectory() as work:
            elapsed, rc, _ = _timed(
                [sys.executable, "-m", "pipelines.model_build.local_run", "--work-dir", work]
            )
        rows.append(("pipeline-local (target < 30 s)", elapsed, "ok" if rc == 0 else f"exit {rc}"))

    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'wall s':>8}  result")
    for name, seconds, note in rows:
        print(f"{name:<{width}}  {seconds:>8.2f}  {note}")
    print(f"{'synth above the floor':<{width}}  {synth - floor:>8.2f}")
    print(f"machine: {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
