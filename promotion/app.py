"""How the app composes the promotion pipeline (called by ``infra/app_builder.py``).

1. :func:`add_pipeline_access`, while the stages are built: the role the pipeline's steps assume
   in staging and in prod (in each one's deployment stack), whenever ``delivery`` is configured,
   so a stage synthesizes the same on every branch.
2. The caller gates every stage (cdk-nag) — before the pipeline adds it: ``add_stage``
   synthesizes a stage on the spot and nothing may change it afterwards.
3. :func:`add_pipeline`, on the default branch only: the pipeline stack in the tooling account,
   with the already-gated stages, then its own cdk-nag gate.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk

from infra.compliance import ComplianceError, findings
from infra.config import AppConfig
from infra.stages import MlopsStage
from promotion.access import PipelineAccess
from promotion.commands import PipelineNames


def add_pipeline_access(config: AppConfig, stages: Sequence[MlopsStage]) -> None:
    delivery = config.delivery
    if delivery is None:
        return
    names = PipelineNames.of(config, delivery)
    trusted = {
        "staging": [names.role_arn(names.checks_role), names.role_arn(names.promote_role)],
        "prod": [names.role_arn(names.promote_role)],
    }
    for stage in stages:
        if stage.config.is_ephemeral or stage.config.env_name not in trusted:
            continue
        lake = stage.stateful.lake
        PipelineAccess(
            stage.deployment,
            "PipelineAccess",
            config=stage.config,
            tooling_account=delivery.account,
            trusted_role_arns=trusted[stage.config.env_name],
            key=lake.key,
            artifacts_bucket=lake.artifacts_bucket,
            stateful_stack_name=stage.stateful.stack_name,
        )


def add_pipeline(
    app: cdk.App, config: AppConfig, branch: str, stages: Sequence[MlopsStage]
) -> cdk.Stack | None:
    """The pipeline stack when synthesizing the default branch with ``delivery`` configured;
    raises :class:`ComplianceError` on unacknowledged cdk-nag findings in it."""
    if config.delivery is None or branch != config.default_branch:
        return None
    from promotion.pipeline_stack import PipelineStack

    stack = PipelineStack(app, config=config, delivery=config.delivery, stages=stages)
    found = findings(stack)
    if found:
        raise ComplianceError(stack.stack_name, found)
    return stack
