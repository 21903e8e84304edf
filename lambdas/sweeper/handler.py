"""The sweeper of expired branch stages (dev account; ``sweeper/`` builds it in the shared dev
stage, EventBridge Scheduler invokes it).

A branch stage is normally torn down by ``branch-destroy.yml`` when its branch is deleted. What
that misses (a branch deleted while the workflow was off, a failed destroy, a laptop deploy that
was forgotten) expires: every stack of a branch stage carries ``ephemeral-ttl-days`` and
``deployed-by-branch`` tags (``infra/config.py``), and a stage whose newest stack update (or
creation) is older than its TTL is removed here:

1. find the candidates: ``ListStacks`` (every status but DELETE_COMPLETE), names starting with
   ``<project>-br-``; ``DescribeStacks`` each for its tags. A stack without BOTH tags, with a bad
   TTL, or whose name is not its branch's stage prefix is never touched (reported as skipped);
2. group the stacks by stage (``<project>-br-<slug of deployed-by-branch>``); a stage with a stack
   still being created or updated is left alone;
3. remove the stage's run-time SageMaker resources with ``sweeper.teardown``'s
   :func:`teardown_branch_resources` (the same code ``make destroy`` runs);
4. ``DeleteStack`` in dependency order (operations and deployment, then model-build, then
   stateful; stacks it does not know first), waiting for each wave; CloudFormation deletes with
   the role each stack was deployed with (CDK's cfn-exec role), so the sweeper passes none;
5. report what it removed, what failed (DELETE_FAILED with CloudFormation's reason) and what is
   still deleting (the next run continues) to the operations topic and the log.

Input (the schedule's): ``{}`` or ``{"dryRun": true}`` (report what would be removed, change
nothing). Anything else is rejected before any call.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config

from infra.config import (
    DEPLOYED_BY_BRANCH_TAG,
    EPHEMERAL_TTL_TAG,
    MAX_EPHEMERAL_TTL_DAYS,
    ConfigError,
    branch_slug,
)
from infra.naming import Naming
from sweeper.teardown import BRANCH_QUALIFIER_PREFIX, teardown_branch_resources

logger = logging.getLogger()
logger.setLevel(logging.INFO)

BOTO_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 10})
#: Stack-name suffixes of a stage (infra/stages.py), in the order their stacks are deleted:
#: each wave only after the one before is gone (operations depends on model-build and stateful,
#: deployment and model-build on stateful).
DELETE_WAVES: tuple[tuple[str, ...], ...] = (
    ("operations", "deployment"),
    ("model-build",),
    ("stateful",),
)
BUSY_SUFFIXES = ("_IN_PROGRESS",)
SUBJECT_MAX = 100  # SNS Subject
#: Seconds kept free of the Lambda's time for the report.
REPORT_MARGIN_SECONDS = 30.0
POLL_SECONDS = 10.0


class InvalidEvent(ValueError):
    """The input is not the schedule's (``{}`` or ``{"dryRun": bool}``)."""


@dataclass(frozen=True)
class Stack:
    name: str
    stack_id: str
    status: str
    tags: dict[str, str]
    last_changed: datetime
    reason: str = ""


@dataclass
class Report:
    dry_run: bool = False
    removed: list[str] = field(default_factory=list)
    would_remove: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    deleting: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    run_time_resources_deleted: int = 0
    kept: list[str] = field(default_factory=list)  # tagged stages not expired yet

    @property
    def noteworthy(self) -> bool:
        return bool(self.removed or self.would_remove or self.failed or self.deleting)

    def subject(self, project: str) -> str:
        parts = [f"{len(self.removed)} removed"]
        if self.would_remove:
            parts.append(f"{len(self.would_remove)} would be removed (dry run)")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.deleting:
            parts.append(f"{len(self.deleting)} still deleting")
        return f"{project} sweeper: expired branch stacks: {', '.join(parts)}"[:SUBJECT_MAX]


