"""Keeps SageMaker Model Monitor pointed at the model version an endpoint serves.

Invoked by EventBridge on "SageMaker Endpoint State Change" events of ONE endpoint (this stage's,
``ENDPOINT_NAME``) reaching ``IN_SERVICE``: after the deployment workflow created or updated the
endpoint, and after a rollback. The endpoint is created by that workflow after an approval, not
by CloudFormation, and a data-quality job definition must name an endpoint that exists with data
capture enabled; so the monitoring resources are made here, when the endpoint is there.

What it does, reading the endpoint's CURRENT state (the event only says "look now"):

1. ``DescribeEndpoint``: not ``InService`` -> nothing (a later event follows); no data capture
   (serverless endpoints have none: deployment/workflow.py gives them no DataCaptureConfig) ->
   nothing, logged.
2. The served model package: endpoint config -> model -> ``PrimaryContainer.ModelPackageName``
   (how the deployment workflow creates models) -> ``DescribeModelPackage``: its version and its
   ``DriftCheckBaselines.ModelDataQuality`` (the pipeline's QualityCheckStep output, marked by
   the package's ``DataQualityBaselineFormat: model-monitor`` metadata). A package of another
   group, or without that baseline (e.g. built before the backend was model_monitor: its
   drift-check baseline is the repository's own statistics.json) -> nothing, logged.
3. A data-quality job definition named after the package version and a hash of its settings
   (job definitions are immutable: a new version or new settings is a new name); created unless
   it exists. With ``GROUND_TRUTH_S3_URI``, a model-quality job definition likewise
   (BinaryClassification, probability ``predictions[0].score`` of the JSON response,
   threshold 0.5: what serving labels with).
4. The monitoring schedule (one per type, named after the stage) created, or updated to the new
   job definition and the configured cron; left alone when it already uses both.
5. This stage's superseded job definitions (same name prefix, not in use) deleted.

Idempotent: a repeated event finds the definitions and schedules as it left them and changes
nothing. A malformed event (wrong source/type, another endpoint, missing fields) is logged and
rejected before any AWS call. Errors of AWS calls raise: EventBridge's asynchronous invocation
retries, then the event goes to the dead-letter queue.

Environment (set by monitoring/model_monitor.py): ENDPOINT_NAME, MODEL_PACKAGE_GROUP_NAME,
RESOURCE_PREFIX (names of what this function creates), ROLE_ARN (the monitoring jobs' role),
KMS_KEY_ARN, OUTPUT_S3_URI, IMAGE_URI (Model Monitor's analyzer in this region),
SCHEDULE_EXPRESSION, WINDOW_HOURS, INSTANCE_TYPE, GROUND_TRUTH_S3_URI (optional),
SUBNET_IDS / SECURITY_GROUP_IDS (optional, comma-separated).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

logger = logging.getLogger()
logger.setLevel(logging.INFO)

BOTO_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 10})
SOURCE = "aws.sagemaker"
DETAIL_TYPE = "SageMaker Endpoint State Change"
#: AWS's documented sample event carries ``IN_SERVICE``; the API's status is ``InService``.
IN_SERVICE_EVENT_STATUSES = ("IN_SERVICE", "InService")
DATA_QUALITY = "DataQuality"
MODEL_QUALITY = "ModelQuality"
#: Where the analyzer reads captured data and writes its reports inside the job.
INPUT_PATH = "/opt/ml/processing/input/endpoint"
OUTPUT_PATH = "/opt/ml/processing/output"
VOLUME_GB = 30
#: MonitoringStoppingCondition: at most 3600 s for data quality, 1800 s for model quality on an
#: hourly schedule (botocore's documentation of MaxRuntimeInSeconds).
MAX_RUNTIME_S = {DATA_QUALITY: 3600, MODEL_QUALITY: 1800}
#: The inference handler's JSON response: {"predictions": [{"score": p, "label": 0|1}, ...]};
#: one record per request is what model quality can join with ground truth (by inference id).
PROBABILITY_ATTRIBUTE = "predictions[0].score"
PROBABILITY_THRESHOLD = 0.5
PROBLEM_TYPE = "BinaryClassification"
#: The package's CustomerMetadataProperties entry saying its drift-check baseline is Model
#: Monitor's (== pipelines/model_build/definition.py BASELINE_FORMAT_*): packages built with
#: another backend carry the repository's own statistics.json there, which Model Monitor cannot
#: read.
BASELINE_FORMAT_METADATA = "DataQualityBaselineFormat"
BASELINE_FORMAT_MODEL_MONITOR = "model-monitor"
NAME_MAX = 63  # job definition and schedule names: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}


class InvalidEvent(ValueError):
    """The event is not an IN_SERVICE state change of this stage's endpoint."""


