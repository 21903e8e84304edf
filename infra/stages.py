"""One ``Stage`` subclass per environment type. A stage composes the stacks of one environment
(stateful data stack now; stateless stacks beside it) and owns its tags and security gates."""

from __future__ import annotations

from typing import ClassVar

import aws_cdk as cdk
from constructs import Construct

from data_lake.infrastructure import ATHENA_RESULTS_PREFIX, CURATED_DATASETS_PREFIX, StatePolicy
from feature_store.schema import OfflineStoreSource
from infra.cfn_hygiene import drop_redundant_role_dependencies
from infra.compliance import STAGE_CHECKOV_SKIPS, acknowledge, apply_checkov_skips
from infra.config import DEPLOYED_BY_BRANCH_TAG, EPHEMERAL_TTL_TAG, StageConfig, StageKind
from stacks.deployment_stack import DeploymentStack
from stacks.model_build_stack import ModelBuildStack
from stacks.operations_stack import OperationsStack
from stacks.stateful_stack import StatefulStack
from studio.infrastructure import StudioDomain
from sweeper.infrastructure import BranchSweeper


class MlopsStage(cdk.Stage):
    """Base: builds the stacks of one stage from its :class:`StageConfig`."""

    removal_policy: ClassVar[cdk.RemovalPolicy] = cdk.RemovalPolicy.RETAIN
    auto_delete_objects: ClassVar[bool] = False
    termination_protection: ClassVar[bool] = False

    def __init__(self, scope: Construct, *, config: StageConfig) -> None:
        env = config.environment
        super().__init__(
            scope,
            config.stage_id,
            env=cdk.Environment(account=env.account, region=env.region),
        )
        self.config = config
        state = StatePolicy(
            removal_policy=self.removal_policy, auto_delete_objects=self.auto_delete_objects
        )
        naming = config.naming
        description = f"{config.project} {config.env_name} ({config.branch})"
        self.stateful = StatefulStack(
            self,
            "Stateful",
            stack_name=naming.stack("stateful"),
            description=f"{description}: data lake, Glue, Athena, model registry (stateful)",
            termination_protection=self.termination_protection,
            config=config,
            state=state,
        )
        lake = self.stateful.lake
        if env.studio.enabled and env.vpc is not None:  # config: enabled needs the vpc
            StudioDomain(
                self.stateful,
                "Studio",
                naming=naming,
                vpc=env.vpc,
                key=lake.key,
                buckets=[lake.raw_bucket, lake.curated_bucket, lake.artifacts_bucket],
                user_profiles=env.studio.user_profiles,
            )
        feature_store = self.stateful.feature_store
        offline_store = None  # feature_store.training_data: offline_store
        if feature_store is not None and env.feature_store.training_data == "offline_store":
            offline_store = OfflineStoreSource(
                lake.database_name, feature_store.table_name, lake.workgroup_name
            )
        self.model_build = ModelBuildStack(
            self,
            "ModelBuild",
            stack_name=naming.stack("model-build"),
            description=f"{description}: SageMaker model-build pipeline",
            termination_protection=self.termination_protection,
            config=config,
            key=lake.key,
            raw_bucket=lake.raw_bucket,
            artifacts_bucket=lake.artifacts_bucket,
            model_package_group_name=self.stateful.registry.group_name,
            offline_store=offline_store,
        )
        self.model_build.add_stack_dependency(self.stateful)
        # Ingestion starts the pipeline on the curated dataset (InputDataUrl): it must read it.
        pipeline_role = self.model_build.model_build.role
        lake.curated_bucket.grant_read(pipeline_role, f"{CURATED_DATASETS_PREFIX}*")
        curated_id = self.stateful.get_logical_id(
            lake.curated_bucket.node.default_child  # type: ignore[arg-type]
        )
        acknowledge(
            pipeline_role,
            f"AwsSolutions-IAM5[Resource::<{curated_id}.Arn>/{CURATED_DATASETS_PREFIX}*]",
            "The Glue job writes curated Parquet under generated partition/part keys; the "
            "pipeline reads only that prefix of this stage's curated bucket.",
        )
        if feature_store is not None and offline_store is not None:
            feature_store.grant_offline_query(
                pipeline_role,
                workgroup_name=lake.workgroup_name,
                results=lake.artifacts_bucket,
                prefix=ATHENA_RESULTS_PREFIX,
            )
        self.deployment = DeploymentStack(
            self,
            "Deployment",
            stack_name=naming.stack("deployment"),
            description=f"{description}: approval-driven model deployment (rule, workflow, roles)",
            termination_protection=self.termination_protection,
            config=config,
            key=lake.key,
            artifacts_bucket=lake.artifacts_bucket,
            removal_policy=self.removal_policy,
        )
        self.deployment.add_stack_dependency(self.stateful)
        if feature_store is not None and env.feature_store.online:  # record_id requests
            feature_store.grant_online_read(self.deployment.deployment.execution_role)
        self.operations = OperationsStack.on_lake(
            self,
            "Operations",
            stack_name=naming.stack("operations"),
            description=f"{description}: continuous operations (ingestion, retraining, monitoring)",
            termination_protection=self.termination_protection,
            config=config,
            lake=lake,
            pipeline_name=self.model_build.model_build.pipeline_name,
        )
        self.operations.add_stack_dependency(self.stateful)
        self.operations.add_stack_dependency(self.model_build)
        if config.sweeper_schedule is not None:  # shared dev: expired branch stages go (sweeper/)
            BranchSweeper(
                self.operations,
                "BranchSweeper",
                naming=naming,
                project=config.project,
                schedule_expression=config.sweeper_schedule,
                topic=self.operations.topic,
                key=lake.key,
                dead_letter_queue=self.operations.dead_letter_queue,
                log_retention_days=config.environment.retention.log_days,
                removal_policy=self.removal_policy,
            )
        drop_redundant_role_dependencies(self)
        apply_checkov_skips(self, STAGE_CHECKOV_SKIPS)  # last: every stack is built
        # Aspects and tags on the App do not reach into a Stage: apply them here.
        for key, value in config.tags.items():
            cdk.Tags.of(self).add(key, value)
        if config.is_ephemeral:  # on the stacks too: the sweeper reads them with DescribeStacks
            for stack in (self.stateful, self.model_build, self.deployment, self.operations):
                for key in (EPHEMERAL_TTL_TAG, DEPLOYED_BY_BRANCH_TAG):
                    stack.tags.set_tag(key, config.tags[key])


class DevStage(MlopsStage):
    """Shared dev: data kept on stack deletion, no termination protection."""


class StagingStage(MlopsStage):
    """Shared staging: as dev; the gate before prod."""


class ProdStage(MlopsStage):
    """Prod: stateful resources retained on deletion and replacement, stacks protected."""

    termination_protection = True


class EphemeralStage(MlopsStage):
    """A feature branch's stage in the dev account: everything goes away with the branch."""

    removal_policy = cdk.RemovalPolicy.DESTROY
    auto_delete_objects = True


def stage_class(config: StageConfig) -> type[MlopsStage]:
    if config.kind is StageKind.EPHEMERAL:
        return EphemeralStage
    return {"dev": DevStage, "staging": StagingStage, "prod": ProdStage}[config.env_name]
