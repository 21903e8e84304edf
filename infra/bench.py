"""``make bench``: synth wall times against an empty CDK app's, printed as numbers (never asserted).

Every synth goes through the pinned CDK CLI (``node_modules/.bin/cdk synth --quiet``, what ``make
synth`` runs) with the venv's Python and Node:

* the app, every stage of the checked-out branch, security gates included (the figure: its
  median over the empty app's median);
* the floor: an empty CDK app (one empty stack) run by the same CLI, venv and Node;
* the app with one more stage (``-c branch=...`` adds a branch stage): what a stage adds.

Runs are interleaved (the order rotates every round) after one untimed warm-up of each, and
medians are printed with min and max: the machine may be shared. Also printed: resources and
seconds per 100 resources above the floor, the cold (uncached) pipeline-definition render time
measured in a fresh process, and the test suite's wall time (one run; ``--skip-tests``).

Usage: ``python -m infra.bench [--runs 5] [--skip-tests]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.model_build import definition_cache

REPO_ROOT = Path(__file__).resolve().parent.parent
CDK_CLI = REPO_ROOT / "node_modules" / ".bin" / "cdk"
EXTRA_BRANCH = "bench/one-more-stage"
EMPTY_APP = 'import aws_cdk as cdk\n\napp = cdk.App()\ncdk.Stack(app, "Empty")\napp.synth()\n'


def tool_env() -> dict[str, str]:
    """What the Makefile exports: the venv's bin (Python, Node 24) and the pinned CLI first."""
    env = dict(os.environ)
    path = [str(Path(sys.executable).parent), str(CDK_CLI.parent), env.get("PATH", "")]
    env["PATH"] = os.pathsep.join(path)
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    env["SAGEMAKER_VALIDATE_ROLE"] = "false"
    return env


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def default_branch() -> str:
    """The configured default branch (cdk.json), without building the config's objects."""
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    return str(context["mlops"]["default_branch"])


def cdk_synth(cwd: Path, outdir: Path, *args: str) -> tuple[float, float]:
    """(wall, CPU) seconds of ``cdk synth --quiet`` into a fresh ``outdir``; exits on failure.

    CPU is user + system time of the CLI and everything it ran (app, jsii's Node): less
    sensitive than wall time to other work on a shared machine."""
    if outdir.exists():
        shutil.rmtree(outdir)
    command = [str(CDK_CLI), "synth", "--quiet", "--output", str(outdir), *args]
    cpu = children_cpu()
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=tool_env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    cpu = children_cpu() - cpu
    if result.returncode != 0:
        sys.exit(f"bench: {' '.join(command)} failed in {cwd}:\n{result.stdout}{result.stderr}")
    return elapsed, cpu


def count(outdir: Path) -> tuple[int, int, int]:
    """(stages, stacks, resources) of a cloud assembly (stages are nested assemblies)."""
    stages = stacks = resources = 0
    for manifest_path in [outdir / "manifest.json", *outdir.glob("assembly-*/manifest.json")]:
        manifest = json.loads(manifest_path.read_text())
        stages += manifest_path.parent != outdir
        for artifact in manifest.get("artifacts", {}).values():
            if artifact["type"] == "aws:cloudformation:stack":
                template_file = manifest_path.parent / artifact["properties"]["templateFile"]
                stacks += 1
                resources += len(json.loads(template_file.read_text()).get("Resources", {}))
    return stages, stacks, resources


def cache_entries() -> int:
    directory = definition_cache.DEFAULT_DIRECTORY
    return len(list(directory.glob("*.json"))) if directory.is_dir() else 0


def probe_definitions() -> dict[str, Any]:
    """In this (fresh) process: synthesize with the definition cache off and time each render
    (the first includes importing the SDK). Prints JSON; run by :func:`cold_definitions`."""
    from infra.app_builder import load_cdk_json_context, synthesize

    renders: list[float] = []

    def timed_render(inputs: Any) -> str:
        start = time.perf_counter()
        text = definition_cache._build_with_sdk(inputs)
        renders.append(time.perf_counter() - start)
        return text

    definition_cache._caches[None] = definition_cache.DefinitionCache(None, build=timed_render)
    context = dict(load_cdk_json_context(), **{definition_cache.CONTEXT_KEY: False})
    with tempfile.TemporaryDirectory() as outdir:
        synthesize(context, outdir=outdir)
    return {"renders": renders}


def cold_definitions() -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "infra.bench", "--probe-definitions"],
        cwd=REPO_ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"bench: definition probe failed:\n{result.stdout}{result.stderr}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


#: As the Makefile's PYTEST_WORKERS (`make test`); a test keeps the two the same.
PYTEST_WORKERS = ("-n", "2", "--dist", "worksteal")


def test_suite() -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *PYTEST_WORKERS, "-q", "-p", "no:cacheprovider"],
        cwd=REPO_ROOT,
        env=tool_env() | {"PYTHONDONTWRITEBYTECODE": ""},  # as `make test` runs it
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - start
    lines = (result.stdout + result.stderr).splitlines()
    summary = next((ln for ln in reversed(lines) if " passed" in ln or " failed" in ln), "")
    return elapsed, summary.strip("= ") or f"exit {result.returncode}"


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} s  [{min(values):.2f}-{max(values):.2f}]"


