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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring.drift.window import (
    CAPTURE_SUFFIX,
    MAX_WINDOW_HOURS,
    CaptureError,
    Window,
    hour_prefix,
    list_window_keys,
    parse_time,
    partition_hour,
    window_manifest,
)
from pipelines.model_build.model_code import inference

__all__ = [
    "CAPTURE_SUFFIX",
    "ENCODINGS",
    "MAX_WINDOW_HOURS",
    "CaptureData",
    "CaptureError",
    "RecordError",
    "Window",
    "hour_prefix",
    "list_window_keys",
    "local_capture_files",
    "local_sources",
    "local_window_files",
    "parse_record",
    "parse_time",
    "partition_hour",
    "read_capture",
    "s3_sources",
    "window_manifest",
]

LOG = logging.getLogger(__name__)

ENCODINGS = ("CSV", "JSON", "BASE64")
#: Rejected records described in the log and the report; the rest are only counted.
MAX_EXAMPLES = 5


class RecordError(ValueError):
    """One captured record that cannot be used: ``reason`` is its category in the report."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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
