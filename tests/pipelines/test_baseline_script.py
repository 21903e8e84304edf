"""baseline.py: Model Monitor-shaped statistics/constraints, drift bins, determinism."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mb_helpers import synthetic_frame, write_csv


def run_baseline(
    baseline: ModuleType,
    source: Path,
    out: Path,
    *extra: str,
    features: tuple[str, ...] = ("a", "b", "c"),
) -> tuple[dict[str, Any], dict[str, Any]]:
    args = ["--input", str(source), "--output-dir", str(out), "--failure-file", str(out / "msg")]
    assert baseline.main([*args, *extra, "--features", *features]) == 0
    return (
        json.loads((out / "statistics.json").read_text()),
        json.loads((out / "constraints.json").read_text()),
    )


@pytest.fixture
def train_split(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    frame = synthetic_frame(rows=200)[["target", "a", "b", "c"]]
    frame.loc[frame.index[:20], "b"] = np.nan  # 10 % missing
    return write_csv(tmp_path / "train" / "train.csv", frame), frame


def test_statistics_match_the_data(
    baseline: ModuleType, train_split: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    source, frame = train_split
    statistics, _ = run_baseline(baseline, source.parent, tmp_path / "out")
    assert statistics["dataset"] == {"item_count": 200}
    features = {f["name"]: f for f in statistics["features"]}
    assert list(features) == ["a", "b", "c"]  # the target is not an endpoint input
    for name in ("a", "b", "c"):
        values = frame[name].dropna().to_numpy()
        num = features[name]["numerical_statistics"]
        assert num["common"] == {"num_present": values.size, "num_missing": 200 - values.size}
        assert num["mean"] == pytest.approx(values.mean())
        assert num["sum"] == pytest.approx(values.sum())
        assert num["std_dev"] == pytest.approx(values.std())
        assert (num["min"], num["max"]) == (values.min(), values.max())
        buckets = num["distribution"]["kll"]["buckets"]
        assert len(buckets) == 10
        assert sum(b["count"] for b in buckets) == values.size
        assert buckets[0]["lower_bound"] == values.min()
        assert buckets[-1]["upper_bound"] == pytest.approx(values.max())
        quantiles = num["distribution"]["quantiles"]
        assert len(quantiles["probabilities"]) == len(quantiles["values"]) == 101
        assert quantiles["values"][0] == values.min() and quantiles["values"][-1] == values.max()
        assert quantiles["values"] == sorted(quantiles["values"])
        assert quantiles["values"][50] == pytest.approx(np.median(values))
        psi = num["distribution"]["psi_bins"]
        assert len(psi["proportions"]) == len(psi["edges"]) + 1 == len(psi["counts"])
        assert sum(psi["counts"]) == values.size
        assert sum(psi["proportions"]) == pytest.approx(1.0)
        # Bin convention: numpy.searchsorted(edges, v, side="left") gives the bin.
        index = np.searchsorted(psi["edges"], values, side="left")
        assert np.bincount(index, minlength=len(psi["counts"])).tolist() == psi["counts"]
    assert features["a"]["inferred_type"] == "Fractional"
    assert features["c"]["inferred_type"] == "Integral"
    # Continuous data: deciles give ten bins of about 10 % each.
    assert (
        max(features["a"]["numerical_statistics"]["distribution"]["psi_bins"]["proportions"]) < 0.12
    )


def test_constraints_hold_names_types_and_completeness(
    baseline: ModuleType, train_split: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    source, _ = train_split
    _, constraints = run_baseline(baseline, source, tmp_path / "out")
    by_name = {f["name"]: f for f in constraints["features"]}
    assert list(by_name) == ["a", "b", "c"]
    assert by_name["a"]["completeness"] == 1.0
    assert by_name["b"]["completeness"] == pytest.approx(0.9)
    assert by_name["c"]["inferred_type"] == "Integral"
    assert by_name["a"]["num_constraints"] == {"is_non_negative": False}
    assert by_name["c"]["num_constraints"] == {"is_non_negative": True}
    assert constraints["monitoring_config"]["distribution_constraints"]["perform_comparison"] == (
        "Enabled"
    )


def test_baseline_is_deterministic(
    baseline: ModuleType, train_split: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    source, _ = train_split
    run_baseline(baseline, source, tmp_path / "one")
    run_baseline(baseline, source, tmp_path / "two")
    for name in ("statistics.json", "constraints.json", "reference.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_constant_feature_gets_a_single_bucket(baseline: ModuleType, tmp_path: Path) -> None:
    frame = pd.DataFrame({"target": [0, 1] * 10, "k": [3.5] * 20})
    statistics, _ = run_baseline(
        baseline, write_csv(tmp_path / "t.csv", frame), tmp_path / "out", features=("k",)
    )
    num = statistics["features"][0]["numerical_statistics"]
    assert num["distribution"]["kll"]["buckets"] == [
        {"lower_bound": 3.5, "upper_bound": 3.5, "count": 20.0}
    ]
    assert num["std_dev"] == 0.0
    assert num["distribution"]["psi_bins"] == {
        "edges": [3.5],
        "counts": [20, 0],
        "proportions": [1.0, 0.0],
    }


@pytest.mark.parametrize(
    ("content", "expected"),
    [("", "file empty"), ("a,b\n1,2\n", "missing column 'target'")],
)
def test_bad_input_is_reported_in_one_line(
    baseline: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    expected: str,
) -> None:
    source = tmp_path / "train.csv"
    source.write_text(content)
    args = ["--input", str(source), "--output-dir", str(tmp_path / "out"), "--features", "a", "b"]
    assert baseline.main([*args, "--failure-file", str(tmp_path / "msg")]) == 1
    err = capsys.readouterr().err
    assert err == f"ERROR: {source}: {expected}\n"
    assert (tmp_path / "msg").read_text() == f"{source}: {expected}\n"


# ---- reference.csv: the drift job's reference sample -------------------------------------------


def test_reference_holds_the_raw_features_in_features_order(
    baseline: ModuleType, train_split: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    source, frame = train_split
    out = tmp_path / "out"
    statistics, _ = run_baseline(baseline, source, out, features=("c", "a", "b"))
    lines = (out / "reference.csv").read_text().splitlines()
    assert lines[0] == "c,a,b"  # the --features order, not the file's; no target
    assert [f["name"] for f in statistics["features"]] == ["c", "a", "b"]
    reference = pd.read_csv(out / "reference.csv")
    assert len(reference) == 200  # the whole split: below the cap
    # Values exactly as read (a missing value stays missing), rows in split order.
    pd.testing.assert_frame_equal(reference, frame[["c", "a", "b"]].reset_index(drop=True))
    assert lines[1].split(",")[2] == ""  # row 1 of b is missing: an empty field


def test_reference_is_a_seeded_sample_capped_at_reference_rows(
    baseline: ModuleType, train_split: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    source, frame = train_split
    run_baseline(baseline, source, tmp_path / "one", "--reference-rows", "50")
    run_baseline(baseline, source, tmp_path / "two", "--reference-rows", "50")
    run_baseline(baseline, source, tmp_path / "other", "--reference-rows", "50", "--seed", "7")
    one = (tmp_path / "one" / "reference.csv").read_bytes()
    assert one == (tmp_path / "two" / "reference.csv").read_bytes()
    assert one != (tmp_path / "other" / "reference.csv").read_bytes()
    sample = pd.read_csv(tmp_path / "one" / "reference.csv")
    assert len(sample) == 50
    # Each sampled row is a training row, each at most once, in the split's order.
    keyed = frame[["a", "b", "c"]].reset_index()
    matched = sample.merge(keyed, on=["a", "c"], how="left")
    assert matched["index"].notna().all() and matched["index"].is_unique
    assert matched["index"].is_monotonic_increasing
    expected = np.sort(np.random.RandomState(42).choice(200, size=50, replace=False))
    assert matched["index"].tolist() == expected.tolist()
    # statistics.json still describes the whole split, not the sample.
    statistics = json.loads((tmp_path / "one" / "statistics.json").read_text())
    assert statistics["dataset"] == {"item_count": 200}


@pytest.mark.parametrize(
    ("features", "extra", "expected"),
    [
        (("a", "b"), (), "column(s) c are not in --features"),
        (("a", "b", "c", "d"), (), "missing feature column(s) d"),
        (("a", "a", "b", "c"), (), "--features lists a more than once"),
        (("a", "b", "c", "target"), (), "--features may not name the target column 'target'"),
        (("a", "b", "c"), ("--reference-rows", "0"), "--reference-rows must be at least 1, got 0"),
    ],
)
def test_feature_list_and_sample_size_are_checked(
    baseline: ModuleType,
    train_split: tuple[Path, pd.DataFrame],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    features: tuple[str, ...],
    extra: tuple[str, ...],
    expected: str,
) -> None:
    source, _ = train_split
    out = tmp_path / "out"
    args = ["--input", str(source), "--output-dir", str(out), "--failure-file", str(tmp_path / "m")]
    assert baseline.main([*args, *extra, "--features", *features]) == 1
    message = (tmp_path / "m").read_text().strip()
    assert message.endswith(expected)
    assert capsys.readouterr().err == f"ERROR: {message}\n"
    assert not (out / "reference.csv").exists()