@dataclass(frozen=True)
class Settings:
    endpoint_name: str
    model_package_group_name: str
    resource_prefix: str
    role_arn: str
    kms_key_arn: str
    output_s3_uri: str
    image_uri: str
    schedule_expression: str
    window_hours: int
    instance_type: str
    ground_truth_s3_uri: str | None = None
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Settings:
        def ids(name: str) -> tuple[str, ...]:
            return tuple(v for v in env.get(name, "").split(",") if v)

        return cls(
            endpoint_name=env["ENDPOINT_NAME"],
            model_package_group_name=env["MODEL_PACKAGE_GROUP_NAME"],
            resource_prefix=env["RESOURCE_PREFIX"],
            role_arn=env["ROLE_ARN"],
            kms_key_arn=env["KMS_KEY_ARN"],
            output_s3_uri=env["OUTPUT_S3_URI"].rstrip("/"),
            image_uri=env["IMAGE_URI"],
            schedule_expression=env["SCHEDULE_EXPRESSION"],
            window_hours=int(env["WINDOW_HOURS"]),
            instance_type=env["INSTANCE_TYPE"],
            ground_truth_s3_uri=env.get("GROUND_TRUTH_S3_URI") or None,
            subnet_ids=ids("SUBNET_IDS"),
            security_group_ids=ids("SECURITY_GROUP_IDS"),
        )

    def schedule_name(self, kind: str) -> str:
        suffix = "data-quality" if kind == DATA_QUALITY else "model-quality"
        return f"{self.resource_prefix}-{suffix}"

    def definition_prefix(self, kind: str) -> str:
        return f"{self.resource_prefix}-{'dq' if kind == DATA_QUALITY else 'mq'}-v"


def parse_event(event: Any, endpoint_name: str) -> None:
    """Raises :class:`InvalidEvent` (one line) unless ``event`` is an IN_SERVICE state change of
    ``endpoint_name``."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"expected an EventBridge event object, got {type(event).__name__}")
    if event.get("source") != SOURCE or event.get("detail-type") != DETAIL_TYPE:
        raise InvalidEvent(
            f"expected source {SOURCE!r} and detail-type {DETAIL_TYPE!r}, got "
            f"{event.get('source')!r} / {event.get('detail-type')!r}"
        )
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise InvalidEvent("the event has no detail object")
    name, status = detail.get("EndpointName"), detail.get("EndpointStatus")
    if not isinstance(name, str) or name.lower() != endpoint_name.lower():
        raise InvalidEvent(f"the event is about endpoint {name!r}, not {endpoint_name!r}")
    if status not in IN_SERVICE_EVENT_STATUSES:
        raise InvalidEvent(f"endpoint status {status!r} is not IN_SERVICE")


# ---- the served package ----------------------------------------------------------------------


@dataclass(frozen=True)
class ServedPackage:
    arn: str
    version: int
    statistics_uri: str
    constraints_uri: str


class NotMonitorable(Exception):
    """Nothing to schedule for this endpoint now (logged, not an error of the function)."""


def served_package(sm: Any, settings: Settings) -> ServedPackage:
    endpoint = sm.describe_endpoint(EndpointName=settings.endpoint_name)
    if endpoint["EndpointStatus"] != "InService":
        raise NotMonitorable(f"endpoint is {endpoint['EndpointStatus']}; a later event follows")
    capture = endpoint.get("DataCaptureConfig") or {}
    if not capture.get("EnableCapture"):
        raise NotMonitorable(
            "endpoint has no data capture (serverless endpoints cannot capture): no schedule"
        )
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model_name = config["ProductionVariants"][0]["ModelName"]
    model = sm.describe_model(ModelName=model_name)
    package_arn = (model.get("PrimaryContainer") or {}).get("ModelPackageName")
    if not package_arn:
        raise NotMonitorable(f"model {model_name} was not created from a model package")
    package = sm.describe_model_package(ModelPackageName=package_arn)
    if package.get("ModelPackageGroupName") != settings.model_package_group_name:
        raise NotMonitorable(
            f"{package_arn} is not a package of {settings.model_package_group_name}"
        )
    metadata = package.get("CustomerMetadataProperties") or {}
    if metadata.get(BASELINE_FORMAT_METADATA) != BASELINE_FORMAT_MODEL_MONITOR:
        raise NotMonitorable(
            f"{package_arn} has no Model Monitor data-quality baseline (built with another "
            "monitoring backend): deploy a version built with monitoring.backend model_monitor"
        )
    quality = (package.get("DriftCheckBaselines") or {}).get("ModelDataQuality") or {}
    statistics = (quality.get("Statistics") or {}).get("S3Uri")
    constraints = (quality.get("Constraints") or {}).get("S3Uri")
    if not statistics or not constraints:
        raise NotMonitorable(
            f"{package_arn} has no drift-check baseline (DriftCheckBaselines.ModelDataQuality)"
        )
    return ServedPackage(package_arn, int(package["ModelPackageVersion"]), statistics, constraints)


# ---- job definitions -------------------------------------------------------------------------


def _common(settings: Settings, kind: str) -> dict[str, Any]:
    network: dict[str, Any] = {
        "EnableInterContainerTrafficEncryption": True,
        "EnableNetworkIsolation": True,
    }
    if settings.subnet_ids:
        network["VpcConfig"] = {
            "SecurityGroupIds": list(settings.security_group_ids),
            "Subnets": list(settings.subnet_ids),
        }
    output = (
        f"{settings.output_s3_uri}/{'data-quality' if kind == DATA_QUALITY else 'model-quality'}"
    )
    return {
        "JobResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": settings.instance_type,
                "VolumeSizeInGB": VOLUME_GB,
                "VolumeKmsKeyId": settings.kms_key_arn,
            }
        },
        "NetworkConfig": network,
        "RoleArn": settings.role_arn,
        "StoppingCondition": {"MaxRuntimeInSeconds": MAX_RUNTIME_S[kind]},
        f"{kind}JobOutputConfig": {
            "MonitoringOutputs": [
                {
                    "S3Output": {
                        "S3Uri": output,
                        "LocalPath": OUTPUT_PATH,
                        "S3UploadMode": "EndOfJob",
                    }
                }
            ],
            "KmsKeyId": settings.kms_key_arn,
        },
    }


def _endpoint_input(settings: Settings) -> dict[str, Any]:
    return {
        "EndpointName": settings.endpoint_name,
        "LocalPath": INPUT_PATH,
        "S3InputMode": "File",
        "S3DataDistributionType": "FullyReplicated",
    }


def data_quality_request(settings: Settings, package: ServedPackage) -> dict[str, Any]:
    """CreateDataQualityJobDefinition's request, without its name."""
    return {
        "DataQualityBaselineConfig": {
            "ConstraintsResource": {"S3Uri": package.constraints_uri},
            "StatisticsResource": {"S3Uri": package.statistics_uri},
        },
        "DataQualityAppSpecification": {
            "ImageUri": settings.image_uri,
            # Per-feature metrics in CloudWatch (aws/sagemaker/Endpoints/data-metrics).
            "Environment": {"publish_cloudwatch_metrics": "Enabled"},
        },
        "DataQualityJobInput": {"EndpointInput": _endpoint_input(settings)},
        **_common(settings, DATA_QUALITY),
    }


