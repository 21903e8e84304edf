"""First step of the deployment workflow: decide what to do, change nothing.

Given the execution input (``{"packageArn": ..., "eventTime": ...}`` from the trigger, ``{}`` for
a manual run that deploys the latest approved version, ``{"packageArn": ..., "rollback": true}``
for a manual rollback) and the stage's static settings, returns a plan whose ``action`` routes
the state machine:

* ``deploy``: names of the new model and endpoint config, whether the endpoint exists (create or
  update), the config to roll back to, the instance count and the traffic-shifting policy;
* ``noop``: nothing to do (no approved model yet, the endpoint already serves this package, or
  the approval event is older than the one behind the endpoint's last deployment);
* ``wait``: an earlier execution of this state machine is still running, or the endpoint is
  being created/updated: retry later (deployments of one endpoint are serialized, first come
  first served; a queued one plans again once it is its turn);
* ``skip``: this package must not be deployed (not approved any more, not ready, not promoted to
  prod, wrong group, older than the version the endpoint serves without ``"rollback": true``,
  endpoint in a state needing an operator): the workflow notifies and fails.

Ordering rule. The workflow tags the endpoint with what it deployed (``model-package-arn``,
``model-package-version``, ``deployment-event-time``: the EventBridge ``time`` of the approval
that started it, or the start time of a manual execution; ``deployed-at``). An approval event
whose ``time`` is older than the endpoint's ``deployment-event-time`` is stale (EventBridge
retries for hours; SageMaker emits several events per change): a no-op. A version older than the
one the endpoint serves is deployed only when the execution input says ``"rollback": true``.

Every key is always present in the output, so the state machine's JSONPath never misses one.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool

logger = Logger()
tracer = Tracer()

BOTO_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 10})
APPROVED = "Approved"
COMPLETED = "Completed"
VARIANT_NAME = "AllTraffic"
#: Endpoint tags written by the workflow's TagEndpoint step (== deployment.workflow's), read here.
PACKAGE_TAG = "model-package-arn"
VERSION_TAG = "model-package-version"
EVENT_TIME_TAG = "deployment-event-time"
DEPLOYED_AT_TAG = "deployed-at"
#: CustomerMetadataProperties written by ``deployment.promote`` on a package promoted to prod.
PROMOTED_KEY = "promoted-to-prod"
PROMOTED_FROM_KEY = "promoted-from"
BUSY_STATUSES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
SAGEMAKER_NAME_MAX = 63


class TrafficShifting(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    type: Literal["CANARY", "LINEAR"]
    percent: int = Field(ge=1, le=50)
    wait_seconds: int = Field(alias="waitSeconds", ge=0, le=3600)


class StageSettings(BaseModel):
    """Static settings of the stage, written into the state machine definition by the construct."""

    model_config = ConfigDict(populate_by_name=True)

    model_package_group_name: str = Field(alias="modelPackageGroupName")
    endpoint_name: str = Field(alias="endpointName")
    resource_prefix: str = Field(alias="resourcePrefix")
    require_promotion: bool = Field(alias="requirePromotion")
    endpoint_mode: Literal["serverless", "instances"] = Field(alias="endpointMode")
    instance_type: str = Field(default="", alias="instanceType")
    min_instances: int = Field(default=0, alias="minInstances")
    max_instances: int = Field(default=0, alias="maxInstances")
    traffic_shifting: TrafficShifting | None = Field(default=None, alias="trafficShifting")


class DeploymentRequest(BaseModel):
    """The execution input: from the trigger (``packageArn``, ``eventTime``), or by hand: ``{}``,
    ``{"packageArn": ...}``, ``{"packageArn": ..., "rollback": true}``."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    package_arn: str | None = Field(default=None, alias="packageArn")
    #: The approval event's EventBridge ``time``: orders deployments (stale events are no-ops).
    event_time: AwareDatetime | None = Field(default=None, alias="eventTime")
    #: Deploy even when the version is older than the one the endpoint serves (a human's call).
    rollback: StrictBool = False


