"""Stateless stack: approval-driven deployment of the stage's model (rule, workflow, roles)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from deployment.infrastructure import (
    DEFAULT_SMOKE_TEST_ROW,
    FEATURE_COUNT,
    PROMOTED_MODELS_PREFIX,
    ModelDeployment,
)
from feature_store.schema import feature_group_name
from infra.config import StageConfig
from pipelines.model_build.contract import MODEL_ARTIFACT, TRAIN_MODEL_OUTPUT, TRAIN_STEP
from pipelines.model_build.infrastructure import PIPELINE_PREFIX
from serving.infrastructure import repository_name

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATASET = REPO_ROOT / "pipelines" / "model_build" / "data" / "breast_cancer.csv"
TARGET_COLUMN = "target"


def model_artifact_keys(config: StageConfig) -> list[str]:
    """Keys (IAM patterns) of the model.tar.gz files this stage's endpoint may serve.

    * The model-build pipeline trains with ``S3OutputPath`` =
      ``s3://<artifacts>/pipelines/<pipeline>/<execution id>/Train/model``; SageMaker writes the
      artifact to ``<S3OutputPath>/<training job name>/output/model.tar.gz`` (a tuning job's
      best training job too).
    * Prod serves only versions promoted from staging, which ``deployment.promote`` copies to
      ``promoted-models/<staging group>/v<version>/model.tar.gz``.
    """
    if config.is_prod:
        return [f"{PROMOTED_MODELS_PREFIX}*/{MODEL_ARTIFACT}"]
    output_path = f"{PIPELINE_PREFIX}/{config.naming.pipeline}/*/{TRAIN_STEP}/{TRAIN_MODEL_OUTPUT}"
    return [f"{output_path}/*/output/{MODEL_ARTIFACT}"]


def smoke_test_row(dataset: Path = SAMPLE_DATASET, feature_count: int = FEATURE_COUNT) -> str:
    """The first data row of the bundled dataset without its target column, as CSV; the
    construct's literal default row when the dataset is absent or not in the expected shape."""
    if not dataset.is_file():
        return DEFAULT_SMOKE_TEST_ROW
    with dataset.open(newline="") as handle:
        reader = csv.DictReader(handle)
        row = next(reader, None)
        fields = [name for name in (reader.fieldnames or []) if name != TARGET_COLUMN]
    if row is None or len(fields) != feature_count:
        return DEFAULT_SMOKE_TEST_ROW
    return ",".join(row[name] for name in fields)


class DeploymentStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: StageConfig,
        key: kms.IKey,
        artifacts_bucket: s3.IBucket,
        removal_policy: cdk.RemovalPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        naming = config.naming
        if removal_policy is None:
            removal_policy = (
                cdk.RemovalPolicy.DESTROY if config.is_ephemeral else cdk.RemovalPolicy.RETAIN
            )
        controls = config.environment.cost_controls
        self.deployment = ModelDeployment(
            self,
            "ModelDeployment",
            naming=naming,
            endpoint_sizing=config.environment.sizing.endpoint,
            key=key,
            artifacts_bucket=artifacts_bucket,
            model_package_group_name=naming.model_package_group,
            require_promotion=config.is_prod,
            log_retention_days=config.environment.retention.log_days,
            removal_policy=removal_policy,
            smoke_test_row=smoke_test_row(),
            model_artifact_keys=model_artifact_keys(config),
            # cost_controls (README "Cost"): branch stages have no alarms and one key.
            alarms=controls.alarms,
            notifications_key=key if controls.kms_keys == "single" else None,
            serving_repository=(
                repository_name(naming) if config.environment.serving_image == "custom" else None
            ),
            # feature_store.online: record_id requests read the stage's online store.
            online_feature_group=(
                feature_group_name(naming)
                if config.environment.feature_store.enabled
                and config.environment.feature_store.online
                else None
            ),
        )
        for name, value in (
            ("DeploymentStateMachineArn", self.deployment.state_machine.state_machine_arn),
            ("DeploymentTopicArn", self.deployment.topic.topic_arn),
            ("DeploymentDeadLetterQueueUrl", self.deployment.dead_letter_queue.queue_url),
            ("EndpointName", naming.endpoint),
        ):
            cdk.CfnOutput(self, name, value=value)
