"""Data capture in the inference handler, for endpoints SageMaker does not capture (serverless).

Serverless endpoints support no ``DataCaptureConfig`` (SageMaker developer guide, "Deploy models
with Amazon SageMaker Serverless Inference", Feature exclusions). When the model's environment
names a destination, the handler writes sampled requests and responses itself, in the format and
layout SageMaker's own data capture uses, so the drift job reads both alike::

    <MLOPS_CAPTURE_S3_URI>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm>-<ss>-<mmm>-<uuid>.jsonl

one JSON object per line::

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                        "data": "...", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "application/json",
                                        "mode": "OUTPUT", "data": "...", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<uuid4>", "inferenceTime": "2026-01-15T10:00:00Z"},
     "eventVersion": "0"}

``encoding`` is ``CSV`` for ``text/csv``, ``JSON`` for ``application/json`` (the content types the
instance endpoints' ``CaptureContentTypeHeader`` lists) and ``BASE64`` otherwise or when the body
is not UTF-8 text (as SageMaker does for unlisted types). Only requests that got a prediction are
captured (a refused request is no model input); ``MLOPS_CAPTURE_SAMPLING_PERCENT`` (0-100) of them.

Environment (set by the deployment workflow's CreateModel, serverless stages only):

======================================  =========================================================
``MLOPS_CAPTURE_S3_URI``                ``s3://bucket/prefix/``; unset or empty: capture is off
``MLOPS_CAPTURE_ENDPOINT_NAME``         endpoint name in the key (required with the URI)
``MLOPS_CAPTURE_VARIANT_NAME``          variant name in the key (default ``AllTraffic``)
``MLOPS_CAPTURE_SAMPLING_PERCENT``      0-100 (default 100)
``MLOPS_CAPTURE_KMS_KEY_ID``            SSE-KMS key of the objects (default: the bucket's)
``MLOPS_CAPTURE_REGION``                the bucket's region (default: the container's)
``MLOPS_CAPTURE_MAX_RECORDS``           flush when this many records are buffered (default 10)
``MLOPS_CAPTURE_MAX_AGE_SECONDS``       flush when the oldest is this old (default 30)
``MLOPS_CAPTURE_S3_ENDPOINT_URL``       S3 endpoint override (an S3-compatible or test server)
======================================  =========================================================

Buffering: records are kept in memory and written as one object when ``MAX_RECORDS`` are
buffered, when the oldest buffered record is ``MAX_AGE_SECONDS`` old, when the hour changes
(a file holds one hour partition) or when the buffer passes 4 MB. All of it is checked INLINE, on
the request that adds a record: a serverless container is frozen between invocations, so a
background thread or timer would not run, and the request that triggers a flush waits for its
PutObject (short timeouts, two attempts). Records still buffered when a worker exits are flushed
by an ``atexit`` hook (best effort: a container that is frozen and reclaimed loses at most
``MAX_RECORDS - 1`` records, or those of the last ``MAX_AGE_SECONDS``).

A failed write never fails the inference: the batch is dropped, counted in ``stats`` and logged
(one warning per failed batch). Invalid settings disable capture with one logged error.

Standard library only, plus boto3/botocore (in the SageMaker XGBoost image) imported on the first
write. Python 3.8 compatible (the image's interpreter).
"""

from __future__ import annotations

import atexit
import base64
import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

LOG = logging.getLogger(__name__)
_UTC = timezone.utc  # noqa: UP017 - datetime.UTC is Python >= 3.11

ENV_S3_URI = "MLOPS_CAPTURE_S3_URI"
ENV_ENDPOINT = "MLOPS_CAPTURE_ENDPOINT_NAME"
ENV_VARIANT = "MLOPS_CAPTURE_VARIANT_NAME"
ENV_SAMPLING = "MLOPS_CAPTURE_SAMPLING_PERCENT"
ENV_KMS_KEY = "MLOPS_CAPTURE_KMS_KEY_ID"
ENV_REGION = "MLOPS_CAPTURE_REGION"
ENV_MAX_RECORDS = "MLOPS_CAPTURE_MAX_RECORDS"
ENV_MAX_AGE = "MLOPS_CAPTURE_MAX_AGE_SECONDS"
ENV_S3_ENDPOINT_URL = "MLOPS_CAPTURE_S3_ENDPOINT_URL"

DEFAULT_VARIANT = "AllTraffic"
DEFAULT_SAMPLING_PERCENT = 100.0
DEFAULT_MAX_RECORDS = 10
DEFAULT_MAX_AGE_SECONDS = 30.0
MAX_BUFFER_BYTES = 4 * 1024 * 1024
EVENT_VERSION = "0"
_ENCODINGS = {"text/csv": "CSV", "application/json": "JSON"}


class CaptureConfigError(ValueError):
    """A capture setting that cannot be used: one line naming the variable and the value."""


