"""Removes what a branch stage created at run time, before ``cdk destroy`` removes its stacks.

The deployment workflow creates the endpoint, endpoint configs and models (not CloudFormation),
and the pipeline registers model versions, which block deleting the Model Package Group. With the
``model_monitor`` backend, the monitor_sync Lambda (``lambdas/monitor_sync``) creates monitoring
schedules on the endpoint and their job definitions: they are deleted first, by the exact names
that Lambda gives them (:attr:`Naming.model_monitor_prefix`: schedules ``<prefix>-data-quality``
and ``<prefix>-model-quality``, job definitions ``<prefix>-dq-v<n>-<hash>`` and
``<prefix>-mq-v<n>-<hash>``), and a definition is deleted once no schedule uses it. Only
ephemeral (branch) stages are ever touched: shared stages keep their models and endpoints.

The command is ``mlops teardown --branch feat/x [--yes]`` (``cli/main.py``), which ``make destroy``
runs before ``cdk destroy``; it refuses shared stages before calling anything here. Shared stages
change through the promotion pipeline (README "Promote"), never by a laptop's destroy.

:func:`teardown_branch_resources` is also what the dev stage's sweeper Lambda runs before it deletes
an expired branch stage's stacks (``lambdas/sweeper``): this module imports no CDK, so the
Lambda's asset carries it with ``sweeper/__init__.py`` (empty), ``infra/config.py`` and
``infra/naming.py``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from infra.config import StageConfig, StageKind
from infra.naming import Naming

#: Every branch stage's qualifier starts with this (``<project>-br-<slug>``).
BRANCH_QUALIFIER_PREFIX = "br-"
#: monitor_sync's schedule names (``Settings.schedule_name``): ``<prefix>-<suffix>``.
MONITORING_SCHEDULE_SUFFIXES = ("data-quality", "model-quality")
#: monitor_sync's job definitions (``Settings.definition_prefix`` + ``definition_name``):
#: label, list call, delete call, name infix.
JOB_DEFINITIONS = (
    ("data-quality job definition", "list_data_quality_job_definitions",
     "delete_data_quality_job_definition", "dq"),
    ("model-quality job definition", "list_model_quality_job_definitions",
     "delete_model_quality_job_definition", "mq"),
)  # fmt: skip
#: How long to wait for deleted schedules to disappear (their definitions are in use until then).
SCHEDULE_WAIT_S = 120
SCHEDULE_POLL_S = 5


class TeardownError(RuntimeError):
    """Something blocks the teardown; one line. What was deleted stays deleted: rerun it."""


def _paged(
    call: Callable[..., dict[str, Any]], key: str, **kwargs: Any
) -> Iterable[dict[str, Any]]:
    token: str | None = None
    while True:
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        yield from page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return


def teardown(
    sagemaker: Any,
    stage: StageConfig,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Delete the stage's monitoring schedules and job definitions, endpoint, endpoint configs,
    models and model versions. Returns count."""
    if stage.kind is not StageKind.EPHEMERAL:
        raise ValueError(f"{stage.stage_id} is a shared stage: teardown only removes branch stages")
    return teardown_branch_resources(sagemaker, stage.naming, log, sleep)


def _code(error: Exception) -> str:
    return str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))


def monitoring_names(naming: Naming) -> tuple[set[str], dict[str, re.Pattern[str]]]:
    """The stage's schedule names, and a pattern per job-definition infix (``dq``, ``mq``)."""
    prefix = naming.model_monitor_prefix
    schedules = {f"{prefix}-{suffix}" for suffix in MONITORING_SCHEDULE_SUFFIXES}
    patterns = {
        infix: re.compile(rf"{re.escape(prefix)}-{infix}-v[0-9]+-[0-9a-f]{{8}}")
        for *_, infix in JOB_DEFINITIONS
    }
    return schedules, patterns


