"""SageMaker data capture: select the files of a time window and parse their requests.

Layout (SageMaker AI developer guide, "Capture data from real-time endpoint")::

    s3://<DestinationS3Uri>/<endpoint-name>/<variant-name>/yyyy/mm/dd/hh/<file>.jsonl

Each line of a file is one captured invocation (JSON Lines)::

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                        "data": "...", "encoding": "CSV"},
                     "endpointOutput": {...}},
     "eventMetadata": {"eventId": "...", "inferenceTime": "2026-01-15T10:00:00Z"},
     "eventVersion": "0"}

``encoding`` is ``CSV`` or ``JSON`` (``data`` holds the body as text) or ``BASE64`` (``data``
holds the body base64-encoded: SageMaker's default for content types not listed in the endpoint
config's ``CaptureContentTypeHeader``). ``endpointOutput`` is absent with ``CaptureMode: Input``.

A request body is parsed with the serving contract's own functions (``inference.decode_request`` and
``inference.to_matrix``): CSV rows (optionally a header line), ``{"instances": [...]}`` of lists
or objects, a single object or list. So the drift job accepts exactly the requests the endpoint
accepted, one row per instance, columns in the model's feature order. A line that is not a
capture record, or whose payload the endpoint would refuse, is rejected: counted by reason,
logged (the first few, with file and line), never fatal.

Window selection uses the hour partitions only: the window ``[start, end)`` covers every hour
partition that overlaps it (the hour of ``start``, through the hour before ``end`` when ``end`` is
on the hour). Standalone: standard library, numpy, pandas and the serving contract's
``inference.py``; boto3 clients are passed in, never created here.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.model_build.model_code import inference

LOG = logging.getLogger(__name__)

CAPTURE_SUFFIX = ".jsonl"
ENCODINGS = ("CSV", "JSON", "BASE64")
#: Longest window a run may cover (one ListObjectsV2 prefix per hour): 31 days.
MAX_WINDOW_HOURS = 31 * 24
#: Rejected records described in the log and the report; the rest are only counted.
MAX_EXAMPLES = 5
_HOUR = timedelta(hours=1)


class CaptureError(ValueError):
    """A problem with the capture input as a whole (window, directory): one line, no traceback."""


class RecordError(ValueError):
    """One captured record that cannot be used: ``reason`` is its category in the report."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# ----------------------------------------------------------------------------------------------
# Window and key layout
# ----------------------------------------------------------------------------------------------


def parse_time(value: str, name: str) -> datetime:
    """An ISO 8601 timestamp with a time zone (``2026-01-15T10:00:00Z``), as UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CaptureError(
            f"{name} {value!r} is not an ISO 8601 time, e.g. 2026-01-15T10:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        raise CaptureError(f"{name} {value!r} has no time zone: add Z (UTC) or an offset")
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class Window:
    """The time window ``[start, end)`` a drift run covers (UTC)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for name, value in (("window start", self.start), ("window end", self.end)):
            if value.tzinfo is None:
                raise CaptureError(f"{name} {value.isoformat()} has no time zone")
        if self.end <= self.start:
            raise CaptureError(
                f"window end {self.end.isoformat()} is not after its start {self.start.isoformat()}"
            )
        if len(self.hours()) > MAX_WINDOW_HOURS:
            raise CaptureError(
                f"window {self.start.isoformat()} .. {self.end.isoformat()} spans more than "
                f"{MAX_WINDOW_HOURS} hours"
            )

    @classmethod
    def parse(cls, start: str, end: str) -> Window:
        return cls(parse_time(start, "window start"), parse_time(end, "window end"))

    def hours(self) -> list[datetime]:
        """The hour partitions overlapping the window, oldest first."""
        hour = self.start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        end = self.end.astimezone(UTC)
        hours = []
        while hour < end:
            hours.append(hour)
            hour += _HOUR
            if len(hours) > MAX_WINDOW_HOURS:
                break
        return hours

    def covers(self, hour: datetime) -> bool:
        first = self.start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return first <= hour < self.end

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": _iso(self.start),
            "end": _iso(self.end),
            "hour_partitions": [f"{h:%Y/%m/%d/%H}" for h in self.hours()],
        }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def partition_hour(key: str) -> datetime | None:
    """The hour of a capture file from its key (``.../yyyy/mm/dd/hh/<file>.jsonl``), else None."""
    parts = key.replace("\\", "/").split("/")
    if len(parts) < 5 or not parts[-1].endswith(CAPTURE_SUFFIX):
        return None
    year, month, day, hour = parts[-5:-1]
    if not (len(year) == 4 and len(month) == len(day) == len(hour) == 2):
        return None
    if not (year + month + day + hour).isdigit():
        return None
    try:
        return datetime(int(year), int(month), int(day), int(hour), tzinfo=UTC)
    except ValueError:  # 2026/02/30, hour 24, ...
        return None


def hour_prefix(prefix: str, hour: datetime) -> str:
    """``<prefix>/yyyy/mm/dd/hh/``: the S3 prefix of one hour partition."""
    base = prefix.strip("/")
    return f"{base}/{hour:%Y/%m/%d/%H}/" if base else f"{hour:%Y/%m/%d/%H}/"


def list_window_keys(s3: Any, bucket: str, prefix: str, window: Window) -> list[str]:
    """Keys of the capture files in ``window`` under ``<capture prefix>/<endpoint>/<variant>``.

    One paginated ListObjectsV2 per hour partition, so a long capture history is never listed.
    """
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    for hour in window.hours():
        for page in paginator.paginate(Bucket=bucket, Prefix=hour_prefix(prefix, hour)):
            for entry in page.get("Contents", []):
                key = str(entry["Key"])
                if partition_hour(key) == hour:
                    keys.append(key)
    return sorted(keys)


