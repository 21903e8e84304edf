"""The promotion pipeline (CDK Pipelines), deployed once into the tooling account.

Source (CodeConnections: repository and branch from config) -> Synth (CI's commands: ``make test``,
``make synth`` of the default branch with the cdk-nag gate, ``make lint``; output ``cdk.out``)
-> UpdatePipeline (self-mutation) -> Assets (one CodeBuild project publishes every file asset)
-> dev -> staging, then its post steps: the smoke test and the load test of the staging endpoint
-> manual approval -> prod, then its post step: ``deployment.promote`` copies the version the
staging checks tested into prod's registry and approves it (prod's deployment workflow deploys it).

The stages are the app's own :class:`~infra.stages.MlopsStage` instances, gated by the caller
before they are added here (``add_stage`` synthesizes a stage on the spot).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_iam as iam
from aws_cdk import pipelines
from constructs import Construct

from infra.cfn_hygiene import REDUNDANT_DEPENDS_ON
from infra.compliance import acknowledge_all, acknowledge_grant_actions, skip_checkov
from infra.config import AppConfig, DeliveryConfig
from infra.stages import MlopsStage
from promotion import commands
from promotion.commands import PipelineNames

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_IMAGE = codebuild.LinuxBuildImage.STANDARD_7_0


def pinned_cli_version(package_json: Path = REPO_ROOT / "package.json") -> str:
    """The CDK CLI version the Makefile uses (package.json): self-mutation and asset publishing
    run the same one."""
    return str(json.loads(package_json.read_text())["devDependencies"]["aws-cdk"])


def _join_as_sub(value: object) -> str | None:
    """``Fn::Join`` with an empty delimiter over strings and ``Ref``s, as an ``Fn::Sub`` string
    (None for anything else)."""
    if not isinstance(value, dict) or list(value) != ["Fn::Join"]:
        return None
    delimiter, parts = value["Fn::Join"]
    if delimiter != "" or not isinstance(parts, list):
        return None
    out = []
    for part in parts:
        if isinstance(part, str) and "${" not in part:
            out.append(part)
        elif isinstance(part, dict) and list(part) == ["Ref"] and isinstance(part["Ref"], str):
            out.append("${" + part["Ref"] + "}")
        else:
            return None
    return "".join(out)


class PipelineStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        *,
        config: AppConfig,
        delivery: DeliveryConfig,
        stages: Sequence[MlopsStage],
    ) -> None:
        names = PipelineNames.of(config, delivery)
        super().__init__(
            scope,
            names.stack,
            stack_name=names.stack,
            env=cdk.Environment(account=delivery.account, region=delivery.region),
            description=f"{config.project}: promotion pipeline dev -> staging -> prod",
            termination_protection=True,
        )
        shared = {s.config.env_name: s for s in stages if not s.config.is_ephemeral}
        dev, staging, prod = shared["dev"], shared["staging"], shared["prod"]
        staging_env = staging.config.environment

        self.source = pipelines.CodePipelineSource.connection(
            delivery.repository,
            delivery.branch,
            connection_arn=delivery.connection_arn,
            trigger_on_push=True,
        )
        synth = pipelines.ShellStep(
            "Synth",
            input=self.source,
            install_commands=list(commands.SYNTH_INSTALL_COMMANDS),
            commands=list(commands.ci_commands(config.default_branch)),
            primary_output_directory="cdk.out",
        )
        cli_version = pinned_cli_version()
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name=names.pipeline,
            synth=synth,
            pipeline_type=codepipeline.PipelineType.V2,
            self_mutation=True,
            cross_account_keys=True,
            enable_key_rotation=True,
            # Lean: one CodeBuild project publishes every asset (not one per asset), and one
            # CloudFormation action per stack (no change-set pair); the approval gates prod.
            publish_assets_in_parallel=False,
            use_change_sets=False,
            docker_enabled_for_synth=False,
            cli_version=cli_version,
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(
                    build_image=BUILD_IMAGE, compute_type=codebuild.ComputeType.MEDIUM
                ),
                timeout=cdk.Duration.minutes(60),
            ),
        )

        # The steps' CodeBuild roles, named: the stage accounts' access roles trust these ARNs.
        staging_access = commands.access_role_arn(config, "staging")
        prod_access = commands.access_role_arn(config, "prod")
        self.checks_role = self._step_role("StagingChecksRole", names.checks_role, [staging_access])
        self.promote_role = self._step_role(
            "PromoteRole", names.promote_role, [staging_access, prod_access]
        )

        endpoint = staging.config.naming.endpoint
        region = staging_env.region
        staging_profile = commands.profile_commands(commands.SOURCE_PROFILE, staging_access, region)
        self.smoke_test = pipelines.CodeBuildStep(
            "SmokeTest",
            input=self.source,
            role=self.checks_role,
            install_commands=[*staging_profile, *commands.STEP_INSTALL],
            commands=list(commands.smoke_test_commands(endpoint, region)),
        )
        tested = self.smoke_test.exported_variable(commands.TESTED_PACKAGE_VARIABLE)
        self.load_test = pipelines.CodeBuildStep(
            "LoadTest",
            input=self.source,
            role=self.checks_role,
            env={commands.TESTED_PACKAGE_VARIABLE: tested},
            install_commands=[*staging_profile, *commands.STEP_INSTALL],
            commands=[
                commands.load_test_command(endpoint, region, delivery),
                commands.still_served_command(endpoint, region),
            ],
        )
        self.load_test.add_step_dependency(self.smoke_test)
        self.approval = pipelines.ManualApprovalStep(
            "ApproveProd",
            comment=(
                f"Deploy to prod ({prod.config.environment.account}) and promote the model "
                f"version staging served during the smoke and load tests ({endpoint})."
            ),
        )
        prod_env = prod.config.environment
        self.promote = pipelines.CodeBuildStep(
            "PromoteModel",
            input=self.source,
            role=self.promote_role,
            env={commands.TESTED_PACKAGE_VARIABLE: tested},
            install_commands=[
                *staging_profile,
                *commands.profile_commands(commands.TARGET_PROFILE, prod_access, prod_env.region),
                *commands.STEP_INSTALL,
            ],
            commands=[commands.promote_command(config.project)],
        )

        self.pipeline.add_stage(dev)
        self.pipeline.add_stage(staging, post=[self.smoke_test, self.load_test])
        self.pipeline.add_stage(prod, pre=[self.approval], post=[self.promote])
        self.pipeline.build_pipeline()
        self._acknowledge()
        self._template_hygiene()
        for key, value in {
            "project": config.project,
            "environment": "tooling",
            "branch": delivery.branch,
            "owner": config.owner,
            "cost-center": config.cost_center,
        }.items():
            cdk.Tags.of(self).add(key, value)

    def _acknowledge(self) -> None:
        """cdk-nag findings on what CDK Pipelines generates (and the steps' roles), each with
        its reason. Called once the pipeline is built: the ids name its logical ids."""
        projects = sorted(
            self.get_logical_id(node)
            for node in self.node.find_all()
            if isinstance(node, codebuild.CfnProject)
        )
        account, region = self.account, self.region
        logs = f"arn:aws:logs:{region}:{account}:log-group:/aws/codebuild/"
        reports = f"arn:aws:codebuild:{region}:{account}:report-group/"
        acknowledge_grant_actions(
            self, applies_to="the pipeline's own artifact bucket and its KMS key"
        )
        acknowledge_all(
            self,
            [
                f"AwsSolutions-IAM5[Resource::<{self._artifact_bucket_id()}.Arn>/*]",
            ],
            "CodePipeline writes each execution's artifacts under generated keys of the "
            "pipeline's own artifact bucket; every action reads or writes only those.",
        )
        acknowledge_all(
            self,
            [f"AwsSolutions-IAM5[Resource::{logs}<{project}>:*]" for project in projects]
            + [f"AwsSolutions-IAM5[Resource::{reports}<{project}>-*]" for project in projects],
            "CodeBuild writes each build's log streams into its project's log group and test "
            "reports into report groups named after the project: that project's only.",
        )
        acknowledge_all(
            self.pipeline,
            [
                f"AwsSolutions-IAM5[Resource::{logs}*]",
                f"AwsSolutions-IAM5[Resource::{reports}*]",
            ],
            "The asset-publishing project's role is created before its project (CDK Pipelines "
            "shares it between asset projects), so its log and report groups are matched by "
            "the CodeBuild prefix of this account and region.",
        )
        acknowledge_all(
            self.pipeline,
            ["AwsSolutions-IAM5[Resource::*]"],
            "CDK Pipelines' asset and self-mutation roles: codebuild:StartBuild/BatchGetBuilds "
            "of the asset builds, cloudformation:DescribeStacks and s3:ListBucket to find the "
            "bootstrap resources; none of these read or change data.",
        )
        acknowledge_all(
            self.pipeline,
            [f"AwsSolutions-IAM5[Resource::arn:*:iam::{account}:role/*]"],
            "Self-mutation assumes the tooling account's CDK bootstrap roles only: the "
            "statement requires the aws-cdk:bootstrap-role tag (deploy, file and image "
            "publishing) on the role.",
        )
        acknowledge_all(
            self,
            ["NIST.800.53.R5-IAMNoInlinePolicy"],
            "CDK Pipelines adds each CodeBuild and action role's statements to that role's "
            "own policy as it wires the pipeline; a managed policy would serve one role too.",
        )
        acknowledge_all(
            self.pipeline,
            [
                "AwsSolutions-S1",
                "NIST.800.53.R5-S3BucketLoggingEnabled",
                "NIST.800.53.R5-S3BucketReplicationEnabled",
                "NIST.800.53.R5-S3BucketVersioningEnabled",
            ],
            "The pipeline's artifact bucket holds only build inputs and outputs that each "
            "execution recreates from git; access goes through the pipeline's roles (CloudTrail "
            "records them) and its KMS key, and losing it loses nothing that git cannot rebuild.",
        )

    def _template_hygiene(self) -> None:
        """checkov skips (with reasons) and cfn-lint's W3005 on what CDK Pipelines generates."""
        bucket = self.pipeline.pipeline.artifact_bucket
        skip_checkov(
            bucket,
            "CKV_AWS_18",
            "The pipeline's artifact bucket holds build inputs and outputs that each execution "
            "recreates from git; access goes through the pipeline's roles, recorded by CloudTrail.",
        )
        skip_checkov(
            bucket,
            "CKV_AWS_21",
            "Each execution writes its artifacts under new keys and never overwrites one; an "
            "old version would hold nothing that a new execution from git does not rebuild.",
        )
        assets = self.pipeline.node.find_child("Assets")
        for kind in ("File", "Docker"):  # the Docker role exists once a stage has an image asset
            role = assets.node.try_find_child(f"{kind}Role")
            if role is not None:
                skip_checkov(
                    role.node.find_child("DefaultPolicy"),
                    "CKV_AWS_111",
                    "CDK Pipelines' asset role: codebuild:StartBuild on its own asset builds "
                    "and sts:AssumeRole of the stage accounts' publishing bootstrap roles only.",
                )
        # CDK makes the pipeline depend on its role at construct level (no API removes it);
        # the GetAtt on the role's ARN already orders them.
        pipeline = self.pipeline.pipeline.node.default_child
        assert isinstance(pipeline, codepipeline.CfnPipeline)
        pipeline.add_metadata("cfn-lint", {"config": {"ignore_checks": [REDUNDANT_DEPENDS_ON]}})
        # The deploy actions name the stage accounts' CloudFormation execution roles as
        # Fn::Join ["", ["arn:", Ref AWS::Partition, ...]]; cfn-lint (E3703) wants the same ARN
        # as one Fn::Sub. Rewritten in place, same value.
        stages = self.resolve(pipeline.stages)
        for i, stage in enumerate(stages):
            for j, action in enumerate(stage["actions"]):
                role = (action.get("configuration") or {}).get("RoleArn")
                sub = _join_as_sub(role)
                if sub is not None:
                    pipeline.add_property_override(
                        f"Stages.{i}.Actions.{j}.Configuration.RoleArn", {"Fn::Sub": sub}
                    )

    def _artifact_bucket_id(self) -> str:
        bucket = self.pipeline.pipeline.artifact_bucket.node.default_child
        assert isinstance(bucket, cdk.CfnElement)
        return self.get_logical_id(bucket)

    def _step_role(self, id_: str, role_name: str, access_role_arns: list[str]) -> iam.Role:
        role = iam.Role(
            self,
            id_,
            role_name=role_name,
            assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"),
            description=f"CodeBuild step of the promotion pipeline: assumes {role_name} targets",
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["sts:AssumeRole"], resources=access_role_arns)
        )
        return role
