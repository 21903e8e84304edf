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
        self.model_build = ModelBuildPipeline(
            self,
            "ModelBuild",
            naming=config.naming,
            environment=config.environment,
            key=key,
            raw_bucket=raw_bucket,
            artifacts_bucket=artifacts_bucket,
            model_package_group_name=model_package_group_name,
            offline_store=offline_store,
        )
        cdk.CfnOutput(self, "PipelineName", value=self.model_build.pipeline_name)
