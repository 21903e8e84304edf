"""Writes curated rows to the stage's feature group (``sagemaker-featurestore-runtime``).

Runs inside the Glue ETL job (``data_lake/etl/raw_to_curated.py``; shipped with
``--extra-py-files`` as a zip of this folder) and in tests: standard library and boto3/botocore
only, nothing of this repository.

* The schema is the feature group's own (``DescribeFeatureGroup``): the deployed group, built
  from the contract's feature list, is the one source; a curated frame whose columns are not
  exactly the group's features (besides the record identifier and event time) is refused before
  anything is written.
* Every row is validated before the first ``PutRecord``: a malformed row (a non-numeric or
  non-finite value in a Fractional feature, a non-whole number in an Integral one) fails with
  one line naming the row and the feature, and nothing is written (the Glue job validates every
  partition in a first pass, :func:`validate_spark_partition`, then writes).
* The record identifier is :func:`content_record_id` (SHA-256 of the row's canonical values):
  re-ingesting a row overwrites its record; the event time is the run's ISO-8601 UTC time.
* ``PutRecord`` is retried on throttling and service faults with exponential backoff and full
  jitter; any other error (validation, access, missing group) stops at once, naming the record.

Why PutRecord and not ``BatchWriteRecord`` (25 records a call): the latter is recent and the
boto3 bundled with Glue 5.0 may predate it; PutRecord exists in every version.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: Error codes retried (the runtime's ServiceUnavailable/InternalFailure, and throttling).
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "InternalFailure",
    }
)
MAX_ATTEMPTS = 6
BASE_DELAY_S = 0.2
MAX_DELAY_S = 10.0
_TYPES = ("Fractional", "Integral", "String")
_MAX_SHOWN = 40


class IngestionError(Exception):
    """Ingestion stopped; ``str(error)`` is one line naming what and where."""


@dataclass(frozen=True)
class FeatureSchema:
    feature_group_name: str
    record_id: str
    event_time: str
    #: (name, type) of the features written from a row (record id and event time excluded).
    features: tuple[tuple[str, str], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.features)


def describe_schema(sagemaker: Any, feature_group_name: str) -> FeatureSchema:
    """The group's schema from ``DescribeFeatureGroup``; the group must be ``Created``."""
    described = sagemaker.describe_feature_group(FeatureGroupName=feature_group_name)
    status = described.get("FeatureGroupStatus")
    if status != "Created":
        raise IngestionError(f"feature group {feature_group_name} is {status}, not Created")
    record_id = described["RecordIdentifierFeatureName"]
    event_time = described["EventTimeFeatureName"]
    features = []
    for definition in described["FeatureDefinitions"]:
        name, kind = definition["FeatureName"], definition["FeatureType"]
        if kind not in _TYPES or definition.get("CollectionType"):
            raise IngestionError(f"feature {name}: type {kind} is not supported here")
        if name not in (record_id, event_time):
            features.append((name, kind))
    return FeatureSchema(feature_group_name, record_id, event_time, tuple(features))


def check_columns(schema: FeatureSchema, columns: Sequence[str]) -> None:
    """The curated columns must be exactly the group's features (any order)."""
    missing = [name for name in schema.names if name not in columns]
    extra = [name for name in columns if name not in schema.names]
    if missing or extra:
        raise IngestionError(
            f"curated columns do not match feature group {schema.feature_group_name}: "
            f"missing {missing[:5]}, unexpected {extra[:5]}"
        )