def parse_event(event: Any) -> bool:
    """The dry-run flag of a valid input; InvalidEvent otherwise."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"expected a JSON object, got {type(event).__name__}")
    unknown = sorted(set(event) - {"dryRun"})
    if unknown:
        raise InvalidEvent(f"unknown keys {unknown}; allowed: dryRun")
    dry_run = event.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise InvalidEvent(f"dryRun must be true or false, got {dry_run!r}")
    return dry_run


def stack_prefix(project: str) -> str:
    return f"{project}-{BRANCH_QUALIFIER_PREFIX}"


def _paged(call: Callable[..., dict[str, Any]], key: str, **kwargs: Any) -> Iterable[Any]:
    token: str | None = None
    while True:
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        yield from page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return


def _stack(described: dict[str, Any]) -> Stack:
    return Stack(
        name=described["StackName"],
        stack_id=described["StackId"],
        status=described["StackStatus"],
        tags={t["Key"]: t["Value"] for t in described.get("Tags", [])},
        last_changed=described.get("LastUpdatedTime") or described["CreationTime"],
        reason=described.get("StackStatusReason", ""),
    )


def find_branch_stacks(cfn: Any, project: str) -> list[Stack]:
    """Every live stack whose name starts with ``<project>-br-``, described (with tags)."""
    statuses = [
        s for s in cfn.meta.service_model.shape_for("StackStatus").enum if s != "DELETE_COMPLETE"
    ]
    prefix = stack_prefix(project)
    names = [
        summary["StackName"]
        for summary in _paged(cfn.list_stacks, "StackSummaries", StackStatusFilter=statuses)
        if summary["StackName"].startswith(prefix)
    ]
    stacks: list[Stack] = []
    for name in sorted(set(names)):
        try:
            described = cfn.describe_stacks(StackName=name)["Stacks"]
        except cfn.exceptions.ClientError as error:  # deleted since it was listed
            logger.info("stack %s gone before it was described: %s", name, error)
            continue
        stacks.extend(_stack(s) for s in described if s["StackStatus"] != "DELETE_COMPLETE")
    return stacks


def _stage_of(stack: Stack, project: str) -> tuple[Naming | None, int, str]:
    """(the stage's naming, TTL days, '') for a stack this sweeper may remove, else
    (None, 0, why not)."""
    ttl_text = stack.tags.get(EPHEMERAL_TTL_TAG)
    branch = stack.tags.get(DEPLOYED_BY_BRANCH_TAG)
    if ttl_text is None or branch is None:
        return None, 0, f"not tagged {EPHEMERAL_TTL_TAG} and {DEPLOYED_BY_BRANCH_TAG}"
    if not (ttl_text.isascii() and ttl_text.isdigit()) or not (
        0 < int(ttl_text) <= MAX_EPHEMERAL_TTL_DAYS
    ):
        return None, 0, f"{EPHEMERAL_TTL_TAG}={ttl_text!r} is not 1-{MAX_EPHEMERAL_TTL_DAYS}"
    try:
        naming = Naming(project, f"{BRANCH_QUALIFIER_PREFIX}{branch_slug(branch)}")
    except ConfigError:
        return None, 0, f"{DEPLOYED_BY_BRANCH_TAG}={branch!r} is not a branch name"
    if not stack.name.startswith(f"{naming.prefix}-"):
        return None, 0, f"name is not in {naming.prefix} (branch {branch!r})"
    return naming, int(ttl_text), ""


def _suffix(stack: Stack, naming: Naming) -> str:
    return stack.name[len(naming.prefix) + 1 :]


def delete_waves(stacks: list[Stack], naming: Naming) -> list[list[Stack]]:
    """The stage's stacks in deletion waves; stacks of unknown suffix go first (nothing known
    depends on them), the stateful stack last."""
    known = {suffix for wave in DELETE_WAVES for suffix in wave}
    waves = [[s for s in stacks if _suffix(s, naming) not in known]]
    waves += [[s for s in stacks if _suffix(s, naming) in wave] for wave in DELETE_WAVES]
    return [wave for wave in waves if wave]


def _wait_for_deletion(
    cfn: Any,
    stacks: list[Stack],
    deadline: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> dict[str, Stack]:
    """Poll until each stack is DELETE_COMPLETE or DELETE_FAILED, or the deadline passes.
    Returns the final (or last seen) state by stack id."""
    state = {s.stack_id: s for s in stacks}
    while True:
        for stack_id, stack in list(state.items()):
            if stack.status in ("DELETE_COMPLETE", "DELETE_FAILED"):
                continue
            described = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
            state[stack_id] = _stack(described)
        done = ("DELETE_COMPLETE", "DELETE_FAILED")
        if all(s.status in done for s in state.values()) or clock() + POLL_SECONDS > deadline:
            return state
        sleep(POLL_SECONDS)


def sweep(
    cfn: Any,
    sagemaker: Any,
    *,
    project: str,
    now: datetime,
    dry_run: bool = False,
    deadline: float = float("inf"),
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Report:
    """One pass over the account's branch stacks (see the module docstring)."""
    report = Report(dry_run=dry_run)
    stages: dict[str, tuple[Naming, int, list[Stack]]] = {}
    for stack in find_branch_stacks(cfn, project):
        naming, ttl, why = _stage_of(stack, project)
        if naming is None:
            report.skipped.append({"stack": stack.name, "why": why})
            continue
        entry = stages.setdefault(naming.prefix, (naming, ttl, []))
        # the shortest TTL any of its stacks carries
        stages[naming.prefix] = (naming, min(entry[1], ttl), [*entry[2], stack])
    for prefix, (naming, ttl, stacks) in sorted(stages.items()):
        last = max(s.last_changed for s in stacks)
        if now < last + timedelta(days=ttl):
            report.kept.append(prefix)
            continue
        failed = [s for s in stacks if s.status == "DELETE_FAILED"]
        if failed:  # a person must look: never hammer a failing deletion
            report.failed += [{"stack": s.name, "reason": s.reason} for s in failed]
            continue
        if any(
            s.status.endswith(BUSY_SUFFIXES) and s.status != "DELETE_IN_PROGRESS" for s in stacks
        ):
            report.busy.append(prefix)
            continue
        if dry_run:
            report.would_remove += [s.name for s in stacks]
            continue
        report.run_time_resources_deleted += teardown_branch_resources(
            sagemaker, naming, log=logger.info
        )
        _remove_stage(cfn, naming, stacks, report, deadline, clock, sleep)
    return report