def median_cpu(runs: list[tuple[float, float]]) -> float:
    return statistics.median(cpu for _, cpu in runs)


def loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--skip-tests", action="store_true", help="do not time the test suite")
    parser.add_argument(
        "--uncached",
        action="store_true",
        help="also time the app with -c definition-cache=off (every definition rendered)",
    )
    parser.add_argument("--probe-definitions", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe_definitions:
        print(json.dumps(probe_definitions()))
        return 0
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    default = default_branch()
    load_before = loadavg()
    with tempfile.TemporaryDirectory(prefix="mlops-bench-") as work:
        root = Path(work)
        empty_app = root / "empty-app"
        empty_app.mkdir()
        (empty_app / "app.py").write_text(EMPTY_APP)
        # The same interpreter and flags as cdk.json's app command (python -O).
        (empty_app / "cdk.json").write_text(json.dumps({"app": f"{sys.executable} -O app.py"}))
        runs: dict[str, Callable[[], tuple[float, float]]] = {
            # The default branch's app (its stages and the delivery pipeline), whatever is
            # checked out: the figure does not depend on the working copy's branch.
            "app": lambda: cdk_synth(REPO_ROOT, root / "app.out", "-c", f"branch={default}"),
            "empty": lambda: cdk_synth(empty_app, root / "empty.out"),
            "extra": lambda: cdk_synth(
                REPO_ROOT, root / "extra.out", "-c", f"branch={EXTRA_BRANCH}"
            ),
        }
        if args.uncached:
            runs["uncached"] = lambda: cdk_synth(
                REPO_ROOT, root / "uncached.out", "-c", f"{definition_cache.CONTEXT_KEY}=off"
            )
        for run in runs.values():  # warm-up: disk caches, jsii's package cache, definitions
            run()
        counts = {name: count(root / f"{name}.out") for name in runs}
        entries_before = cache_entries()
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
        order = list(runs)
        for round_ in range(args.runs):
            for name in order[round_ % len(order) :] + order[: round_ % len(order)]:
                samples[name].append(runs[name]())
        rendered = cache_entries() - entries_before

    definitions = cold_definitions()["renders"]
    suite = None if args.skip_tests else test_suite()

    times = {name: [wall for wall, _ in values] for name, values in samples.items()}
    cpu = {name: median_cpu(values) for name, values in samples.items()}
    app, empty, extra = (statistics.median(times[n]) for n in ("app", "empty", "extra"))
    stages, stacks, resources = counts["app"]
    extra_resources = counts["extra"][2] - resources
    above = app - empty
    width = 62
    print(f"machine: {os.cpu_count()} cores; load average (1/5/15 min) {load_before} before,")
    print(f"{'':9}{loadavg()} after; medians of {args.runs} interleaved runs [min-max]")
    label = f"synth, {default}: {stages} stages, {stacks} stacks (pinned CLI, gates included)"
    print(f"{label:<{width}}{spread(times['app'])}")
    print(
        f"{'synth, empty app (one empty stack, same CLI and venv)':<{width}}"
        f"{spread(times['empty'])}"
    )
    print(f"{'RATIO app / empty app (the figure to quote)':<{width}}{app / empty:7.2f}")
    print(
        f"{'CPU s (user+sys, medians): app / empty app / one more stage':<{width}}"
        f"{cpu['app']:7.2f} / {cpu['empty']:.2f} / {cpu['extra']:.2f}  "
        f"(ratio {cpu['app'] / cpu['empty']:.2f})"
    )
    print(f"{'resources (' + f'{stacks} stacks)':<{width}}{resources:7d}")
    print(f"{'synth above the floor':<{width}}{above:7.2f} s")
    print(
        f"{'seconds per 100 resources above the floor':<{width}}"
        f"{100 * above / max(resources, 1):7.2f} s"
    )
    print(
        f"{f'one more stage (+{extra_resources} resources): synth':<{width}}"
        f"{spread(times['extra'])}  (+{extra - app:.2f} s, ratio {extra / empty:.2f})"
    )
    if "uncached" in times:
        uncached = statistics.median(times["uncached"])
        print(
            f"{'synth with the definition cache off (every definition rendered)':<{width}}"
            f"{spread(times['uncached'])}  (ratio {uncached / empty:.2f}, "
            f"CPU {cpu['uncached']:.2f} s)"
        )
    print(f"{'definitions rendered during the timed runs (cache misses)':<{width}}{rendered:7d}")
    if definitions:
        print(
            f"{f'pipeline definitions, cold (uncached): {len(definitions)} renders':<{width}}"
            f"{sum(definitions):7.2f} s  (first, with the SDK import, {definitions[0]:.2f} s)"
        )
    if suite is not None:
        label = f"test suite (pytest {' '.join(PYTEST_WORKERS)}, one run)"
        print(f"{label:<{width}}{suite[0]:7.2f} s  {suite[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
