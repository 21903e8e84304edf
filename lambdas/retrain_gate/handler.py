"""The retraining workflow's gate: may this trigger start the model-build pipeline now?

Called by the retraining state machine (``retraining/``) with the trigger (its input) and the
execution's context. It answers ``start`` true/false with ``why``, plus the strings the
``StartPipelineExecution`` call needs, already valid for SageMaker's API:

* **another trigger first**: a RUNNING execution of this same state machine that started
  earlier (or at the same instant with a smaller ARN) is handling a trigger -> no start (two
  alarms firing together, say 5xx and latency, start one pipeline execution, not two);
* **pipeline busy**: an execution of the pipeline is ``Executing`` (or ``Stopping``) -> no start;
* **cool-down**: the pipeline's most recent execution started less than ``cooldownMinutes``
  before this trigger arrived (``executionStartTime``) -> no start.

Why a Lambda and not states alone: the cool-down is timestamp arithmetic (start time + N
minutes vs. now) that JSONPath intrinsic functions cannot do, the timestamps SDK integrations
return are easiest to trust as boto3 ``datetime`` objects, and the display name, data version
and metadata value must be cut to SageMaker's patterns. It reads (``ListPipelineExecutions``,
``ListExecutions``) and never starts anything: the state machine does that.

A trigger that is not one of the documented shapes is refused with ``InvalidTrigger`` before any
call (the execution fails, nothing starts).

Triggers (the state machine input):

* ``{"reason": "alarm", "alarm": {"name": ..., "reason": ..., "time": ...}}`` (the EventBridge
  rule's input transformer on a "CloudWatch Alarm State Change" event);
* ``{"reason": "schedule"}`` (EventBridge Scheduler);
* ``{"reason": "manual", "note": "..."}`` (an operator; ``note`` optional).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config

logger = logging.getLogger()
logger.setLevel(logging.INFO)

BOTO_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 10})
RUNNING_PIPELINE_STATUSES = ("Executing", "Stopping")
REASONS = ("alarm", "schedule", "manual")

# SageMaker's limits (botocore model of StartPipelineExecution / CreateModelPackage)
DISPLAY_NAME_MAX = 82  # PipelineExecutionName: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,81}
DESCRIPTION_MAX = 3072  # PipelineExecutionDescription
DATA_VERSION_MAX = 128  # the pipeline's InputDataVersion contract
METADATA_VALUE_MAX = 256  # CustomerMetadataValue: [\p{L}\p{Z}\p{N}_.:/=+\-@]{1,256}
TEXT_MAX = 1024  # an alarm's name or state reason as accepted here

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]+")
_NOT_VERSION = re.compile(r"[^A-Za-z0-9 _.:/=+\-@]+")
#: Line breaks and other control characters: the description's ``.*`` does not match them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


class InvalidTrigger(ValueError):
    """The input is not a retraining trigger (the Lambda error type the workflow fails with)."""


@dataclass(frozen=True)
class Trigger:
    kind: str  # alarm | schedule | manual
    alarm_name: str = ""
    detail: str = ""  # the alarm's state reason, or an operator's note

    @property
    def text(self) -> str:
        if self.kind == "alarm":
            return f"alarm {self.alarm_name} in ALARM: {self.detail}"
        if self.kind == "manual":
            return f"manual{': ' + self.detail if self.detail else ''}"
        return "schedule"

    @property
    def metadata_value(self) -> str:
        """For the model package's ``TriggerReason`` metadata: ``alarm:<name>``, ``schedule``,
        ``manual`` (alarm names of this stack fit the metadata pattern; anything else is cut)."""
        value = f"alarm:{self.alarm_name}" if self.kind == "alarm" else self.kind
        return _NOT_VERSION.sub("-", value)[:METADATA_VALUE_MAX]


@dataclass(frozen=True)
class Decision:
    start: bool
    why: str
    # camelCase: the state machine's JSON keys
    triggerReason: str
    displayName: str
    description: str
    dataVersion: str
    clientRequestToken: str


def _text(value: Any, what: str, *, required: bool) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > TEXT_MAX:
        raise InvalidTrigger(f"{what} must be a non-empty string of at most {TEXT_MAX} characters")
    return value


def parse_trigger(raw: Any) -> Trigger:
    if not isinstance(raw, dict) or raw.get("reason") not in REASONS:
        raise InvalidTrigger(f"expected an object with reason one of {', '.join(REASONS)}")
    kind = str(raw["reason"])
    if kind == "alarm":
        alarm = raw.get("alarm")
        if not isinstance(alarm, dict):
            raise InvalidTrigger("an alarm trigger needs alarm.name and alarm.reason")
        return Trigger(
            kind,
            alarm_name=_text(alarm.get("name"), "alarm.name", required=True),
            detail=_text(alarm.get("reason"), "alarm.reason", required=True),
        )
    if kind == "manual":
        return Trigger(kind, detail=_text(raw.get("note"), "note", required=False))
    return Trigger(kind)


def parse_time(value: Any) -> datetime:
    """The execution's start time as Step Functions gives it (ISO 8601, ``Z`` or offset)."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    raise InvalidTrigger(f"executionStartTime {value!r} is not an ISO 8601 time with a zone")


