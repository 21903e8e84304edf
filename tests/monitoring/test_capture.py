"""The capture reader: window selection by hour partition, records of every shape, bad records."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
from moto import mock_aws

from monitoring.drift import batches, capture
from monitoring.drift.capture import CaptureError, RecordError, Window

FEATURES = ["a", "b", "c"]


def record(
    data: str, content_type: str = "text/csv", encoding: str = "CSV", **extra: object
) -> str:
    endpoint_input = {
        "observedContentType": content_type,
        "mode": "INPUT",
        "data": data,
        "encoding": encoding,
    }
    document = {
        "captureData": {
            "endpointInput": endpoint_input,
            "endpointOutput": {
                "observedContentType": "application/json",
                "mode": "OUTPUT",
                "data": '{"predictions": [{"score": 0.9, "label": 1}]}',
                "encoding": "JSON",
            },
        },
        "eventMetadata": {"eventId": "e1", "inferenceTime": "2026-01-15T10:00:00Z"},
        "eventVersion": "0",
    }
    document.update(extra)
    return json.dumps(document)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# ---- window and key layout ------------------------------------------------------------------


def test_window_covers_the_overlapping_hour_partitions() -> None:
    window = Window.parse("2026-01-15T10:30:00Z", "2026-01-15T12:00:00+00:00")
    assert [f"{h:%H}" for h in window.hours()] == ["10", "11"]
    # An end past the hour includes that hour's partition; other zones are converted to UTC.
    window = Window.parse("2026-01-15T11:59:59+01:00", "2026-01-15T12:00:01Z")
    assert [f"{h:%d/%H}" for h in window.hours()] == ["15/10", "15/11", "15/12"]
    assert window.to_dict()["start"] == "2026-01-15T10:59:59Z"


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("yesterday", "2026-01-15T12:00:00Z", "window start 'yesterday' is not an ISO 8601 time"),
        ("2026-01-15T10:00:00", "2026-01-15T12:00:00Z", "has no time zone"),
        ("2026-01-15T12:00:00Z", "2026-01-15T12:00:00Z", "is not after its start"),
        ("2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z", "spans more than 744 hours"),
    ],
)
def test_bad_windows_are_one_line_errors(start: str, end: str, message: str) -> None:
    with pytest.raises(CaptureError, match=message) as caught:
        Window.parse(start, end)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("key", "hour"),
    [
        (
            "cap/ep/AllTraffic/2026/01/15/10/05-13-000-x.jsonl",
            datetime(2026, 1, 15, 10, tzinfo=UTC),
        ),
        ("2026/12/31/23/f.jsonl", datetime(2026, 12, 31, 23, tzinfo=UTC)),
        ("cap/ep/AllTraffic/2026/01/15/10/f.json", None),  # not JSON Lines
        ("cap/ep/AllTraffic/2026/01/15/f.jsonl", None),  # no hour level
        ("cap/ep/AllTraffic/2026/02/30/10/f.jsonl", None),  # no such day
        ("cap/ep/AllTraffic/2026/01/15/24/f.jsonl", None),
        ("cap/ep/AllTraffic/2026/1/15/10/f.jsonl", None),  # not zero-padded: not SageMaker's
        ("cap/2026/01/15/10/sub/f.jsonl", None),  # nested below the hour
    ],
)
def test_partition_hour_reads_only_the_documented_layout(key: str, hour: datetime | None) -> None:
    assert capture.partition_hour(key) == hour


def test_local_window_files_select_by_partition(tmp_path: Path) -> None:
    for rel in (
        "2026/01/15/09/a.jsonl",  # before the window
        "2026/01/15/10/b.jsonl",
        "2026/01/15/11/c.jsonl",
        "2026/01/15/11/notes.txt",
        "2026/01/15/12/d.jsonl",  # the window's end is exclusive
        "misc/e.jsonl",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    window = Window.parse("2026-01-15T10:00:00Z", "2026-01-15T12:00:00Z")
    files = capture.local_window_files(tmp_path, window)
    assert [p.relative_to(tmp_path).as_posix() for p in files] == [
        "2026/01/15/10/b.jsonl",
        "2026/01/15/11/c.jsonl",
    ]
    with pytest.raises(CaptureError, match="capture directory does not exist"):
        capture.local_window_files(tmp_path / "missing", window)


@mock_aws
def test_list_window_keys_lists_one_prefix_per_hour() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="capture")
    prefix = "datacapture/ep-1/AllTraffic"
    keys = [
        f"{prefix}/2026/01/15/09/early.jsonl",
        f"{prefix}/2026/01/15/10/a.jsonl",
        f"{prefix}/2026/01/15/10/b.jsonl",
        f"{prefix}/2026/01/15/11/c.jsonl",
        f"{prefix}/2026/01/15/11/c.jsonl.tmp",
        f"{prefix}/2026/01/15/12/late.jsonl",
        "datacapture/ep-10/AllTraffic/2026/01/15/10/other-endpoint.jsonl",
    ]
    for key in keys:
        s3.put_object(Bucket="capture", Key=key, Body=b"")
    calls: list[dict[str, str]] = []
    real_paginator = s3.get_paginator

    class Spy:
        def __init__(self, name: str) -> None:
            self.inner = real_paginator(name)

        def paginate(self, **kwargs: str) -> Any:
            calls.append(kwargs)
            return self.inner.paginate(**kwargs)

    s3.get_paginator = Spy
    window = Window.parse("2026-01-15T10:00:00Z", "2026-01-15T12:00:00Z")
    found = capture.list_window_keys(s3, "capture", prefix + "/", window)
    assert found == [keys[1], keys[2], keys[3]]
    assert calls == [
        {"Bucket": "capture", "Prefix": f"{prefix}/2026/01/15/10/"},
        {"Bucket": "capture", "Prefix": f"{prefix}/2026/01/15/11/"},
    ]
    # A manifest of exactly those keys, in SageMaker's ManifestFile format.
    assert capture.window_manifest("capture", prefix + "/", found) == [
        {"prefix": f"s3://capture/{prefix}/"},
        "2026/01/15/10/a.jsonl",
        "2026/01/15/10/b.jsonl",
        "2026/01/15/11/c.jsonl",
    ]
    # The same records whether read from S3 or from a local copy.
    s3.put_object(Bucket="capture", Key=keys[1], Body=record("1,2,3").encode())
    data = capture.read_capture(capture.s3_sources(s3, "capture", found), FEATURES)
    assert (data.files, data.records, data.rows) == (3, 1, 1)


def test_window_manifest_refuses_foreign_keys_and_nothing() -> None:
    with pytest.raises(CaptureError, match="is not below the prefix 'cap/ep/'"):
        capture.window_manifest("b", "cap/ep", ["cap/other/2026/01/15/10/a.jsonl"])
    with pytest.raises(CaptureError, match="no capture files under s3://b/cap/ep/"):
        capture.window_manifest("b", "cap/ep", [])


def test_local_capture_files_reads_every_jsonl(tmp_path: Path) -> None:
    for rel in ("a.jsonl", "x/b.jsonl", "x/c.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    found = capture.local_capture_files(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.jsonl", "x/b.jsonl"]
    with pytest.raises(CaptureError, match="does not exist"):
        capture.local_capture_files(tmp_path / "missing")


# ---- records ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "rows"),
    [
        (record("1,2,3"), [[1, 2, 3]]),
        (record("1,2,3\n4,5,6\n"), [[1, 2, 3], [4, 5, 6]]),
        (record(b64("1,2,3\r\n4,5,6"), encoding="BASE64"), [[1, 2, 3], [4, 5, 6]]),
        (record("c,a,b\n3,1,2\n", "text/csv; charset=utf-8"), [[1, 2, 3]]),  # header reorders
        (
            record('{"instances": [[1, 2, 3], [4, 5, 6]]}', "application/json", "JSON"),
            [[1, 2, 3], [4, 5, 6]],
        ),
        (
            record(b64('{"instances": [{"c": 3, "b": 2, "a": 1}]}'), "application/json", "BASE64"),
            [[1, 2, 3]],
        ),
        (record('{"a": 1, "b": 2.5, "c": 3}', "application/json", "JSON"), [[1, 2.5, 3]]),
        (record("[1, 2, 3]", "application/json", "JSON"), [[1, 2, 3]]),
    ],
)
def test_parse_record_reads_every_request_shape_the_endpoint_accepts(
    line: str, rows: list[list[float]]
) -> None:
    np.testing.assert_array_equal(capture.parse_record(line, FEATURES), np.array(rows, dtype=float))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a capture record"),
        (json.dumps({"captureData": {"endpointOutput": {}}}), "no endpointInput"),
        (json.dumps({"captureData": "x"}), "no endpointInput"),
        (record("1,2,3").replace('"data": "1,2,3"', '"data": 12'), "no data"),
        (record("1,2,3").replace('"observedContentType": "text/csv", ', ""), "no content type"),
        (record("!!!not base64", encoding="BASE64"), "bad base64"),
        # A stray character: a lenient decoder would drop it and read "1,2,3".
        (record(b64("1,2,3")[:4] + "*" + b64("1,2,3")[4:], encoding="BASE64"), "bad base64"),
        (record("1,2,3", encoding="GZIP"), "unknown encoding"),
        (record("1,2,3", "application/x-npy"), "unsupported content type"),
        (record("1,2"), "payload rejected"),  # too few values
        (record("1,2,x"), "payload rejected"),
        (record("1,2,inf"), "payload rejected"),
        (record(""), "payload rejected"),  # empty body
        (record('{"a": 1, "b": 2}', "application/json", "JSON"), "payload rejected"),
        (record('{"instances": [[1, 2, true]]}', "application/json", "JSON"), "payload rejected"),
    ],
)
def test_parse_record_rejects_with_a_reason(line: str, reason: str) -> None:
    with pytest.raises(RecordError) as caught:
        capture.parse_record(line, FEATURES)
    assert caught.value.reason == reason
    assert "\n" not in str(caught.value)


def test_read_capture_counts_rejected_records_and_keeps_the_good_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = [record("1,2,3"), record(b64("4,5,6\n7,8,9\n"), encoding="BASE64")]
    bad = ["{oops", record("1,2"), record("1,2,x"), record("", encoding="GZIP")] * 2
    text = "\n".join([good[0], *bad, "", good[1]]) + "\n"
    # U+2028 is legal inside a JSON string: it must not split a record.
    weird = record('{"a": 1, "b": 2, "c": 3}', "application/json", "JSON").replace(
        '"e1"', '"e\u2028x"'
    )
    data = capture.read_capture([("f1.jsonl", text), ("f2.jsonl", weird)], FEATURES)
    assert (data.files, data.records, data.rows, data.rejected_records) == (2, 11, 4, 8)
    assert dict(data.rejected) == {"not JSON": 2, "payload rejected": 4, "unknown encoding": 2}
    assert data.examples[0] == "f1.jsonl:2: not JSON: the line is not a JSON document"
    assert len(data.examples) == capture.MAX_EXAMPLES
    np.testing.assert_array_equal(
        data.frame.to_numpy(), [[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 2, 3]]
    )
    assert list(data.frame.columns) == FEATURES
    summary = data.summary()
    assert summary["rejected_by_reason"] == {
        "not JSON": 2,
        "payload rejected": 4,
        "unknown encoding": 2,
    }
    assert "rejected 8 of 11 capture records" in caplog.text


def test_read_capture_of_nothing_is_an_empty_frame() -> None:
    data = capture.read_capture([], FEATURES)
    assert (data.files, data.records, data.rows) == (0, 0, 0)
    assert list(data.frame.columns) == FEATURES


@pytest.mark.parametrize("name", batches.BATCHES)
def test_shipped_capture_files_hold_exactly_the_shipped_batch(name: str) -> None:
    """Every request shape and encoding in the shipped files reads back to the CSV's rows."""
    expected = pd.read_csv(batches.DATA_DIR / f"{name}.csv")
    window = Window.parse(batches.WINDOW_START, batches.WINDOW_END)
    files = capture.local_window_files(batches.capture_root(batches.DATA_DIR, name), window)
    assert len(files) == len(batches.CAPTURE_HOURS) * batches.FILES_PER_HOUR
    data = capture.read_capture(capture.local_sources(files), list(expected.columns))
    assert data.rejected_records == 0
    pd.testing.assert_frame_equal(data.frame, expected.astype("float64"))
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    shapes = {
        (
            r["captureData"]["endpointInput"]["observedContentType"],
            r["captureData"]["endpointInput"]["encoding"],
        )
        for r in lines
    }
    assert shapes == {
        ("text/csv", "CSV"),
        ("text/csv", "BASE64"),
        ("text/csv; charset=utf-8", "CSV"),
        ("application/json", "JSON"),
        ("application/json", "BASE64"),
    }


def test_shipped_batches_are_what_the_documented_script_generates() -> None:
    generated = batches.generate()
    shipped = {
        p.relative_to(batches.DATA_DIR).as_posix(): p.read_text(encoding="utf-8")
        for p in batches.DATA_DIR.rglob("*")
        if p.is_file()
    }
    assert sorted(generated) == sorted(shipped)
    for relative, text in generated.items():
        assert shipped[relative] == text, relative
    clean = pd.read_csv(batches.DATA_DIR / "clean.csv")
    assert len(clean) == batches.ROWS
