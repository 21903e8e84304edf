"""The SageMaker execution role of the models a stage's deployment workflow creates."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from deployment.functions import logical_id
from infra.compliance import acknowledge
from infra.naming import Naming

DATA_CAPTURE_PREFIX = "data-capture/"


class ModelExecutionRole:
    """One job: what a deployed model may do — read its own model.tar.gz, write data capture,
    use the stage key, write its endpoint's logs, pull its image and (instance endpoints, for the
    blue/green auto-rollback) read the rollback alarms. Nothing else.

    Built into ``scope`` (the ModelDeployment) so paths and logical ids stay those of the
    deployed stacks. Exposes ``role``.
    """

    def __init__(
        self,
        scope: Construct,
        *,
        naming: Naming,
        endpoint_name: str,
        key: kms.IKey,
        artifacts_bucket: s3.IBucket,
        model_artifact_keys: Sequence[str],
        image_repositories: Sequence[str],
        rollback_alarm_arns: Sequence[str],
        serving_repository: str | None = None,
    ) -> None:
        """``rollback_alarm_arns``: the alarms SageMaker reads during a blue/green update
        (instance endpoints); empty when the endpoint has none (serverless).
        ``serving_repository``: the stage's own serving-image repository (``serving_image:
        custom``), pulled from this account only; AWS's framework repositories
        (``image_repositories``) stay pullable for versions registered with the prebuilt image."""
        if not model_artifact_keys:
            raise ValueError("model_artifact_keys: at least one key pattern of model.tar.gz")
        stack = cdk.Stack.of(scope)
        self.role = iam.Role(
            scope,
            "ModelExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"{naming.prefix}: SageMaker models deployed by the deployment workflow",
        )
        # SageMaker downloads the model.tar.gz of the version it serves (GetObject, decrypted
        # with the stage key): those keys only, never the rest of the bucket.
        artifact_patterns = list(model_artifact_keys)
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[artifacts_bucket.arn_for_objects(p) for p in artifact_patterns],
            )
        )
        artifacts_bucket.grant_put(self.role, f"{DATA_CAPTURE_PREFIX}*")
        if rollback_alarm_arns:
            # Blue/green auto-rollback: SageMaker reads the alarms with the model's role.
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["cloudwatch:DescribeAlarms"], resources=list(rollback_alarm_arns)
                )
            )
        key.grant_encrypt_decrypt(self.role)
        endpoint_logs_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"/aws/sagemaker/Endpoints/{endpoint_name}:*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                resources=[endpoint_logs_arn],
            )
        )
        image_repository_arns = [
            stack.format_arn(service="ecr", account="*", resource="repository", resource_name=name)
            for name in image_repositories
        ]
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
                resources=image_repository_arns,
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"])
        )
        if serving_repository is not None:
            ecr.Repository.from_repository_name(
                scope, "ServingRepository", serving_repository
            ).grant_pull(self.role)
        bucket_logical_id = logical_id(artifacts_bucket)
        acknowledgments = [
            (
                f"AwsSolutions-IAM5[Resource::{endpoint_logs_arn}]",
                "SageMaker names the log streams of each endpoint instance at run time; the "
                "grant is limited to this stage's endpoint log group.",
            ),
            (
                "AwsSolutions-IAM5[Resource::*]",
                "ecr:GetAuthorizationToken does not support resource-level permissions.",
            ),
            (
                f"AwsSolutions-IAM5[Resource::<{bucket_logical_id}.Arn>/{DATA_CAPTURE_PREFIX}*]",
                "Data capture writes run-time keys (endpoint/variant/date/uuid) under the "
                "data-capture/ prefix of the artifacts bucket only.",
            ),
            *[
                (
                    f"AwsSolutions-IAM5[Resource::<{bucket_logical_id}.Arn>/{pattern}]",
                    "The model.tar.gz of each version sits under a run-specific key (pipeline "
                    "execution id and training job name, or promoted version); GetObject of "
                    "that file name only, this bucket only.",
                )
                for pattern in artifact_patterns
            ],
            *[
                (
                    f"AwsSolutions-IAM5[Resource::{arn}]",
                    "AWS-owned SageMaker framework images live in a regional AWS account that "
                    "differs per region; the pull is limited to the framework's repository name.",
                )
                for arn in image_repository_arns
            ],
        ]
        for finding, reason in acknowledgments:
            acknowledge(self.role, finding, reason)
        for action in ("kms:ReEncrypt*", "kms:GenerateDataKey*", "s3:Abort*"):
            acknowledge(
                self.role,
                f"AwsSolutions-IAM5[Action::{action}]",
                "Action group emitted by CDK's grant_* on this stage's bucket prefixes and data "
                "key only.",
            )
        acknowledge(
            self.role,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "CDK grant_* writes this role's least-privilege statements into its own policy; a "
            "managed policy would be attached to this one role only.",
        )
