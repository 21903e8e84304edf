"""The sweeper of expired branch stages, built into the shared dev stage's operations stack (the
dev account is where every branch stage lives).

::

    EventBridge Scheduler (config branch_environments.sweeper_schedule, UTC), input {}
      --> Lambda lambdas/sweeper (async; failed invocations to the operations dead-letter queue)
            ListStacks/DescribeStacks <project>-br-*  -> stages whose stacks all carry the
            ephemeral-ttl-days and deployed-by-branch tags and were not updated for the TTL
            -> sweeper.teardown (Model Monitor schedules and job definitions, endpoint,
               endpoint configs, models, model versions)
            -> DeleteStack in dependency order (only stacks named <project>-br-* AND carrying
               both tags: the IAM policy's resource and aws:ResourceTag conditions say so too)
            -> report to the operations topic (and the log)

CloudFormation deletes each stack with the role it was deployed with (``cdk deploy`` associates
the bootstrap's cfn-exec role with every stack), so the function holds no permission on the
stacks' resources and passes no role (no ``iam:PassRole``). A stack deployed without a role would
fail to delete (DELETE_FAILED, reported), never be deleted with wider rights.

The Lambda asset is ``lambdas/sweeper/handler.py`` plus the modules it reuses
(``sweeper/teardown.py``, ``infra/config.py``, ``infra/naming.py``: standard library only; the
``sweeper`` package's ``__init__`` is empty), copied into a content-addressed
directory at synth: same files, same asset hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.compliance import acknowledge, acknowledge_all, acknowledge_basic_execution_role
from infra.config import DEPLOYED_BY_BRANCH_TAG, EPHEMERAL_TTL_TAG
from infra.lambda_runtime import LAMBDA_RUNTIME
from infra.log_retention import encrypted_log_group
from infra.naming import Naming
from infra.service_roles import role_for_source
from sweeper.teardown import BRANCH_QUALIFIER_PREFIX

REPO_ROOT = Path(__file__).resolve().parent.parent
#: asset path -> source file
ASSET_FILES = {
    "handler.py": REPO_ROOT / "lambdas" / "sweeper" / "handler.py",
    "infra/__init__.py": REPO_ROOT / "infra" / "__init__.py",
    "infra/config.py": REPO_ROOT / "infra" / "config.py",
    "infra/naming.py": REPO_ROOT / "infra" / "naming.py",
    "sweeper/__init__.py": REPO_ROOT / "sweeper" / "__init__.py",
    "sweeper/teardown.py": REPO_ROOT / "sweeper" / "teardown.py",
}
#: A pass waits for stack deletions: the Lambda maximum; what is left, the next run continues.
TIMEOUT = cdk.Duration.minutes(15)
SAGEMAKER_KINDS = (
    "endpoint",
    "endpoint-config",
    "model",
    "monitoring-schedule",
    "data-quality-job-definition",
    "model-quality-job-definition",
)


def asset_directory(root: Path | None = None) -> Path:
    """The Lambda's code as a directory named by the hash of its files (written once, atomically:
    parallel synths of the same content share it)."""
    digest = hashlib.sha256()
    for name, source in sorted(ASSET_FILES.items()):
        data = source.read_bytes()
        digest.update(f"{name}\0{len(data)}\0".encode() + data)
    base = root or Path(tempfile.gettempdir())
    target = base / f"mlops-sweeper-asset-{digest.hexdigest()[:20]}"
    if not target.is_dir():
        staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=base))
        staging.chmod(0o755)  # mkdtemp's 0700 would keep Lambda's runtime user out
        for name, source in ASSET_FILES.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, staging / name)
        try:
            os.replace(staging, target)
        except OSError:  # another process got there first with the same content
            shutil.rmtree(staging, ignore_errors=True)
    return target


class BranchSweeper(Construct):
    """Scheduled removal of expired branch stages of ``project`` in this stack's account and
    region. Exposes ``function``, ``schedule`` and ``schedule_role``."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        naming: Naming,
        project: str,
        schedule_expression: str,
        topic: sns.ITopic,
        key: kms.IKey,
        dead_letter_queue: sqs.IQueue,
        log_retention_days: int,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, id_)
        stack = cdk.Stack.of(self)
        function_name = naming.resource("branch-sweeper", 64)
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
            "Function",
            function_name=function_name,
            description=(
                f"{naming.prefix}: removes expired branch stages ({project}-br-*, tagged "
                f"{EPHEMERAL_TTL_TAG} and {DEPLOYED_BY_BRANCH_TAG}) and reports what it removed"
            ),
            runtime=LAMBDA_RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(asset_directory())),
            memory_size=256,
            timeout=TIMEOUT,
            tracing=lambda_.Tracing.ACTIVE,
            dead_letter_queue=dead_letter_queue,
            log_group=log_group,
            environment={"PROJECT": project, "TOPIC_ARN": topic.topic_arn},
        )
        branch = f"{project}-{BRANCH_QUALIFIER_PREFIX}*"
        stacks = stack.format_arn(
            service="cloudformation", resource="stack", resource_name=f"{branch}/*"
        )

        def sagemaker_arn(kind: str) -> str:
            return stack.format_arn(service="sagemaker", resource=kind, resource_name=branch)

        packages = stack.format_arn(
            service="sagemaker", resource="model-package", resource_name=f"{branch}/*"
        )

        for statement in (
            # ListStacks supports no resource-level permission.
            iam.PolicyStatement(actions=["cloudformation:ListStacks"], resources=["*"]),
            iam.PolicyStatement(actions=["cloudformation:DescribeStacks"], resources=[stacks]),
            iam.PolicyStatement(
                actions=["cloudformation:DeleteStack"],
                resources=[stacks],
                # both tags present on the stack (StringLike "*" is false for a missing key)
                conditions={
                    "StringLike": {
                        f"aws:ResourceTag/{EPHEMERAL_TTL_TAG}": "*",
                        f"aws:ResourceTag/{DEPLOYED_BY_BRANCH_TAG}": "*",
                    }
                },
            ),
            # SageMaker's List* calls support no resource-level permission.
            iam.PolicyStatement(
                actions=[
                    "sagemaker:ListEndpoints",
                    "sagemaker:ListEndpointConfigs",
                    "sagemaker:ListModels",
                    "sagemaker:ListModelPackages",
                    "sagemaker:ListMonitoringSchedules",
                    "sagemaker:ListDataQualityJobDefinitions",
                    "sagemaker:ListModelQualityJobDefinitions",
                ],
                resources=["*"],
            ),
            iam.PolicyStatement(
                actions=[
                    "sagemaker:DeleteEndpoint",
                    "sagemaker:DeleteEndpointConfig",
                    "sagemaker:DeleteModel",
                    "sagemaker:DeleteModelPackage",
                    "sagemaker:DeleteMonitoringSchedule",
                    "sagemaker:DeleteDataQualityJobDefinition",
                    "sagemaker:DeleteModelQualityJobDefinition",
                ],
                resources=[*(sagemaker_arn(kind) for kind in SAGEMAKER_KINDS), packages],
            ),
        ):
            self.function.add_to_role_policy(statement)
        topic.grant_publish(self.function)

        schedule_name = naming.resource("branch-sweeper", 64)
        self.schedule_role = role_for_source(
            self,
            "ScheduleRole",
            service="scheduler.amazonaws.com",
            source_arn=stack.format_arn(
                service="scheduler", resource="schedule", resource_name=f"default/{schedule_name}"
            ),
            description=f"{naming.prefix}: EventBridge Scheduler starts the branch sweeper",
        )
        self.function.grant_invoke(self.schedule_role)
        self.schedule = scheduler.CfnSchedule(
            self,
            "Schedule",
            name=schedule_name,
            description=f"{naming.prefix}: sweep expired branch stages ({schedule_expression} UTC)",
            schedule_expression=schedule_expression,
            schedule_expression_timezone="UTC",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=self.function.function_arn,
                role_arn=self.schedule_role.role_arn,
                input=json.dumps({}),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_event_age_in_seconds=3600, maximum_retry_attempts=3
                ),
            ),
        )
        self._acknowledge([stacks, *(sagemaker_arn(k) for k in SAGEMAKER_KINDS), packages])

    def _acknowledge(self, scoped_arns: list[str]) -> None:
        role = self.function.role
        assert role is not None
        inline = (
            "CDK writes the role's statements into its own policy; a managed policy would be "
            "attached to this one role only."
        )
        acknowledge_basic_execution_role(role)
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudformation:ListStacks, the SageMaker List* calls and X-Ray writes support no "
            "resource-level permission; every Describe/Delete is scoped to branch-stage "
            "names (and DeleteStack to stacks carrying both ephemeral tags).",
        )
        acknowledge_all(
            role,
            [f"AwsSolutions-IAM5[Resource::{arn}]" for arn in scoped_arns],
            "Branch stages are created and named at run time (<project>-br-<branch slug>); the "
            "wildcard stops at that prefix, and DeleteStack also needs both ephemeral tags.",
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "Action group emitted by CDK's Topic.grant_publish for the topic's own key only.",
        )
        acknowledge(role, "NIST.800.53.R5-IAMNoInlinePolicy", inline)
        acknowledge(
            self.schedule_role,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "CDK writes the role's single statement (lambda:InvokeFunction on the sweeper) "
            "into its own policy; a managed policy would be attached to this one role only.",
        )
        acknowledge_all(
            self.schedule_role,
            ["AwsSolutions-IAM5[Resource::<" + self._logical_id() + ".Arn>:*]"],
            "CDK's grant_invoke covers the function and its versions/aliases (ARN:*); only the "
            "sweeper.",
        )
        acknowledge(
            self.function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "The function only calls AWS APIs (CloudFormation, SageMaker, SNS) over TLS with IAM "
            "auth; it reaches no resource in a VPC.",
        )
        acknowledge(
            self.function,
            "NIST.800.53.R5-LambdaConcurrency",
            "Invoked once per schedule tick (daily by default) and runs at most 15 minutes; new "
            "accounts (concurrency limit 10) cannot reserve capacity.",
        )

    def _logical_id(self) -> str:
        child = self.function.node.default_child
        assert isinstance(child, cdk.CfnElement)
        return cdk.Stack.of(child).get_logical_id(child)
