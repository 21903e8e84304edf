"""EventBridge target: turns a model-package approval into at most one deployment execution.

EventBridge delivers at least once and SageMaker can emit several events for one change, so this
function makes starting the deployment workflow idempotent:

* the execution name is derived from the package (``v<version>-<sha(arn)>``) and the event id:
  a redelivered event gets the same name, and Step Functions refuses a second execution with a
  name already used (``ExecutionAlreadyExists``, for 90 days) -> counted as a duplicate;
* before starting, any RUNNING execution for the same package (same name prefix) makes this
  event a duplicate too (two distinct events in the same instant can both start; the second
  execution's plan step then waits for the busy endpoint and ends as a no-op);
* a later, distinct event for a package that is already serving ends as a no-op in the workflow
  itself (its plan step finds the endpoint tagged with the package ARN);
* the event's ``time`` goes into the execution input as ``eventTime``: the plan step ignores an
  approval older than the one behind the endpoint's last deployment (EventBridge retries for up
  to 4 hours, so a stale event can arrive after a newer version was deployed).

Events for another group, or with a status other than ``Approved``, are ignored (the EventBridge
rule already filters them out; this is defence in depth). A malformed event is logged and rejected
without any call: retrying it could never make it valid.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from pydantic import BaseModel, ConfigDict, Field, ValidationError

logger = Logger()
tracer = Tracer()

EVENT_SOURCE = "aws.sagemaker"
DETAIL_TYPE = "SageMaker Model Package State Change"
APPROVED = "Approved"
BOTO_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 10})


class ModelPackageStateChange(BaseModel):
    """The part of the event ``detail`` this function relies on (the rest is ignored)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    group_name: str = Field(alias="ModelPackageGroupName")
    package_arn: str = Field(alias="ModelPackageArn")
    version: int | None = Field(default=None, alias="ModelPackageVersion")
    approval_status: str = Field(alias="ModelApprovalStatus")


class ModelPackageStateChangeEvent(EventBridgeModel):
    detail: ModelPackageStateChange


@dataclass(frozen=True)
class TriggerResult:
    action: str  # "started" | "duplicate" | "ignored" | "rejected"
    reason: str
    execution_name: str | None = None
    execution_arn: str | None = None


def package_version(package_arn: str, version: int | None) -> int:
    """The version from the event, else the ARN suffix (``.../model-package/<group>/<version>``)."""
    if version is not None:
        return version
    return int(package_arn.rsplit("/", 1)[-1])


def execution_name_prefix(package_arn: str, version: int) -> str:
    return f"v{version}-{hashlib.sha256(package_arn.encode()).hexdigest()[:12]}"


def execution_name(package_arn: str, version: int, event_id: str) -> str:
    """Deterministic per (package, event): at most 80 characters of ``[A-Za-z0-9-]``."""
    event_hash = hashlib.sha256(event_id.encode()).hexdigest()[:16]
    return f"{execution_name_prefix(package_arn, version)}-{event_hash}"


def running_execution_for(sfn: Any, state_machine_arn: str, prefix: str) -> str | None:
    """The ARN of a RUNNING execution for the same package, if any."""
    paginator = sfn.get_paginator("list_executions")
    for page in paginator.paginate(stateMachineArn=state_machine_arn, statusFilter="RUNNING"):
        for execution in page["executions"]:
            if execution["name"].startswith(f"{prefix}-"):
                return str(execution["executionArn"])
    return None


def start_deployment(
    event: ModelPackageStateChangeEvent,
    *,
    sfn: Any,
    state_machine_arn: str,
    group_name: str,
) -> TriggerResult:
    """Start the deployment workflow for an approval event, at most once per package change."""
    detail = event.detail
    if event.source != EVENT_SOURCE or event.detail_type != DETAIL_TYPE:
        return TriggerResult("ignored", f"not a {DETAIL_TYPE} event from {EVENT_SOURCE}")
    if detail.group_name != group_name:
        return TriggerResult("ignored", f"group {detail.group_name} is not {group_name}")
    if detail.approval_status != APPROVED:
        return TriggerResult("ignored", f"status {detail.approval_status} is not {APPROVED}")

    try:
        version = package_version(detail.package_arn, detail.version)
    except ValueError:
        return TriggerResult("rejected", f"no version in package ARN {detail.package_arn!r}")
    prefix = execution_name_prefix(detail.package_arn, version)
    running = running_execution_for(sfn, state_machine_arn, prefix)
    if running:
        return TriggerResult(
            "duplicate", "a deployment of this package is running", execution_arn=running
        )

    name = execution_name(detail.package_arn, version, event.id)
    event_time = event.time.astimezone(UTC).isoformat().replace("+00:00", "Z")
    payload = {
        "packageArn": detail.package_arn,
        "packageVersion": version,
        "eventTime": event_time,
        "trigger": {"source": "eventbridge", "eventId": event.id, "eventTime": event_time},
    }
    try:
        response = sfn.start_execution(
            stateMachineArn=state_machine_arn,
            name=name,
            input=json.dumps(payload, sort_keys=True),
        )
    except sfn.exceptions.ExecutionAlreadyExists:
        return TriggerResult(
            "duplicate", "this event already started a deployment", execution_name=name
        )
    return TriggerResult(
        "started", "deployment started", execution_name=name, execution_arn=response["executionArn"]
    )


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        parsed = parse(event=event, model=ModelPackageStateChangeEvent)
    except (ValidationError, ValueError, TypeError) as error:
        result = TriggerResult("rejected", f"malformed event: {error}".splitlines()[0])
        logger.error("malformed event rejected", extra=asdict(result))
        return asdict(result)
    result = start_deployment(
        parsed,
        sfn=boto3.client("stepfunctions", config=BOTO_CONFIG),
        state_machine_arn=os.environ["STATE_MACHINE_ARN"],
        group_name=os.environ["MODEL_PACKAGE_GROUP_NAME"],
    )
    logger.info("approval handled", extra=asdict(result))
    return asdict(result)