class PlanEvent(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    request: DeploymentRequest
    execution_name: str = Field(alias="executionName")
    execution_arn: str = Field(alias="executionArn")
    execution_start_time: AwareDatetime = Field(alias="executionStartTime")
    state_machine_arn: str = Field(alias="stateMachineArn")
    stage: StageSettings


@dataclass
class Plan:
    """The state machine's routing input. Keys are camelCase: the definition reads them."""

    action: Literal["deploy", "noop", "wait", "skip"]
    code: str
    message: str
    packageArn: str = ""
    packageVersion: int = 0
    #: ISO 8601 (UTC) time that orders this deployment: the approval event's, else the
    #: execution's start. Written to the endpoint's ``deployment-event-time`` tag.
    eventTime: str = ""
    modelName: str = ""
    endpointConfigName: str = ""
    endpointName: str = ""
    endpointExists: bool = False
    previousEndpointConfigName: str = ""
    initialInstanceCount: int = 0
    instanceTypeChanged: bool = False
    trafficRouting: dict[str, Any] = field(default_factory=dict)


def bounded_name(prefix: str, suffix: str, max_length: int = SAGEMAKER_NAME_MAX) -> str:
    """``<prefix>-<suffix>``, the prefix cut (never the suffix) to fit SageMaker's limit."""
    head = prefix[: max(1, max_length - len(suffix) - 1)].rstrip("-")
    return f"{head}-{suffix}"


def resource_names(prefix: str, version: int, execution_name: str) -> str:
    """One name for the new model and endpoint config: unique per execution, readable."""
    token = hashlib.sha256(execution_name.encode()).hexdigest()[:8]
    return bounded_name(prefix, f"v{version}-{token}")


def is_promoted(package: dict[str, Any]) -> bool:
    metadata = package.get("CustomerMetadataProperties") or {}
    return metadata.get(PROMOTED_KEY) == "true" and bool(metadata.get(PROMOTED_FROM_KEY))


def latest_approved_package(sagemaker: Any, group_name: str) -> str | None:
    response = sagemaker.list_model_packages(
        ModelPackageGroupName=group_name,
        ModelApprovalStatus=APPROVED,
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )
    summaries = response.get("ModelPackageSummaryList", [])
    return str(summaries[0]["ModelPackageArn"]) if summaries else None


def _not_found(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "")
    return code in ("ValidationException", "ResourceNotFound") and (
        "Could not find" in message or "does not exist" in message
    )


def describe_endpoint(sagemaker: Any, endpoint_name: str) -> dict[str, Any] | None:
    try:
        return dict(sagemaker.describe_endpoint(EndpointName=endpoint_name))
    except ClientError as error:
        if _not_found(error):
            return None
        raise


def endpoint_tags(sagemaker: Any, endpoint_arn: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"ResourceArn": endpoint_arn}
    while True:
        response = sagemaker.list_tags(**kwargs)
        tags.update({tag["Key"]: tag["Value"] for tag in response.get("Tags", [])})
        if not response.get("NextToken"):
            return tags
        kwargs["NextToken"] = response["NextToken"]


def iso(moment: datetime) -> str:
    """UTC ISO 8601 with a ``Z`` (valid in a SageMaker tag value)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def tag_time(tags: dict[str, str], key: str) -> datetime | None:
    """A time tag of the endpoint, or None when absent or unreadable (then it orders nothing)."""
    try:
        moment = datetime.fromisoformat(tags[key])
    except (KeyError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None


def tag_version(tags: dict[str, str]) -> int | None:
    try:
        return int(tags[VERSION_TAG])
    except (KeyError, ValueError):
        return None


def earlier_running_execution(
    sfn: Any, state_machine_arn: str, execution_arn: str, started: datetime
) -> str | None:
    """The name of a RUNNING execution of this state machine that started before this one
    (ties broken by ARN): deployments of the endpoint go one at a time, in start order, so the
    earliest one is never blocked and a later approval deploys after an earlier one."""
    me = (started, execution_arn)
    paginator = sfn.get_paginator("list_executions")
    for page in paginator.paginate(stateMachineArn=state_machine_arn, statusFilter="RUNNING"):
        for execution in page["executions"]:
            other = (execution["startDate"], execution["executionArn"])
            if other[1] != execution_arn and other < me:
                return str(execution["name"])
    return None


def current_instance_count(endpoint: dict[str, Any] | None) -> int:
    for variant in (endpoint or {}).get("ProductionVariants", []):
        if variant.get("VariantName") == VARIANT_NAME:
            return int(
                variant.get("DesiredInstanceCount") or variant.get("CurrentInstanceCount") or 0
            )
    return 0


def instance_type_changed(sagemaker: Any, config_name: str, instance_type: str) -> bool:
    """True when the serving config uses another instance type (autoscaling must be
    deregistered for such an update); True as well when that config cannot be read."""
    try:
        config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    except ClientError:
        return True
    for variant in config.get("ProductionVariants", []):
        if variant.get("VariantName") == VARIANT_NAME:
            return bool(variant.get("InstanceType") != instance_type)
    return True


def traffic_routing(count: int, shifting: TrafficShifting | None) -> dict[str, Any]:
    """Blue/green traffic shifting for ``count`` instances.

    SageMaker requires a canary of at most half the fleet and linear steps of 10-50% of it, so
    a single-instance fleet shifts all at once (still with the baking period and the alarms'
    auto-rollback)."""
    wait = shifting.wait_seconds if shifting else 300
    if shifting is None or count < 2:
        return {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": wait}
    size = max(1, min(count // 2, round(count * shifting.percent / 100)))
    if shifting.type == "CANARY":
        return {
            "Type": "CANARY",
            "CanarySize": {"Type": "INSTANCE_COUNT", "Value": size},
            "WaitIntervalInSeconds": wait,
        }
    size = max(size, math.ceil(count / 10))
    return {
        "Type": "LINEAR",
        "LinearStepSize": {"Type": "INSTANCE_COUNT", "Value": size},
        "WaitIntervalInSeconds": wait,
    }


def plan_deployment(event: PlanEvent, *, sagemaker: Any, sfn: Any) -> Plan:
    stage = event.stage
    request = event.request
    ordering_time = request.event_time or event.execution_start_time

    def stop(
        action: Literal["noop", "wait", "skip"],
        code: str,
        message: str,
        package_arn: str = "",
        version: int = 0,
    ) -> Plan:
        return Plan(
            action=action,
            code=code,
            message=message,
            endpointName=stage.endpoint_name,
            packageArn=package_arn,
            packageVersion=version,
            eventTime=iso(ordering_time),
        )

    package_arn = request.package_arn
    if package_arn is None:
        package_arn = latest_approved_package(sagemaker, stage.model_package_group_name)
        if package_arn is None:
            return stop(
                "noop",
                "NoApprovedModel",
                f"no approved model in {stage.model_package_group_name} yet: nothing to deploy",
            )

    try:
        package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    except ClientError as error:
        if _not_found(error):
            return stop("skip", "PackageNotFound", f"{package_arn} does not exist", package_arn)
        raise
    version = int(package.get("ModelPackageVersion") or 0)
    about = (package_arn, version)
    if package.get("ModelPackageGroupName") != stage.model_package_group_name:
        return stop(
            "skip",
            "WrongGroup",
            f"{package_arn} is not in this stage's group {stage.model_package_group_name}",
            *about,
        )
    if package.get("ModelApprovalStatus") != APPROVED:
        return stop(
            "skip",
            "NotApproved",
            f"{package_arn} is {package.get('ModelApprovalStatus')}, not {APPROVED}",
            *about,
        )
    if package.get("ModelPackageStatus") != COMPLETED:
        return stop(
            "skip",
            "PackageNotReady",
            f"{package_arn} is {package.get('ModelPackageStatus')}, not {COMPLETED}",
            *about,
        )
    if stage.require_promotion and not is_promoted(package):
        return stop(
            "skip",
            "NotPromoted",
            f"{package_arn} is approved but was not promoted to prod: run "
            "`mlops promote --package-arn` with the staging version it should mirror",
            *about,
        )

    earlier = earlier_running_execution(
        sfn, event.state_machine_arn, event.execution_arn, event.execution_start_time
    )
    if earlier:
        return stop(
            "wait",
            "QueuedBehindEarlierDeployment",
            f"execution {earlier} started earlier and is still running: waiting for it",
            *about,
        )

    endpoint = describe_endpoint(sagemaker, stage.endpoint_name)
    if endpoint is not None:
        status = endpoint.get("EndpointStatus", "")
        if status in BUSY_STATUSES:
            return stop(
                "wait", "EndpointBusy", f"{stage.endpoint_name} is {status}: waiting", *about
            )
        if status != "InService":
            return stop(
                "skip",
                "EndpointNotUpdatable",
                f"{stage.endpoint_name} is {status} ({endpoint.get('FailureReason', 'no reason')})"
                f": delete it (aws sagemaker delete-endpoint --endpoint-name {stage.endpoint_name})"
                " and start the deployment again",
                *about,
            )
        tags = endpoint_tags(sagemaker, endpoint["EndpointArn"])
        if tags.get(PACKAGE_TAG) == package_arn:
            return stop(
                "noop",
                "AlreadyServing",
                f"{stage.endpoint_name} already serves {package_arn}",
                *about,
            )
        served_time = tag_time(tags, EVENT_TIME_TAG)
        if request.event_time is not None and served_time and request.event_time < served_time:
            return stop(
                "noop",
                "StaleEvent",
                f"the approval event of {package_arn} ({iso(request.event_time)}) is older than "
                f"the one behind the endpoint's last deployment ({iso(served_time)}): ignored",
                *about,
            )
        served_version = tag_version(tags)
        if served_version is not None and version < served_version and not request.rollback:
            return stop(
                "skip",
                "OlderThanServing",
                f"{stage.endpoint_name} serves version {served_version}; version {version} is "
                "older and is deployed only by a manual rollback: start an execution with "
                f'{{"packageArn": "{package_arn}", "rollback": true}}',
                *about,
            )

    name = resource_names(stage.resource_prefix, version, event.execution_name)
    plan = Plan(
        action="deploy",
        code="Deploy",
        message=f"deploying {package_arn} to {stage.endpoint_name}",
        modelName=name,
        endpointConfigName=name,
        endpointName=stage.endpoint_name,
        endpointExists=endpoint is not None,
        previousEndpointConfigName=str((endpoint or {}).get("EndpointConfigName", "")),
        packageArn=package_arn,
        packageVersion=version,
        eventTime=iso(ordering_time),
    )
    if stage.endpoint_mode == "instances":
        count = max(stage.min_instances, current_instance_count(endpoint))
        plan.initialInstanceCount = min(count, stage.max_instances)
        plan.trafficRouting = traffic_routing(plan.initialInstanceCount, stage.traffic_shifting)
        if endpoint is not None:
            plan.instanceTypeChanged = instance_type_changed(
                sagemaker, plan.previousEndpointConfigName, stage.instance_type
            )
    return plan


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parsed = parse(event=event, model=PlanEvent)
    region = os.environ.get("AWS_REGION")
    plan = plan_deployment(
        parsed,
        sagemaker=boto3.client("sagemaker", region_name=region, config=BOTO_CONFIG),
        sfn=boto3.client("stepfunctions", region_name=region, config=BOTO_CONFIG),
    )
    logger.info("deployment plan", extra={"plan": asdict(plan)})
    return asdict(plan)
