"""The training query over the offline store's Glue table, run for real on SQLite (window
functions, the same SQL; ``from_iso8601_timestamp`` supplied as Athena has it)."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

import pytest

from feature_store import schema
from pipelines.model_build import contract
from tests.botocore_shapes import validate_shape

DATABASE, TABLE = "mlops_dev_lake", "mlops_dev_features"
COLUMNS = (
    schema.RECORD_ID,
    schema.EVENT_TIME,
    *contract.INPUT_COLUMNS,
    schema.WRITE_TIME,
    schema.API_INVOCATION_TIME,
    schema.IS_DELETED,
)


def _row(
    record_id: str,
    event_time: str,
    value: float,
    *,
    deleted: bool = False,
    api: str = "2026-01-01 00:00:00",
    write: str = "2026-01-01 00:00:01",
) -> tuple[Any, ...]:
    features = [value] * len(contract.FEATURES)
    return (record_id, event_time, *features, int(value) % 2, write, api, int(deleted))


def _run(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(":memory:")
    connection.execute(f"ATTACH DATABASE ':memory:' AS {DATABASE}")
    connection.create_function(
        "from_iso8601_timestamp",
        1,
        lambda text: datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp(),
    )
    names = ", ".join(f'"{c}"' for c in COLUMNS)
    connection.execute(f'CREATE TABLE {DATABASE}."{TABLE}" ({names})')
    marks = ", ".join("?" for _ in COLUMNS)
    connection.executemany(f'INSERT INTO {DATABASE}."{TABLE}" VALUES ({marks})', rows)
    cursor = connection.execute(schema.training_query(DATABASE, TABLE))
    assert [d[0] for d in cursor.description] == list(contract.INPUT_COLUMNS)
    return sorted(cursor.fetchall(), key=lambda r: r[0])


def test_latest_record_per_id_by_event_time() -> None:
    result = _run(
        [
            _row("a", "2026-01-01T00:00:00Z", 1.0),
            _row("a", "2026-01-03T00:00:00Z", 3.0),  # the latest of a
            _row("a", "2026-01-02T00:00:00Z", 2.0),
            _row("b", "2026-01-01T00:00:00Z", 5.0),
        ]
    )
    assert [r[0] for r in result] == [3.0, 5.0]


def test_event_times_are_compared_as_times_not_text() -> None:
    # As text "2026-01-02T00:00:00.500Z" < "2026-01-02T00:00:00Z"; as a time it is later.
    result = _run(
        [
            _row("a", "2026-01-02T00:00:00Z", 1.0),
            _row("a", "2026-01-02T00:00:00.500Z", 2.0),
        ]
    )
    assert [r[0] for r in result] == [2.0]


def test_a_deleted_latest_record_drops_the_id() -> None:
    """The delete filter applies AFTER the ranking: the earlier version does not come back."""
    result = _run(
        [
            _row("a", "2026-01-01T00:00:00Z", 1.0),
            _row("a", "2026-01-02T00:00:00Z", 1.0, deleted=True),
            _row("b", "2026-01-01T00:00:00Z", 5.0, deleted=True),
            _row("b", "2026-01-03T00:00:00Z", 7.0),  # re-created after its deletion
        ]
    )
    assert [r[0] for r in result] == [7.0]


def test_ties_on_event_time_go_to_the_later_api_call() -> None:
    result = _run(
        [
            _row("a", "2026-01-01T00:00:00Z", 1.0, api="2026-01-05 00:00:00"),
            _row("a", "2026-01-01T00:00:00Z", 2.0, api="2026-01-04 00:00:00"),
        ]
    )
    assert [r[0] for r in result] == [1.0]


def test_the_query_fits_athena_dataset_definition_limits() -> None:
    query = schema.training_query(DATABASE, TABLE)
    value = {
        "Catalog": schema.DATA_CATALOG,
        "Database": DATABASE,
        "QueryString": query,
        "OutputS3Uri": "s3://bucket/prefix/",
        "OutputFormat": "PARQUET",
    }
    assert validate_shape("sagemaker", "AthenaDatasetDefinition", value) == []  # <= 4096 chars


def test_identifiers_are_quoted_and_checked() -> None:
    assert f'FROM "{DATABASE}"."{TABLE}"' in schema.training_query(DATABASE, TABLE)
    with pytest.raises(ValueError, match="not a usable SQL identifier"):
        schema.training_query('db"; DROP TABLE x; --', TABLE)
