"""Per-feature data drift with Evidently 0.7 (``DataDriftPreset``, its default stat tests).

    run = detect_drift(reference, current, features)   # pandas frames of raw feature values
    run.result.share, run.result.dataset_drift, run.result.features[i].drifted
    write_reports(run, out_dir, context={...})           # drift_report.json, drift_report.html

The verdicts are Evidently's own: a feature has drifted when its ``ValueDrift`` test fails, and
the dataset has drifted when the share of drifted features reaches ``drift_share`` (the
``DriftedColumnsCount`` test ``share < drift_share`` fails). Evidently picks each feature's test
from the REFERENCE size and the feature's values: for a numerical feature, the two-sample
Kolmogorov-Smirnov test (drift when p < 0.05) up to 1000 reference rows, else the normed
Wasserstein distance (drift when >= 0.1); categorical-looking features (at most 5 distinct
values) get chi-squared / Z / Jensen-Shannon tests. ``FeatureDrift.method`` and ``threshold``
record which one ran, so ``score`` can be read: a p-value (drift when below the threshold) or a
distance (drift when at or above it).

Evidently is imported on first use (about 5 s of CPU); the rest of the package does not need it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

#: Evidently's own default for DataDriftPreset: dataset drift when >= half the features drift.
DEFAULT_DRIFT_SHARE = 0.5
#: Fewer captured rows than this make a per-feature test meaningless: refuse, don't guess.
DEFAULT_MIN_ROWS = 30
REPORT_JSON = "drift_report.json"
REPORT_HTML = "drift_report.html"
REPORT_SCHEMA_VERSION = 1

_VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
_DRIFTED_COUNT = "evidently:metric_v2:DriftedColumnsCount"


class DriftInputError(ValueError):
    """Reference or current data unusable for a drift run: one line, no traceback."""


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    drifted: bool
    score: float  # the test's statistic: a p-value or a distance, see ``method``
    method: str  # Evidently's name of the test, e.g. "K-S p_value"
    threshold: float
    score_kind: str  # "p_value" (drift when score < threshold) | "distance" (score >= threshold)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "drifted": self.drifted,
            "score": self.score,
            "score_kind": self.score_kind,
            "method": self.method,
            "threshold": self.threshold,
        }


@dataclass(frozen=True)
class DriftResult:
    features: tuple[FeatureDrift, ...]
    drift_share: float  # the dataset-drift threshold on the share of drifted features
    reference_rows: int
    current_rows: int

    @property
    def drifted_features(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.drifted)

    @property
    def drifted_count(self) -> int:
        return len(self.drifted_features)

    @property
    def share(self) -> float:
        return self.drifted_count / len(self.features)

    @property
    def dataset_drift(self) -> bool:
        return self.share >= self.drift_share

    def feature(self, name: str) -> FeatureDrift:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    def summary(self) -> dict[str, Any]:
        return {
            "dataset_drift": self.dataset_drift,
            "drift_share_threshold": self.drift_share,
            "share_of_drifted_features": self.share,
            "number_of_drifted_features": self.drifted_count,
            "number_of_features": len(self.features),
            "drifted_features": list(self.drifted_features),
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
        }


@dataclass(frozen=True)
class DriftRun:
    """A result and the Evidently snapshot it came from (for the JSON and HTML reports)."""

    result: DriftResult
    snapshot: Any  # evidently.core.report.Snapshot


def validate_frame(frame: pd.DataFrame, features: Sequence[str], what: str) -> pd.DataFrame:
    """The feature columns of ``frame`` as float64, in ``features`` order; else DriftInputError."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise DriftInputError(f"{what} lacks feature column(s) {shown}")
    if frame.empty:
        raise DriftInputError(f"{what} has no rows")
    selected = frame[list(features)]
    for name in features:
        if not pd.api.types.is_numeric_dtype(selected[name]) or pd.api.types.is_bool_dtype(
            selected[name]
        ):
            raise DriftInputError(f"{what} column {name!r} is not numeric")
    values = selected.astype("float64")
    infinite = values.columns[values.isin([math.inf, -math.inf]).any()].tolist()
    if infinite:
        raise DriftInputError(f"{what} column {infinite[0]!r} holds an infinite value")
    empty = values.columns[values.isna().all()].tolist()
    if empty:
        raise DriftInputError(f"{what} column {empty[0]!r} has no values")
    return values.reset_index(drop=True)


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str],
    *,
    drift_share: float = DEFAULT_DRIFT_SHARE,
    min_rows: int = DEFAULT_MIN_ROWS,
    timestamp: datetime | None = None,
) -> DriftRun:
    """Compare ``current`` with ``reference`` on ``features`` (numerical) with Evidently."""
    features = list(features)
    if not features:
        raise DriftInputError("no features to compare")
    duplicated = sorted({f for f in features if features.count(f) > 1})
    if duplicated:
        raise DriftInputError(f"feature(s) listed twice: {', '.join(duplicated)}")
    if not 0.0 < drift_share <= 1.0:
        raise DriftInputError(f"drift share must be in (0, 1], got {drift_share}")
    ref = validate_frame(reference, features, "reference data")
    cur = validate_frame(current, features, "current data")
    for what, frame in (("reference data", ref), ("current data", cur)):
        if len(frame) < min_rows:
            raise DriftInputError(
                f"{what} has {len(frame)} rows, at least {min_rows} needed for a drift test"
            )

    os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's telemetry switch (UI service only)
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=features)
    report = Report(
        [DataDriftPreset(columns=features, drift_share=drift_share)], include_tests=True
    )
    snapshot = report.run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
        timestamp=timestamp,
    )
    result = _result(snapshot.dict(), features, drift_share, len(ref), len(cur))
    return DriftRun(result, snapshot)