def model_quality_request(settings: Settings, package: ServedPackage) -> dict[str, Any]:
    """CreateModelQualityJobDefinition's request, without its name (no baseline constraints:
    the pipeline registers none for model quality; the job computes and publishes the metrics).
    ``package`` names the version the definition belongs to."""
    assert settings.ground_truth_s3_uri
    endpoint_input = _endpoint_input(settings)
    endpoint_input.update(
        {
            "ProbabilityAttribute": PROBABILITY_ATTRIBUTE,
            "ProbabilityThresholdAttribute": PROBABILITY_THRESHOLD,
            # Ground truth is uploaded after the fact: look back over the configured window.
            "StartTimeOffset": f"-PT{settings.window_hours}H",
            "EndTimeOffset": "-PT0H",
        }
    )
    return {
        "ModelQualityAppSpecification": {
            "ImageUri": settings.image_uri,
            "ProblemType": PROBLEM_TYPE,
            "Environment": {"publish_cloudwatch_metrics": "Enabled"},
        },
        "ModelQualityJobInput": {
            "EndpointInput": endpoint_input,
            "GroundTruthS3Input": {"S3Uri": settings.ground_truth_s3_uri},
        },
        **_common(settings, MODEL_QUALITY),
    }


def definition_name(settings: Settings, kind: str, version: int, request: Mapping[str, Any]) -> str:
    """``<prefix>-dq-v<version>-<hash of the request>``: a new version or new settings is a new
    name (definitions are immutable), the same ones the same name (idempotent)."""
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:8]
    name = f"{settings.definition_prefix(kind)}{version}-{digest}"
    if len(name) > NAME_MAX:
        raise ValueError(f"job definition name {name!r} exceeds {NAME_MAX} characters")
    return name


