"""Data capture in the inference handler (serverless stages) against moto S3.

What the handler writes must be what SageMaker's data capture writes: the drift job's reader
(``monitoring.drift.capture``) selects the files by their hour partition and parses the records
back into exactly the rows that were sent.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from monitoring.drift import capture
from pipelines.model_build.model_code import data_capture, inference
from pipelines.model_build.model_code.data_capture import CaptureConfig, DataCapture
from pipelines.model_build.model_code.model_format import LoadedModel
from serving.payloads import load_feature_rows
from serving.quick_model import train_quick_model

BUCKET = "mlops-dev-artifacts"
ENDPOINT = "mlops-dev-endpoint"
T0 = datetime(2026, 1, 15, 10, 58, 30, 250000, tzinfo=UTC)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return inference.model_fn(str(train_quick_model(tmp_path_factory.mktemp("model"), rounds=5)))


@pytest.fixture(scope="module")
def rows() -> list[list[float]]:
    return load_feature_rows()[1][:12]


@pytest.fixture
def s3(moto_aws: None) -> Any:
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def fresh_capture() -> Iterator[None]:
    """The handler builds its capture once per process: start and end with none built."""
    data_capture._ACTIVE.clear()
    yield
    data_capture._ACTIVE.clear()


class Clock:
    def __init__(self) -> None:
        self.seconds = 1000.0
        self.when = T0

    def advance(self, seconds: float) -> None:
        self.seconds += seconds
        self.when += timedelta(seconds=seconds)


def make_capture(s3: Any, clock: Clock, **settings: Any) -> DataCapture:
    config = CaptureConfig(f"s3://{BUCKET}/data-capture/", ENDPOINT, **settings)
    return DataCapture(config, client=s3, clock=lambda: clock.seconds, now=lambda: clock.when)


def keys(s3: Any) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="data-capture/")
    return sorted(o["Key"] for o in listed.get("Contents", []))


def lines(s3: Any, key: str) -> list[dict[str, Any]]:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode("utf-8")
    assert body.endswith("\n")
    return [json.loads(line) for line in body.splitlines()]


def csv_body(rows: list[list[float]]) -> str:
    return "\n".join(",".join(repr(v) for v in row) for row in rows)


def test_handler_captures_in_sagemakers_format_and_the_drift_reader_parses_it(
    s3: Any, fresh_capture: None, monkeypatch: pytest.MonkeyPatch, model: LoadedModel, rows: Any
) -> None:
    for name, value in {
        data_capture.ENV_S3_URI: f"s3://{BUCKET}/data-capture/",
        data_capture.ENV_ENDPOINT: ENDPOINT,
        data_capture.ENV_VARIANT: "AllTraffic",
        data_capture.ENV_SAMPLING: "100",
        data_capture.ENV_MAX_RECORDS: "3",
    }.items():
        monkeypatch.setenv(name, value)
    requests = [
        (csv_body(rows[0:2]), "text/csv"),
        (json.dumps({"instances": rows[2:5]}), "application/json"),
        (csv_body(rows[5:6]).encode("utf-8"), "text/csv; charset=utf-8"),
    ]
    answers = [inference.transform_fn(model, body, ctype, None) for body, ctype in requests]
    assert all(isinstance(a, tuple) for a in answers)  # capture changes no answer

    (key,) = keys(s3)  # three records: one file, flushed by count
    relative = key[len(f"data-capture/{ENDPOINT}/AllTraffic/") :]
    assert key.startswith(f"data-capture/{ENDPOINT}/AllTraffic/")
    hour = capture.partition_hour(relative)
    assert hour is not None and abs(hour - datetime.now(UTC)) < timedelta(hours=1, minutes=1)
    records = lines(s3, key)
    assert [r["captureData"]["endpointInput"]["encoding"] for r in records] == [
        "CSV",
        "JSON",
        "CSV",
    ]
    for record, (body, ctype), (answer, answer_type) in zip(
        records, requests, answers, strict=True
    ):
        assert set(record) == {"captureData", "eventMetadata", "eventVersion"}
        assert record["eventVersion"] == "0"
        endpoint_input = record["captureData"]["endpointInput"]
        assert endpoint_input["mode"] == "INPUT"
        assert endpoint_input["observedContentType"] == ctype
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        assert endpoint_input["data"] == text
        output = record["captureData"]["endpointOutput"]
        assert output == {
            "observedContentType": answer_type,
            "mode": "OUTPUT",
            "data": answer,
            "encoding": "JSON",
        }
        metadata = record["eventMetadata"]
        assert len(metadata["eventId"]) == 36
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", metadata["inferenceTime"])
    assert len({r["eventMetadata"]["eventId"] for r in records}) == 3

    # The drift job's reader: every row that was sent, in the model's feature order.
    sources = capture.s3_sources(s3, BUCKET, [key])
    data = capture.read_capture(sources, list(model.features))
    assert data.rejected_records == 0
    np.testing.assert_array_equal(data.frame.to_numpy(), np.array(rows[0:6]))


def test_refused_requests_are_not_captured_and_capture_off_without_a_destination(
    s3: Any, fresh_capture: None, monkeypatch: pytest.MonkeyPatch, model: LoadedModel
) -> None:
    monkeypatch.delenv(data_capture.ENV_S3_URI, raising=False)
    assert data_capture.from_environment() is None
    data_capture._ACTIVE.clear()
    monkeypatch.setenv(data_capture.ENV_S3_URI, f"s3://{BUCKET}/data-capture/")
    monkeypatch.setenv(data_capture.ENV_ENDPOINT, ENDPOINT)
    monkeypatch.setenv(data_capture.ENV_MAX_RECORDS, "1")
    answer = inference.transform_fn(model, "1,2,3", "text/csv", None)
    assert isinstance(answer, inference.ErrorResponse) and answer.status == 400
    active = data_capture.from_environment()
    assert active is not None and active.stats["seen"] == 0
    assert keys(s3) == []


def test_sampling_percent(s3: Any) -> None:
    clock = Clock()
    draws = iter([0.0, 0.249, 0.25, 0.9, 0.1])
    writer = make_capture(s3, clock, sampling_percent=25, max_records=100)
    writer._sample = lambda: next(draws)
    for _ in range(5):
        writer.record("1", "text/csv", "{}", "application/json")
    assert (writer.stats["seen"], writer.stats["sampled"], writer.buffered) == (5, 3, 3)
    never = make_capture(s3, clock, sampling_percent=0, max_records=1)
    always = make_capture(s3, clock, sampling_percent=100, max_records=1000)
    for _ in range(200):  # the real (unseeded) sampler: 0 % takes none, 100 % takes all
        never.record("1", "text/csv", "{}", "application/json")
        always.record("1", "text/csv", "{}", "application/json")
    assert never.stats["sampled"] == 0 and always.stats["sampled"] == 200
    assert keys(s3) == []


def test_flush_by_count_by_age_and_by_hour(s3: Any) -> None:
    clock = Clock()  # 10:58:30
    writer = make_capture(s3, clock, max_records=3, max_age_seconds=30)
    for _ in range(2):
        writer.record("1", "text/csv", "{}", "application/json")
        clock.advance(1)
    assert keys(s3) == [] and writer.buffered == 2
    writer.record("1", "text/csv", "{}", "application/json")  # the third: count reached
    assert len(keys(s3)) == 1 and writer.buffered == 0

    writer.record("1", "text/csv", "{}", "application/json")  # 10:58:32.25, age 0
    clock.advance(29.5)
    writer.record("1", "text/csv", "{}", "application/json")  # age 29.5 s: kept
    assert len(keys(s3)) == 1 and writer.buffered == 2
    clock.advance(0.5)
    writer.record("1", "text/csv", "{}", "application/json")  # age 30 s: written inline
    assert len(keys(s3)) == 2 and writer.buffered == 0

    clock.advance(57)  # 10:59:59.25
    writer.record("1", "text/csv", "{}", "application/json")
    clock.advance(1)  # 11:00:00.25: a new hour partition, the 10:00 record is written first
    writer.record("1", "text/csv", "{}", "application/json")
    writer.flush()
    assert writer.buffered == 0
    written = keys(s3)
    assert len(written) == 4
    hours = [capture.partition_hour(k.split("/AllTraffic/", 1)[1]) for k in written]
    assert hours == [T0.replace(minute=0, second=0, microsecond=0)] * 3 + [
        T0.replace(hour=11, minute=0, second=0, microsecond=0)
    ]
    # The 10:59:59 record was written at 11:00:00 (its file name), in its own hour's partition.
    assert [len(lines(s3, k)) for k in written] == [1, 3, 3, 1]
    assert written[0].startswith(f"data-capture/{ENDPOINT}/AllTraffic/2026/01/15/10/00-00-250-")
    assert writer.stats["written_records"] == 8 and writer.stats["written_files"] == 4
    # Keys: <prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm>-<ss>-<mmm>-<uuid>.jsonl
    assert written[1].startswith(f"data-capture/{ENDPOINT}/AllTraffic/2026/01/15/10/58-32-250-")
    assert all(k.endswith(".jsonl") for k in written)
    window = capture.Window.parse("2026-01-15T10:00:00Z", "2026-01-15T11:00:00Z")
    assert [k for k, h in zip(written, hours, strict=True) if window.covers(h)] == written[:3]


def test_a_failed_write_drops_counts_logs_and_never_fails_the_inference(
    s3: Any,
    fresh_capture: None,
    monkeypatch: pytest.MonkeyPatch,
    model: LoadedModel,
    rows: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(data_capture.ENV_S3_URI, "s3://no-such-bucket-here/data-capture")
    monkeypatch.setenv(data_capture.ENV_ENDPOINT, ENDPOINT)
    monkeypatch.setenv(data_capture.ENV_MAX_RECORDS, "2")
    with caplog.at_level(logging.WARNING, logger=data_capture.LOG.name):
        answers = [inference.transform_fn(model, csv_body([r]), "text/csv", None) for r in rows]
    assert all(isinstance(a, tuple) and a[1] == "application/json" for a in answers)
    active = data_capture.from_environment()
    assert active is not None
    assert active.stats["failed_writes"] == 6 and active.stats["dropped_records"] == 12
    assert active.stats["written_records"] == 0 and active.buffered == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 6
    assert "dropped 2 record(s), PutObject s3://no-such-bucket-here/data-capture/" in warnings[0]
    assert "NoSuchBucket" in warnings[0] and warnings[-1].endswith("(12 record(s) dropped so far)")


def test_any_client_error_is_contained(s3: Any) -> None:
    class Broken:
        def put_object(self, **_kwargs: Any) -> None:
            raise TimeoutError("read timed out")

    config = CaptureConfig(f"s3://{BUCKET}", ENDPOINT, max_records=1)
    writer = DataCapture(config, client=Broken())
    writer.record("1", "text/csv", "{}", "application/json")
    assert writer.stats["dropped_records"] == 1 and writer.stats["failed_writes"] == 1


def test_objects_are_written_with_the_stages_kms_key(s3: Any) -> None:
    key_id = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    clock = Clock()
    writer = make_capture(s3, clock, max_records=1, kms_key_id=key_id)
    writer.record("1", "text/csv", "{}", "application/json")
    (key,) = keys(s3)
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key_id
    assert head["ContentType"] == "application/jsonlines"


def test_bodies_other_than_csv_or_json_text_are_base64() -> None:
    record = data_capture.capture_record(
        b"\xff\xfe1,2", "text/csv", b"\x00", "application/x-npy", T0, "id-1"
    )
    endpoint_input = record["captureData"]["endpointInput"]
    assert endpoint_input["encoding"] == "BASE64" and endpoint_input["data"] == "//4xLDI="
    assert record["captureData"]["endpointOutput"]["encoding"] == "BASE64"
    assert record["eventMetadata"] == {
        "eventId": "id-1",
        "inferenceTime": "2026-01-15T10:58:30Z",
    }
    with pytest.raises(capture.RecordError, match="payload rejected"):
        capture.parse_record(json.dumps(record), ["a", "b", "c"])  # decoded, then refused


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"MLOPS_CAPTURE_S3_URI": "bucket/prefix"}, "MLOPS_CAPTURE_S3_URI must be s3://bucket"),
        ({"MLOPS_CAPTURE_S3_URI": "s3://b"}, "MLOPS_CAPTURE_ENDPOINT_NAME must be a name"),
        (
            {"MLOPS_CAPTURE_S3_URI": "s3://b", "MLOPS_CAPTURE_ENDPOINT_NAME": "e",
             "MLOPS_CAPTURE_SAMPLING_PERCENT": "150"},
            "MLOPS_CAPTURE_SAMPLING_PERCENT must be in [0, 100], got 150.0",
        ),
        (
            {"MLOPS_CAPTURE_S3_URI": "s3://b", "MLOPS_CAPTURE_ENDPOINT_NAME": "e",
             "MLOPS_CAPTURE_SAMPLING_PERCENT": "nan"},
            "MLOPS_CAPTURE_SAMPLING_PERCENT must be finite, got 'nan'",
        ),
        (
            {"MLOPS_CAPTURE_S3_URI": "s3://b", "MLOPS_CAPTURE_ENDPOINT_NAME": "e",
             "MLOPS_CAPTURE_MAX_RECORDS": "ten"},
            "MLOPS_CAPTURE_MAX_RECORDS must be a number, got 'ten'",
        ),
        (
            {"MLOPS_CAPTURE_S3_URI": "s3://b", "MLOPS_CAPTURE_ENDPOINT_NAME": "e",
             "MLOPS_CAPTURE_MAX_AGE_SECONDS": "0"},
            "MLOPS_CAPTURE_MAX_AGE_SECONDS must be > 0, got 0.0",
        ),
    ],
)  # fmt: skip
def test_bad_settings_turn_capture_off_with_one_logged_line(
    fresh_capture: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    model: LoadedModel,
    rows: Any,
    environ: dict[str, str],
    message: str,
) -> None:
    with pytest.raises(data_capture.CaptureConfigError, match=message.replace("[", r"\[")):
        CaptureConfig.from_environment(environ)
    for name in [*environ, data_capture.ENV_ENDPOINT]:
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.ERROR, logger=data_capture.LOG.name):
        answer = inference.transform_fn(model, csv_body(rows[:1]), "text/csv", None)
    assert isinstance(answer, tuple)
    assert data_capture.from_environment() is None
    (logged,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert logged.startswith("data capture: off: ") and message in logged


def test_configuration_from_the_workflows_environment() -> None:
    config = CaptureConfig.from_environment(
        {
            "MLOPS_CAPTURE_S3_URI": "s3://mlops-dev-artifacts/data-capture/",
            "MLOPS_CAPTURE_ENDPOINT_NAME": "mlops-dev-endpoint",
            "MLOPS_CAPTURE_VARIANT_NAME": "AllTraffic",
            "MLOPS_CAPTURE_SAMPLING_PERCENT": "20",
            "MLOPS_CAPTURE_KMS_KEY_ID": "arn:aws:kms:us-east-1:123456789012:key/k",
            "MLOPS_CAPTURE_REGION": "us-east-1",
        }
    )
    assert config is not None
    assert (config.bucket, config.key_prefix()) == (
        "mlops-dev-artifacts",
        "data-capture/mlops-dev-endpoint/AllTraffic",
    )
    assert (config.sampling_percent, config.max_records, config.max_age_seconds) == (20, 10, 30)
    assert config.region == "us-east-1" and config.kms_key_id.endswith(":key/k")  # type: ignore[union-attr]
    assert CaptureConfig("s3://b", "e").key_prefix() == "e/AllTraffic"


def test_capture_is_per_process(fresh_capture: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data_capture.ENV_S3_URI, "s3://b/p")
    monkeypatch.setenv(data_capture.ENV_ENDPOINT, "e")
    first = data_capture.from_environment()
    assert first is not None and data_capture.from_environment() is first
    monkeypatch.setattr(data_capture.os, "getpid", lambda: -1)  # as in a forked worker
    second = data_capture.from_environment()
    assert second is not None and second is not first


def test_the_local_serving_path_is_unchanged_without_capture(
    fresh_capture: None, monkeypatch: pytest.MonkeyPatch, model: LoadedModel, rows: Any
) -> None:
    monkeypatch.delenv(data_capture.ENV_S3_URI, raising=False)
    body, ctype = inference.transform_fn(model, csv_body(rows[:2]), "text/csv", None)
    assert ctype == "application/json" and len(json.loads(body)["predictions"]) == 2


def test_module_is_shipped_with_the_serving_code() -> None:
    from pipelines.model_build.model_code import train

    assert "data_capture.py" in train.SERVING_FILES
    assert Path(data_capture.__file__).name == "data_capture.py"


def test_the_images_stack_writes_captures_with_its_own_boto3(
    tmp_path: Path, model_dir_for_image: Path, rows: Any
) -> None:
    """The artifact in the XGBoost 1.7-1 image's serving stack (Python 3.8, gunicorn + gevent,
    boto3 1.17.52) writes its captures to S3 (a moto server on localhost)."""
    import http.client
    from urllib.parse import urlsplit

    from moto.server import ThreadedMotoServer

    from serving.container_server import ContainerServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint_url = f"http://{host}:{port}"
        credentials = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket=BUCKET)
        environment = {
            **credentials,
            data_capture.ENV_S3_URI: f"s3://{BUCKET}/data-capture",
            data_capture.ENV_ENDPOINT: ENDPOINT,
            data_capture.ENV_MAX_RECORDS: "2",
            data_capture.ENV_REGION: "us-east-1",
            data_capture.ENV_S3_ENDPOINT_URL: endpoint_url,
        }
        with ContainerServer(
            model_dir_for_image, workdir=tmp_path / "image", environment=environment
        ) as image:
            parts = urlsplit(image.url)
            for row in rows[:2]:
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
                try:
                    conn.request(
                        "POST",
                        "/invocations",
                        body=csv_body([row]).encode(),
                        headers={"Content-Type": "text/csv"},
                    )
                    response = conn.getresponse()
                    assert response.status == 200, response.read()
                    response.read()
                finally:
                    conn.close()
        (key,) = keys(s3)
        assert key.startswith(f"data-capture/{ENDPOINT}/AllTraffic/")
        data = capture.read_capture(capture.s3_sources(s3, BUCKET, [key]), load_feature_rows()[0])
        np.testing.assert_array_equal(data.frame.to_numpy(), np.array(rows[:2]))
    finally:
        server.stop()


@pytest.fixture(scope="module")
def model_dir_for_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory laid out as the Train step leaves it (serving code in ``code/``)."""
    from pipelines.model_build.model_code import train

    model_dir = train_quick_model(tmp_path_factory.mktemp("image-model"), rounds=5)
    assert "data_capture.py" in train.copy_serving_code(model_dir)
    return model_dir
