"""Ingestion into the feature group (feature_store/runtime/ingest.py, run by the Glue job).

moto serves CreateFeatureGroup/DescribeFeatureGroup (the schema the job reads); it has no
``sagemaker-featurestore-runtime``, so PutRecord is a botocore Stubber (which checks every
request against botocore's model, as does ``validate``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from feature_store import schema
from feature_store.runtime import ingest
from pipelines.model_build import contract
from tests.botocore_shapes import validate

GROUP = "mlops-dev-features"
EVENT_TIME = "2026-11-30T07:00:00Z"


def _row(seed: float = 1.0, target: Any = 1) -> dict[str, Any]:
    row: dict[str, Any] = {name: seed + i / 10 for i, name in enumerate(contract.FEATURES)}
    row[contract.TARGET_COLUMN] = target
    return row


@pytest.fixture(scope="module")
def feature_schema() -> ingest.FeatureSchema:
    return ingest.FeatureSchema(
        GROUP,
        schema.RECORD_ID,
        schema.EVENT_TIME,
        tuple(d for d in schema.feature_definitions() if d[0] not in ("record_id", "event_time")),
    )


@pytest.fixture
def runtime() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "sagemaker-featurestore-runtime",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _expect_put(stubber: Stubber, record: list[dict[str, str]]) -> None:
    params = {"FeatureGroupName": GROUP, "Record": record}
    assert validate("sagemaker-featurestore-runtime", "PutRecord", params) == []
    stubber.add_response("put_record", {}, params)


def test_describe_schema_reads_the_deployed_group(moto_aws: None) -> None:
    """The group as the stack creates it (the template test pins those definitions)."""
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    sagemaker.create_feature_group(
        FeatureGroupName=GROUP,
        RecordIdentifierFeatureName=schema.RECORD_ID,
        EventTimeFeatureName=schema.EVENT_TIME,
        FeatureDefinitions=[
            {"FeatureName": n, "FeatureType": t} for n, t in schema.feature_definitions()
        ],
        OnlineStoreConfig={"EnableOnlineStore": True},
        OfflineStoreConfig={
            "S3StorageConfig": {"S3Uri": "s3://curated-bucket/feature-store"},
            "DataCatalogConfig": {
                "Catalog": "AwsDataCatalog",
                "Database": "mlops_dev_lake",
                "TableName": "mlops_dev_features",
            },
        },
        RoleArn="arn:aws:iam::123456789012:role/offline-store",
    )
    found = ingest.describe_schema(sagemaker, GROUP)
    assert found.names == contract.INPUT_COLUMNS  # the curated columns, in the contract's order
    assert dict(found.features)[contract.TARGET_COLUMN] == "Integral"
    ingest.check_columns(found, list(reversed(contract.INPUT_COLUMNS)))  # order is free
    with pytest.raises(ingest.IngestionError, match=r"missing \['target'\], unexpected \['x'\]"):
        ingest.check_columns(found, [*contract.FEATURES, "x"])


def test_rows_become_one_put_record_each(
    runtime: tuple[Any, Stubber], feature_schema: ingest.FeatureSchema
) -> None:
    client, stubber = runtime
    rows = [_row(1.0), _row(2.0, target=0.0), {**_row(3.0), "mean_area": None}]
    for index, row in enumerate(rows, start=1):
        record = ingest.build_record(feature_schema, row, EVENT_TIME, f"row {index}")
        _expect_put(stubber, record)
    result = ingest.ingest_rows(client, feature_schema, rows, EVENT_TIME, sleep=_no_sleep)
    assert result == ingest.IngestionResult(records=3, attempts=3)


def test_the_record_carries_id_event_time_and_typed_values(
    feature_schema: ingest.FeatureSchema,
) -> None:
    record = ingest.build_record(
        feature_schema, {**_row(1.0, target="0"), "mean_area": " "}, EVENT_TIME, "row 1"
    )
    values = {item["FeatureName"]: item["ValueAsString"] for item in record}
    assert [item["FeatureName"] for item in record[:2]] == ["record_id", "event_time"]
    assert values["event_time"] == EVENT_TIME
    assert values["target"] == "0"  # Integral: a whole number, as text
    assert values["mean_radius"] == "1.0"
    assert "mean_area" not in values  # missing: omitted, not written as ""
    assert len(values["record_id"]) == 64
    # The same row gets the same id (re-ingesting overwrites); another row another id.
    again = ingest.build_record(feature_schema, {**_row(1.0, 0), "mean_area": None}, "x", "row 9")
    other = ingest.build_record(feature_schema, _row(1.5), EVENT_TIME, "row 2")
    assert again[0] == record[0] and other[0] != record[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mean_area": "abc"}, "row 2, feature mean_area: 'abc' is not a number (Fractional)"),
        ({"mean_area": float("inf")}, "row 2, feature mean_area: inf is not finite (Fractional)"),
        ({"target": 0.5}, "row 2, feature target: 0.5 is not a whole number (Integral)"),
        ({"target": True}, "row 2, feature target: True is not a number (Integral)"),
        ({n: None for n in contract.INPUT_COLUMNS}, "row 2: every feature is missing"),
    ],
)
def test_a_malformed_row_fails_the_batch_before_any_write(
    runtime: tuple[Any, Stubber],
    feature_schema: ingest.FeatureSchema,
    change: dict[str, Any],
    message: str,
) -> None:
    client, _ = runtime  # no response queued: any PutRecord would fail the test
    rows = [_row(1.0), {**_row(2.0), **change}, _row(3.0)]
    with pytest.raises(ingest.IngestionError) as raised:
        ingest.ingest_rows(client, feature_schema, rows, EVENT_TIME, sleep=_no_sleep)
    assert str(raised.value) == message


def test_throttling_is_retried_with_exponential_backoff(
    runtime: tuple[Any, Stubber], feature_schema: ingest.FeatureSchema
) -> None:
    client, stubber = runtime
    record = ingest.build_record(feature_schema, _row(), EVENT_TIME, "row 1")
    for code, status in (("ThrottlingException", 400), ("ServiceUnavailable", 503)):
        stubber.add_client_error("put_record", code, "slow down", status)
    _expect_put(stubber, record)
    delays: list[float] = []
    attempts = ingest.put_record(
        client, GROUP, record, base_delay=0.5, sleep=delays.append, jitter=lambda: 1.0
    )
    assert attempts == 3
    assert delays == [0.5, 1.0]  # base * 2**(attempt - 1), times the jitter (1.0 here)


def test_retries_stop_after_max_attempts_with_one_line(
    runtime: tuple[Any, Stubber], feature_schema: ingest.FeatureSchema
) -> None:
    client, stubber = runtime
    record = ingest.build_record(feature_schema, _row(), EVENT_TIME, "row 1")
    for _ in range(3):
        stubber.add_client_error("put_record", "ThrottlingException", "slow down", 400)
    with pytest.raises(ingest.IngestionError) as raised:
        ingest.put_record(client, GROUP, record, max_attempts=3, sleep=_no_sleep)
    assert str(raised.value) == (
        f"PutRecord of record {record[0]['ValueAsString']} to {GROUP} still failing "
        "(ThrottlingException) after 3 attempts"
    )


def test_a_non_retryable_error_stops_at_once(
    runtime: tuple[Any, Stubber], feature_schema: ingest.FeatureSchema
) -> None:
    client, stubber = runtime
    rows = [_row(1.0), _row(2.0)]
    stubber.add_client_error("put_record", "ValidationError", "bad feature", 400)
    with pytest.raises(ingest.IngestionError, match=r"failed: ValidationError: .*bad feature"):
        ingest.ingest_rows(client, feature_schema, rows, EVENT_TIME, sleep=_no_sleep)
    # the second row was not attempted (the Stubber has no response left and got no call)


def test_a_group_not_yet_created_is_refused() -> None:
    class Described:
        def describe_feature_group(self, **_: Any) -> dict[str, Any]:
            return {"FeatureGroupStatus": "Creating"}

    with pytest.raises(ingest.IngestionError, match=f"feature group {GROUP} is Creating"):
        ingest.describe_schema(Described(), GROUP)


def test_event_time_is_iso_8601_utc_seconds() -> None:
    from datetime import datetime, timedelta, timezone

    moment = datetime(2026, 11, 30, 9, 15, 7, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert ingest.event_time_now(moment) == "2026-11-30T07:15:07Z"


def _no_sleep(_: float) -> None:
    pass


def test_the_glue_jobs_first_pass_refuses_a_malformed_row(
    feature_schema: ingest.FeatureSchema,
) -> None:
    class Row(dict[str, Any]):  # pyspark.sql.Row's asDict()
        def asDict(self) -> dict[str, Any]:
            return dict(self)

    ingest.validate_spark_partition(feature_schema, EVENT_TIME, [Row(_row(1.0))])
    with pytest.raises(ingest.IngestionError, match="row 2 of a partition, feature target"):
        ingest.validate_spark_partition(
            feature_schema, EVENT_TIME, [Row(_row(1.0)), Row(_row(2.0, target="x"))]
        )
