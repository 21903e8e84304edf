"""The deploy workflow of a stage: the Step Functions state machine (definition in
:mod:`deployment.workflow`), its plan and smoke-test Lambdas, its log group and its role."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn

from deployment.execution_role import DATA_CAPTURE_PREFIX
from deployment.functions import (
    DeploymentFunctions,
    depend_on_policy_only,
    logical_id,
    notifications_key_use,
)
from deployment.workflow import DeploymentWorkflow, WorkflowIam, WorkflowSettings
from infra.compliance import acknowledge
from infra.config import InstanceEndpoint, ServerlessEndpoint
from infra.naming import STATE_MACHINE_MAX

DEFAULT_SHIFT_WAIT = cdk.Duration.minutes(10)
DEFAULT_POLL_INTERVAL = cdk.Duration.seconds(30)
DEFAULT_WORKFLOW_TIMEOUT = cdk.Duration.hours(3)


@dataclass(frozen=True)
class TrafficShifting:
    """Blue/green traffic shifting on instance endpoints (deployment guardrails)."""

    mode: Literal["CANARY", "LINEAR"] = "CANARY"
    #: Canary size, or linear step, as a percentage of the fleet (SageMaker: canary <= 50%,
    #: linear steps 10-50%; a one-instance fleet shifts all at once).
    percent: int = 25
    #: Baking period after each shift, while the rollback alarms are watched.
    wait: cdk.Duration = DEFAULT_SHIFT_WAIT

    def __post_init__(self) -> None:
        if not 1 <= self.percent <= 50:
            raise ValueError(f"traffic shifting percent must be 1-50, got {self.percent}")


@dataclass(frozen=True)
class WorkflowTarget:
    """What one stage deploys, and where to."""

    endpoint_name: str
    endpoint_sizing: ServerlessEndpoint | InstanceEndpoint
    model_package_group_name: str
    #: Prod: only versions promoted from staging.
    require_promotion: bool
    smoke_test_row: str
    feature_count: int
    #: feature_store.online: the feature group the model reads; None: none.
    online_feature_group: str | None = None


class DeployWorkflow:
    """One job: deploy one approved model version safely — plan (Lambda), create model and
    config, create/update the endpoint (blue/green on instances), smoke test (Lambda), tag,
    notify; clean up on any failure. The state machine logs ALL to a KMS-encrypted log group
    and traces with X-Ray.

    Built into ``functions.scope`` (the ModelDeployment) so paths and logical ids stay those of
    the deployed stacks. Exposes ``state_machine``, ``plan_function``, ``smoke_test_function``.
    """

    def __init__(
        self,
        functions: DeploymentFunctions,
        *,
        target: WorkflowTarget,
        key: kms.IKey,
        artifacts_bucket: s3.IBucket,
        topic: sns.ITopic,
        execution_role: iam.IRole,
        rollback_alarm_names: Sequence[str],
        rollback_alarm_arns: Sequence[str],
        traffic_shifting: TrafficShifting,
        poll_interval: cdk.Duration,
        workflow_timeout: cdk.Duration,
    ) -> None:
        scope = functions.scope
        naming = functions.naming
        stack = cdk.Stack.of(scope)
        endpoint_name = target.endpoint_name
        model_package_group_name = target.model_package_group_name
        resource_prefix = naming.resource("deploy", 40)  # model/config names: <prefix>-v<n>-<id>

        def sagemaker_arn(resource: str, name: str) -> str:
            return stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

        endpoint_arn = sagemaker_arn("endpoint", endpoint_name)

        # --- Lambdas.
        self.plan_function = functions.function(
            "PlanFunction",
            "deploy_plan",
            "deploy-plan",
            "Plans one deployment: resolves the package, guards, idempotency (changes nothing)",
            timeout=cdk.Duration.seconds(60),
        )
        package_arns = sagemaker_arn("model-package", f"{model_package_group_name}/*")
        config_arns = sagemaker_arn("endpoint-config", f"{resource_prefix}-*")
        self.plan_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeModelPackage"], resources=[package_arns]
            )
        )
        self.plan_function.add_to_role_policy(
            iam.PolicyStatement(actions=["sagemaker:ListModelPackages"], resources=["*"])
        )
        self.plan_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpoint", "sagemaker:ListTags"],
                resources=[endpoint_arn],
            )
        )
        self.plan_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpointConfig"], resources=[config_arns]
            )
        )
        # Deployments of the endpoint go one at a time: the plan lists this state machine's
        # RUNNING executions (ARN from its fixed name: a reference would be a cycle, as the
        # state machine references the function).
        state_machine_name = naming.resource("deploy-model", STATE_MACHINE_MAX)
        self.plan_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:ListExecutions"],
                resources=[
                    stack.format_arn(
                        service="states",
                        resource="stateMachine",
                        resource_name=state_machine_name,
                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        plan_role = self.plan_function.role
        assert plan_role is not None
        for finding, reason in (
            (
                f"AwsSolutions-IAM5[Resource::{package_arns}]",
                "Versions of the stage's model package group get their ARN suffix at "
                "registration; read-only describe of this one group's versions.",
            ),
            (
                "AwsSolutions-IAM5[Resource::*]",
                "sagemaker:ListModelPackages does not support resource-level permissions; the "
                "call filters on this stage's group. X-Ray trace writes (PutTraceSegments) have "
                "no resource either.",
            ),
            (
                f"AwsSolutions-IAM5[Resource::{config_arns}]",
                "Endpoint configs are named per deployment at run time under this stage's "
                "deploy- prefix; read-only describe.",
            ),
        ):
            acknowledge(plan_role, finding, reason)

        self.smoke_test_function = functions.function(
            "SmokeTestFunction",
            "smoke_test",
            "deploy-smoke-test",
            "Invokes the freshly deployed endpoint with a sample row (CSV and JSON)",
            timeout=cdk.Duration.seconds(180),
        )
        self.smoke_test_function.add_to_role_policy(
            iam.PolicyStatement(actions=["sagemaker:InvokeEndpoint"], resources=[endpoint_arn])
        )

        # --- The state machine.
        sizing = target.endpoint_sizing
        plan_stage: dict[str, object] = {
            "modelPackageGroupName": model_package_group_name,
            "endpointName": endpoint_name,
            "resourcePrefix": resource_prefix,
            "requirePromotion": target.require_promotion,
            "endpointMode": "instances" if isinstance(sizing, InstanceEndpoint) else "serverless",
        }
        if isinstance(sizing, InstanceEndpoint):
            plan_stage.update(
                {
                    "instanceType": sizing.instance_type,
                    "minInstances": sizing.min_instances,
                    "maxInstances": sizing.max_instances,
                    "trafficShifting": {
                        "type": traffic_shifting.mode,
                        "percent": traffic_shifting.percent,
                        "waitSeconds": int(traffic_shifting.wait.to_seconds()),
                    },
                }
            )
        workflow_iam = WorkflowIam(
            models=sagemaker_arn("model", f"{resource_prefix}-*"),
            endpoint_configs=config_arns,
            endpoint=endpoint_arn,
            model_packages=package_arns,
            scalable_targets=stack.format_arn(
                service="application-autoscaling",
                resource="scalable-target",
                resource_name="*",
                arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME,
            ),
            target_tracking_alarms=stack.format_arn(
                service="cloudwatch",
                resource="alarm",
                resource_name=f"TargetTracking-endpoint/{endpoint_name}/*",
                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
            ),
            rollback_alarms=list(rollback_alarm_arns),
            execution_role=execution_role.role_arn,
            key=key.key_arn,
        )
        workflow = DeploymentWorkflow(
            scope,
            "Workflow",
            settings=WorkflowSettings(
                prefix=naming.prefix,
                endpoint_name=endpoint_name,
                endpoint_arn=endpoint_arn,
                sizing=sizing,
                plan_function=self.plan_function,
                smoke_test_function=self.smoke_test_function,
                topic=topic,
                execution_role_arn=execution_role.role_arn,
                key_arn=key.key_arn,
                data_capture_uri=artifacts_bucket.s3_url_for_object(DATA_CAPTURE_PREFIX),
                rollback_alarm_names=rollback_alarm_names,
                plan_stage=plan_stage,
                smoke_test_row=target.smoke_test_row,
                feature_count=target.feature_count,
                poll_interval=poll_interval,
                blue_green_termination_wait=cdk.Duration.minutes(5),
                blue_green_max_duration=cdk.Duration.hours(2),
                iam=workflow_iam,
                online_feature_group=target.online_feature_group,
            ),
        )
        state_machine_logs = functions.log_group(
            "StateMachineLogs", f"/aws/vendedlogs/states/{state_machine_name}"
        )
        self.state_machine = sfn.StateMachine(
            scope,
            "StateMachine",
            state_machine_name=state_machine_name,
            comment=f"{naming.prefix}: deploys approved model versions to {endpoint_name}",
            definition_body=sfn.DefinitionBody.from_chainable(workflow.definition),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=workflow_timeout,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=state_machine_logs, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
        )
        # Publishing to the SSE-KMS topic needs the key too (SnsPublish grants sns:Publish only).
        self.state_machine.add_to_role_policy(notifications_key_use(functions.notifications_key))
        self._acknowledge_state_machine_role(workflow_iam, isinstance(sizing, InstanceEndpoint))
        for resource, role in (
            (self.plan_function, self.plan_function.role),
            (self.smoke_test_function, self.smoke_test_function.role),
            (self.state_machine, self.state_machine.role),
        ):
            depend_on_policy_only(resource, role)

    def _acknowledge_state_machine_role(self, workflow_iam: WorkflowIam, instances: bool) -> None:
        role = self.state_machine.role
        reasons = [
            (
                f"AwsSolutions-IAM5[Resource::{workflow_iam.models}]",
                "Each deployment creates (and on failure deletes) a model named at run time "
                "under this stage's deploy- prefix.",
            ),
            (
                f"AwsSolutions-IAM5[Resource::{workflow_iam.endpoint_configs}]",
                "Each deployment creates (and on failure deletes) an endpoint config named at "
                "run time under this stage's deploy- prefix.",
            ),
            (
                f"AwsSolutions-IAM5[Resource::{workflow_iam.model_packages}]",
                "CreateModel from a model package reads the approved version, whose ARN suffix "
                "is assigned at registration; this stage's group only.",
            ),
            (
                "AwsSolutions-IAM5[Resource::*]",
                "Step Functions log delivery (logs:*LogDelivery, DescribeLogGroups...) and X-Ray "
                "writes do not support resource-level permissions.",
            ),
        ]
        if instances:
            reasons += [
                (
                    f"AwsSolutions-IAM5[Resource::{workflow_iam.scalable_targets}]",
                    "Application Auto Scaling identifies scalable targets by generated ids; the "
                    "call itself names this stage's endpoint variant.",
                ),
                (
                    f"AwsSolutions-IAM5[Resource::{workflow_iam.target_tracking_alarms}]",
                    "Target tracking creates its alarms with generated suffixes under this "
                    "endpoint's TargetTracking- prefix.",
                ),
            ]
        for finding, reason in reasons:
            acknowledge(role, finding, reason)
        acknowledge(
            role,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "CDK writes the state machine's per-task least-privilege statements into its own "
            "role's policy; a managed policy would be attached to this one role only.",
        )
        for function in (self.plan_function, self.smoke_test_function):
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::<{logical_id(function)}.Arn>:*]",
                "CDK's LambdaInvoke grants the function and its versions/aliases (ARN:*); only "
                "this stage's deployment function.",
            )
