"""The ETL script's pure-Python helpers, tested on every machine: no pyspark needed (nor skipped
without it). The Spark transform itself is tested in test_etl.py where pyspark is installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from data_lake.etl.raw_to_curated import (
    PARTITION_COLUMN,
    check_ingest_date,
    curated_names,
    snake_case,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Mean Radius", "mean_radius"),
        ("meanTexture", "mean_texture"),
        ("a--b ", "a_b"),
        ("  Diagnosis Label ", "diagnosis_label"),
        ("worst concave points", "worst_concave_points"),
        ("area_se", "area_se"),
        ("%%", ""),
    ],
)
def test_snake_case(raw: str, expected: str) -> None:
    assert snake_case(raw) == expected


def test_curated_names_keep_order() -> None:
    assert curated_names(["Mean Radius", "meanTexture", "target"]) == [
        "mean_radius",
        "mean_texture",
        "target",
    ]


@pytest.mark.parametrize(
    "columns",
    [
        ["Mean Radius", "mean_radius"],  # collide after snake_case
        ["a", "%%"],  # a column with no usable characters
        ["a", PARTITION_COLUMN],  # would clash with the partition column
        ["a", "Ingest Date"],
    ],
)
def test_curated_names_reject_unusable_columns(columns: list[str]) -> None:
    with pytest.raises(ValueError, match=r"unique snake_case|partition column"):
        curated_names(columns)


@pytest.mark.parametrize("good", ["2026-11-23", "2024-02-29"])
def test_ingest_date_accepts_calendar_dates(good: str) -> None:
    assert check_ingest_date(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "2026-1-1",
        "today",
        "",
        "2026-11-23\n",
        "2026-13-01",
        "2025-02-29",
        "\u0662\u0660\u0662\u0666-\u0661\u0661-\u0662\u0663",
        "20261123",
    ],
)
def test_ingest_date_rejects_anything_else(bad: str) -> None:
    with pytest.raises(ValueError, match="ingest_date must be YYYY-MM-DD"):
        check_ingest_date(bad)


def test_helpers_run_where_pyspark_is_absent() -> None:
    # Block pyspark in a fresh interpreter (as on a machine without it): the script must still
    # import and its helpers still work; only transform() needs Spark.
    code = (
        "import sys; sys.modules['pyspark'] = None\n"
        "from data_lake.etl import raw_to_curated as etl\n"
        "assert etl.snake_case('Mean Radius') == 'mean_radius'\n"
        "assert etl.curated_names(['meanTexture']) == ['mean_texture']\n"
        "assert etl.check_ingest_date('2026-11-23') == '2026-11-23'\n"
        "try:\n"
        "    etl.transform(None, '2026-11-23')\n"
        "except ImportError:\n"
        "    print('transform needs pyspark')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "transform needs pyspark"
