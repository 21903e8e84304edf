"""Optional SageMaker Studio domain of a stage (config ``studio.enabled``, README "SageMaker
Studio"): VPC-only, its home file system encrypted with the stage key, one default execution
role that can read the stage's buckets and work with its pipeline, model package group and
endpoint only, and the user profiles of the config.

VPC-only: Studio apps have no internet access and reach AWS services through the VPC, so the
VPC needs interface endpoints (SageMaker API and runtime, STS, CloudWatch Logs...) and an S3
gateway endpoint; they are billed per endpoint-AZ-hour (README "Cost"). This construct creates
none: the VPC is the config's, shared with whatever else the account runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from infra.compliance import acknowledge_all, acknowledge_grant_actions
from infra.config import VpcConfig
from infra.naming import IAM_ROLE_MAX, Naming

#: Read-only listing/search calls the Studio UI makes to show Pipelines, Models and Endpoints.
#: None of them supports resource-level permissions (Service Authorization Reference), so they
#: need ``*``; they return metadata only.
STUDIO_LIST_ACTIONS = (
    "sagemaker:ListPipelines",
    "sagemaker:ListModelPackageGroups",
    "sagemaker:ListModelPackages",
    "sagemaker:ListEndpoints",
    "sagemaker:Search",
)
PIPELINE_ACTIONS = (
    "sagemaker:DescribePipeline",
    "sagemaker:DescribePipelineDefinitionForExecution",
    "sagemaker:DescribePipelineExecution",
    "sagemaker:ListPipelineExecutions",
    "sagemaker:ListPipelineExecutionSteps",
    "sagemaker:ListPipelineParametersForExecution",
    "sagemaker:StartPipelineExecution",
    "sagemaker:ListTags",
)
MODEL_REGISTRY_ACTIONS = (
    "sagemaker:DescribeModelPackageGroup",
    "sagemaker:DescribeModelPackage",
    "sagemaker:UpdateModelPackage",  # approve / reject a version from Studio
    "sagemaker:ListTags",
)
ENDPOINT_ACTIONS = (
    "sagemaker:DescribeEndpoint",
    "sagemaker:DescribeEndpointConfig",
    "sagemaker:ListTags",
)
#: What Studio itself does as the execution role inside the domain: its spaces and apps.
DOMAIN_ACTIONS = (
    "sagemaker:CreateApp",
    "sagemaker:DeleteApp",
    "sagemaker:DescribeApp",
    "sagemaker:ListApps",
    "sagemaker:CreateSpace",
    "sagemaker:DeleteSpace",
    "sagemaker:DescribeSpace",
    "sagemaker:UpdateSpace",
    "sagemaker:ListSpaces",
    "sagemaker:DescribeDomain",
    "sagemaker:DescribeUserProfile",
)


class StudioDomain(Construct):
    """A VPC-only Studio domain with a least-privilege default execution role."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        naming: Naming,
        vpc: VpcConfig,
        key: kms.IKey,
        buckets: Sequence[s3.IBucket],
        user_profiles: Sequence[str],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.role = iam.Role(
            self,
            "ExecutionRole",
            role_name=naming.resource("studio-execution", IAM_ROLE_MAX),
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"{naming.prefix}: default execution role of the Studio domain",
        )
        for bucket in buckets:
            bucket.grant_read(self.role)
        key.grant_decrypt(self.role)

        def arn(resource: str) -> str:
            return stack.format_arn(service="sagemaker", resource=resource)

        domain_name = naming.resource("studio")
        self.domain = sagemaker.CfnDomain(
            self,
            "Domain",
            auth_mode="IAM",
            domain_name=domain_name,
            app_network_access_type="VpcOnly",
            vpc_id=vpc.vpc_id,
            subnet_ids=list(vpc.subnet_ids),
            kms_key_id=key.key_arn,
            default_user_settings=sagemaker.CfnDomain.UserSettingsProperty(
                execution_role=self.role.role_arn,
                security_groups=list(vpc.security_group_ids),
            ),
            domain_settings=sagemaker.CfnDomain.DomainSettingsProperty(
                security_group_ids=list(vpc.security_group_ids),
            ),
        )
        domain_id = self.domain.attr_domain_id
        statements = [
            iam.PolicyStatement(actions=list(STUDIO_LIST_ACTIONS), resources=["*"]),
            iam.PolicyStatement(
                actions=list(PIPELINE_ACTIONS),
                resources=[
                    arn(f"pipeline/{naming.pipeline}"),
                    arn(f"pipeline/{naming.pipeline}/execution/*"),
                ],
            ),
            iam.PolicyStatement(
                actions=list(MODEL_REGISTRY_ACTIONS),
                resources=[
                    arn(f"model-package-group/{naming.model_package_group}"),
                    arn(f"model-package/{naming.model_package_group}/*"),
                ],
            ),
            iam.PolicyStatement(
                actions=list(ENDPOINT_ACTIONS),
                resources=[arn(f"endpoint/{naming.endpoint}"), arn("endpoint-config/*")],
            ),
            iam.PolicyStatement(
                actions=list(DOMAIN_ACTIONS),
                resources=[
                    arn(f"domain/{domain_id}"),
                    arn(f"user-profile/{domain_id}/*"),
                    arn(f"space/{domain_id}/*"),
                    arn(f"app/{domain_id}/*"),
                ],
            ),
        ]
        policy = iam.Policy(self, "ExecutionPolicy", statements=statements)
        policy.attach_to_role(self.role)
        self.user_profiles = [
            sagemaker.CfnUserProfile(
                self,
                f"UserProfile{index}",
                domain_id=domain_id,
                user_profile_name=name,
                user_settings=sagemaker.CfnUserProfile.UserSettingsProperty(
                    execution_role=self.role.role_arn,
                    security_groups=list(vpc.security_group_ids),
                ),
            )
            for index, name in enumerate(user_profiles)
        ]
        self._acknowledge(stack, naming, buckets)

    def _acknowledge(self, stack: cdk.Stack, naming: Naming, buckets: Sequence[s3.IBucket]) -> None:
        acknowledge_grant_actions(
            self, applies_to="the stage's data buckets and its key (read only)", s3=True, kms=False
        )
        acknowledge_all(
            self,
            ["AwsSolutions-IAM5[Resource::*]"],
            "Studio's listing calls (ListPipelines, ListModelPackageGroups, ListModelPackages, "
            "ListEndpoints, Search) support no resource-level permission; metadata only.",
        )
        prefix = f"arn:<AWS::Partition>:sagemaker:{stack.region}:{stack.account}"
        domain = f"<{stack.get_logical_id(self.domain)}.DomainId>"
        acknowledge_all(
            self,
            [
                f"AwsSolutions-IAM5[Resource::{prefix}:{resource}]"
                for resource in (
                    f"pipeline/{naming.pipeline}/execution/*",
                    f"model-package/{naming.model_package_group}/*",
                    "endpoint-config/*",
                )
            ],
            "Executions, versions and endpoint configs of this stage's pipeline, model package "
            "group and endpoint are created at run time under names not known at synth.",
        )
        acknowledge_all(
            self,
            [
                f"AwsSolutions-IAM5[Resource::{prefix}:{kind}/{domain}/*]"
                for kind in ("user-profile", "space", "app")
            ],
            "The user profiles, spaces and apps of this domain only: Studio names spaces and "
            "apps when users open them.",
        )
        acknowledge_all(
            self,
            [
                f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(b.node.default_child)}.Arn>/*]"  # type: ignore[arg-type]
                for b in buckets
            ],
            "Studio users read (never write) any object of the stage's data buckets: datasets, "
            "evaluation reports, baselines.",
        )
        acknowledge_all(
            self,
            ["NIST.800.53.R5-IAMNoInlinePolicy"],
            "The execution role's least-privilege statements live in policies of this one role "
            "(CDK grant_* and the domain-scoped policy); a managed policy would add nothing.",
        )