def _pipeline_executions(sagemaker: Any, pipeline_name: str) -> Iterator[dict[str, Any]]:
    """Every execution (newest first as asked; the caller does not rely on the order)."""
    kwargs: dict[str, Any] = {
        "PipelineName": pipeline_name,
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": 100,
    }
    while True:
        page = sagemaker.list_pipeline_executions(**kwargs)
        yield from page.get("PipelineExecutionSummaries", [])
        if not page.get("NextToken"):
            return
        kwargs["NextToken"] = page["NextToken"]


def _earlier_running_execution(
    sfn: Any, state_machine_arn: str, me: str, my_start: datetime
) -> str:
    paginator = sfn.get_paginator("list_executions")
    for page in paginator.paginate(stateMachineArn=state_machine_arn, statusFilter="RUNNING"):
        for execution in page.get("executions", []):
            arn = str(execution["executionArn"])
            if arn != me and (execution["startDate"], arn) < (my_start, me):
                return str(execution["name"])
    return ""


def _slug(text: str) -> str:
    return _NOT_ALNUM.sub("-", text).strip("-")


def decide(event: dict[str, Any], sagemaker: Any, sfn: Any) -> Decision:
    trigger = parse_trigger(event.get("trigger"))
    pipeline_name = event.get("pipelineName")
    cooldown_minutes = event.get("cooldownMinutes")
    execution_arn = event.get("executionArn")
    execution_name = event.get("executionName")
    state_machine_arn = event.get("stateMachineArn")
    for name, value in (
        ("pipelineName", pipeline_name),
        ("executionArn", execution_arn),
        ("executionName", execution_name),
        ("stateMachineArn", state_machine_arn),
    ):
        if not isinstance(value, str) or not value:
            raise InvalidTrigger(f"{name} must be a non-empty string")
    if type(cooldown_minutes) is not int or cooldown_minutes <= 0:
        raise InvalidTrigger(f"cooldownMinutes {cooldown_minutes!r} must be a positive integer")
    assert isinstance(execution_name, str) and isinstance(execution_arn, str)
    assert isinstance(pipeline_name, str) and isinstance(state_machine_arn, str)
    now = parse_time(event.get("executionStartTime"))

    suffix = _slug(execution_name)[-12:].strip("-")
    label = f"{trigger.kind}-{trigger.alarm_name}" if trigger.alarm_name else trigger.kind
    display = _slug(f"retrain-{label}")[: DISPLAY_NAME_MAX - len(suffix) - 1].strip("-")
    text = f"Retraining: {trigger.text} (workflow execution {execution_arn})"
    description = _CONTROL.sub(" ", text)[:DESCRIPTION_MAX]
    base = {
        "triggerReason": trigger.metadata_value,
        "displayName": f"{display}-{suffix}" if suffix else display,
        "description": description,
        "dataVersion": _NOT_VERSION.sub("-", f"retrain-{execution_name}")[:DATA_VERSION_MAX],
        # Retries of the start call are idempotent (SageMaker: 32-128 characters).
        "clientRequestToken": hashlib.sha256(execution_arn.encode()).hexdigest(),
    }

    earlier = _earlier_running_execution(sfn, state_machine_arn, execution_arn, now)
    if earlier:
        why = f"another retraining trigger (execution {earlier}) started first and is handled"
        return Decision(start=False, why=why, **base)
    latest: datetime | None = None  # order-independent: the newest start of any execution
    for summary in _pipeline_executions(sagemaker, pipeline_name):
        if summary.get("PipelineExecutionStatus") in RUNNING_PIPELINE_STATUSES:
            why = (
                f"pipeline {pipeline_name} is already running: {summary['PipelineExecutionArn']} "
                f"is {summary['PipelineExecutionStatus']}"
            )
            return Decision(start=False, why=why, **base)
        started = summary.get("StartTime")
        if isinstance(started, datetime) and (latest is None or started > latest):
            latest = started
    if latest is not None:
        ready = latest + timedelta(minutes=cooldown_minutes)
        if now < ready:
            why = (
                f"cool-down: the last execution of {pipeline_name} started at "
                f"{latest.isoformat()}; no new start before {ready.isoformat()} "
                f"({cooldown_minutes} minutes)"
            )
            return Decision(start=False, why=why, **base)
    return Decision(start=True, why=f"starting {pipeline_name}: {trigger.text}", **base)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        decision = decide(
            event,
            sagemaker=boto3.client("sagemaker", config=BOTO_CONFIG),
            sfn=boto3.client("stepfunctions", config=BOTO_CONFIG),
        )
    except InvalidTrigger as error:
        logger.error(json.dumps({"message": "invalid trigger rejected", "error": str(error)}))
        raise
    logger.info(json.dumps({"message": "retraining decision", **asdict(decision)}))
    return asdict(decision)
