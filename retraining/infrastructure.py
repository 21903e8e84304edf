"""Retraining for one stage (issue 9, item 3).

::

    CloudWatch alarms (this stage's endpoint)            EventBridge Scheduler (cron/rate, UTC)
      drift: ShareOfDriftedFeatures >= threshold               | input {"reason": "schedule"}
      5xx:   Invocation5XXErrors (5 min sum) >= threshold      |
      p99:   ModelLatency p99 > threshold ms (3 x 5 min)       |
        | "CloudWatch Alarm State Change" -> ALARM,            |
        | these alarms' ARNs only (EventBridge rule)           |
        v input {"reason": "alarm", "alarm": {...}}            v
    Step Functions "retrain": Gate (Lambda: another trigger first? pipeline Executing? within the
      cool-down?) -> StartPipelineExecution (InputDataUrl = the latest curated data,
      InputDataVersion = retrain-<execution name>, TriggerReason, display name + description
      carrying the reason) -> Started | Skipped (why) -> SNS (when a topic is given)

The gate is a Lambda (``lambdas/retrain_gate``): the cool-down is timestamp arithmetic that
JSONPath intrinsics cannot do, and the strings must be cut to SageMaker's patterns. Everything
else is SDK integrations. Exposes ``alarms`` (drift, 5xx, latency; none with ``alarms=False``),
``rule`` (None without alarms), ``schedule`` (None without a configured schedule),
``state_machine``, ``gate_function``.
"""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.compliance import acknowledge, acknowledge_basic_execution_role, skip_checkov
from infra.config import RetrainingConfig
from infra.lambda_runtime import LAMBDA_RUNTIME
from infra.log_retention import encrypted_log_group
from infra.naming import EVENT_RULE_MAX, STATE_MACHINE_MAX, Naming
from infra.service_roles import role_for_source
from infra.state_machines import acknowledge_log_delivery, logged_state_machine, logical_id
from monitoring.drift.metrics import (
    DEFAULT_NAMESPACE,
    ENDPOINT_DIMENSION,
    SHARE_OF_DRIFTED_FEATURES,
)
from pipelines.model_build.contract import PARAM_INPUT_DATA_VERSION
from pipelines.model_build.definition import PARAM_INPUT_DATA, PARAM_TRIGGER_REASON

LAMBDAS_DIR = Path(__file__).resolve().parent.parent / "lambdas"
#: The production variant every deployment of this project creates (deployment/workflow.py).
VARIANT_NAME = "AllTraffic"
SAGEMAKER_NAMESPACE = "AWS/SageMaker"
ALARM_DETAIL_TYPE = "CloudWatch Alarm State Change"
#: Drift datapoints arrive once per drift-job run: an hour's maximum, missing hours not breaching
#: (the alarm returns to OK after a clean run or an hour without data, and a later drifted run
#: alarms again).
DRIFT_PERIOD = cdk.Duration.hours(1)
ENDPOINT_PERIOD = cdk.Duration.minutes(5)
LATENCY_EVALUATION_PERIODS = 3
WORKFLOW_TIMEOUT = cdk.Duration.minutes(15)


