"""Stateful stack: the data layer and the model registry — everything that must never be replaced
by accident. Stateless stacks (pipeline, deployment) sit beside it and take what they need."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from audit.infrastructure import AuditTrail, object_lock_for
from data_lake.infrastructure import DataLake, StatePolicy
from feature_store.infrastructure import FeatureStore
from infra.config import StageConfig
from pipelines.model_build.registry import ModelRegistry
from serving.infrastructure import ServingRepository


class StatefulStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: StageConfig,
        state: StatePolicy,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        self.lake = DataLake(
            self,
            "DataLake",
            naming=config.naming,
            retention=config.environment.retention,
            state=state,
        )
        self.registry = ModelRegistry(
            self,
            "ModelRegistry",
            group_name=config.naming.model_package_group,
            description=f"{config.naming.prefix}: models built by the model-build pipeline",
            removal_policy=state.removal_policy,
            studio_project=config.naming.sagemaker_project_tag,
        )
        # serving_image: custom: the stage's serving-image repository (serving/).
        self.serving_repository: ServingRepository | None = None
        if config.environment.serving_image == "custom":
            self.serving_repository = ServingRepository(
                self,
                "ServingRepository",
                naming=config.naming,
                key=self.lake.key,
                removal_policy=state.removal_policy,
            )
        # The stage's CloudTrail trail (audit/).
        lake = self.lake
        self.audit = AuditTrail(
            self,
            "Audit",
            naming=config.naming,
            audit=config.environment.audit,
            data_buckets=[lake.raw_bucket, lake.curated_bucket, lake.artifacts_bucket],
            access_logs_bucket=lake.access_logs_bucket,
            state=state,
            object_lock=object_lock_for(config),
            log_days=config.environment.retention.log_days,
            # cost_controls (README "Cost"): branch stages encrypt with the data key and leave
            # the account's management events to the dev stage's trail.
            key=lake.key if config.environment.cost_controls.kms_keys == "single" else None,
            management_events=config.environment.cost_controls.trail_management_events,
        )
        # The stage's feature group (feature_store/), when the config enables it.
        self.feature_store: FeatureStore | None = None
        if config.environment.feature_store.enabled:
            self.feature_store = FeatureStore(
                self,
                "FeatureStore",
                naming=config.naming,
                online=config.environment.feature_store.online,
                key=lake.key,
                bucket=lake.curated_bucket,
                database=lake.database,
                database_name=lake.database_name,
                etl_job=lake.etl_job,
                etl_role=lake.etl_job_role,
                removal_policy=state.removal_policy,
            )
            cdk.CfnOutput(self, "FeatureGroupName", value=self.feature_store.feature_group_name)
        for name, value in (
            ("ModelPackageGroupName", self.registry.group_name),
            ("RawBucketName", self.lake.raw_bucket.bucket_name),
            ("CuratedBucketName", self.lake.curated_bucket.bucket_name),
            ("ArtifactsBucketName", self.lake.artifacts_bucket.bucket_name),
            ("GlueDatabaseName", self.lake.database_name),
            ("EtlJobName", self.lake.etl_job_name),
            ("AthenaWorkgroupName", self.lake.workgroup_name),
            ("AuditTrailName", self.audit.trail_name),
            ("AuditBucketName", self.audit.bucket.bucket_name),
        ):
            cdk.CfnOutput(self, name, value=value)
