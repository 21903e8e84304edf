"""The model-build pipeline of a stage: execution role, code bundle, example dataset and the
``AWS::SageMaker::Pipeline`` whose definition is produced at synth time with no AWS call."""

from __future__ import annotations

import functools
import re
import tempfile
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3_deployment
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk.region_info import RegionInfo
from constructs import Construct

from feature_store.schema import OfflineStoreSource
from infra.compliance import acknowledge, acknowledge_grant_actions
from infra.config import EnvironmentConfig
from infra.log_retention import retention_days
from infra.naming import Naming
from pipelines.model_build import contract, definition_cache
from pipelines.model_build.definition import PipelineInputs
from pipelines.model_build.packaging import REPO_ROOT, build_code_bundle

CODE_PREFIX = "code/model-build"
PIPELINE_PREFIX = "pipelines"
PROJECT_TAG = "sagemaker:project-name"

# Names of the jobs a pipeline execution creates: processing and training jobs are named
# "pipelines-<execution id>-<step>-<random>". A tuning job's name holds at most 32 characters and
# does not carry that prefix, so tuning jobs are matched by type only (this account and region).
_JOB_NAME_PATTERNS = (
    ("processing-job", "pipelines-*"),
    ("training-job", "pipelines-*"),
    ("hyper-parameter-tuning-job", "*"),
)
#: What the jobs need to pull their (AWS-owned) images: AWS's documented minimum for a
#: SageMaker execution role. GetAuthorizationToken has no resource-level permission.
_ECR_PULL_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchGetImage",
)
#: <account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repository>[:tag|@digest] in a definition
#: (Model Monitor's analyzer image has no tag: the JSON string ends after the repository).
_IMAGE_URI = re.compile(
    r"\b(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([a-z0-9][a-z0-9._/-]*)"
    r"(?=[:@\"])"
)


def image_repositories(definition: str) -> list[tuple[str, str, str]]:
    """(account, region, repository) of every ECR image a pipeline definition runs, sorted."""
    return sorted(set(_IMAGE_URI.findall(definition)))


@functools.cache
def _code_bundle() -> tuple[Path, str]:
    """Built once per synth process and shared by every stage (same repository content)."""
    bundle_dir = Path(tempfile.mkdtemp(prefix="mlops-model-build-code-"))
    return bundle_dir, build_code_bundle(bundle_dir)


def _cache_directory(value: object) -> Path | None:
    """The definition cache's directory from the context (set by the app): none when absent."""
    return None if value is None else definition_cache.resolve_directory(value)


