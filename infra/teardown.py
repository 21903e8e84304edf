"""Removes what a branch stage created at run time, before ``cdk destroy`` removes its stacks.

The deployment workflow creates the endpoint, endpoint configs and models (not CloudFormation),
and the pipeline registers model versions, which block deleting the Model Package Group. Only
ephemeral (branch) stages are ever touched: shared stages keep their models and endpoints.

``python -m infra.teardown --branch feat/x [--yes]``

``make destroy`` runs this before ``cdk destroy``: on the default branch (or ``--branch`` naming it)
there is no branch stage, and the command refuses in one line, exit status 2, naming the shared
stage (``--env``) that ``cdk destroy`` would otherwise have removed. Shared stages change through
the promotion pipeline (README "Promote"), never by a laptop's destroy.

:func:`teardown_branch_resources` is also what the dev stage's sweeper Lambda runs before it deletes
an expired branch stage's stacks (``sweeper/``): this module imports no CDK at module level, so the
Lambda's asset carries it with ``infra/config.py`` and ``infra/naming.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from typing import Any

from infra.config import (
    CONTEXT_KEY,
    ENVIRONMENTS,
    ConfigError,
    StageConfig,
    StageKind,
    load_config,
)
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


def shared_stage_refusal(stage: StageConfig) -> str:
    """The one line ``make destroy`` prints when it would hit a shared stage."""
    return (
        f"refusing to destroy {stage.stage_id}: dev, staging and prod are shared stages of the "
        f"default branch {stage.branch!r}; make destroy removes branch stages only "
        "(make destroy BRANCH=feat/x)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--branch", default=None)
    parser.add_argument(
        "--env", default="dev", choices=ENVIRONMENTS, help="the shared stage make targets"
    )
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    args = parser.parse_args(argv)
    from infra.app_builder import current_git_branch, load_cdk_json_context, resolve_branch

    try:
        config = load_config(load_cdk_json_context().get(CONTEXT_KEY))
        branch = resolve_branch(args.branch, config, current_git_branch())
        all_stages = config.stages_for_branch(branch)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    stages = [s for s in all_stages if s.kind is StageKind.EPHEMERAL]
    if not stages:
        shared = next(s for s in all_stages if s.env_name == args.env)
        print(shared_stage_refusal(shared), file=sys.stderr)
        return 2
    stage = stages[0]
    if not args.yes:
        answer = input(f"Delete endpoint, models and model versions of {stage.stage_id}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("teardown: nothing deleted")
            return 1
    import boto3

    client = boto3.client("sagemaker", region_name=stage.environment.region)
    count = teardown(client, stage)
    print(f"teardown: {count} resource(s) deleted from {stage.stage_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