_CALLS = {
    DATA_QUALITY: (
        "describe_data_quality_job_definition",
        "create_data_quality_job_definition",
        "list_data_quality_job_definitions",
        "delete_data_quality_job_definition",
    ),
    MODEL_QUALITY: (
        "describe_model_quality_job_definition",
        "create_model_quality_job_definition",
        "list_model_quality_job_definitions",
        "delete_model_quality_job_definition",
    ),
}


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _missing(error: ClientError) -> bool:
    return _code(error) == "ResourceNotFound"


def ensure_definition(sm: Any, kind: str, name: str, request: Mapping[str, Any]) -> bool:
    """Creates the job definition unless it exists; True when created."""
    describe, create, _, _ = _CALLS[kind]
    try:
        getattr(sm, describe)(JobDefinitionName=name)
        return False
    except ClientError as error:
        if not _missing(error):
            raise
    try:
        getattr(sm, create)(JobDefinitionName=name, **request)
    except ClientError as error:  # created meanwhile by a concurrent invocation
        if _code(error) != "ResourceInUse":
            raise
        return False
    return True


def ensure_schedule(sm: Any, settings: Settings, kind: str, definition: str) -> str:
    """Creates or updates the schedule; returns "created", "updated" or "unchanged"."""
    name = settings.schedule_name(kind)
    config: dict[str, Any] = {
        "ScheduleConfig": {"ScheduleExpression": settings.schedule_expression},
        "MonitoringJobDefinitionName": definition,
        "MonitoringType": kind,
    }
    # No DataAnalysisStartTime/EndTime: the SDK documents them for one-time (NOW) schedules
    # only; the schedule's period decides what a recurring data-quality run analyses. The
    # configured window applies to model quality (the endpoint input's time offsets).
    try:
        current = sm.describe_monitoring_schedule(MonitoringScheduleName=name)
    except ClientError as error:
        if not _missing(error):
            raise
        sm.create_monitoring_schedule(MonitoringScheduleName=name, MonitoringScheduleConfig=config)
        return "created"
    existing = current.get("MonitoringScheduleConfig") or {}
    if all(existing.get(key) == value for key, value in config.items()):
        return "unchanged"
    sm.update_monitoring_schedule(MonitoringScheduleName=name, MonitoringScheduleConfig=config)
    return "updated"


def delete_superseded(sm: Any, settings: Settings, kind: str, keep: str) -> list[str]:
    """Deletes this stage's other job definitions of ``kind`` (those it created: the name
    prefix); one still in use by a schedule update in progress is left for the next event."""
    _, _, list_call, delete_call = _CALLS[kind]
    prefix = settings.definition_prefix(kind)
    names: list[str] = []
    token: str | None = None
    while True:
        page = getattr(sm, list_call)(
            NameContains=prefix, MaxResults=100, **({"NextToken": token} if token else {})
        )
        names += [d["MonitoringJobDefinitionName"] for d in page["JobDefinitionSummaries"]]
        token = page.get("NextToken")
        if not token:
            break
    deleted = []
    for name in sorted(names):
        if name == keep or not name.startswith(prefix):
            continue
        try:
            getattr(sm, delete_call)(JobDefinitionName=name)
            deleted.append(name)
        except ClientError as error:
            logger.warning("could not delete %s yet: %s", name, error)
    return deleted


# ---- entry points ----------------------------------------------------------------------------


def sync(sm: Any, settings: Settings, event: Any) -> dict[str, Any]:
    """The whole run for one event; what the handler returns (and logs)."""
    try:
        parse_event(event, settings.endpoint_name)
    except InvalidEvent as error:
        logger.error("rejected event: %s", error)
        return {"action": "rejected", "reason": str(error)}
    try:
        package = served_package(sm, settings)
    except NotMonitorable as error:
        logger.info("nothing to monitor: %s", error)
        return {"action": "skipped", "reason": str(error)}
    kinds = [DATA_QUALITY] + ([MODEL_QUALITY] if settings.ground_truth_s3_uri else [])
    result: dict[str, Any] = {"action": "synced", "package": package.arn}
    for kind in kinds:
        build = data_quality_request if kind == DATA_QUALITY else model_quality_request
        request = build(settings, package)
        name = definition_name(settings, kind, package.version, request)
        created = ensure_definition(sm, kind, name, request)
        schedule = ensure_schedule(sm, settings, kind, name)
        deleted = delete_superseded(sm, settings, kind, name)
        result[kind] = {
            "jobDefinition": name,
            "created": created,
            "schedule": schedule,
            "deleted": deleted,
        }
    logger.info("monitoring synced: %s", json.dumps(result, sort_keys=True))
    return result


def handler(event: Any, context: Any) -> dict[str, Any]:
    settings = Settings.from_environment(os.environ)
    sm = boto3.client("sagemaker", config=BOTO_CONFIG)
    return sync(sm, settings, event)
