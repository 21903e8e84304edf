"""`make bench` times the suite as `make test` runs it: same workers, same distribution."""

from __future__ import annotations

import re
from pathlib import Path

from infra import bench

MAKEFILE = Path(__file__).resolve().parents[2] / "Makefile"


def test_bench_runs_the_suite_with_the_makefiles_workers() -> None:
    text = MAKEFILE.read_text()
    match = re.search(r"^PYTEST_WORKERS := (.+)$", text, re.M)
    assert match, "PYTEST_WORKERS is missing from the Makefile"
    assert tuple(match.group(1).split()) == bench.PYTEST_WORKERS
    test_recipe = re.search(r"^test:.*\n\t(.+)$", text, re.M)
    assert test_recipe and "$(PYTEST_WORKERS)" in test_recipe.group(1)