def _remove_stage(
    cfn: Any,
    naming: Naming,
    stacks: list[Stack],
    report: Report,
    deadline: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    for wave in delete_waves(stacks, naming):
        for stack in wave:
            if stack.status != "DELETE_IN_PROGRESS":
                logger.info("deleting stack %s (%s)", stack.name, stack.stack_id)
                cfn.delete_stack(StackName=stack.stack_id)
        state = _wait_for_deletion(cfn, wave, deadline, clock, sleep)
        for stack in state.values():
            if stack.status == "DELETE_COMPLETE":
                report.removed.append(stack.name)
            elif stack.status == "DELETE_FAILED":
                report.failed.append({"stack": stack.name, "reason": stack.reason})
            else:
                report.deleting.append(stack.name)
        if any(s.status != "DELETE_COMPLETE" for s in state.values()):
            return  # the next wave depends on this one: the next run continues


def publish(sns: Any, topic_arn: str, report: Report, project: str) -> None:
    sns.publish(
        TopicArn=topic_arn,
        Subject=report.subject(project),
        Message=json.dumps(asdict(report), indent=2, sort_keys=True),
    )


def handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        dry_run = parse_event(event)
    except InvalidEvent as error:
        logger.error("rejected input %s: %s", json.dumps(event, default=str)[:1000], error)
        raise
    project = os.environ["PROJECT"]
    deadline = time.monotonic() + max(
        0.0, context.get_remaining_time_in_millis() / 1000.0 - REPORT_MARGIN_SECONDS
    )
    cfn = boto3.client("cloudformation", config=BOTO_CONFIG)
    sagemaker = boto3.client("sagemaker", config=BOTO_CONFIG)
    report = sweep(
        cfn, sagemaker, project=project, now=datetime.now(UTC), dry_run=dry_run, deadline=deadline
    )
    result = asdict(report)
    logger.info("sweep report: %s", json.dumps(result, sort_keys=True))
    if report.noteworthy:
        publish(boto3.client("sns", config=BOTO_CONFIG), os.environ["TOPIC_ARN"], report, project)
    return result