def window_manifest(bucket: str, prefix: str, keys: Sequence[str]) -> list[Any]:
    """A SageMaker manifest (``S3DataType: ManifestFile``) of ``keys`` under ``prefix``.

    ``[{"prefix": "s3://<bucket>/<prefix>/"}, "yyyy/mm/dd/hh/<file>.jsonl", ...]``: a Processing
    input on it downloads only the window's files, not the endpoint's whole capture history.
    """
    base = prefix.strip("/") + "/" if prefix.strip("/") else ""
    relative = []
    for key in keys:
        if not key.startswith(base) or key == base:
            raise CaptureError(f"key {key!r} is not below the prefix {base!r}")
        relative.append(key[len(base) :])
    if not relative:
        raise CaptureError(f"no capture files under s3://{bucket}/{base} for a manifest")
    return [{"prefix": f"s3://{bucket}/{base}"}, *relative]


def local_capture_files(root: Path) -> list[Path]:
    """Every ``*.jsonl`` below ``root``: for an input that holds only the window's files."""
    if not root.is_dir():
        raise CaptureError(f"{root}: capture directory does not exist")
    return sorted(p for p in root.rglob(f"*{CAPTURE_SUFFIX}") if p.is_file())


def local_window_files(root: Path, window: Window) -> list[Path]:
    """Capture files in ``window`` under a local copy of ``<capture>/<endpoint>/<variant>/``.

    That is what a Processing input of ``S3DataType: S3Prefix`` on that prefix delivers: the
    objects below the prefix, keeping their relative keys (``yyyy/mm/dd/hh/<file>.jsonl``).
    """
    if not root.is_dir():
        raise CaptureError(f"{root}: capture directory does not exist")
    selected = []
    for path in root.rglob(f"*{CAPTURE_SUFFIX}"):
        if not path.is_file():
            continue
        hour = partition_hour(path.relative_to(root).as_posix())
        if hour is not None and window.covers(hour):
            selected.append(path)
    return sorted(selected)


def local_sources(files: Iterable[Path]) -> Iterator[tuple[str, str]]:
    """``(name, text)`` of local capture files (undecodable bytes become U+FFFD, then rejected)."""
    for path in files:
        yield str(path), path.read_bytes().decode("utf-8", errors="replace")


def s3_sources(s3: Any, bucket: str, keys: Iterable[str]) -> Iterator[tuple[str, str]]:
    """``(s3 URI, text)`` of capture objects, read one at a time."""
    for key in keys:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        yield f"s3://{bucket}/{key}", body.decode("utf-8", errors="replace")


# ----------------------------------------------------------------------------------------------
# Records
# ----------------------------------------------------------------------------------------------


def parse_record(line: str, features: Sequence[str]) -> np.ndarray:
    """The feature rows of one capture record (a 2-D float matrix), or :class:`RecordError`."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        raise RecordError("not JSON", "the line is not a JSON document") from None
    if not isinstance(record, dict):
        raise RecordError("not a capture record", "expected a JSON object per line")
    capture = record.get("captureData")
    endpoint_input = capture.get("endpointInput") if isinstance(capture, dict) else None
    if not isinstance(endpoint_input, dict):
        raise RecordError(
            "no endpointInput", "captureData.endpointInput is missing (capture mode Output only?)"
        )
    data = endpoint_input.get("data")
    encoding = endpoint_input.get("encoding")
    content_type = endpoint_input.get("observedContentType")
    if not isinstance(data, str):
        raise RecordError("no data", "endpointInput.data is missing or not a string")
    if not isinstance(content_type, str):
        raise RecordError("no content type", "endpointInput.observedContentType is missing")
    body: str | bytes
    if encoding == "BASE64":
        try:
            body = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise RecordError("bad base64", "endpointInput.data is not valid base64") from None
    elif encoding in ("CSV", "JSON"):
        body = data
    else:
        raise RecordError(
            "unknown encoding", f"encoding {encoding!r}, expected one of {', '.join(ENCODINGS)}"
        )
    try:
        return inference.to_matrix(inference.decode_request(body, content_type), features)
    except inference.PayloadError as exc:
        reason = "unsupported content type" if exc.status == 415 else "payload rejected"
        raise RecordError(reason, str(exc)) from None


@dataclass
class CaptureData:
    """The rows of a window's captured requests, and what was rejected on the way."""

    frame: pd.DataFrame
    files: int
    records: int
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def rejected_records(self) -> int:
        return sum(self.rejected.values())

    def summary(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "records": self.records,
            "rows": self.rows,
            "rejected_records": self.rejected_records,
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "rejected_examples": list(self.examples),
        }


def read_capture(sources: Iterable[tuple[str, str]], features: Sequence[str]) -> CaptureData:
    """Parse every record of ``sources`` (``(name, text)`` pairs) into one frame of features."""
    blocks: list[np.ndarray] = []
    rejected: Counter[str] = Counter()
    examples: list[str] = []
    files = records = 0
    for name, text in sources:
        files += 1
        # JSON Lines separates records by "\n" only: a JSON string may hold U+2028 and friends.
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            records += 1
            try:
                blocks.append(parse_record(line, features))
            except RecordError as exc:
                rejected[exc.reason] += 1
                if len(examples) < MAX_EXAMPLES:
                    example = f"{name}:{number}: {exc}"
                    examples.append(example)
                    LOG.warning("rejected capture record %s", example)
    if rejected:
        LOG.warning(
            "rejected %d of %d capture records: %s",
            sum(rejected.values()),
            records,
            dict(sorted(rejected.items())),
        )
    matrix = np.vstack(blocks) if blocks else np.empty((0, len(features)))
    frame = pd.DataFrame(matrix, columns=list(features))
    return CaptureData(frame, files, records, rejected, examples)
