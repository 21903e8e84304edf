"""The project's own serving image in a stage (``serving_image: custom``, README "Serving image").

* :class:`ServingRepository` (stateful stack): the stage's ECR repository. Scan on push,
  immutable tags, the stage's data key (no extra KMS key), a lifecycle rule; kept like the
  stage's other data (RETAIN), emptied and removed with a branch stage (DESTROY).
* :class:`ServingImage` (model-build stack): CDK builds ``serving/image/Dockerfile`` at deploy
  time (``DockerImageAsset``: synth only fingerprints its small build context, no Docker) and
  publishes it to the CDK bootstrap repository under its content hash; the custom resource
  ``Custom::ServingImageCopy`` (``serving/image_copy.py``) then copies it into the stage's
  repository under the same immutable tag. The pipeline that registers model packages with that
  image URI depends on the copy, so the image is in the stage's repository before any package
  can name it, with ``cdk deploy`` (branch stages) and with the promotion pipeline alike.

Why a copy and not the asset published straight into the stage's repository (a stack
synthesizer's ``image_assets_repository_name``): the promotion pipeline (CDK Pipelines) publishes
every asset in its Assets stage *before* any stack of a stage deploys, so a stage's first
deployment would push into a repository its stateful stack has not created yet.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.compliance import acknowledge_all, skip_checkov
from infra.lambda_runtime import LAMBDA_RUNTIME
from infra.log_retention import encrypted_log_group
from infra.naming import Naming
from serving.image_context import CONTEXT_EXCLUDE, DOCKERFILE
from serving.promoted_image import repository_name as repository_name

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Images kept per repository (any tag). Every change of the image's build context is a new
#: image; registered model packages name theirs by tag, so this many stay deployable.
KEEP_IMAGES = 20
#: Untagged images (none is pushed untagged; an interrupted copy leaves no tag) go after a day.
UNTAGGED_DAYS = 1
COPY_RESOURCE_TYPE = "Custom::ServingImageCopy"
COPY_HANDLER = "serving.image_copy.handler"
#: The copy Lambda's code: the handler module and its package marker only.
COPY_EXCLUDE = (
    "/*",
    "!/serving/",
    "/serving/*",
    "!/serving/__init__.py",
    "!/serving/image_copy.py",
)
COPY_TIMEOUT = cdk.Duration.minutes(15)
#: ECR's pull and push actions (AWS "IAM permissions for pushing an image"), on one repository.
PULL_ACTIONS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
PUSH_ACTIONS = (
    "ecr:DescribeImages",
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
    "ecr:BatchGetImage",
)


class ServingRepository(Construct):
    """The stage's serving-image repository. Exposes ``repository`` and ``repository_name``."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        naming: Naming,
        key: kms.IKey,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, id_)
        self.repository_name = repository_name(naming)
        destroy = removal_policy == cdk.RemovalPolicy.DESTROY
        self.repository = ecr.Repository(
            self,
            "Repository",
            repository_name=self.repository_name,
            image_scan_on_push=True,
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            # The stage's data key: ECR creates its own grant on it at repository creation;
            # pushing and pulling principals need no KMS permission of their own.
            encryption=ecr.RepositoryEncryption.KMS,
            encryption_key=key,
            lifecycle_rules=[
                ecr.LifecycleRule(
                    description=f"untagged images go after {UNTAGGED_DAYS} day",
                    tag_status=ecr.TagStatus.UNTAGGED,
                    max_image_age=cdk.Duration.days(UNTAGGED_DAYS),
                ),
                ecr.LifecycleRule(
                    description=f"keep the {KEEP_IMAGES} most recent images",
                    tag_status=ecr.TagStatus.ANY,
                    max_image_count=KEEP_IMAGES,
                ),
            ],
            removal_policy=removal_policy,
            # CloudFormation's EmptyOnDelete: a branch stage's repository goes with its images.
            empty_on_delete=destroy or None,
        )