class ModelBuildPipeline(Construct):
    """Exposes ``pipeline`` (the CfnPipeline), ``pipeline_name``, ``role`` and ``definition``."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        naming: Naming,
        environment: EnvironmentConfig,
        key: kms.IKey,
        serving_image_uri: str | None = None,
        raw_bucket: s3.IBucket,
        artifacts_bucket: s3.IBucket,
        model_package_group_name: str,
        offline_store: OfflineStoreSource | None = None,
    ) -> None:
        super().__init__(scope, id_)
        stack = cdk.Stack.of(self)
        self.pipeline_name = naming.pipeline

        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"{self.pipeline_name}: pipeline and its processing/training jobs",
        )
        self._grant(stack, key, raw_bucket, artifacts_bucket, model_package_group_name, environment)

        # The code the jobs run, uploaded under a content hash; and the bundled example dataset.
        bundle_dir, code_hash = _code_bundle()
        code_key = f"{CODE_PREFIX}/{code_hash}"
        # Both uploads share CDK's deploy-time handler; its logs go to an encrypted group.
        upload_logs = logs.LogGroup(
            self,
            "UploadLogs",
            encryption_key=key,
            retention=retention_days(environment.retention.log_days),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        code_upload = s3_deployment.BucketDeployment(
            self,
            "CodeUpload",
            sources=[s3_deployment.Source.asset(str(bundle_dir))],
            destination_bucket=artifacts_bucket,
            destination_key_prefix=f"{code_key}/",
            prune=False,  # running executions keep the code they started with
            retain_on_delete=False,
            memory_limit=256,
            log_group=upload_logs,
        )
        dataset = REPO_ROOT / contract.BUNDLED_DATASET
        s3_deployment.BucketDeployment(
            self,
            "ExampleDataset",
            sources=[s3_deployment.Source.asset(str(dataset.parent))],
            destination_bucket=raw_bucket,
            destination_key_prefix=contract.RAW_DATASET_PREFIX,
            prune=False,  # never delete data a user put next to it
            retain_on_delete=True,
            memory_limit=256,
            log_group=upload_logs,
        )

        # Rendered by the SageMaker SDK, or read from the definition cache when nothing that
        # shapes it changed (the app sets the cache's directory in the context; absent: none).
        cache = definition_cache.cache_for(
            _cache_directory(self.node.try_get_context(definition_cache.CONTEXT_KEY))
        )
        sizing = environment.sizing
        vpc = environment.vpc
        self.definition = cache.definition(
            PipelineInputs(
                pipeline_name=self.pipeline_name,
                region=stack.region,
                role_arn=self.role.role_arn,
                artifacts_bucket=artifacts_bucket.bucket_name,
                code_uri=artifacts_bucket.s3_url_for_object(code_key),
                input_data_uri=raw_bucket.s3_url_for_object(contract.RAW_DATASET_PREFIX),
                kms_key_arn=key.key_arn,
                model_package_group_name=model_package_group_name,
                processing_instance_type=sizing.processing_instance_type,
                processing_instance_count=sizing.processing_instance_count,
                training_instance_type=sizing.training_instance_type,
                training_instance_count=sizing.training_instance_count,
                spot_training=environment.features.spot_training,
                hyperparameter_tuning=environment.features.hyperparameter_tuning,
                approval_threshold=environment.model_approval_threshold,
                serving_image_uri=serving_image_uri,
                subnet_ids=vpc.subnet_ids if vpc else (),
                security_group_ids=vpc.security_group_ids if vpc else (),
                monitoring_backend=environment.monitoring.backend,
                # feature_store.training_data: offline_store (grants: FeatureStore).
                offline_store_query=offline_store.query if offline_store else "",
                offline_store_database=offline_store.database if offline_store else "",
                athena_workgroup=offline_store.workgroup if offline_store else "",
            )
        )
        self.pipeline = sagemaker.CfnPipeline(
            self,
            "Pipeline",
            pipeline_name=self.pipeline_name,
            pipeline_display_name=self.pipeline_name,
            pipeline_description=(
                "Preprocess -> DataQualityBaseline -> Train -> Evaluate -> register when the "
                "test AUC reaches the threshold"
            ),
            role_arn=self.role.role_arn,
            pipeline_definition={"PipelineDefinitionBody": self.definition},
        )
        self.pipeline.node.add_dependency(code_upload)
        self._grant_image_pull(stack, self.definition)
        cdk.Tags.of(self.pipeline).add(PROJECT_TAG, naming.sagemaker_project_tag)
        self._acknowledge_deployment_handler(stack, [raw_bucket, artifacts_bucket])

    def _grant(
        self,
        stack: cdk.Stack,
        key: kms.IKey,
        raw_bucket: s3.IBucket,
        artifacts_bucket: s3.IBucket,
        group_name: str,
        environment: EnvironmentConfig,
    ) -> None:
        role = self.role
        raw_bucket.grant_read(role)
        artifacts_bucket.grant_read(role, f"{CODE_PREFIX}/*")  # the code bundle: read-only
        artifacts_bucket.grant_read_write(role, f"{PIPELINE_PREFIX}/*")
        key.grant_encrypt_decrypt(role)  # includes kms:DescribeKey, unconditioned
        role.add_to_policy(
            iam.PolicyStatement(
                sid="EncryptJobVolumes",  # SageMaker creates grants to encrypt job volumes
                actions=["kms:CreateGrant"],
                resources=[key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
        job_arns = [
            stack.format_arn(service="sagemaker", resource=job, resource_name=name)
            for job, name in _JOB_NAME_PATTERNS
        ]
        role.add_to_policy(
            iam.PolicyStatement(
                sid="RunPipelineJobs",
                actions=[
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:CreateHyperParameterTuningJob",
                    "sagemaker:DescribeHyperParameterTuningJob",
                    "sagemaker:StopHyperParameterTuningJob",
                    "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
                    "sagemaker:AddTags",
                ],
                resources=job_arns,
            )
        )
        group_arn = stack.format_arn(
            service="sagemaker", resource="model-package-group", resource_name=group_name
        )
        package_arn = stack.format_arn(
            service="sagemaker", resource="model-package", resource_name=f"{group_name}/*"
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="RegisterModels",
                actions=[
                    "sagemaker:CreateModelPackage",
                    "sagemaker:DescribeModelPackage",
                    "sagemaker:DescribeModelPackageGroup",
                    "sagemaker:AddTags",
                ],
                resources=[group_arn, package_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PassOwnRoleToJobs",
                actions=["iam:PassRole"],
                resources=[role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        log_group_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws/sagemaker/*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="JobLogs",
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                resources=[log_group_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="JobMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],  # PutMetricData has no resource-level permission
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            )
        )
        if environment.vpc is not None:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="JobsInVpc",
                    actions=[
                        "ec2:CreateNetworkInterface",
                        "ec2:CreateNetworkInterfacePermission",
                        "ec2:DeleteNetworkInterface",
                        "ec2:DeleteNetworkInterfacePermission",
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:DescribeVpcs",
                        "ec2:DescribeDhcpOptions",
                        "ec2:DescribeSubnets",
                        "ec2:DescribeSecurityGroups",
                    ],
                    resources=["*"],  # ENIs are created by SageMaker with generated ids
                )
            )
        self._acknowledge_role(
            stack, raw_bucket, artifacts_bucket, job_arns, package_arn, log_group_arn
        )

    def _acknowledge_role(
        self,
        stack: cdk.Stack,
        raw_bucket: s3.IBucket,
        artifacts_bucket: s3.IBucket,
        job_arns: list[str],
        package_arn: str,
        log_group_arn: str,
    ) -> None:
        role = self.role
        acknowledge(
            role,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "CDK grant_* writes this role's least-privilege statements into its own policy; a "
            "managed policy would be attached to this one role only, adding nothing.",
        )
        raw_id = stack.get_logical_id(raw_bucket.node.default_child)  # type: ignore[arg-type]
        artifacts_id = stack.get_logical_id(artifacts_bucket.node.default_child)  # type: ignore[arg-type]
        for resource, reason in (
            (f"<{raw_id}.Arn>/*", "The pipeline reads any input dataset of the raw zone."),
            (
                f"<{artifacts_id}.Arn>/{CODE_PREFIX}/*",
                "Jobs read the code bundle, stored under content-hash prefixes.",
            ),
            (
                f"<{artifacts_id}.Arn>/{PIPELINE_PREFIX}/*",
                "Jobs write outputs under per-execution prefixes generated at run time.",
            ),
            (log_group_arn, "SageMaker names job log groups/streams at run time."),
            (package_arn, "Model versions get generated ARNs within this stage's group only."),
            (
                "*",
                "cloudwatch:PutMetricData, ecr:GetAuthorizationToken and ec2 ENI actions support "
                "no resource-level permission; PutMetricData is limited to SageMaker namespaces "
                "by condition.",
            ),
            *(
                (
                    arn,
                    "Pipelines names the jobs it starts at run time: processing and training jobs "
                    "pipelines-<execution>-<step>-<random>; tuning jobs (32 characters at most) "
                    "without that prefix, so any tuning job of this account and region.",
                )
                for arn in job_arns
            ),
        ):
            acknowledge(role, f"AwsSolutions-IAM5[Resource::{resource}]", reason)
        acknowledge_grant_actions(
            role, applies_to="the bucket prefixes above and this stage's data key"
        )

    def _grant_image_pull(self, stack: cdk.Stack, definition: str) -> None:
        """ECR pull access to exactly the image repositories the definition's jobs run."""
        repositories = image_repositories(definition)
        if not repositories:
            raise ValueError("the pipeline definition names no ECR image")
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="PullJobImages",
                actions=list(_ECR_PULL_ACTIONS),
                resources=[
                    f"arn:{stack.partition}:ecr:{region}:{account}:repository/{name}"
                    for account, region, name in repositories
                ],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="EcrAuthorization",
                actions=["ecr:GetAuthorizationToken"],
                resources=["*"],  # no resource-level permission (acknowledged with "*" above)
            )
        )

    def _acknowledge_deployment_handler(
        self, stack: cdk.Stack, destinations: list[s3.IBucket]
    ) -> None:
        """BucketDeployment brings a CDK-owned, deploy-time-only Lambda (one per stack)."""
        handler = next(
            (c for c in stack.node.children if c.node.id.startswith("Custom::CDKBucketDeployment")),
            None,
        )
        if handler is None:
            return
        reason_runtime = (
            "CDK-owned BucketDeployment handler: runs only during deployment to copy assets; "
            "its runtime, memory and wiring are managed by aws-cdk-lib."
        )
        partition = RegionInfo.get(stack.region).partition or "aws"
        asset_bucket = (
            f"arn:{partition}:s3:::cdk-{cdk.DefaultStackSynthesizer.DEFAULT_QUALIFIER}-assets-"
            f"{stack.account}-{stack.region}/*"
        )
        wildcard_resources = [asset_bucket] + [
            f"<{stack.get_logical_id(bucket.node.default_child)}.Arn>/*"  # type: ignore[arg-type]
            for bucket in destinations
        ]
        for resource in wildcard_resources:
            acknowledge(
                handler,
                f"AwsSolutions-IAM5[Resource::{resource}]",
                "CDK's BucketDeployment copies the staged asset archive (generated key) from the "
                "bootstrap bucket to the destination prefix; CDK grants it on the whole bucket.",
            )
        acknowledge_grant_actions(
            handler, applies_to="the asset and destination buckets and this stage's data key"
        )
        for finding in (
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "AwsSolutions-L1",
            "NIST.800.53.R5-LambdaConcurrency",
            "NIST.800.53.R5-LambdaDLQ",
            "NIST.800.53.R5-LambdaInsideVPC",
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "Serverless-LambdaDLQ",
            "Serverless-LambdaTracing",
            "Serverless-LambdaDefaultMemorySize",
            "Serverless-LambdaLatestVersion",
        ):
            acknowledge(handler, finding, reason_runtime)
