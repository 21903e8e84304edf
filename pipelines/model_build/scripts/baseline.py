"""DataQualityBaseline step (SageMaker Processing, scikit-learn image).

Reads the RAW train split (``target`` + ``--features``) and writes drift baselines for the
features, in ``--features`` order (the contract's ``FEATURES``; the target is not part of the
endpoint's input, so it is left out):

* ``statistics.json``: shaped like SageMaker Model Monitor's data-quality ``statistics.json``
  (``dataset.item_count``; per feature ``numerical_statistics`` with ``common.num_present/
  num_missing``, ``mean``, ``sum``, ``std_dev`` (population), ``min``, ``max`` and
  ``distribution.kll.buckets``: ``--buckets`` equal-width buckets from min to max). Custom
  statistics for drift checks sit next to ``kll`` in ``distribution``:

  - ``quantiles``: ``{"probabilities": [0, 0.01, ..., 1], "values": [...]}`` (linear
    interpolation): an empirical CDF for a Kolmogorov-Smirnov check;
  - ``psi_bins``: equal-frequency bins for a population stability index check. ``edges`` are the
    distinct inner decile edges; bin i holds values v with ``edges[i-1] < v <= edges[i]``, the
    first bin is open below and the last open above (``numpy.searchsorted(edges, v,
    side="left")`` gives the bin); ``proportions`` are the train split's shares per bin.

* ``constraints.json``: shaped like Model Monitor's ``constraints.json``: per feature ``name``,
  ``inferred_type`` (``Integral`` | ``Fractional``), ``completeness`` and
  ``num_constraints.is_non_negative``, plus a ``monitoring_config``.

* ``reference.csv``: the reference sample the drift job compares captured requests with
  (``monitoring/drift``, which finds it next to the model package's drift-check
  ``statistics.json``): a header of the feature names, then the train split's raw feature values,
  one row per training row, in ``--features`` order, values exactly as read (a missing value is
  an empty field). At most ``--reference-rows`` rows (default 1000): a larger split is sampled
  without replacement by ``numpy.random.RandomState(--seed)`` (a generator whose stream numpy
  keeps fixed across releases), rows kept in their split order. 1000 because Evidently tests a
  numerical feature with the two-sample Kolmogorov-Smirnov test up to 1000 reference rows (a
  p-value, drift when below 0.05) and switches to the normed Wasserstein distance above; the cap
  keeps the test, and the file small, whatever the training data's size.

The input's columns must be exactly ``target`` and ``--features`` (any order): a missing or an
unexpected column is an error, so the baseline always describes the model's inputs.

Deterministic: same input, byte-identical files. Standalone (stdlib, numpy, pandas; Python 3.8,
pandas 1.x). Failures: one line on stderr and in ``--failure-file``.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TARGET = "target"
STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
REFERENCE_FILE = "reference.csv"  # == contract.REFERENCE_FILE == monitoring.drift.baseline's
REFERENCE_ROWS = 1000
REFERENCE_SEED = 42
QUANTILE_PROBABILITIES = [i / 100 for i in range(101)]
PSI_BINS = 10


class StepError(Exception):
    """A problem with the step's input: reported as one line, no traceback."""


def read_split(input_path: Path) -> tuple[pd.DataFrame, str]:
    if input_path.is_file():
        files = [input_path]
    elif input_path.is_dir():
        files = sorted(
            p for p in input_path.rglob("*") if p.is_file() and p.suffix.lower() == ".csv"
        )
        if not files:
            raise StepError(f"{input_path}: no CSV files in directory")
    else:
        raise StepError(f"{input_path}: input path does not exist")
    frames = []
    for path in files:
        try:
            frame = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise StepError(f"{path}: file empty") from None
        if TARGET not in frame.columns:
            raise StepError(f"{path}: missing column {TARGET!r}")
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    where = str(files[0]) if len(files) == 1 else f"{input_path} ({len(files)} CSV files)"
    if data.empty:
        raise StepError(f"{where}: no data rows")
    for name in data.columns:
        if not pd.api.types.is_numeric_dtype(data[name]):
            raise StepError(f"{where}: column {name!r} is not numeric")
    return data, where


def select_features(data: pd.DataFrame, features: list[str], where: str) -> pd.DataFrame:
    """``target`` then ``features``; a missing column, or any other one, is an error."""
    duplicated = sorted({f for f in features if features.count(f) > 1})
    if duplicated:
        raise StepError(f"--features lists {', '.join(duplicated)} more than once")
    if TARGET in features:
        raise StepError(f"--features may not name the target column {TARGET!r}")
    missing = [f for f in features if f not in data.columns]
    if missing:
        raise StepError(f"{where}: missing feature column(s) {', '.join(missing)}")
    unexpected = [str(c) for c in data.columns if c != TARGET and c not in features]
    if unexpected:
        raise StepError(f"{where}: column(s) {', '.join(unexpected)} are not in --features")
    return data[[TARGET, *features]]


def reference_sample(data: pd.DataFrame, features: list[str], rows: int, seed: int) -> pd.DataFrame:
    """At most ``rows`` rows of the features: all of them, or a seeded sample in split order."""
    if len(data) <= rows:
        chosen = np.arange(len(data))
    else:
        chosen = np.sort(np.random.RandomState(seed).choice(len(data), size=rows, replace=False))
    return data[features].iloc[chosen]


