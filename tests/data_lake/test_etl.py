"""The Glue job's transform, run locally on a small CSV with the very same module Glue runs.

Needs pyspark (pinned in requirements-dev.txt, so on every clone and in CI: a missing pyspark fails
here, it never skips) and Java; the pure-Python helpers are also tested in test_etl_helpers.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from data_lake.etl.raw_to_curated import PARTITION_COLUMN, transform

RAW_CSV = """Mean Radius,meanTexture,Diagnosis Label,target
17.99,10.38,M,0
20.57,17.77,M,0
20.57,17.77,M,0
13.54, 14.36 ,B,1
,,,
11.42,,B,1
"""


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = (
        SparkSession.builder.master("local[1]")
        .appName("etl-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.session.timeZone", "UTC")
        # A short-lived test JVM: the quick (C1) JIT only and the serial GC spend far less CPU
        # than the server defaults on a 2-core machine (the suite's budget).
        .config(
            "spark.driver.extraJavaOptions",
            "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:CICompilerCount=1",
        )
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def raw_frame(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("raw") / "part-1.csv"
    path.write_text(RAW_CSV)
    # Glue's DynamicFrame CSV reader yields strings, as does Spark's reader without inferSchema.
    return spark.read.option("header", True).csv(str(path))


def test_transform_types_cleans_and_deduplicates(raw_frame) -> None:  # type: ignore[no-untyped-def]
    out = transform(raw_frame, "2026-11-23")
    assert out.columns == [
        "mean_radius",
        "mean_texture",
        "diagnosis_label",
        "target",
        PARTITION_COLUMN,
    ]
    types = dict(out.dtypes)
    assert types["mean_radius"] == "double" and types["target"] == "double"
    assert types["diagnosis_label"] == "string"  # not numeric: stays a string
    rows = sorted(out.collect(), key=lambda r: r["mean_radius"])
    assert len(rows) == 4  # one duplicate and one all-empty row dropped
    assert rows[1]["mean_texture"] == 14.36  # trimmed before the numeric cast
    assert rows[0]["mean_texture"] is None  # empty string became null
    assert {r[PARTITION_COLUMN] for r in rows} == {"2026-11-23"}


def test_transform_output_writes_partitioned_parquet(raw_frame, tmp_path: Path, spark) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "curated" / "breast_cancer"
    transform(raw_frame, "2026-11-23").write.mode("append").partitionBy(PARTITION_COLUMN).parquet(
        str(target)
    )
    assert (target / f"{PARTITION_COLUMN}=2026-11-23").is_dir()
    back = spark.read.parquet(str(target))
    assert back.count() == 4


@pytest.mark.parametrize("bad_date", ["2026-1-1", "today", ""])
def test_transform_rejects_a_malformed_ingest_date(raw_frame, bad_date: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="ingest_date"):
        transform(raw_frame, bad_date)


def test_transform_rejects_columns_that_collide(spark: SparkSession) -> None:
    frame = spark.createDataFrame([("1", "2")], ["Mean Radius", "mean_radius"])
    with pytest.raises(ValueError, match="unique snake_case"):
        transform(frame, "2026-11-23")
