"""The roles in the staging and prod accounts that the promotion pipeline's steps assume.

The pipeline's CodeBuild steps run in the tooling account. The CDK bootstrap roles trusted from it
deploy stacks only, so each of these two stages carries one role, trusted only by the named
CodeBuild roles of the pipeline (``aws:PrincipalArn``; the tooling account as principal, so the
trust needs no role to exist yet):

* staging (``<project>-staging-pipeline-access``): the smoke and load tests invoke and describe
  the staging endpoint; ``deployment.promote`` reads the version it serves (package, endpoint,
  config, model, tags), its ``model.tar.gz`` and its baseline files (:func:`baseline_keys`);
* prod (``<project>-prod-pipeline-access``): ``deployment.promote`` reads prod's artifacts
  bucket name (the stateful stack's output), copies the artifact under ``promoted-models/``,
  registers and approves the version in prod's model package group.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from deployment.infrastructure import PROMOTED_MODELS_PREFIX
from infra.compliance import acknowledge
from infra.config import StageConfig
from pipelines.model_build import contract
from pipelines.model_build.infrastructure import PIPELINE_PREFIX
from promotion.commands import PipelineNames
from serving.infrastructure import repository_name
from stacks.deployment_stack import model_artifact_keys


def baseline_keys(config: StageConfig) -> list[str]:
    """Keys (IAM patterns) of the files a staging version's ``DriftCheckBaselines`` and
    ``ModelMetrics`` name, which ``deployment.promote`` copies to prod: the DataQualityBaseline
    step's output (statistics, constraints, reference.csv; Model Monitor's check output has the
    same output name) and the Evaluate step's report, of any run of the stage's pipeline."""
    run = f"{PIPELINE_PREFIX}/{config.naming.pipeline}/*"
    (baseline,) = contract.DATA_QUALITY_BASELINE.outputs
    condition = contract.CONDITION
    return [
        f"{run}/{contract.BASELINE_STEP}/{baseline.name}/*",
        f"{run}/{condition.step}/{condition.output}/{condition.path}",
    ]


class PipelineAccess(Construct):
    """The stage account's role for the pipeline (staging or prod)."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: StageConfig,
        tooling_account: str,
        trusted_role_arns: Sequence[str],
        key: kms.IKey,
        artifacts_bucket: s3.IBucket,
        stateful_stack_name: str,
    ) -> None:
        super().__init__(scope, id_)
        if config.env_name not in ("staging", "prod") or config.is_ephemeral:
            raise ValueError(f"{config.stage_id}: the pipeline assumes roles in staging and prod")
        stack = cdk.Stack.of(self)
        naming = config.naming

        def sagemaker(resource: str, name: str) -> str:
            return stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

        packages = sagemaker("model-package", f"{naming.model_package_group}/*")
        if config.is_prod:
            statements = [
                iam.PolicyStatement(
                    sid="ReadArtifactsBucketName",
                    actions=["cloudformation:DescribeStacks"],
                    resources=[
                        stack.format_arn(
                            service="cloudformation",
                            resource="stack",
                            resource_name=f"{stateful_stack_name}/*",
                        )
                    ],
                ),
                iam.PolicyStatement(
                    sid="FindPromotedVersions",
                    actions=["sagemaker:ListModelPackages"],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="RegisterAndApprove",
                    actions=[
                        "sagemaker:DescribeModelPackage",
                        "sagemaker:CreateModelPackage",
                        "sagemaker:UpdateModelPackage",
                    ],
                    resources=[
                        packages,
                        sagemaker("model-package-group", naming.model_package_group),
                    ],
                ),
                iam.PolicyStatement(
                    sid="CopyPromotedArtifact",
                    actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                    resources=[artifacts_bucket.arn_for_objects(f"{PROMOTED_MODELS_PREFIX}*")],
                ),
                iam.PolicyStatement(
                    sid="EncryptPromotedArtifact",
                    # SSE-KMS PutObject: GenerateDataKey; multipart parts: Decrypt as well.
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=[key.key_arn],
                ),
                iam.PolicyStatement(
                    # A version with the staging stage's own serving image names prod's, once
                    # prod's repository has its tag (serving/promoted_image.py).
                    sid="FindServingImage",
                    actions=["ecr:DescribeImages"],
                    resources=[
                        stack.format_arn(
                            service="ecr",
                            resource="repository",
                            resource_name=repository_name(naming),
                        )
                    ],
                ),
            ]
        else:
            statements = [
                iam.PolicyStatement(
                    sid="TestEndpoint",
                    actions=[
                        "sagemaker:InvokeEndpoint",
                        "sagemaker:DescribeEndpoint",
                        "sagemaker:ListTags",
                    ],
                    resources=[sagemaker("endpoint", naming.endpoint)],
                ),
                iam.PolicyStatement(
                    sid="VerifyServedVersion",
                    actions=[
                        "sagemaker:DescribeEndpointConfig",
                        "sagemaker:DescribeModel",
                        "sagemaker:DescribeModelPackage",
                    ],
                    resources=[
                        sagemaker("endpoint-config", f"{naming.prefix}-*"),
                        sagemaker("model", f"{naming.prefix}-*"),
                        packages,
                    ],
                ),
                iam.PolicyStatement(
                    sid="ReadModelArtifact",
                    actions=["s3:GetObject"],
                    resources=[
                        artifacts_bucket.arn_for_objects(pattern)
                        for pattern in model_artifact_keys(config)
                    ],
                ),
                iam.PolicyStatement(
                    sid="ReadBaselines",
                    actions=["s3:GetObject"],
                    resources=[
                        artifacts_bucket.arn_for_objects(pattern)
                        for pattern in baseline_keys(config)
                    ],
                ),
                iam.PolicyStatement(
                    sid="DecryptModelArtifact", actions=["kms:Decrypt"], resources=[key.key_arn]
                ),
            ]
        tooling = iam.AccountPrincipal(tooling_account)
        self.role = iam.Role(
            self,
            "Role",
            role_name=PipelineNames.access_role(config.project, config.env_name),
            description=f"Assumed by the promotion pipeline's steps in {config.env_name}",
            assumed_by=tooling.with_conditions(
                {"ArnEquals": {"aws:PrincipalArn": list(trusted_role_arns)}}
            ),
            max_session_duration=cdk.Duration.hours(1),
        )
        # A customer managed policy (NIST.800.53.R5-IAMNoInlinePolicy), this role's only.
        self.policy = iam.ManagedPolicy(self, "Policy", statements=statements, roles=[self.role])
        bucket_resource = artifacts_bucket.node.default_child
        assert isinstance(bucket_resource, cdk.CfnElement)
        bucket = f"<{cdk.Stack.of(bucket_resource).get_logical_id(bucket_resource)}.Arn>"
        wildcards: dict[str, str] = {
            packages: "Model versions are numbered as they are registered: every version of "
            "this stage's model package group only.",
        }
        if config.is_prod:
            wildcards.update(
                {
                    "*": "sagemaker:ListModelPackages has no resource-level permission; the "
                    "tool lists only prod's model package group and reads nothing else with it.",
                    f"{bucket}/{PROMOTED_MODELS_PREFIX}*": "Promoted artifacts are written under "
                    "promoted-models/<staging group>/v<version>/: that prefix of prod's "
                    "artifacts bucket only.",
                    stack.format_arn(
                        service="cloudformation",
                        resource="stack",
                        resource_name=f"{stateful_stack_name}/*",
                    ): "A stack ARN ends in a unique id given at creation: prod's stateful stack "
                    "only, to read its ArtifactsBucketName output.",
                }
            )
        else:
            wildcards.update(
                {
                    sagemaker("endpoint-config", f"{naming.prefix}-*"): "The deployment "
                    "workflow names each endpoint config per deployment under the stage "
                    "prefix: read-only Describe of this stage's configs.",
                    sagemaker("model", f"{naming.prefix}-*"): "The deployment workflow names "
                    "each model per deployment under the stage prefix: read-only Describe of "
                    "this stage's models.",
                    **{
                        f"{bucket}/{pattern}": "A version's model.tar.gz sits under a run-"
                        "specific key (pipeline execution id, training job name): GetObject of "
                        "that file name in this stage's artifacts bucket only."
                        for pattern in model_artifact_keys(config)
                    },
                    **{
                        f"{bucket}/{pattern}": "A version's baseline and evaluation files sit "
                        "under its pipeline run's id: GetObject of those step outputs of this "
                        "stage's pipeline in this stage's artifacts bucket only."
                        for pattern in baseline_keys(config)
                    },
                }
            )
        for resource, reason in wildcards.items():
            acknowledge(self.policy, f"AwsSolutions-IAM5[Resource::{resource}]", reason)
