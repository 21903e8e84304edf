"""Capture window and S3 key layout: which hour partitions a drift run covers, which capture
files are in it, and the SageMaker manifest that downloads only those.

    s3://<DestinationS3Uri>/<endpoint-name>/<variant-name>/yyyy/mm/dd/hh/<file>.jsonl

Standard library only: the drift launcher Lambda (``monitoring.drift.launch``) imports it
without pandas or Evidently; ``capture`` re-exports every name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

CAPTURE_SUFFIX = ".jsonl"
#: Longest window a run may cover (one ListObjectsV2 prefix per hour): 31 days.
MAX_WINDOW_HOURS = 31 * 24
_HOUR = timedelta(hours=1)


class CaptureError(ValueError):
    """A problem with the capture input as a whole (window, directory): one line, no traceback."""


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