class CaptureConfig:
    __slots__ = (
        "bucket",
        "endpoint_name",
        "endpoint_url",
        "kms_key_id",
        "max_age_seconds",
        "max_records",
        "prefix",
        "region",
        "sampling_percent",
        "variant_name",
    )

    def __init__(
        self,
        s3_uri: str,
        endpoint_name: str,
        variant_name: str = DEFAULT_VARIANT,
        sampling_percent: float = DEFAULT_SAMPLING_PERCENT,
        kms_key_id: str | None = None,
        region: str | None = None,
        max_records: int = DEFAULT_MAX_RECORDS,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        endpoint_url: str | None = None,
    ) -> None:
        if not s3_uri.startswith("s3://") or not s3_uri[len("s3://") :].split("/", 1)[0]:
            raise CaptureConfigError(f"{ENV_S3_URI} must be s3://bucket[/prefix], got {s3_uri!r}")
        bucket, _, prefix = s3_uri[len("s3://") :].partition("/")
        for env, name in ((ENV_ENDPOINT, endpoint_name), (ENV_VARIANT, variant_name)):
            if not name or "/" in name:
                raise CaptureConfigError(f"{env} must be a name without '/', got {name!r}")
        if not 0.0 <= sampling_percent <= 100.0:
            raise CaptureConfigError(f"{ENV_SAMPLING} must be in [0, 100], got {sampling_percent}")
        if max_records < 1:
            raise CaptureConfigError(f"{ENV_MAX_RECORDS} must be at least 1, got {max_records}")
        if not max_age_seconds > 0:
            raise CaptureConfigError(f"{ENV_MAX_AGE} must be > 0, got {max_age_seconds}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_name = endpoint_name
        self.variant_name = variant_name
        self.sampling_percent = float(sampling_percent)
        self.kms_key_id = kms_key_id or None
        self.region = region or None
        self.max_records = int(max_records)
        self.max_age_seconds = float(max_age_seconds)
        self.endpoint_url = endpoint_url or None

    @classmethod
    def from_environment(cls, environ: Any = None) -> CaptureConfig | None:
        """The configuration the environment holds, or None when capture is off."""
        env = os.environ if environ is None else environ
        uri = str(env.get(ENV_S3_URI, "")).strip()
        if not uri:
            return None
        return cls(
            uri,
            str(env.get(ENV_ENDPOINT, "")).strip(),
            str(env.get(ENV_VARIANT, "") or DEFAULT_VARIANT).strip(),
            _number(env, ENV_SAMPLING, float, DEFAULT_SAMPLING_PERCENT),
            str(env.get(ENV_KMS_KEY, "")).strip() or None,
            str(env.get(ENV_REGION, "")).strip() or None,
            _number(env, ENV_MAX_RECORDS, int, DEFAULT_MAX_RECORDS),
            _number(env, ENV_MAX_AGE, float, DEFAULT_MAX_AGE_SECONDS),
            str(env.get(ENV_S3_ENDPOINT_URL, "")).strip() or None,
        )

    def key_prefix(self) -> str:
        parts = [self.prefix] if self.prefix else []
        return "/".join([*parts, self.endpoint_name, self.variant_name])


def _number(env: Any, name: str, kind: Callable[[str], Any], default: Any) -> Any:
    raw = str(env.get(name, "")).strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise CaptureConfigError(f"{name} must be a number, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise CaptureConfigError(f"{name} must be finite, got {raw!r}")
    return value


def _payload(body: Any, content_type: str | None, mode: str) -> dict[str, str]:
    """One side of an invocation as SageMaker records it."""
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body or b"")
    media_type = str(content_type or "").split(";", 1)[0].strip().lower()
    encoding = _ENCODINGS.get(media_type, "BASE64")
    data = None
    if encoding != "BASE64":
        try:
            data = raw.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "BASE64"
    if data is None:
        data = base64.b64encode(raw).decode("ascii")
    return {
        "observedContentType": str(content_type or ""),
        "mode": mode,
        "data": data,
        "encoding": encoding,
    }


def capture_record(
    request_body: Any,
    request_content_type: str | None,
    response_body: Any,
    response_content_type: str | None,
    when: datetime,
    event_id: str,
) -> dict[str, Any]:
    """A data-capture record (one line of a capture file)."""
    stamp = when.astimezone(_UTC)
    return {
        "captureData": {
            "endpointInput": _payload(request_body, request_content_type, "INPUT"),
            "endpointOutput": _payload(response_body, response_content_type, "OUTPUT"),
        },
        "eventMetadata": {
            "eventId": event_id,
            # To the second, as SageMaker's captures show it ("2022-02-14T17:25:49Z").
            "inferenceTime": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "eventVersion": EVENT_VERSION,
    }


class DataCapture:
    """Sampled, buffered capture of one worker process. Thread- and greenlet-safe.

    ``clock`` (seconds, for the buffer's age), ``now`` (UTC datetimes, for the records) and
    ``sample`` (a float in [0, 1)) can be replaced in tests; ``client`` is an S3 client, created
    on the first write when not given.
    """

    def __init__(
        self,
        config: CaptureConfig,
        *,
        client: Any = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
        sample: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self._client = client
        self._clock = clock
        self._now = now or (lambda: datetime.now(_UTC))
        self._sample = sample or random.Random().random
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._bytes = 0
        self._hour: str | None = None
        self._first_at = 0.0
        self.stats = {
            "seen": 0,
            "sampled": 0,
            "written_records": 0,
            "written_files": 0,
            "dropped_records": 0,
            "failed_writes": 0,
        }

    def record(
        self,
        request_body: Any,
        request_content_type: str | None,
        response_body: Any,
        response_content_type: str | None,
    ) -> None:
        """Capture one invocation (if sampled); may flush. Never raises."""
        try:
            self._record(request_body, request_content_type, response_body, response_content_type)
        except Exception:  # capture must never fail an inference
            LOG.exception("data capture: record skipped")

    def _record(
        self,
        request_body: Any,
        request_content_type: str | None,
        response_body: Any,
        response_content_type: str | None,
    ) -> None:
        self.stats["seen"] += 1
        if self._sample() * 100.0 >= self.config.sampling_percent:
            return
        self.stats["sampled"] += 1
        when = self._now()
        line = json.dumps(
            capture_record(
                request_body,
                request_content_type,
                response_body,
                response_content_type,
                when,
                str(uuid.uuid4()),
            ),
            separators=(",", ":"),
        )
        hour = when.astimezone(_UTC).strftime("%Y/%m/%d/%H")
        batches = []
        with self._lock:
            if self._lines and hour != self._hour:
                batches.append(self._take())  # a file holds one hour partition
            if not self._lines:
                self._hour = hour
                self._first_at = self._clock()
            self._lines.append(line)
            self._bytes += len(line) + 1
            if (
                len(self._lines) >= self.config.max_records
                or self._clock() - self._first_at >= self.config.max_age_seconds
                or self._bytes >= MAX_BUFFER_BYTES
            ):
                batches.append(self._take())
        for batch in batches:
            self._write(*batch)

    def flush(self) -> None:
        """Write what is buffered (atexit, tests). Never raises."""
        with self._lock:
            batch = self._take() if self._lines else None
        if batch is not None:
            self._write(*batch)

    @property
    def buffered(self) -> int:
        return len(self._lines)

    def _take(self) -> tuple[str, list[str]]:
        hour, lines = self._hour or "", self._lines
        self._lines, self._bytes, self._hour = [], 0, None
        return hour, lines

    def _write(self, hour: str, lines: list[str]) -> None:
        now = self._now().astimezone(_UTC)
        name = f"{now:%M-%S}-{now.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
        key = f"{self.config.key_prefix()}/{hour}/{name}"
        extra: dict[str, str] = {}
        if self.config.kms_key_id:
            extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.config.kms_key_id}
        try:
            self.client().put_object(
                Bucket=self.config.bucket,
                Key=key,
                Body=("\n".join(lines) + "\n").encode("utf-8"),
                ContentType="application/jsonlines",
                **extra,
            )
        except Exception as exc:  # S3 down, access denied, timeout...: drop, count, log
            self.stats["failed_writes"] += 1
            self.stats["dropped_records"] += len(lines)
            LOG.warning(
                "data capture: dropped %d record(s), PutObject s3://%s/%s failed: %s: %s "
                "(%d record(s) dropped so far)",
                len(lines),
                self.config.bucket,
                key,
                type(exc).__name__,
                exc,
                self.stats["dropped_records"],
            )
            return
        self.stats["written_records"] += len(lines)
        self.stats["written_files"] += 1

    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                region_name=self.config.region,
                endpoint_url=self.config.endpoint_url,
                config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2}),
            )
        return self._client


_ACTIVE: dict[str, DataCapture | None] = {}
_ACTIVE_LOCK = threading.Lock()


def from_environment() -> DataCapture | None:
    """This process's capture, configured from the environment on first use (None: off)."""
    pid = str(os.getpid())  # a forked worker builds its own (its own buffer and client)
    if pid in _ACTIVE:
        return _ACTIVE[pid]
    with _ACTIVE_LOCK:
        if pid not in _ACTIVE:
            capture = None
            try:
                config = CaptureConfig.from_environment()
            except CaptureConfigError as exc:
                LOG.error("data capture: off: %s", exc)
                config = None
            if config is not None:
                capture = DataCapture(config)
                atexit.register(capture.flush)
                LOG.info(
                    "data capture: %g%% of requests to s3://%s/%s/",
                    config.sampling_percent,
                    config.bucket,
                    config.key_prefix(),
                )
            _ACTIVE.clear()
            _ACTIVE[pid] = capture
    return _ACTIVE[pid]
