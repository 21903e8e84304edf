"""Stateful stack: the data layer and the model registry — everything that must never be replaced
by accident. Stateless stacks (pipeline, deployment) sit beside it and take what they need."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from data_lake.infrastructure import DataLake, StatePolicy
from infra.config import StageConfig
from pipelines.model_build.registry import ModelRegistry


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
        for name, value in (
            ("ModelPackageGroupName", self.registry.group_name),
            ("RawBucketName", self.lake.raw_bucket.bucket_name),
            ("CuratedBucketName", self.lake.curated_bucket.bucket_name),
            ("ArtifactsBucketName", self.lake.artifacts_bucket.bucket_name),
            ("GlueDatabaseName", self.lake.database_name),
            ("EtlJobName", self.lake.etl_job_name),
            ("AthenaWorkgroupName", self.lake.workgroup_name),
        ):
            cdk.CfnOutput(self, name, value=value)