class Retraining(Construct):
    """Alarms, rule, schedule and the debounced retraining workflow of one stage."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        naming: Naming,
        settings: RetrainingConfig,
        pipeline_name: str,
        input_data_url: str,
        key: kms.IKey,
        log_retention_days: int,
        removal_policy: cdk.RemovalPolicy,
        topic: sns.ITopic | None = None,
        dead_letter_queue: sqs.IQueue | None = None,
        drift_namespace: str = DEFAULT_NAMESPACE,
        alarms: bool = True,
    ) -> None:
        super().__init__(scope, id_)
        stack = cdk.Stack.of(self)
        self._naming = naming
        pipeline_arn = stack.format_arn(
            service="sagemaker", resource="pipeline", resource_name=pipeline_name
        )

        # --- Alarms (none when ``alarms`` is off: cost_controls.alarms, README "Cost").
        self.alarms: tuple[cloudwatch.Alarm, ...] = ()
        alarm_arns: list[str] = []
        if alarms:
            self.alarms, alarm_arns = self._alarms(naming, settings, drift_namespace)
        # --- The gate Lambda (reads only).
        state_machine_name = naming.resource("retrain", STATE_MACHINE_MAX)
        state_machine_arn = stack.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=state_machine_name,
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        function_name = naming.resource("retrain-gate", 64)
        self.gate_function = lambda_.Function(
            self,
            "GateFunction",
            function_name=function_name,
            description=(
                f"{naming.prefix}: may a retraining trigger start {pipeline_name} now "
                "(debounce, cool-down)? Reads only."
            ),
            runtime=LAMBDA_RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler="handler.handler",
            code=lambda_.Code.from_asset(
                str(LAMBDAS_DIR / "retrain_gate"),
                exclude=["__pycache__", "*.pyc", "requirements.txt"],
            ),
            memory_size=256,
            timeout=cdk.Duration.seconds(60),
            tracing=lambda_.Tracing.ACTIVE,
            log_group=encrypted_log_group(
                self,
                "GateLogs",
                name=f"/aws/lambda/{function_name}",
                key=key,
                retention_days=log_retention_days,
                removal_policy=removal_policy,
            ),
        )
        self.gate_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:ListPipelineExecutions"], resources=[pipeline_arn]
            )
        )
        self.gate_function.add_to_role_policy(
            iam.PolicyStatement(actions=["states:ListExecutions"], resources=[state_machine_arn])
        )
        self._acknowledge_function(self.gate_function)

        # --- The workflow.
        gate = tasks.LambdaInvoke(
            self,
            "Gate",
            comment="Debounce: another trigger first, pipeline running, or cool-down -> no start",
            lambda_function=self.gate_function,
            payload=sfn.TaskInput.from_object(
                {
                    "trigger": sfn.JsonPath.entire_payload,
                    "pipelineName": pipeline_name,
                    "cooldownMinutes": settings.cooldown_minutes,
                    "stateMachineArn": sfn.JsonPath.string_at("$$.StateMachine.Id"),
                    "executionArn": sfn.JsonPath.string_at("$$.Execution.Id"),
                    "executionName": sfn.JsonPath.string_at("$$.Execution.Name"),
                    "executionStartTime": sfn.JsonPath.string_at("$$.Execution.StartTime"),
                }
            ),
            payload_response_only=True,
            result_path="$.gate",
            retry_on_service_exceptions=True,
        )
        start = tasks.CallAwsService(
            self,
            "StartPipelineExecution",
            comment="Starts the model-build pipeline on the latest curated data",
            service="sagemaker",
            action="startPipelineExecution",
            parameters={
                "PipelineName": pipeline_name,
                "PipelineExecutionDisplayName": sfn.JsonPath.string_at("$.gate.displayName"),
                "PipelineExecutionDescription": sfn.JsonPath.string_at("$.gate.description"),
                "ClientRequestToken": sfn.JsonPath.string_at("$.gate.clientRequestToken"),
                "PipelineParameters": [
                    {"Name": PARAM_INPUT_DATA, "Value": input_data_url},
                    {
                        "Name": PARAM_INPUT_DATA_VERSION,
                        "Value": sfn.JsonPath.string_at("$.gate.dataVersion"),
                    },
                    {
                        "Name": PARAM_TRIGGER_REASON,
                        "Value": sfn.JsonPath.string_at("$.gate.triggerReason"),
                    },
                ],
            },
            iam_resources=[pipeline_arn],
            iam_action="sagemaker:StartPipelineExecution",
            result_selector={
                "pipelineExecutionArn": sfn.JsonPath.string_at("$.PipelineExecutionArn")
            },
            result_path="$.pipeline",
        )
        # Throttling, ResourceLimitExceeded (too many running executions), service faults: the
        # idempotency token makes a retried start return the same execution, never a second.
        start.add_retry(
            errors=["States.TaskFailed"],
            interval=cdk.Duration.seconds(5),
            max_attempts=3,
            backoff_rate=2,
        )
        started = sfn.Pass(
            self,
            "Started",
            parameters={
                "started": True,
                "why": sfn.JsonPath.string_at("$.gate.why"),
                "pipelineExecutionArn": sfn.JsonPath.string_at("$.pipeline.pipelineExecutionArn"),
                "displayName": sfn.JsonPath.string_at("$.gate.displayName"),
                "inputDataVersion": sfn.JsonPath.string_at("$.gate.dataVersion"),
                "triggerReason": sfn.JsonPath.string_at("$.gate.triggerReason"),
            },
        )
        skipped = sfn.Pass(
            self,
            "Skipped",
            comment="Not started (another trigger first, pipeline running, or cool-down)",
            parameters={
                "started": False,
                "why": sfn.JsonPath.string_at("$.gate.why"),
                "triggerReason": sfn.JsonPath.string_at("$.gate.triggerReason"),
            },
        )
        done = sfn.Succeed(self, "Done")
        after_started: sfn.IChainable = started
        after_skipped: sfn.IChainable = skipped
        if topic is not None:
            subject = f"{naming.prefix} retraining"
            started.next(
                tasks.SnsPublish(
                    self,
                    "NotifyStarted",
                    topic=topic,
                    subject=f"{subject} started",
                    message=sfn.TaskInput.from_json_path_at("$"),
                    result_path=sfn.JsonPath.DISCARD,
                ).next(done)
            )
            skipped.next(
                tasks.SnsPublish(
                    self,
                    "NotifySkipped",
                    topic=topic,
                    subject=f"{subject} skipped",
                    message=sfn.TaskInput.from_json_path_at("$"),
                    result_path=sfn.JsonPath.DISCARD,
                ).next(done)
            )
        else:
            started.next(done)
            skipped.next(done)
        definition = gate.next(
            sfn.Choice(self, "ShouldStart")
            .when(sfn.Condition.boolean_equals("$.gate.start", True), start.next(after_started))
            .otherwise(after_skipped)
        )
        self.state_machine = logged_state_machine(
            self,
            name=state_machine_name,
            comment=f"{naming.prefix}: debounced retraining of {pipeline_name}",
            definition=definition,
            timeout=WORKFLOW_TIMEOUT,
            key=key,
            log_retention_days=log_retention_days,
            removal_policy=removal_policy,
        )
        if topic is not None:
            topic.grant_publish(self.state_machine)
            acknowledge(
                self.state_machine.role,
                "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
                "Action group emitted by CDK's Topic.grant_publish for the topic's own key only.",
            )
        self._acknowledge_state_machine_role()

        # --- Alarm state changes -> the workflow.
        self.rule: events.Rule | None = None
        if alarms:
            self.rule = self._alarm_rule(naming, alarm_arns, dead_letter_queue)

        # --- Scheduled retraining.
        self.schedule: scheduler.CfnSchedule | None = None
        if settings.schedule is not None:
            schedule_name = naming.resource("retrain-schedule", 64)
            schedule_arn = stack.format_arn(
                service="scheduler",
                resource="schedule",
                resource_name=f"default/{schedule_name}",
            )
            schedule_role = role_for_source(
                self,
                "ScheduleRole",
                service="scheduler.amazonaws.com",
                source_arn=schedule_arn,
                description=f"{naming.prefix}: EventBridge Scheduler starts scheduled retraining",
            )
            self.state_machine.grant_start_execution(schedule_role)
            self._acknowledge_inline(schedule_role, "states:StartExecution on the workflow")
            self.schedule = scheduler.CfnSchedule(
                self,
                "Schedule",
                name=schedule_name,
                description=f"{naming.prefix}: scheduled retraining ({settings.schedule} UTC)",
                schedule_expression=settings.schedule,
                schedule_expression_timezone="UTC",
                flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
                state="ENABLED",
                target=scheduler.CfnSchedule.TargetProperty(
                    arn=self.state_machine.state_machine_arn,
                    role_arn=schedule_role.role_arn,
                    input=json.dumps({"reason": "schedule"}),
                    retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                        maximum_event_age_in_seconds=3600, maximum_retry_attempts=8
                    ),
                ),
            )

    # ----------------------------------------------------------------------------------------

    def _alarms(
        self, naming: Naming, settings: RetrainingConfig, drift_namespace: str
    ) -> tuple[tuple[cloudwatch.Alarm, ...], list[str]]:
        """The three alarms (drift, 5xx, p99 latency) and their ARNs."""
        stack = cdk.Stack.of(self)
        endpoint = naming.endpoint
        names = {
            "drift": naming.resource("retrain-drift", 255),
            "5xx": naming.resource("retrain-endpoint-5xx", 255),
            "latency": naming.resource("retrain-endpoint-p99", 255),
        }
        endpoint_dimensions = {"EndpointName": endpoint, "VariantName": VARIANT_NAME}

        def alarm(
            id_: str,
            name: str,
            description: str,
            metric: cloudwatch.Metric,
            threshold: float,
            *,
            periods: int = 1,
            datapoints: int | None = None,
            comparison: cloudwatch.ComparisonOperator = (
                cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
            ),
        ) -> cloudwatch.Alarm:
            """An alarm without action (EventBridge routes its ALARM state to the workflow)."""
            created = cloudwatch.Alarm(
                self,
                id_,
                alarm_name=names[name],
                alarm_description=f"{endpoint}: {description}; starts retraining",
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                datapoints_to_alarm=datapoints,
                comparison_operator=comparison,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            acknowledge(
                created,
                "NIST.800.53.R5-CloudWatchAlarmAction",
                "No alarm action on purpose: EventBridge receives every state change of this "
                "alarm by itself; the retraining rule routes ALARM to the workflow, which reports "
                "each start or skip to the operations topic.",
            )
            return created

        def endpoint_metric(metric_name: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=SAGEMAKER_NAMESPACE,
                metric_name=metric_name,
                dimensions_map=endpoint_dimensions,
                statistic=statistic,
                period=ENDPOINT_PERIOD,
            )

        alarms = (
            alarm(
                "DriftAlarm",
                "drift",
                f"share of drifted features >= {settings.drift_share_threshold} (drift job)",
                cloudwatch.Metric(
                    namespace=drift_namespace,
                    metric_name=SHARE_OF_DRIFTED_FEATURES,
                    dimensions_map={ENDPOINT_DIMENSION: endpoint},
                    statistic="Maximum",
                    period=DRIFT_PERIOD,
                ),
                settings.drift_share_threshold,
            ),
            alarm(
                "Endpoint5xxAlarm",
                "5xx",
                f">= {settings.errors_5xx_threshold} model 5xx errors in 5 minutes",
                endpoint_metric("Invocation5XXErrors", "Sum"),
                settings.errors_5xx_threshold,
            ),
            alarm(
                "EndpointLatencyAlarm",
                "latency",
                f"ModelLatency p99 above {settings.latency_p99_ms} ms for 15 minutes",
                endpoint_metric("ModelLatency", "p99"),  # microseconds
                settings.latency_p99_ms * 1000,
                periods=LATENCY_EVALUATION_PERIODS,
                datapoints=LATENCY_EVALUATION_PERIODS,
                comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            ),
        )
        # ARNs from the fixed names (what the alarm-state events carry in ``resources``).
        alarm_arns = [
            stack.format_arn(
                service="cloudwatch",
                resource="alarm",
                resource_name=name,
                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
            )
            for name in names.values()
        ]
        return alarms, alarm_arns

    def _alarm_rule(
        self, naming: Naming, alarm_arns: list[str], dead_letter_queue: sqs.IQueue | None
    ) -> events.Rule:
        """Alarm state changes (ALARM) of ``alarm_arns`` -> the workflow."""
        stack = cdk.Stack.of(self)
        rule_name = naming.resource("retrain-on-alarm", EVENT_RULE_MAX)
        rule_arn = stack.format_arn(service="events", resource="rule", resource_name=rule_name)
        rule = events.Rule(
            self,
            "AlarmRule",
            rule_name=rule_name,
            description=f"{naming.prefix}: a retraining alarm went to ALARM -> retrain",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=[ALARM_DETAIL_TYPE],
                resources=alarm_arns,
                detail={"state": {"value": ["ALARM"]}},
            ),
        )
        rule_role = role_for_source(
            self,
            "AlarmRuleRole",
            service="events.amazonaws.com",
            source_arn=rule_arn,
            description=f"{naming.prefix}: EventBridge starts the retraining workflow on alarms",
        )
        rule.add_target(
            targets.SfnStateMachine(
                self.state_machine,
                role=rule_role,
                retry_attempts=8,
                max_event_age=cdk.Duration.hours(2),
                dead_letter_queue=dead_letter_queue,
                input=events.RuleTargetInput.from_object(
                    {
                        "reason": "alarm",
                        "alarm": {
                            "name": events.EventField.from_path("$.detail.alarmName"),
                            "reason": events.EventField.from_path("$.detail.state.reason"),
                            "time": events.EventField.from_path("$.time"),
                        },
                    }
                ),
            )
        )
        self._acknowledge_inline(rule_role, "states:StartExecution on the retraining workflow")
        if dead_letter_queue is None:
            acknowledge(
                rule,
                "Serverless-EventBusDLQ",
                "EventBridge retries the start 8 times over 2 hours; a trigger still lost leaves "
                "the alarm in ALARM with its history, and the scheduled retraining and the next "
                "drift run are the backstop (the operations stack passes its dead-letter queue).",
            )
        return rule

    def _acknowledge_inline(self, role: iam.IRole, what: str) -> None:
        acknowledge(
            role,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            f"CDK writes the role's single statement ({what}) into its own policy; a managed "
            "policy would be attached to this one role only.",
        )

    def _acknowledge_function(self, function: lambda_.Function) -> None:
        role = function.role
        assert role is not None
        acknowledge_basic_execution_role(role)
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments/PutTelemetryRecords do not support resource-level "
            "permissions (active tracing).",
        )
        self._acknowledge_inline(role, "list this pipeline's and this workflow's executions")
        acknowledge(
            function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "The function only calls AWS APIs (SageMaker, Step Functions) over TLS with IAM "
            "auth; it reaches no resource in a VPC.",
        )
        acknowledge(
            function,
            "NIST.800.53.R5-LambdaConcurrency",
            "Invoked synchronously by the retraining workflow, a few times per alarm or "
            "schedule; new accounts (limit 10) cannot reserve capacity.",
        )
        for finding in ("NIST.800.53.R5-LambdaDLQ", "Serverless-LambdaDLQ"):
            acknowledge(
                function,
                finding,
                "Invoked synchronously by Step Functions, which gets the error back and fails "
                "the execution; a dead-letter queue only receives failed asynchronous invocations.",
            )
        skip_checkov(
            function,
            "CKV_AWS_116",
            "Invoked synchronously by Step Functions, which gets the error back; a dead-letter "
            "queue only receives failed asynchronous invocations.",
        )

    def _acknowledge_state_machine_role(self) -> None:
        role = self.state_machine.role
        acknowledge_log_delivery(role)
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::<{logical_id(self.gate_function)}.Arn>:*]",
            "CDK's LambdaInvoke grants the function and its versions/aliases (ARN:*); only this "
            "stage's retraining gate.",
        )
        self._acknowledge_inline(role, "invoke the gate, start this pipeline, publish")