def event_time_now(now: datetime | None = None) -> str:
    """ISO-8601 UTC with seconds, ``2026-11-30T07:00:00Z`` (Feature Store's String event time)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def content_record_id(values: Sequence[tuple[str, str | None]]) -> str:
    """SHA-256 (hex) of the row's ``(feature, value as string or None)`` pairs, in schema order."""
    canonical = json.dumps(list(values), separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _value(kind: str, value: Any, where: str) -> str | None:
    """A row value as Feature Store's ``ValueAsString``; None when missing (omitted)."""
    if value is None:
        return None
    if kind == "String":
        return str(value)
    if isinstance(value, bool):
        raise IngestionError(f"{where}: {_show(value)} is not a number ({kind})")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            raise IngestionError(f"{where}: {_show(value)} is not a number ({kind})") from None
    elif isinstance(value, int | float):
        number = float(value)
    else:
        raise IngestionError(f"{where}: {_show(value)} is not a number ({kind})")
    if not math.isfinite(number):
        raise IngestionError(f"{where}: {_show(value)} is not finite ({kind})")
    if kind == "Integral":
        if number != math.floor(number) or abs(number) >= 2**63:
            raise IngestionError(f"{where}: {_show(value)} is not a whole number (Integral)")
        return str(int(number))
    return repr(number)


def build_record(
    schema: FeatureSchema, row: Mapping[str, Any], event_time: str, label: str
) -> list[dict[str, str]]:
    """One PutRecord ``Record``: id, event time and every non-missing feature, in schema order."""
    values = [
        (name, _value(kind, row.get(name), f"{label}, feature {name}"))
        for name, kind in schema.features
    ]
    if all(value is None for _, value in values):
        raise IngestionError(f"{label}: every feature is missing")
    record = [
        {"FeatureName": schema.record_id, "ValueAsString": content_record_id(values)},
        {"FeatureName": schema.event_time, "ValueAsString": event_time},
    ]
    record += [{"FeatureName": n, "ValueAsString": v} for n, v in values if v is not None]
    return record


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, Mapping):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _status(error: Exception) -> int:
    response = getattr(error, "response", None)
    if isinstance(response, Mapping):
        return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 0


def put_record(
    runtime: Any,
    feature_group_name: str,
    record: list[dict[str, str]],
    *,
    max_attempts: int = MAX_ATTEMPTS,
    base_delay: float = BASE_DELAY_S,
    max_delay: float = MAX_DELAY_S,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> int:
    """PutRecord with retries on throttling and faults; returns the attempts it took."""
    for attempt in range(1, max_attempts + 1):
        try:
            runtime.put_record(FeatureGroupName=feature_group_name, Record=record)
            return attempt
        except Exception as error:  # botocore ClientError; others are re-raised below
            code = _error_code(error)
            retryable = code in RETRYABLE_CODES or _status(error) >= 500
            if not code and not _status(error):
                raise
            record_id = record[0]["ValueAsString"]
            if not retryable:
                raise IngestionError(
                    f"PutRecord of record {record_id} to {feature_group_name} failed: {code}: "
                    f"{' '.join(str(error).split())}"
                ) from None
            if attempt == max_attempts:
                raise IngestionError(
                    f"PutRecord of record {record_id} to {feature_group_name} still failing "
                    f"({code}) after {max_attempts} attempts"
                ) from None
            sleep(min(max_delay, base_delay * 2 ** (attempt - 1)) * jitter())
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class IngestionResult:
    records: int
    attempts: int


def ingest_rows(
    runtime: Any,
    schema: FeatureSchema,
    rows: Iterable[Mapping[str, Any]],
    event_time: str,
    **retry: Any,
) -> IngestionResult:
    """Validate every row, then write each as one record (see the module docstring)."""
    records = [
        build_record(schema, row, event_time, f"row {index}")
        for index, row in enumerate(rows, start=1)
    ]
    attempts = sum(
        put_record(runtime, schema.feature_group_name, record, **retry) for record in records
    )
    return IngestionResult(records=len(records), attempts=attempts)


def validate_spark_partition(schema: FeatureSchema, event_time: str, rows: Iterable[Any]) -> None:
    """``DataFrame.foreachPartition`` target of the job's first pass: every row is checked
    before any partition writes, so one malformed row anywhere fails the job with nothing
    written."""
    for index, row in enumerate(rows, start=1):
        build_record(schema, row.asDict(), event_time, f"row {index} of a partition")


def ingest_spark_partition(
    schema: FeatureSchema, event_time: str, region: str, rows: Iterable[Any]
) -> None:  # pragma: no cover - runs on a Glue executor (the functions it calls are tested)
    """``DataFrame.foreachPartition`` target of the second pass: the partition's rows
    (``pyspark.sql.Row``), written with the schema the driver described."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 3})
    runtime = boto3.session.Session(region_name=region).client(
        "sagemaker-featurestore-runtime", config=config
    )
    ingest_rows(runtime, schema, (row.asDict() for row in rows), event_time)