def _number(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def feature_statistics(name: str, column: np.ndarray, buckets: int) -> dict[str, Any]:
    present = column[~np.isnan(column)]
    n_present = int(present.size)
    stats: dict[str, Any] = {
        "common": {"num_present": n_present, "num_missing": int(column.size - n_present)}
    }
    if n_present == 0:
        stats.update({"mean": None, "sum": None, "std_dev": None, "min": None, "max": None})
        return {"name": name, "inferred_type": "Unknown", "numerical_statistics": stats}

    low, high = float(present.min()), float(present.max())
    if high > low:
        counts, edges = np.histogram(present, bins=buckets, range=(low, high))
    else:
        counts, edges = np.array([n_present]), np.array([low, high])
    kll_buckets = [
        {
            "lower_bound": float(edges[i]),
            "upper_bound": float(edges[i + 1]),
            "count": float(counts[i]),
        }
        for i in range(len(counts))
    ]
    quantile_values = np.quantile(present, QUANTILE_PROBABILITIES)
    inner = np.quantile(present, [i / PSI_BINS for i in range(1, PSI_BINS)])
    psi_edges = np.unique(inner)
    bin_index = np.searchsorted(psi_edges, present, side="left")
    bin_counts = np.bincount(bin_index, minlength=psi_edges.size + 1)
    stats.update(
        {
            "mean": _number(present.mean()),
            "sum": _number(present.sum()),
            "std_dev": _number(present.std()),
            "min": low,
            "max": high,
            "distribution": {
                "kll": {"buckets": kll_buckets},
                "quantiles": {
                    "probabilities": QUANTILE_PROBABILITIES,
                    "values": [float(v) for v in quantile_values],
                },
                "psi_bins": {
                    "edges": [float(v) for v in psi_edges],
                    "counts": [int(c) for c in bin_counts],
                    "proportions": [float(c) / n_present for c in bin_counts],
                },
            },
        }
    )
    integral = bool(np.all(np.equal(np.floor(present), present)))
    return {
        "name": name,
        "inferred_type": "Integral" if integral else "Fractional",
        "numerical_statistics": stats,
    }


def build_baseline(data: pd.DataFrame, buckets: int) -> tuple[dict[str, Any], dict[str, Any]]:
    features = [c for c in data.columns if c != TARGET]
    n_rows = len(data)
    statistics_features = []
    constraint_features = []
    for name in features:
        column = data[name].to_numpy(dtype=np.float64)
        feature = feature_statistics(name, column, buckets)
        statistics_features.append(feature)
        num = feature["numerical_statistics"]
        constraint: dict[str, Any] = {
            "name": name,
            "inferred_type": feature["inferred_type"],
            "completeness": num["common"]["num_present"] / n_rows,
        }
        if num["min"] is not None:
            constraint["num_constraints"] = {"is_non_negative": bool(num["min"] >= 0)}
        constraint_features.append(constraint)
    statistics = {
        "version": 0.0,
        "dataset": {"item_count": n_rows},
        "features": statistics_features,
    }
    constraints = {
        "version": 0.0,
        "features": constraint_features,
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "datatype_check_threshold": 1.0,
            "domain_content_threshold": 1.0,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": 0.1,
                "comparison_method": "Robust",
            },
        },
    }
    return statistics, constraints


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Write data-quality drift baselines.")
    parser.add_argument("--input", type=Path, default=Path("/opt/ml/processing/input/train"))
    parser.add_argument(
        "--output-dir", type=Path, default=Path("/opt/ml/processing/output/baseline")
    )
    parser.add_argument("--buckets", type=int, default=10)
    parser.add_argument("--reference-rows", type=int, default=REFERENCE_ROWS)
    parser.add_argument("--seed", type=int, default=REFERENCE_SEED)
    parser.add_argument("--failure-file", type=Path, default=Path("/opt/ml/output/message"))
    # One argument per name (a container argument holds at most 256 characters).
    parser.add_argument("--features", nargs="+", required=True, metavar="NAME")
    return parser


def run(args: argparse.Namespace) -> None:
    if args.buckets < 1:
        raise StepError(f"--buckets must be at least 1, got {args.buckets}")
    if args.reference_rows < 1:
        raise StepError(f"--reference-rows must be at least 1, got {args.reference_rows}")
    features = list(args.features)
    data, where = read_split(args.input)
    data = select_features(data, features, where)
    statistics, constraints = build_baseline(data, args.buckets)
    reference = reference_sample(data, features, args.reference_rows, args.seed)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    write_json(args.output_dir / STATISTICS_FILE, statistics)
    write_json(args.output_dir / CONSTRAINTS_FILE, constraints)
    reference.to_csv(args.output_dir / REFERENCE_FILE, index=False)  # "\n" on Linux
    n_features = len(statistics["features"])
    print(
        f"{where}: baseline of {n_features} features over {len(data)} rows, "
        f"reference sample of {len(reference)} rows"
    )


def _report_failure(message: str, failure_file: Path | None) -> None:
    message = " ".join(message.split())
    print(f"ERROR: {message}", file=sys.stderr)
    if failure_file is not None:
        try:
            failure_file.parent.mkdir(parents=True, exist_ok=True)
            failure_file.write_text(message + "\n", encoding="utf-8")
        except OSError:
            pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except StepError as exc:
        _report_failure(str(exc), args.failure_file)
        return 1
    except Exception as exc:  # unexpected: keep the traceback in the logs
        traceback.print_exc()
        _report_failure(f"unexpected error: {type(exc).__name__}: {exc}", args.failure_file)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
