"""The deployment state machine's definition (Step Functions standard workflow, JSONPath).

::

    Plan (Lambda: resolve package, guards, ordering, idempotency) --noop--> Succeed
      |--wait (earlier execution running / endpoint busy)--> Wait --> Plan
      |--skip (not approved / not promoted / ...)--> Notify --> Fail "DeploymentSkipped"
      deploy:
      CreateModel --> CreateEndpointConfig --> endpoint exists?
        no:  CreateEndpoint
        yes: [instance type changed: DeregisterScalableTarget] UpdateEndpoint (blue/green +
             canary/linear + auto-rollback alarms on instance endpoints)
        SageMaker refuses the call because another change is in progress ("Cannot update
        in-progress endpoint", "Cannot create already existing endpoint"): delete the new config
        and model, [re-register autoscaling], Wait --> Plan (which then waits, deploys or ends
        as a no-op by the ordering rule)
      DescribeEndpoint <--Wait-- (Creating/Updating...) --> InService? --> serves the new config?
      --> SmokeTest (Lambda) --> [instances: RegisterScalableTarget, PutScalingPolicy]
      --> TagEndpoint (package ARN and version, event time, deployment time) --> Notify --> Succeed

    Any failure after Plan: Record<Step>Failure --> Cleanup: wait while the endpoint is busy;
    delete the endpoint this run created, or roll it back to its previous config ([instance type
    changed: DeregisterScalableTarget first], as SageMaker refuses to change the instance type of
    a registered variant); delete the new config and model; [re-apply autoscaling]; Notify (what
    failed, where) --> Fail.

SageMaker calls are ``CallAwsService`` SDK integrations scoped to this stage's names; throttling
is retried with exponential backoff and jitter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.config import InstanceEndpoint, ServerlessEndpoint
from pipelines.model_build.model_code import data_capture, online_features

VARIANT_NAME = "AllTraffic"
#: Share of requests captured: SageMaker's DataCaptureConfig on instance endpoints, the inference
#: handler's own capture (``data_capture.py``) on serverless ones, which support no data capture.
CAPTURE_SAMPLING_PERCENT = 100
#: Endpoint tags the plan step reads (== lambdas/deploy_plan/handler.py's *_TAG constants).
PACKAGE_TAG = "model-package-arn"
VERSION_TAG = "model-package-version"
EVENT_TIME_TAG = "deployment-event-time"
DEPLOYED_AT_TAG = "deployed-at"
#: ``Cause`` of the SageMaker errors that mean "another change of this endpoint is in progress"
#: (ValidationException messages of UpdateEndpoint / CreateEndpoint): back to Wait -> Plan.
ENDPOINT_CONFLICT_CAUSES = (
    "*Cannot update in-progress endpoint*",
    "*Cannot create already existing endpoint*",
)
BUSY_STATUSES = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
#: Error names of SDK-integration throttling (and other transient service errors).
SAGEMAKER_TRANSIENT_ERRORS = (
    "SageMaker.ThrottlingException",
    "SageMaker.SageMakerException",
    "SageMaker.AmazonSageMakerException",
)
AUTOSCALING_TRANSIENT_ERRORS = (
    "ApplicationAutoScaling.ConcurrentUpdateException",
    "ApplicationAutoScaling.ApplicationAutoScalingException",
    "ApplicationAutoScaling.InternalServiceException",
)
LAMBDA_TRANSIENT_ERRORS = ("Lambda.TooManyRequestsException",)


@dataclass(frozen=True)
class WorkflowSettings:
    """Everything the definition needs, resolved by :class:`deployment.ModelDeployment`."""

    prefix: str
    endpoint_name: str
    endpoint_arn: str
    sizing: ServerlessEndpoint | InstanceEndpoint
    plan_function: lambda_.IFunction
    smoke_test_function: lambda_.IFunction
    topic: sns.ITopic
    execution_role_arn: str
    key_arn: str
    data_capture_uri: str
    rollback_alarm_names: Sequence[str]
    plan_stage: Mapping[str, Any]
    smoke_test_row: str
    feature_count: int
    poll_interval: cdk.Duration
    blue_green_termination_wait: cdk.Duration
    blue_green_max_duration: cdk.Duration
    iam: WorkflowIam
    #: feature_store.online: the feature group the model reads ``{"record_id": ...}`` requests
    #: from (the handler's ``online_features.py``); None: no online store.
    online_feature_group: str | None = None


@dataclass(frozen=True)
class WorkflowIam:
    """Resource ARNs the SDK integrations are scoped to."""

    models: str
    endpoint_configs: str
    endpoint: str
    model_packages: str
    scalable_targets: str
    target_tracking_alarms: str
    rollback_alarms: Sequence[str]
    execution_role: str
    key: str


TaskT = TypeVar("TaskT", bound=sfn.TaskStateBase)


def _retry_transient(task: TaskT, errors: Sequence[str]) -> TaskT:
    """Retry throttling and transient service errors with jittered exponential backoff."""
    task.add_retry(
        errors=list(errors),
        interval=cdk.Duration.seconds(2),
        backoff_rate=2,
        max_attempts=5,
        jitter_strategy=sfn.JitterType.FULL,
    )
    return task


class DeploymentWorkflow(Construct):
    """Builds the chain; ``definition`` is the start state for ``DefinitionBody.from_chainable``."""

    def __init__(self, scope: Construct, id_: str, *, settings: WorkflowSettings) -> None:
        super().__init__(scope, id_)
        self.s = settings
        self.instances = isinstance(settings.sizing, InstanceEndpoint)
        self._failure_chain = self._build_cleanup()
        self.definition = self._build_main()

    # ----------------------------------------------------------------------------------------
    # Helpers

    def _sagemaker(
        self,
        id_: str,
        action: str,
        parameters: Mapping[str, Any],
        resources: Sequence[str],
        *,
        result_path: str = sfn.JsonPath.DISCARD,
        extra: Sequence[iam.PolicyStatement] = (),
        tagging: bool = False,
    ) -> tasks.CallAwsService:
        statements = list(extra)
        if tagging:
            statements.append(
                iam.PolicyStatement(actions=["sagemaker:AddTags"], resources=resources)
            )
        task = tasks.CallAwsService(
            self,
            id_,
            service="sagemaker",
            action=action,
            iam_action=f"sagemaker:{action[0].upper()}{action[1:]}",
            parameters=dict(parameters),
            iam_resources=list(resources),
            additional_iam_statements=statements or None,
            result_path=result_path,
        )
        return _retry_transient(task, SAGEMAKER_TRANSIENT_ERRORS)

    def _autoscaling(
        self,
        id_: str,
        action: str,
        parameters: Mapping[str, Any],
        extra: Sequence[iam.PolicyStatement],
    ) -> tasks.CallAwsService:
        task = tasks.CallAwsService(
            self,
            id_,
            service="applicationautoscaling",
            action=action,
            iam_action=f"application-autoscaling:{action[0].upper()}{action[1:]}",
            parameters=dict(parameters),
            iam_resources=[self.s.iam.scalable_targets],
            additional_iam_statements=list(extra) or None,
            result_path=sfn.JsonPath.DISCARD,
        )
        return _retry_transient(task, AUTOSCALING_TRANSIENT_ERRORS)

    def _lambda(
        self, id_: str, function: lambda_.IFunction, payload: Mapping[str, Any], result_path: str
    ) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            self,
            id_,
            lambda_function=function,
            payload=sfn.TaskInput.from_object(dict(payload)),
            payload_response_only=True,
            retry_on_service_exceptions=True,
            result_path=result_path,
        )
        return _retry_transient(task, LAMBDA_TRANSIENT_ERRORS)

    def _on_failure(
        self, task: sfn.TaskStateBase, step: str, conflict: sfn.IChainable | None = None
    ) -> None:
        """Any error of ``task`` records which step failed, then runs the cleanup; with
        ``conflict``, SageMaker's "another change is in progress" errors go there instead."""
        record = sfn.Pass(
            self,
            f"Record{step}Failure",
            parameters={
                "step": step,
                "error.$": "$.caught.Error",
                "cause.$": "$.caught.Cause",
                "rollback": "not needed",
            },
            result_path="$.failure",
        )
        record.next(self._failure_chain)
        target: sfn.IChainable = record
        if conflict is not None:
            target = (
                sfn.Choice(self, f"{step}Conflict")
                .when(
                    sfn.Condition.or_(
                        *(
                            sfn.Condition.string_matches("$.caught.Cause", pattern)
                            for pattern in ENDPOINT_CONFLICT_CAUSES
                        )
                    ),
                    conflict,
                )
                .otherwise(record)
            )
        task.add_catch(target, errors=["States.ALL"], result_path="$.caught")

    def _notify(self, id_: str, subject: str, message: Mapping[str, Any]) -> tasks.SnsPublish:
        task = tasks.SnsPublish(
            self,
            id_,
            topic=self.s.topic,
            subject=f"[{self.s.prefix}] {subject}"[:100],
            message=sfn.TaskInput.from_object(
                {
                    "stage": self.s.prefix,
                    "endpoint": self.s.endpoint_name,
                    "execution.$": "$$.Execution.Id",
                    **message,
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        task.add_retry(
            errors=["SNS.ThrottledException", "SNS.InternalErrorException"],
            interval=cdk.Duration.seconds(2),
            backoff_rate=2,
            max_attempts=5,
            jitter_strategy=sfn.JitterType.FULL,
        )
        return task

    def _describe_endpoint(self, id_: str, result_path: str) -> tasks.CallAwsService:
        return self._sagemaker(
            id_,
            "describeEndpoint",
            {"EndpointName": self.s.endpoint_name},
            [self.s.iam.endpoint],
            result_path=result_path,
        )

    @staticmethod
    def _busy(variable: str) -> sfn.Condition:
        return sfn.Condition.or_(*(sfn.Condition.string_equals(variable, s) for s in BUSY_STATUSES))

    def _tags(self) -> list[dict[str, str]]:
        return [
            {"Key": PACKAGE_TAG, "Value.$": "$.plan.packageArn"},
            {"Key": "deployed-by-execution", "Value.$": "$$.Execution.Name"},
            self._project_tag(),
        ]

    def _project_tag(self) -> dict[str, str]:
        """The tag Studio groups a project's resources by (README "SageMaker Studio")."""
        return {"Key": "sagemaker:project-name", "Value": self.s.prefix}

    def _scalable_target(self) -> dict[str, str]:
        return {
            "ServiceNamespace": "sagemaker",
            "ResourceId": f"endpoint/{self.s.endpoint_name}/variant/{VARIANT_NAME}",
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        }

    def _autoscaling_chain(self, id_prefix: str) -> tuple[sfn.IChainable, sfn.INextable]:
        """RegisterScalableTarget -> PutScalingPolicy (target tracking on invocations)."""
        sizing = self.s.sizing
        assert isinstance(sizing, InstanceEndpoint)
        service_linked_role = iam.PolicyStatement(
            actions=["iam:CreateServiceLinkedRole"],
            resources=[
                cdk.Stack.of(self).format_arn(
                    service="iam",
                    region="",
                    resource="role",
                    resource_name=(
                        "aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
                        "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
                    ),
                )
            ],
            conditions={
                "StringLike": {
                    "iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"
                }
            },
        )
        register = self._autoscaling(
            f"{id_prefix}RegisterScalableTarget",
            "registerScalableTarget",
            {
                **self._scalable_target(),
                "MinCapacity": sizing.min_instances,
                "MaxCapacity": sizing.max_instances,
            },
            [
                service_linked_role,
                # Registering a SageMaker variant checks the caller may read and resize it.
                iam.PolicyStatement(
                    actions=[
                        "sagemaker:DescribeEndpoint",
                        "sagemaker:UpdateEndpointWeightsAndCapacities",
                    ],
                    resources=[self.s.iam.endpoint],
                ),
                iam.PolicyStatement(
                    actions=["sagemaker:DescribeEndpointConfig"],
                    resources=[self.s.iam.endpoint_configs],
                ),
            ],
        )
        policy = self._autoscaling(
            f"{id_prefix}PutScalingPolicy",
            "putScalingPolicy",
            {
                **self._scalable_target(),
                "PolicyName": f"{self.s.prefix}-invocations-per-instance",
                "PolicyType": "TargetTrackingScaling",
                "TargetTrackingScalingPolicyConfiguration": {
                    "TargetValue": sizing.target_invocations_per_instance,
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                    },
                    "ScaleInCooldown": 300,
                    "ScaleOutCooldown": 60,
                },
            },
            [
                iam.PolicyStatement(
                    actions=[
                        "cloudwatch:PutMetricAlarm",
                        "cloudwatch:DescribeAlarms",
                        "cloudwatch:DeleteAlarms",
                    ],
                    resources=[self.s.iam.target_tracking_alarms],
                )
            ],
        )
        register.next(policy)
        return register, policy

    # ----------------------------------------------------------------------------------------
    # Failure path

    def _build_cleanup(self) -> sfn.IChainable:
        s = self.s
        failed = sfn.Fail(
            self, "DeploymentFailed", error="DeploymentFailed", cause_path="$.failure.cause"
        )
        notify = self._notify(
            "NotifyFailure",
            "model deployment FAILED",
            {
                "status": "FAILED",
                "packageArn.$": "$.plan.packageArn",
                "packageVersion.$": "$.plan.packageVersion",
                "failedStep.$": "$.failure.step",
                "error.$": "$.failure.error",
                "cause.$": "$.failure.cause",
                "rollback.$": "$.failure.rollback",
                "cleanup": (
                    "the new model and endpoint config were deleted; a new endpoint was deleted, "
                    "an existing one rolled back to its previous config"
                ),
            },
        )
        notify.add_catch(failed, errors=["States.ALL"], result_path="$.notifyError")
        notify.next(failed)

        after_delete: sfn.IChainable = notify
        if self.instances:
            reapply, reapply_last = self._autoscaling_chain("Cleanup")
            for task in (reapply, reapply_last):
                assert isinstance(task, tasks.CallAwsService)
                task.add_catch(notify, errors=["States.ALL"], result_path="$.autoscalingError")
            reapply_last.next(notify)
            after_delete = (
                sfn.Choice(self, "CleanupEndpointRemains")
                .when(sfn.Condition.boolean_equals("$.plan.endpointExists", True), reapply)
                .otherwise(notify)
            )

        delete_model = self._sagemaker(
            "CleanupDeleteModel", "deleteModel", {"ModelName.$": "$.plan.modelName"}, [s.iam.models]
        )
        delete_model.add_catch(after_delete, errors=["States.ALL"], result_path="$.cleanupError")
        delete_model.next(after_delete)
        delete_config = self._sagemaker(
            "CleanupDeleteEndpointConfig",
            "deleteEndpointConfig",
            {"EndpointConfigName.$": "$.plan.endpointConfigName"},
            [s.iam.endpoint_configs],
        )
        delete_config.add_catch(delete_model, errors=["States.ALL"], result_path="$.cleanupError")
        delete_config.next(delete_model)

        delete_endpoint = self._sagemaker(
            "CleanupDeleteEndpoint",
            "deleteEndpoint",
            {"EndpointName": s.endpoint_name},
            [s.iam.endpoint],
        )
        delete_endpoint.add_catch(
            delete_config, errors=["States.ALL"], result_path="$.cleanupError"
        )
        delete_endpoint.next(delete_config)

        describe = self._describe_endpoint("CleanupDescribeEndpoint", "$.cleanupEndpoint")
        describe.add_catch(delete_config, errors=["States.ALL"], result_path="$.cleanupError")
        wait = sfn.Wait(self, "CleanupWaitForEndpoint", time=sfn.WaitTime.duration(s.poll_interval))
        wait.next(describe)

        rollback_failed = sfn.Pass(
            self,
            "RecordRollbackFailure",
            parameters={"error.$": "$.rollbackError.Error", "cause.$": "$.rollbackError.Cause"},
            result_path="$.failure.rollback",
        )
        rollback_failed.next(notify)
        rollback = self._sagemaker(
            "RollbackEndpoint",
            "updateEndpoint",
            {
                "EndpointName": s.endpoint_name,
                "EndpointConfigName.$": "$.plan.previousEndpointConfigName",
            },
            [s.iam.endpoint, s.iam.endpoint_configs],
        )
        rollback.add_catch(rollback_failed, errors=["States.ALL"], result_path="$.rollbackError")
        record_rollback = sfn.Pass(
            self,
            "RecordRollback",
            result=sfn.Result.from_string("endpoint rolled back to its previous config"),
            result_path="$.failure.rollback",
        )
        rollback.next(record_rollback)
        record_rollback.next(describe)  # Updating -> wait -> describe ... until it is back

        serves_new = sfn.Condition.string_equals_json_path(
            "$.cleanupEndpoint.EndpointConfigName", "$.plan.endpointConfigName"
        )
        created_here = sfn.Condition.boolean_equals("$.plan.endpointExists", False)
        roll_back: sfn.IChainable = rollback
        if self.instances:
            # SageMaker refuses to change the instance type of a variant registered with
            # Application Auto Scaling: deregister first (re-registered after the cleanup).
            deregister = self._autoscaling(
                "CleanupDeregisterScalableTarget",
                "deregisterScalableTarget",
                self._scalable_target(),
                [],
            )
            deregister.add_catch(rollback, errors=["States.ALL"], result_path="$.cleanupError")
            deregister.next(rollback)
            roll_back = (
                sfn.Choice(self, "CleanupInstanceTypeChanged")
                .when(sfn.Condition.boolean_equals("$.plan.instanceTypeChanged", True), deregister)
                .otherwise(rollback)
            )
        describe.next(
            sfn.Choice(self, "CleanupEndpointState")
            .when(self._busy("$.cleanupEndpoint.EndpointStatus"), wait)
            .when(sfn.Condition.and_(serves_new, created_here), delete_endpoint)
            .when(serves_new, roll_back)
            .otherwise(delete_config)
        )
        return describe

    def _conflict_chain(self, wait_idle: sfn.IChainable) -> sfn.IChainable:
        """SageMaker refused CreateEndpoint/UpdateEndpoint because another change of the
        endpoint is in progress: nothing of this run is in use, so delete the new config and
        model, restore autoscaling if this run deregistered it, and plan again after a wait."""
        s = self.s
        after: sfn.IChainable = wait_idle
        if self.instances:
            register, last = self._autoscaling_chain("Conflict")
            for task in (register, last):
                assert isinstance(task, tasks.CallAwsService)
                task.add_catch(wait_idle, errors=["States.ALL"], result_path="$.autoscalingError")
            last.next(wait_idle)
            after = (
                sfn.Choice(self, "ConflictDeregisteredAutoscaling")
                .when(sfn.Condition.boolean_equals("$.plan.instanceTypeChanged", True), register)
                .otherwise(wait_idle)
            )
        delete_model = self._sagemaker(
            "ConflictDeleteModel",
            "deleteModel",
            {"ModelName.$": "$.plan.modelName"},
            [s.iam.models],
        )
        delete_model.add_catch(after, errors=["States.ALL"], result_path="$.cleanupError")
        delete_model.next(after)
        delete_config = self._sagemaker(
            "ConflictDeleteEndpointConfig",
            "deleteEndpointConfig",
            {"EndpointConfigName.$": "$.plan.endpointConfigName"},
            [s.iam.endpoint_configs],
        )
        delete_config.add_catch(delete_model, errors=["States.ALL"], result_path="$.cleanupError")
        delete_config.next(delete_model)
        return delete_config

    # ----------------------------------------------------------------------------------------
    # Main path

    def _build_main(self) -> sfn.IChainable:
        s = self.s
        plan = self._lambda(
            "Plan",
            s.plan_function,
            {
                "request.$": "$",
                "executionName.$": "$$.Execution.Name",
                "executionArn.$": "$$.Execution.Id",
                "executionStartTime.$": "$$.Execution.StartTime",
                "stateMachineArn.$": "$$.StateMachine.Id",
                "stage": dict(s.plan_stage),
            },
            "$.plan",
        )
        plan_failed = sfn.Fail(self, "PlanFailed", error="PlanFailed", cause_path="$.caught.Cause")
        notify_plan_failed = self._notify(
            "NotifyPlanFailure",
            "model deployment FAILED (plan)",
            {
                "status": "FAILED",
                "failedStep": "Plan",
                "error.$": "$.caught.Error",
                "cause.$": "$.caught.Cause",
            },
        )
        notify_plan_failed.add_catch(
            plan_failed, errors=["States.ALL"], result_path="$.notifyError"
        )
        notify_plan_failed.next(plan_failed)
        plan.add_catch(notify_plan_failed, errors=["States.ALL"], result_path="$.caught")

        skipped = sfn.Fail(
            self, "DeploymentSkipped", error="DeploymentSkipped", cause_path="$.plan.message"
        )
        notify_skipped = self._notify(
            "NotifySkipped",
            "model deployment skipped",
            {
                "status": "SKIPPED",
                "reason.$": "$.plan.code",
                "message.$": "$.plan.message",
                "packageArn.$": "$.plan.packageArn",
            },
        )
        notify_skipped.add_catch(skipped, errors=["States.ALL"], result_path="$.notifyError")
        notify_skipped.next(skipped)

        wait_idle = sfn.Wait(
            self, "WaitForEndpointIdle", time=sfn.WaitTime.duration(s.poll_interval)
        )
        wait_idle.next(plan)
        conflict = self._conflict_chain(wait_idle)

        create_model = self._sagemaker(
            "CreateModel",
            "createModel",
            {
                "ModelName.$": "$.plan.modelName",
                "ExecutionRoleArn": s.execution_role_arn,
                "PrimaryContainer": self._primary_container(),
                "Tags": self._tags(),
            },
            [s.iam.models],
            tagging=True,
            extra=[
                iam.PolicyStatement(
                    actions=["sagemaker:DescribeModelPackage"], resources=[s.iam.model_packages]
                ),
                iam.PolicyStatement(
                    actions=["iam:PassRole"],
                    resources=[s.iam.execution_role],
                    conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                ),
            ],
        )
        self._on_failure(create_model, "CreateModel")

        create_config = self._sagemaker(
            "CreateEndpointConfig",
            "createEndpointConfig",
            self._endpoint_config_parameters(),
            [s.iam.endpoint_configs],
            tagging=True,
            extra=(
                [
                    # kms:GrantIsForAWSResource applies to grant operations only: DescribeKey
                    # under that condition would never be allowed.
                    iam.PolicyStatement(
                        actions=["kms:CreateGrant"],
                        resources=[s.iam.key],
                        conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
                    ),
                    iam.PolicyStatement(actions=["kms:DescribeKey"], resources=[s.iam.key]),
                ]
                if self.instances
                else []
            ),
        )
        self._on_failure(create_config, "CreateEndpointConfig")

        create_endpoint = self._sagemaker(
            "CreateEndpoint",
            "createEndpoint",
            {
                "EndpointName": s.endpoint_name,
                "EndpointConfigName.$": "$.plan.endpointConfigName",
                "Tags": [
                    {"Key": "managed-by", "Value": f"{s.prefix}-deployment-workflow"},
                    self._project_tag(),
                ],
            },
            [s.iam.endpoint, s.iam.endpoint_configs],
            tagging=True,
        )
        self._on_failure(create_endpoint, "CreateEndpoint", conflict)

        update_parameters: dict[str, Any] = {
            "EndpointName": s.endpoint_name,
            "EndpointConfigName.$": "$.plan.endpointConfigName",
        }
        update_extra: list[iam.PolicyStatement] = []
        if self.instances:
            update_parameters["DeploymentConfig"] = {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration.$": "$.plan.trafficRouting",
                    "TerminationWaitInSeconds": s.blue_green_termination_wait.to_seconds(),
                    "MaximumExecutionTimeoutInSeconds": s.blue_green_max_duration.to_seconds(),
                },
                "AutoRollbackConfiguration": {
                    "Alarms": [{"AlarmName": name} for name in s.rollback_alarm_names]
                },
            }
            update_extra.append(
                iam.PolicyStatement(
                    actions=["cloudwatch:DescribeAlarms"], resources=list(s.iam.rollback_alarms)
                )
            )
        update_endpoint = self._sagemaker(
            "UpdateEndpoint",
            "updateEndpoint",
            update_parameters,
            [s.iam.endpoint, s.iam.endpoint_configs],
            extra=update_extra,
        )
        self._on_failure(update_endpoint, "UpdateEndpoint", conflict)

        update_path: sfn.IChainable = update_endpoint
        if self.instances:
            deregister = self._autoscaling(
                "DeregisterScalableTarget", "deregisterScalableTarget", self._scalable_target(), []
            )
            # Nothing registered is fine: the update goes on either way.
            deregister.add_catch(
                update_endpoint, errors=["States.ALL"], result_path="$.deregisterError"
            )
            deregister.next(update_endpoint)
            update_path = (
                sfn.Choice(self, "InstanceTypeChanged")
                .when(sfn.Condition.boolean_equals("$.plan.instanceTypeChanged", True), deregister)
                .otherwise(update_endpoint)
            )

        describe = self._describe_endpoint("DescribeEndpoint", "$.endpoint")
        self._on_failure(describe, "DescribeEndpoint")
        wait = sfn.Wait(self, "WaitForEndpoint", time=sfn.WaitTime.duration(s.poll_interval))
        wait.next(describe)
        create_endpoint.next(describe)
        update_endpoint.next(describe)

        def endpoint_failure(id_: str, cause: str) -> sfn.Pass:
            record = sfn.Pass(
                self,
                id_,
                parameters={
                    "step": "WaitForEndpoint",
                    "error": "EndpointFailed",
                    "cause.$": cause,
                    "rollback": "not needed",
                },
                result_path="$.failure",
            )
            record.next(self._failure_chain)
            return record

        failed_with_reason = endpoint_failure(
            "RecordEndpointFailure",
            "States.Format('endpoint {} is {}: {}', $.endpoint.EndpointName, "
            "$.endpoint.EndpointStatus, $.endpoint.FailureReason)",
        )
        failed_without_reason = endpoint_failure(
            "RecordEndpointFailureNoReason",
            "States.Format('endpoint {} is {}', $.endpoint.EndpointName, "
            "$.endpoint.EndpointStatus)",
        )
        rolled_back = sfn.Pass(
            self,
            "RecordRolledBack",
            parameters={
                "step": "VerifyEndpointConfig",
                "error": "DeploymentRolledBack",
                "cause.$": (
                    "States.Format('endpoint serves {} instead of {}: SageMaker rolled the update "
                    "back (an alarm fired or the new fleet failed its health checks)', "
                    "$.endpoint.EndpointConfigName, $.plan.endpointConfigName)"
                ),
                "rollback": "done by SageMaker",
            },
            result_path="$.failure",
        )
        rolled_back.next(self._failure_chain)

        smoke_test = self._lambda(
            "SmokeTest",
            s.smoke_test_function,
            {
                "endpointName": s.endpoint_name,
                "csvRow": s.smoke_test_row,
                "featureCount": s.feature_count,
            },
            "$.smokeTest",
        )
        self._on_failure(smoke_test, "SmokeTest")

        verify = (
            sfn.Choice(self, "ServesNewConfig")
            .when(
                sfn.Condition.string_equals_json_path(
                    "$.endpoint.EndpointConfigName", "$.plan.endpointConfigName"
                ),
                smoke_test,
            )
            .otherwise(rolled_back)
        )
        describe.next(
            sfn.Choice(self, "EndpointStatus")
            .when(sfn.Condition.string_equals("$.endpoint.EndpointStatus", "InService"), verify)
            .when(self._busy("$.endpoint.EndpointStatus"), wait)
            .when(sfn.Condition.is_present("$.endpoint.FailureReason"), failed_with_reason)
            .otherwise(failed_without_reason)
        )

        tag = self._sagemaker(
            "TagEndpoint",
            "addTags",
            {
                "ResourceArn": s.endpoint_arn,
                "Tags": [
                    *self._tags(),
                    {
                        "Key": VERSION_TAG,
                        "Value.$": "States.Format('{}', $.plan.packageVersion)",
                    },
                    {"Key": EVENT_TIME_TAG, "Value.$": "$.plan.eventTime"},
                    {"Key": DEPLOYED_AT_TAG, "Value.$": "$$.State.EnteredTime"},
                ],
            },
            [s.iam.endpoint],
        )
        self._on_failure(tag, "TagEndpoint")
        if self.instances:
            scaling, scaling_last = self._autoscaling_chain("")
            for task in (scaling, scaling_last):
                assert isinstance(task, tasks.CallAwsService)
                self._on_failure(task, task.node.id)
            smoke_test.next(scaling)
            scaling_last.next(tag)
        else:
            smoke_test.next(tag)

        notify_success = self._notify(
            "NotifySuccess",
            "model deployed",
            {
                "status": "SUCCEEDED",
                "packageArn.$": "$.plan.packageArn",
                "packageVersion.$": "$.plan.packageVersion",
                "endpointConfigName.$": "$.plan.endpointConfigName",
                "smokeTest.$": "$.smokeTest",
            },
        )
        # The execution's output: what was deployed (not the raw API responses).
        done = sfn.Pass(
            self,
            "Deployed",
            parameters={
                "status": "SUCCEEDED",
                "packageArn.$": "$.plan.packageArn",
                "packageVersion.$": "$.plan.packageVersion",
                "endpointName.$": "$.plan.endpointName",
                "endpointConfigName.$": "$.plan.endpointConfigName",
                "smokeTest.$": "$.smokeTest",
            },
        )
        # The deployment is done: a failed notification must not roll it back.
        notify_success.add_catch(done, errors=["States.ALL"], result_path="$.notifyError")
        tag.next(notify_success).next(done)

        create_model.next(create_config)
        create_config.next(
            sfn.Choice(self, "EndpointExists")
            .when(sfn.Condition.boolean_equals("$.plan.endpointExists", True), update_path)
            .otherwise(create_endpoint)
        )

        route = (
            sfn.Choice(self, "Route")
            .when(sfn.Condition.string_equals("$.plan.action", "deploy"), create_model)
            .when(
                sfn.Condition.string_equals("$.plan.action", "noop"),
                sfn.Succeed(self, "NothingToDo"),
            )
            .when(sfn.Condition.string_equals("$.plan.action", "wait"), wait_idle)
            .otherwise(notify_skipped)
        )
        plan.next(route)
        return plan

    def _primary_container(self) -> dict[str, Any]:
        """The approved package; on serverless endpoints, the handler's capture settings too;
        with an online feature store, its name and region."""
        container: dict[str, Any] = {"ModelPackageName.$": "$.plan.packageArn"}
        environment: dict[str, str] = {}
        if self.s.online_feature_group is not None:
            environment[online_features.ENV_FEATURE_GROUP] = self.s.online_feature_group
            environment[online_features.ENV_REGION] = cdk.Stack.of(self).region
        if environment:
            container["Environment"] = environment
        if isinstance(self.s.sizing, ServerlessEndpoint):
            container["Environment"] = environment | {
                data_capture.ENV_S3_URI: self.s.data_capture_uri,
                data_capture.ENV_ENDPOINT: self.s.endpoint_name,
                data_capture.ENV_VARIANT: VARIANT_NAME,
                data_capture.ENV_SAMPLING: str(CAPTURE_SAMPLING_PERCENT),
                data_capture.ENV_KMS_KEY: self.s.key_arn,
                data_capture.ENV_REGION: cdk.Stack.of(self).region,
            }
        return container

    def _endpoint_config_parameters(self) -> dict[str, Any]:
        s = self.s
        sizing = s.sizing
        variant: dict[str, Any] = {"VariantName": VARIANT_NAME, "ModelName.$": "$.plan.modelName"}
        parameters: dict[str, Any] = {
            "EndpointConfigName.$": "$.plan.endpointConfigName",
            "ProductionVariants": [variant],
            "Tags": self._tags(),
        }
        if isinstance(sizing, ServerlessEndpoint):
            # Serverless endpoints support neither data capture nor a storage-volume KMS key:
            # the inference handler captures (CreateModel's Environment, _primary_container).
            variant["ServerlessConfig"] = {
                "MemorySizeInMB": sizing.memory_mb,
                "MaxConcurrency": sizing.max_concurrency,
            }
            return parameters
        variant.update(
            {
                "InstanceType": sizing.instance_type,
                "InitialInstanceCount.$": "$.plan.initialInstanceCount",
                "InitialVariantWeight": 1,
            }
        )
        parameters["KmsKeyId"] = s.key_arn
        parameters["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": CAPTURE_SAMPLING_PERCENT,
            "DestinationS3Uri": s.data_capture_uri,
            "KmsKeyId": s.key_arn,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {
                "CsvContentTypes": ["text/csv"],
                "JsonContentTypes": ["application/json"],
            },
        }
        return parameters
