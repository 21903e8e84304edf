"""CloudWatch metrics of a drift run, and their publication with PutMetricData.

Datums come from the JSON report (``drift_report.json``), so whatever publishes them needs
neither Evidently nor the data: a network-isolated job writes ``metric_data.json`` and the
caller that launched it (or the job itself, when it may reach CloudWatch) publishes it.

Metrics, all with dimension ``EndpointName``; the per-feature ones also with ``Feature``:

=========================  ==========  ======================================================
name                       unit        value
=========================  ==========  ======================================================
ShareOfDriftedFeatures     None        drifted features / features, 0..1
DriftedFeatures            Count       number of drifted features
DatasetDrift               None        1 when the share reached the drift-share threshold
CapturedRows               Count       rows compared (after rejected records)
RejectedRecords            Count       capture records that could not be used
FeatureDrift               None        1 when that feature drifted, else 0
FeatureDriftScore          None        that feature's test score: a p-value or a distance
=========================  ==========  ======================================================

PutMetricData limits (botocore's CloudWatch model and API reference): at most 1000 metrics per
call (``MetricData``), 30 dimensions per metric, names 1-255 characters, dimension values
1-1024, a 1 MB request; values must be finite, and magnitudes outside 8.515920e-109 ..
1.174271e+108 are refused, so a p-value that small is sent as 0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_NAMESPACE = "MLOps/ModelDrift"
MAX_DATUMS_PER_CALL = 1000
MIN_MAGNITUDE = 8.515920e-109
MAX_MAGNITUDE = 1.174271e108
METRIC_DATA_FILE = "metric_data.json"

SHARE_OF_DRIFTED_FEATURES = "ShareOfDriftedFeatures"
DRIFTED_FEATURES = "DriftedFeatures"
DATASET_DRIFT = "DatasetDrift"
CAPTURED_ROWS = "CapturedRows"
REJECTED_RECORDS = "RejectedRecords"
FEATURE_DRIFT = "FeatureDrift"
FEATURE_DRIFT_SCORE = "FeatureDriftScore"
ENDPOINT_DIMENSION = "EndpointName"
FEATURE_DIMENSION = "Feature"


class MetricsError(ValueError):
    """Datums or a namespace CloudWatch would refuse: one line."""


def validate_namespace(namespace: str) -> str:
    if not 1 <= len(namespace) <= 255:
        raise MetricsError(f"namespace {namespace!r} must be 1-255 characters")
    if namespace.startswith(":") or namespace.startswith("AWS/"):
        raise MetricsError(f"namespace {namespace!r} may not start with ':' or 'AWS/'")
    if not namespace.isascii() or not namespace.isprintable():
        raise MetricsError(f"namespace {namespace!r} must be printable ASCII")
    return namespace


def metric_value(value: float) -> float:
    """``value`` as CloudWatch accepts it: finite, tiny magnitudes as 0."""
    value = float(value)
    if not math.isfinite(value):
        raise MetricsError(f"metric value {value!r} is not finite")
    if abs(value) > MAX_MAGNITUDE:
        raise MetricsError(f"metric value {value!r} is too large for CloudWatch")
    return 0.0 if abs(value) < MIN_MAGNITUDE else value


def _datum(
    name: str, value: float, unit: str, dimensions: list[tuple[str, str]], timestamp: datetime
) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions],
        "Timestamp": timestamp,
        "Value": metric_value(value),
        "Unit": unit,
    }


def metric_data(
    report: dict[str, Any], *, endpoint_name: str, timestamp: datetime
) -> list[dict[str, Any]]:
    """PutMetricData datums for a drift report document (``core.report_document``)."""
    if not 1 <= len(endpoint_name) <= 1024:
        raise MetricsError(f"endpoint name {endpoint_name!r} must be 1-1024 characters")
    if timestamp.tzinfo is None:
        raise MetricsError(f"timestamp {timestamp.isoformat()} has no time zone")
    summary = report["summary"]
    capture = report.get("context", {}).get("capture", {})
    endpoint = [(ENDPOINT_DIMENSION, endpoint_name)]
    datums = [
        _datum(
            SHARE_OF_DRIFTED_FEATURES,
            summary["share_of_drifted_features"],
            "None",
            endpoint,
            timestamp,
        ),
        _datum(
            DRIFTED_FEATURES, summary["number_of_drifted_features"], "Count", endpoint, timestamp
        ),
        _datum(
            DATASET_DRIFT, 1.0 if summary["dataset_drift"] else 0.0, "None", endpoint, timestamp
        ),
        _datum(CAPTURED_ROWS, summary["current_rows"], "Count", endpoint, timestamp),
    ]
    if "rejected_records" in capture:
        datums.append(
            _datum(REJECTED_RECORDS, capture["rejected_records"], "Count", endpoint, timestamp)
        )
    for feature in report["features"]:
        name = str(feature["name"])
        if not 1 <= len(name) <= 1024:
            raise MetricsError(f"feature name {name!r} must be 1-1024 characters")
        dims = [*endpoint, (FEATURE_DIMENSION, name)]
        datums.append(
            _datum(FEATURE_DRIFT, 1.0 if feature["drifted"] else 0.0, "None", dims, timestamp)
        )
        datums.append(_datum(FEATURE_DRIFT_SCORE, feature["score"], "None", dims, timestamp))
    return datums


def publish_metric_data(
    cloudwatch: Any,
    namespace: str,
    datums: Sequence[dict[str, Any]],
    *,
    batch_size: int = MAX_DATUMS_PER_CALL,
) -> int:
    """PutMetricData in batches of at most ``batch_size`` (<= 1000) datums; returns the calls."""
    validate_namespace(namespace)
    if not 1 <= batch_size <= MAX_DATUMS_PER_CALL:
        raise MetricsError(f"batch size must be 1-{MAX_DATUMS_PER_CALL}, got {batch_size}")
    calls = 0
    for start in range(0, len(datums), batch_size):
        cloudwatch.put_metric_data(
            Namespace=namespace, MetricData=list(datums[start : start + batch_size])
        )
        calls += 1
    return calls


def write_metric_data(path: Path, namespace: str, datums: Sequence[dict[str, Any]]) -> None:
    """``metric_data.json``: ``{"Namespace": ..., "MetricData": [...]}`` (ISO 8601 timestamps)."""
    validate_namespace(namespace)
    document = {
        "Namespace": namespace,
        "MetricData": [
            {**d, "Timestamp": d["Timestamp"].astimezone(UTC).isoformat().replace("+00:00", "Z")}
            for d in datums
        ],
    }
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def read_metric_data(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """The namespace and datums of a ``metric_data.json`` (timestamps back to datetimes)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise MetricsError(f"{path}: not a metric data file ({exc})") from None
    return parse_metric_data(text, str(path))


def parse_metric_data(text: str | bytes, source: str) -> tuple[str, list[dict[str, Any]]]:
    """:func:`read_metric_data` of a document's text (e.g. an S3 object's body)."""
    try:
        document = json.loads(text)
        namespace = validate_namespace(str(document["Namespace"]))
        datums = [
            {**d, "Timestamp": datetime.fromisoformat(str(d["Timestamp"]))}
            for d in document["MetricData"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise MetricsError(f"{source}: not a metric data file ({exc})") from None
    if not datums or any(d["Timestamp"].tzinfo is None for d in datums):
        raise MetricsError(f"{source}: no datums, or a timestamp without a time zone")
    return namespace, datums
