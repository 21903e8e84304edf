"""The drift workflow's Lambda (``monitoring.drift.launch.handler``): the AWS calls the
network-isolated drift job cannot make, before and after it.

``{"action": "prepare", ...}`` (before the job):

1. the window: ``windowHours`` ending at the scheduled time (EventBridge Scheduler's
   ``<aws.scheduler.scheduled-time>``, else the execution's start), floored to the hour;
2. the baseline: the model package the endpoint serves (DescribeEndpoint ->
   DescribeEndpointConfig -> DescribeModel, ``baseline.served_model_package``) and the
   ``reference.csv`` next to its drift-check statistics (DescribeModelPackage,
   ``baseline.reference_uri``);
3. the capture files of the window (one ListObjectsV2 per hour partition) and a SageMaker
   manifest of them, written next to the run's report, so the job downloads only the window;
4. a processing-job name unique to the execution (SageMaker's pattern, at most 63 characters).

It answers ``{"run": false, "why": ...}`` when there is nothing to compare (no endpoint yet, no
captured request in the window): the workflow ends without a job. A baseline problem or a
malformed event raises (one line), and the workflow reports it to the operations topic.

``{"action": "publish", ...}`` (after the job): reads the job's ``metric_data.json`` and sends
it with PutMetricData (the namespace and endpoint must be the ones this workflow owns), and
answers the report's summary for the notification.

Standard library and boto3 only (the Lambda runtime's): ``window``, ``baseline`` and
``metrics`` import neither pandas nor Evidently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from monitoring.drift import baseline, metrics
from monitoring.drift.window import CaptureError, Window, list_window_keys, window_manifest

LOG = logging.getLogger(__name__)
LOG.setLevel(logging.INFO)

METRIC_DATA_FILE = metrics.METRIC_DATA_FILE
REPORT_FILE = "drift_report.json"
HTML_FILE = "drift_report.html"
MANIFEST_FILE = "manifest.json"
#: CreateProcessingJob's ProcessingJobName: 1-63 characters, ``[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}``.
JOB_NAME_MAX = 63
_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_NAME_PART = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()/-]*$")
MAX_WINDOW_HOURS = 31 * 24


class LaunchError(ValueError):
    """A malformed event: one line; nothing was read or written."""


# ----------------------------------------------------------------------------------------------
# Event fields
# ----------------------------------------------------------------------------------------------


def _text(event: dict[str, Any], name: str, pattern: re.Pattern[str] | None = None) -> str:
    value = event.get(name)
    if not isinstance(value, str) or not value or (pattern and not pattern.match(value)):
        raise LaunchError(f"event field {name!r} = {value!r} is missing or malformed")
    return value


def _window_hours(event: dict[str, Any]) -> int:
    value = event.get("windowHours")
    if type(value) is not int or not 1 <= value <= MAX_WINDOW_HOURS:
        raise LaunchError(
            f"event field 'windowHours' = {value!r}: expected a whole number 1-{MAX_WINDOW_HOURS}"
        )
    return value


def _time(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise LaunchError(f"{name} = {value!r} is not an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise LaunchError(f"{name} = {value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise LaunchError(f"{name} = {value!r} has no time zone")
    return parsed.astimezone(UTC)


def window_of(event: dict[str, Any]) -> Window:
    """``windowHours`` ending at the trigger's ``scheduledTime`` (else the execution's start
    time), floored to the hour: consecutive scheduled runs cover adjacent hour partitions."""
    trigger = event.get("trigger")
    scheduled = trigger.get("scheduledTime") if isinstance(trigger, dict) else None
    if scheduled is not None:
        end = _time(scheduled, "trigger.scheduledTime")
    else:
        end = _time(event.get("executionStartTime"), "executionStartTime")
    end = end.replace(minute=0, second=0, microsecond=0)
    return Window(end - timedelta(hours=_window_hours(event)), end)


def job_name(prefix: str, window: Window, execution_arn: str) -> str:
    """``<prefix>-<yyyymmddhh>-<hash of the execution>``: unique per workflow execution (a
    retried state reuses it, so a second job for the same execution is refused by SageMaker)."""
    digest = hashlib.sha256(execution_arn.encode()).hexdigest()[:10]
    suffix = f"-{window.end:%Y%m%d%H}-{digest}"
    name = prefix[: JOB_NAME_MAX - len(suffix)].rstrip("-") + suffix
    if not _JOB_NAME.match(name):
        raise LaunchError(f"job name prefix {prefix!r} gives an invalid processing-job name")
    return name


def _split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise LaunchError(f"{uri!r} is not an s3://bucket/key URI")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


# ----------------------------------------------------------------------------------------------
# Actions
# ----------------------------------------------------------------------------------------------


def prepare(event: dict[str, Any], client: Callable[[str], Any]) -> dict[str, Any]:
    """The ``prepare`` action; ``client(service)`` gives a boto3 client once the event is
    valid."""
    endpoint = _text(event, "endpointName")
    variant = _text(event, "variantName")
    bucket = _text(event, "bucket")
    capture_prefix = _text(event, "capturePrefix", _PREFIX)
    report_prefix = _text(event, "reportPrefix", _PREFIX)
    name_prefix = _text(event, "jobNamePrefix", _NAME_PART)
    execution_arn = _text(event, "executionArn")
    try:
        window = window_of(event)
    except CaptureError as exc:
        raise LaunchError(str(exc)) from None
    window_text = {"windowStart": _iso(window.start), "windowEnd": _iso(window.end)}
    sagemaker, s3 = client("sagemaker"), client("s3")

    try:
        package_arn = baseline.served_model_package(sagemaker, endpoint, variant)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationException" and "Could not find" in str(
            error.get("Message", "")
        ):
            return {"run": False, "why": f"endpoint {endpoint} does not exist", **window_text}
        raise
    package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    reference = baseline.reference_uri(package)

    capture_base = f"{capture_prefix.rstrip('/')}/{endpoint}/{variant}"
    keys = list_window_keys(s3, bucket, capture_base, window)
    if not keys:
        return {
            "run": False,
            "why": f"no captured requests under s3://{bucket}/{capture_base}/ in the window",
            **window_text,
        }
    name = job_name(name_prefix, window, execution_arn)
    run_prefix = f"{report_prefix.rstrip('/')}/{endpoint}/{name}"
    manifest_key = f"{run_prefix}/input/{MANIFEST_FILE}"
    manifest = window_manifest(bucket, capture_base, keys)
    s3.put_object(
        Bucket=bucket,
        Key=manifest_key,
        Body=json.dumps(manifest).encode(),
        ContentType="application/json",
    )
    LOG.info("drift run %s: %d capture files, reference %s", name, len(keys), reference)
    return {
        "run": True,
        "jobName": name,
        "endpointName": endpoint,
        **window_text,
        "modelPackageArn": package_arn,
        "referenceUri": reference,
        "manifestUri": f"s3://{bucket}/{manifest_key}",
        "reportUri": f"s3://{bucket}/{run_prefix}/report",
        "captureFiles": len(keys),
    }


def publish(event: dict[str, Any], client: Callable[[str], Any]) -> dict[str, Any]:
    """The ``publish`` action; ``client(service)`` as for :func:`prepare`."""
    endpoint = _text(event, "endpointName")
    namespace = _text(event, "namespace")
    bucket, prefix = _split_s3_uri(_text(event, "reportUri").rstrip("/"))
    s3, cloudwatch = client("s3"), client("cloudwatch")

    def read(name: str) -> bytes:
        body: bytes = s3.get_object(Bucket=bucket, Key=f"{prefix}/{name}")["Body"].read()
        return body

    source = f"s3://{bucket}/{prefix}/{METRIC_DATA_FILE}"
    found_namespace, datums = metrics.parse_metric_data(read(METRIC_DATA_FILE), source)
    if found_namespace != namespace:
        raise metrics.MetricsError(f"{source}: namespace {found_namespace!r}, not {namespace!r}")
    for datum in datums:
        dimensions = {d.get("Name"): d.get("Value") for d in datum.get("Dimensions", [])}
        if dimensions.get(metrics.ENDPOINT_DIMENSION) != endpoint:
            raise metrics.MetricsError(f"{source}: a datum is not for endpoint {endpoint}")
    calls = metrics.publish_metric_data(cloudwatch, namespace, datums)
    try:
        summary = json.loads(read(REPORT_FILE))["summary"]
    except (ValueError, KeyError, TypeError) as exc:
        raise metrics.MetricsError(f"s3://{bucket}/{prefix}/{REPORT_FILE}: {exc}") from None
    return {
        "published": len(datums),
        "calls": calls,
        "namespace": namespace,
        "datasetDrift": bool(summary.get("dataset_drift")),
        "shareOfDriftedFeatures": summary.get("share_of_drifted_features"),
        "driftedFeatures": list(summary.get("drifted_features", [])),
        "report": f"s3://{bucket}/{prefix}/{HTML_FILE}",
    }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def handler(event: Any, context: Any = None, *, clients: dict[str, Any] | None = None) -> Any:
    """Lambda entry point. ``clients`` (tests) replaces the boto3 clients."""
    if not isinstance(event, dict) or event.get("action") not in ("prepare", "publish"):
        LOG.error("malformed event rejected: %s", json.dumps(event, default=str)[:500])
        raise LaunchError("event must be an object with action 'prepare' or 'publish'")
    made: dict[str, Any] = {}

    def client(service: str) -> Any:
        """A boto3 client, made on first use: a rejected event makes none."""
        if service not in made:
            if clients is not None:
                made[service] = clients[service]
            else:
                import boto3

                made[service] = boto3.client(service)
        return made[service]

    if event["action"] == "prepare":
        return prepare(event, client)
    return publish(event, client)
