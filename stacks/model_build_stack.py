"""Stateless stack: the model-build pipeline of a stage (re-creatable at any time)."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from feature_store.schema import OfflineStoreSource
from infra.config import StageConfig
from pipelines.model_build.infrastructure import ModelBuildPipeline
from serving.infrastructure import ServingImage


class ModelBuildStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: StageConfig,
        key: kms.IKey,
        raw_bucket: s3.IBucket,
        artifacts_bucket: s3.IBucket,
        model_package_group_name: str,
        offline_store: OfflineStoreSource | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        # serving_image: custom: built at deploy time, copied into the stage's repository.
        self.serving_image: ServingImage | None = None
        if config.environment.serving_image == "custom":
            self.serving_image = ServingImage(
                self,
                "ServingImage",
                naming=config.naming,
                key=key,
                log_retention_days=config.environment.retention.log_days,
                removal_policy=(
                    cdk.RemovalPolicy.DESTROY if config.is_ephemeral else cdk.RemovalPolicy.RETAIN
                ),
            )
        self.model_build = ModelBuildPipeline(
            self,
            "ModelBuild",
            naming=config.naming,
            environment=config.environment,
            serving_image_uri=self.serving_image.image_uri if self.serving_image else None,
            key=key,
            raw_bucket=raw_bucket,
            artifacts_bucket=artifacts_bucket,
            model_package_group_name=model_package_group_name,
            offline_store=offline_store,
        )
        if self.serving_image is not None:
            # The image is in the stage's repository before the pipeline can register with it.
            self.model_build.pipeline.node.add_dependency(self.serving_image.copy)
            self.serving_image.grant_pull(self.model_build.role)
        cdk.CfnOutput(self, "PipelineName", value=self.model_build.pipeline_name)