def _result(
    document: dict[str, Any],
    features: list[str],
    drift_share: float,
    reference_rows: int,
    current_rows: int,
) -> DriftResult:
    """Read Evidently's snapshot: ValueDrift metric values and test verdicts per feature."""
    scores: dict[str, tuple[float, str, float]] = {}
    count_value: dict[str, Any] | None = None
    for metric in document["metrics"]:
        config = metric["config"]
        if config.get("type") == _VALUE_DRIFT:
            scores[config["column"]] = (
                float(metric["value"]),
                str(config["method"]),
                float(config["threshold"]),
            )
        elif config.get("type") == _DRIFTED_COUNT:
            count_value = metric["value"]
    verdicts: dict[str, bool] = {}
    dataset_verdict: bool | None = None
    for test in document["tests"]:
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type") == _DRIFTED_COUNT and test["status"] in ("FAIL", "SUCCESS"):
            dataset_verdict = test["status"] == "FAIL"  # the test is share < drift_share
        if params.get("type") != _VALUE_DRIFT:
            continue
        if test["status"] not in ("FAIL", "SUCCESS"):
            raise RuntimeError(
                f"Evidently's drift test for {params.get('column')!r} ended {test['status']}: "
                f"{test.get('description')}"
            )
        verdicts[params["column"]] = test["status"] == "FAIL"
    missing = [f for f in features if f not in scores or f not in verdicts]
    if missing or count_value is None:
        raise RuntimeError(f"Evidently's report lacks drift results for {missing or 'the count'}")
    rows = []
    for name in features:
        score, method, threshold = scores[name]
        kind = "p_value" if "p_value" in method else "distance"
        rows.append(FeatureDrift(name, verdicts[name], score, method, threshold, kind))
    result = DriftResult(tuple(rows), drift_share, reference_rows, current_rows)
    # Evidently counts drifted columns itself: the per-feature verdicts must agree with it.
    if round(float(count_value["count"])) != result.drifted_count:
        raise RuntimeError(
            f"Evidently counted {count_value['count']} drifted features, "
            f"its per-feature tests {result.drifted_count}"
        )
    if dataset_verdict is not None and dataset_verdict != result.dataset_drift:
        raise RuntimeError("Evidently's dataset-drift test disagrees with the share of features")
    return result


def report_document(run: DriftRun, context: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON report: run context, summary, per-feature results, Evidently's own snapshot."""
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "context": dict(context or {}),
        "summary": run.result.summary(),
        "features": [f.to_dict() for f in run.result.features],
        "evidently": json.loads(run.snapshot.json()),
    }


def write_reports(run: DriftRun, document: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``document`` as ``drift_report.json`` and Evidently's ``drift_report.html``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / REPORT_JSON
    html_path = out_dir / REPORT_HTML
    json_path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    run.snapshot.save_html(str(html_path))
    return json_path, html_path


def format_table(result: DriftResult) -> str:
    """A plain-text table of the per-feature results, drifted features marked."""
    width = max(len(f.name) for f in result.features)
    lines = [f"  {'feature':<{width}}  {'drift':<5}  {'score':>10}  test (threshold)"]
    for f in result.features:
        mark = "YES" if f.drifted else "no"
        lines.append(
            f"  {f.name:<{width}}  {mark:<5}  {f.score:>10.4g}  {f.method} ({f.threshold:g})"
        )
    s = result.summary()
    lines.append(
        f"  drifted features: {s['number_of_drifted_features']}/{s['number_of_features']} "
        f"(share {s['share_of_drifted_features']:.2f}, dataset drift at >= {result.drift_share:g})"
        f" -> dataset drift: {'YES' if result.dataset_drift else 'no'}"
    )
    return "\n".join(lines)
