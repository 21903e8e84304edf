"""One Evidently run per distinct input per test process, for tests that run the same drift job.

``make drift-local`` (``test_drift.py``'s ``drift_local``) and the executed drift workflow
(``test_drift_workflow.py``) both compare the shipped clean and shifted batches with the
bundled dataset at the same scheduled hour: the very same ``core.detect_drift`` call, about 2 s
of CPU each (Evidently renders its HTML widgets while it computes). Inside
:func:`shared_drift_runs` the first call with given inputs runs Evidently and later calls with
equal inputs get that run's result; what each caller does with it (reports, metrics, the
workflow's decisions) still runs every time. A test of Evidently's own determinism must not use
this (``test_large_reference_switches_to_wasserstein_and_runs_are_deterministic`` does not).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd
import pytest

from monitoring.drift import core

_RUNS: dict[str, core.DriftRun] = {}


def frame_digest(frame: pd.DataFrame) -> str:
    """The frame's columns, dtypes, index and values: equal digests, equal frames."""
    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def run_key(
    reference: pd.DataFrame, current: pd.DataFrame, features: Sequence[str], options: dict[str, Any]
) -> str:
    parts = (frame_digest(reference), frame_digest(current), repr(list(features)))
    return "\0".join((*parts, repr(sorted(options.items()))))


@contextmanager
def shared_drift_runs() -> Iterator[None]:
    """``core.detect_drift`` answers equal inputs with one run, for the block's duration."""
    compute = core.detect_drift

    def detect_drift(
        reference: pd.DataFrame,
        current: pd.DataFrame,
        features: Sequence[str],
        **options: Any,
    ) -> core.DriftRun:
        key = run_key(reference, current, features, options)
        run = _RUNS.get(key)
        if run is None:
            run = _RUNS[key] = compute(reference, current, features, **options)
        return run

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(core, "detect_drift", detect_drift)
        yield
