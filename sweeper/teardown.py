"""Removes what a branch stage created at run time, before ``cdk destroy`` removes its stacks.

The deployment workflow creates the endpoint, endpoint configs and models (not CloudFormation),
and the pipeline registers model versions, which block deleting the Model Package Group. Only
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

from collections.abc import Callable, Iterable
from typing import Any

from infra.config import StageConfig, StageKind
from infra.naming import Naming

#: Every branch stage's qualifier starts with this (``<project>-br-<slug>``).
BRANCH_QUALIFIER_PREFIX = "br-"


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


def teardown(sagemaker: Any, stage: StageConfig, log: Callable[[str], None] = print) -> int:
    """Delete the stage's endpoint, endpoint configs, models and model versions. Returns count."""
    if stage.kind is not StageKind.EPHEMERAL:
        raise ValueError(f"{stage.stage_id} is a shared stage: teardown only removes branch stages")
    return teardown_branch_resources(sagemaker, stage.naming, log)


def teardown_branch_resources(
    sagemaker: Any, naming: Naming, log: Callable[[str], None] = print
) -> int:
    """:func:`teardown` by the stage's names alone (what the sweeper knows from a stack)."""
    if not naming.qualifier.startswith(BRANCH_QUALIFIER_PREFIX):
        raise ValueError(f"{naming.prefix} is not a branch stage: teardown only removes those")
    prefix = f"{naming.prefix}-"
    deleted = 0
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