class ServingImage(Construct):
    """Builds the serving image at deploy time and copies it into the stage's repository.

    Exposes ``asset`` (the DockerImageAsset), ``image_tag`` (its content hash, the tag in both
    repositories), ``image_uri`` (the stage repository's URI with that tag), ``function`` and
    ``copy`` (the custom resource: depend on it before naming ``image_uri``)."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        naming: Naming,
        key: kms.IKey,
        log_retention_days: int,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, id_)
        stack = cdk.Stack.of(self)
        target_name = repository_name(naming)
        target_arn = stack.format_arn(
            service="ecr", resource="repository", resource_name=target_name
        )
        self.asset = ecr_assets.DockerImageAsset(
            self,
            "Asset",
            directory=str(REPO_ROOT),
            file=DOCKERFILE,
            ignore_mode=cdk.IgnoreMode.GIT,
            exclude=list(CONTEXT_EXCLUDE),
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        self.image_tag = self.asset.image_tag
        self.image_uri = (
            f"{stack.account}.dkr.ecr.{stack.region}.{stack.url_suffix}/{target_name}:"
            f"{self.image_tag}"
        )

        function_name = naming.resource("serving-image-copy", 64)
        log_group = encrypted_log_group(
            self,
            "Logs",
            name=f"/aws/lambda/{function_name}",
            key=key,
            retention_days=log_retention_days,
            removal_policy=removal_policy,
        )
        self.function = lambda_.Function(
            self,
            "Copy",
            function_name=function_name,
            description=(
                f"{naming.prefix}: copies the serving image from the CDK asset repository into "
                f"{target_name} (deploy time only)"
            ),
            runtime=LAMBDA_RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler=COPY_HANDLER,
            code=lambda_.Code.from_asset(
                str(REPO_ROOT), ignore_mode=cdk.IgnoreMode.GIT, exclude=list(COPY_EXCLUDE)
            ),
            memory_size=1024,  # network throughput grows with memory; layers stream in parts
            timeout=COPY_TIMEOUT,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=list(PULL_ACTIONS), resources=[self.asset.repository.repository_arn]
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=list(PUSH_ACTIONS), resources=[target_arn])
        )
        self.copy = cdk.CustomResource(
            self,
            "Image",
            service_token=self.function.function_arn,
            resource_type=COPY_RESOURCE_TYPE,
            properties={
                "SourceRepository": self.asset.repository.repository_name,
                "SourceTag": self.image_tag,
                "TargetRepository": target_name,
                "TargetTag": self.image_tag,
            },
            service_timeout=COPY_TIMEOUT.plus(cdk.Duration.minutes(5)),
        )
        self._target_arn = target_arn
        self._acknowledge()

    def grant_pull(self, grantee: iam.IGrantable) -> None:
        """Pull access to the stage's serving repository, that repository only: for the role
        that registers model packages naming the image, in case SageMaker checks the image with
        the caller's permissions then. ``ecr:GetAuthorizationToken`` is the grantee's own
        business (the pipeline role has it for its job images)."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["ecr:BatchCheckLayerAvailability", *PULL_ACTIONS],
            resource_arns=[self._target_arn],
        )

    def _acknowledge(self) -> None:
        role = self.function.role
        assert role is not None
        acknowledge_all(
            role,
            [
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole]",
                "AwsSolutions-IAM5[Resource::*]",
                "NIST.800.53.R5-IAMNoInlinePolicy",
            ],
            "The serving-image copy: the AWS-managed basic execution policy writes only its "
            "logs; X-Ray writes have no resource-level permission; its ECR statements name the "
            "CDK asset repository (pull) and this stage's serving repository (push) only; CDK "
            "writes them into this role's own policy.",
        )
        acknowledge_all(
            self.function,
            ["NIST.800.53.R5-LambdaInsideVPC"],
            "The copy only calls ECR's API and downloads the layers from ECR's pre-signed S3 "
            "URLs over TLS with IAM auth; it reaches no resource in a VPC.",
        )
        acknowledge_all(
            self.function,
            ["NIST.800.53.R5-LambdaConcurrency"],
            "Invoked by CloudFormation once per image change during a deployment; new accounts "
            "(limit 10) cannot reserve capacity.",
        )
        reason_dlq = (
            "A custom-resource handler: it answers CloudFormation's ResponseURL itself, "
            "failures included (FAILED with the reason, which rolls the stack back); an "
            "invocation that never answers fails the stack at the resource's ServiceTimeout. A "
            "dead-letter queue would hold events no one replays."
        )
        acknowledge_all(
            self.function, ["NIST.800.53.R5-LambdaDLQ", "Serverless-LambdaDLQ"], reason_dlq
        )
        skip_checkov(self.function, "CKV_AWS_116", reason_dlq)
