"""Glue ETL job: raw CSV -> curated Parquet, partitioned by ingest date.

The same file is the Glue job's script (``main`` runs under Glue 5.0 with job bookmarks, so each run
only reads raw files it has not processed yet) and the unit under test: :func:`transform` is plain
PySpark and is tested locally on a small CSV. The pure-Python helpers (:func:`snake_case`,
:func:`check_ingest_date`, :func:`curated_names`) import no Spark: pyspark is imported where a
frame is handled, so they are tested on any machine, with or without pyspark.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

PARTITION_COLUMN = "ingest_date"
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NOT_ALNUM = re.compile(r"[^0-9a-zA-Z]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake_case(name: str) -> str:
    """``Mean Radius`` / ``meanRadius`` / ``mean-radius`` -> ``mean_radius``."""
    spaced = _CAMEL.sub("_", name.strip())
    return _NOT_ALNUM.sub("_", spaced).strip("_").lower()


def check_ingest_date(ingest_date: str) -> str:
    """The partition value: a calendar date as ``YYYY-MM-DD`` (ASCII digits), else ValueError."""
    try:
        valid = _DATE.fullmatch(ingest_date) is not None and bool(date.fromisoformat(ingest_date))
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"ingest_date must be YYYY-MM-DD, got {ingest_date!r}")
    return ingest_date


def curated_names(columns: Sequence[str]) -> list[str]:
    """Raw column names -> curated ones: unique, non-empty snake_case, not the partition column."""
    names = [snake_case(c) for c in columns]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise ValueError(f"raw columns {list(columns)} do not map to unique snake_case names")
    if PARTITION_COLUMN in names:
        raise ValueError(f"raw data must not contain the partition column {PARTITION_COLUMN!r}")
    return names


def transform(df: DataFrame, ingest_date: str) -> DataFrame:
    """Clean a raw frame of CSV strings into typed, deduplicated, partition-ready rows.

    * column names become unique snake_case (Athena/Glue friendly);
    * values are trimmed, empty strings become null;
    * a column whose every non-null value parses as a number becomes ``double``;
    * exact duplicate rows and all-null rows are dropped;
    * ``ingest_date`` (YYYY-MM-DD) is added as the partition column.
    """
    from pyspark.sql import functions as F

    check_ingest_date(ingest_date)
    names = curated_names(df.columns)

    cleaned = df.select(
        [
            F.when(F.trim(F.col(f"`{old}`").cast("string")) == "", None)
            .otherwise(F.trim(F.col(f"`{old}`").cast("string")))
            .alias(new)
            for old, new in zip(df.columns, names, strict=True)
        ]
    )
    # One pass counts, per column, the non-null values and those that fail a numeric cast.
    stats = cleaned.agg(
        *[
            F.sum(
                F.when(F.col(n).isNotNull() & F.col(n).cast("double").isNull(), 1).otherwise(0)
            ).alias(n)
            for n in names
        ]
    ).collect()[0]
    numeric = {n for n in names if (stats[n] or 0) == 0}
    typed = cleaned.select(
        [F.col(n).cast("double").alias(n) if n in numeric else F.col(n) for n in names]
    )
    return typed.dropna(how="all").dropDuplicates().withColumn(PARTITION_COLUMN, F.lit(ingest_date))


#: Job argument naming the stage's feature group (set only when ``feature_store.enabled``).
FEATURE_GROUP_ARGUMENT = "feature_group_name"


def _write_feature_group(argv: list[str], curated: DataFrame) -> None:  # pragma: no cover
    """Writes the run's curated rows to the feature group before the curated files: if it
    fails, nothing is committed (no bookmark, no curated files) and the next run re-ingests the
    same raw files; records are keyed by content, so a re-ingested row overwrites its record.
    ``ingest`` comes from the job's ``--extra-py-files`` (feature_store/runtime)."""
    from functools import partial

    import boto3
    import ingest
    from awsglue.utils import getResolvedOptions

    name = getResolvedOptions(argv, [FEATURE_GROUP_ARGUMENT])[FEATURE_GROUP_ARGUMENT]
    region = boto3.session.Session().region_name
    schema = ingest.describe_schema(boto3.client("sagemaker", region_name=region), name)
    ingest.check_columns(schema, curated.columns)  # before any record is written
    event_time = ingest.event_time_now()
    # Two passes over the cached frame: every row validated, then written (nothing is written
    # when any row anywhere is malformed).
    curated.foreachPartition(partial(ingest.validate_spark_partition, schema, event_time))
    curated.foreachPartition(partial(ingest.ingest_spark_partition, schema, event_time, region))


def main(argv: list[str]) -> None:  # pragma: no cover - runs inside AWS Glue
    from datetime import UTC, datetime

    from awsglue.context import GlueContext
    from awsglue.job import Job
    from awsglue.utils import getResolvedOptions
    from pyspark.context import SparkContext

    args = getResolvedOptions(argv, ["JOB_NAME", "raw_path", "curated_path", "dataset"])
    dataset = snake_case(args["dataset"])
    glue_context = GlueContext(SparkContext.getOrCreate())
    job = Job(glue_context)
    job.init(args["JOB_NAME"], args)

    source = glue_context.create_dynamic_frame.from_options(
        connection_type="s3",
        connection_options={
            "paths": [f"{args['raw_path'].rstrip('/')}/{dataset}/"],
            "recurse": True,
        },
        format="csv",
        format_options={"withHeader": True},
        transformation_ctx=f"raw_{dataset}",  # keys the job bookmark
    )
    frame = source.toDF()
    if frame.columns and not frame.rdd.isEmpty():
        ingest_date = datetime.now(UTC).strftime("%Y-%m-%d")
        curated = transform(frame, ingest_date)
        if f"--{FEATURE_GROUP_ARGUMENT}" in argv:  # feature_store.enabled: the group first
            curated = curated.cache()
            _write_feature_group(argv, curated.drop(PARTITION_COLUMN))
        (
            curated.write.mode("append")
            .partitionBy(PARTITION_COLUMN)
            .parquet(f"{args['curated_path'].rstrip('/')}/{dataset}/")
        )
    job.commit()


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv)