def delete_monitoring(
    sagemaker: Any,
    naming: Naming,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """The monitoring schedules and job definitions monitor_sync made for this stage (exact
    names: another stage's never match). Returns count."""
    prefix = naming.model_monitor_prefix
    names, patterns = monitoring_names(naming)

    def listed() -> list[str]:
        return sorted(
            s["MonitoringScheduleName"]
            for s in _paged(
                sagemaker.list_monitoring_schedules,
                "MonitoringScheduleSummaries",
                NameContains=prefix,
            )
            if s["MonitoringScheduleName"] in names
        )

    deleted = 0
    for name in listed():
        try:
            sagemaker.delete_monitoring_schedule(MonitoringScheduleName=name)
        except sagemaker.exceptions.ClientError as error:
            if _code(error) != "ResourceNotFound":
                raise
            continue
        log(f"deleted monitoring schedule {name}")
        deleted += 1
    waited = 0.0
    while remaining := listed():  # a definition cannot be deleted while a schedule uses it
        if waited >= SCHEDULE_WAIT_S:
            raise TeardownError(
                f"monitoring schedule(s) {', '.join(remaining)} still being deleted after "
                f"{SCHEDULE_WAIT_S} s: rerun the teardown"
            )
        sleep(SCHEDULE_POLL_S)
        waited += SCHEDULE_POLL_S
    for label, list_call, delete_call, infix in JOB_DEFINITIONS:
        definitions = _paged(
            getattr(sagemaker, list_call),
            "JobDefinitionSummaries",
            NameContains=f"{prefix}-{infix}-v",
        )
        for name in sorted(d["MonitoringJobDefinitionName"] for d in definitions):
            if not patterns[infix].fullmatch(name):
                continue
            try:
                getattr(sagemaker, delete_call)(JobDefinitionName=name)
            except sagemaker.exceptions.ClientError as error:
                if _code(error) != "ResourceNotFound":
                    raise
                continue
            log(f"deleted {label} {name}")
            deleted += 1
    return deleted


def teardown_branch_resources(
    sagemaker: Any,
    naming: Naming,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """:func:`teardown` by the stage's names alone (what the sweeper knows from a stack)."""
    if not naming.qualifier.startswith(BRANCH_QUALIFIER_PREFIX):
        raise ValueError(f"{naming.prefix} is not a branch stage: teardown only removes those")
    prefix = f"{naming.prefix}-"
    # Schedules first: they run jobs on the endpoint and hold their job definitions.
    deleted = delete_monitoring(sagemaker, naming, log, sleep)
    endpoint = naming.endpoint
    endpoints = {
        e["EndpointName"]
        for e in _paged(sagemaker.list_endpoints, "Endpoints", NameContains=prefix)
    }
    if endpoint in endpoints:
        sagemaker.delete_endpoint(EndpointName=endpoint)
        log(f"deleted endpoint {endpoint}")
        deleted += 1
    # Endpoint configs and models the workflow created carry the stage prefix.
    for label, list_call, key, name_key, delete_call in (
        ("endpoint config", sagemaker.list_endpoint_configs, "EndpointConfigs",
         "EndpointConfigName", sagemaker.delete_endpoint_config),
        ("model", sagemaker.list_models, "Models", "ModelName", sagemaker.delete_model),
    ):  # fmt: skip
        for item in _paged(list_call, key, NameContains=prefix):
            name = item[name_key]
            if name.startswith(prefix):
                delete_call(**{name_key: name})
                log(f"deleted {label} {name}")
                deleted += 1
    group = naming.model_package_group
    try:
        packages = list(
            _paged(
                sagemaker.list_model_packages,
                "ModelPackageSummaryList",
                ModelPackageGroupName=group,
            )
        )
    except sagemaker.exceptions.ClientError:
        packages = []
    for package in packages:
        sagemaker.delete_model_package(ModelPackageName=package["ModelPackageArn"])
        log(f"deleted model version {package['ModelPackageArn']}")
        deleted += 1
    return deleted
