"""The test-only memo of drift runs answers equal inputs only: any difference is a new run."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from monitoring.drift import core
from tests.monitoring import drift_memo
from tests.monitoring.drift_memo import frame_digest, run_key, shared_drift_runs


def frame(seed: int = 0, rows: int = 40) -> pd.DataFrame:
    values = np.random.default_rng(seed).normal(size=(rows, 2))
    return pd.DataFrame(values, columns=["a", "b"])


def test_equal_frames_have_equal_digests_and_any_change_a_new_one() -> None:
    base = frame()
    assert frame_digest(base) == frame_digest(frame())
    changed = base.copy()
    changed.iloc[3, 1] += 1e-12
    renamed = base.rename(columns={"b": "c"})
    as_float32 = base.astype("float32")
    reindexed = base.set_axis(range(1, len(base) + 1))
    digests = {frame_digest(f) for f in (base, changed, renamed, as_float32, reindexed)}
    assert len(digests) == 5


def test_the_key_covers_features_and_options() -> None:
    ref, cur = frame(0), frame(1)
    keys = {
        run_key(ref, cur, ["a", "b"], {}),
        run_key(ref, cur, ["b", "a"], {}),
        run_key(ref, cur, ["a", "b"], {"drift_share": 0.4}),
        run_key(cur, ref, ["a", "b"], {}),
    }
    assert len(keys) == 4


def test_only_equal_calls_share_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    def fake(reference: pd.DataFrame, current: pd.DataFrame, features: Any, **options: Any) -> Any:
        calls.append((len(reference), len(current), tuple(features), options))
        return object()

    monkeypatch.setattr(core, "detect_drift", fake)
    monkeypatch.setattr(drift_memo, "_RUNS", {})
    with shared_drift_runs():
        first = core.detect_drift(frame(0), frame(1), ["a", "b"], min_rows=10)
        again = core.detect_drift(frame(0), frame(1), ["a", "b"], min_rows=10)
        other = core.detect_drift(frame(0), frame(2), ["a", "b"], min_rows=10)
    assert first is again and other is not first
    assert len(calls) == 2
    assert core.detect_drift is fake  # restored after the block
