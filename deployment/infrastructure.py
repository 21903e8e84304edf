"""Approval-driven model deployment for one stage (GitHub issue 4).

``SageMaker Model Package State Change`` (this stage's group, ``Approved``) --EventBridge rule,
retries + DLQ--> trigger Lambda (idempotent start, one execution per package change) --> the
deployment state machine (:mod:`deployment.workflow`) --> SNS.

Resources: the rule, three Lambdas (trigger, plan, smoke test) on the AWS-managed Powertools
layer, the state machine (logging ALL to a KMS-encrypted log group, X-Ray), the SageMaker
execution role of the deployed models, CloudWatch alarms (5xx, model latency) that drive the
blue/green auto-rollback, a DLQ (with an alarm) and the notification topic. Endpoints, endpoint
configs and models are created at run time by the workflow, never by CloudFormation: a stage
deploys fine before any model is approved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct, IConstruct

from deployment.workflow import DeploymentWorkflow, WorkflowIam, WorkflowSettings
from infra.compliance import acknowledge
from infra.config import InstanceEndpoint, ServerlessEndpoint
from infra.naming import EVENT_RULE_MAX, SNS_MAX, SQS_MAX, STATE_MACHINE_MAX, Naming
from infra.service_roles import role_for_source

LAMBDAS_DIR = Path(__file__).resolve().parent.parent / "lambdas"
DATA_CAPTURE_PREFIX = "data-capture/"
PROMOTED_MODELS_PREFIX = "promoted-models/"  # == deployment.promote.PROMOTED_PREFIX

EVENT_SOURCE = "aws.sagemaker"
EVENT_DETAIL_TYPE = "SageMaker Model Package State Change"

#: AWS-managed Powertools for AWS Lambda (Python) v3 layer (account 017000801446). The layer
#: version is pinned (reproducible synth); the handlers use only Powertools v3 APIs that the
#: dev pin (requirements-dev.txt) also has. Check/bump with
#: ``aws lambda list-layer-versions --layer-name arn:aws:lambda:<region>:017000801446:layer:``
#: ``AWSLambdaPowertoolsPythonV3-python314-x86_64``.
POWERTOOLS_LAYER_ACCOUNT = "017000801446"
# 27 is the newest V3 layer version public references show (mid-2026); a version that does not
# exist fails the deploy, an older one only lacks newer Powertools features (none used here).
POWERTOOLS_LAYER_VERSION = 27
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14
POWERTOOLS_PYTHON = "python314"

DEFAULT_SHIFT_WAIT = cdk.Duration.minutes(10)
DEFAULT_MAX_MODEL_LATENCY = cdk.Duration.seconds(1)
DEFAULT_POLL_INTERVAL = cdk.Duration.seconds(30)
DEFAULT_WORKFLOW_TIMEOUT = cdk.Duration.hours(3)

#: Features of the breast-cancer model (raw columns, target excluded).
FEATURE_COUNT = 30
#: A sample row (the first one of the bundled dataset) when the dataset file is not available.
DEFAULT_SMOKE_TEST_ROW = (
    "17.99,10.38,122.8,1001.0,0.1184,0.2776,0.3001,0.1471,0.2419,0.07871,1.095,0.9053,8.589,"
    "153.4,0.006399,0.04904,0.05373,0.01587,0.03003,0.006193,25.38,17.33,184.6,2019.0,0.1622,"
    "0.6656,0.7119,0.2654,0.4601,0.1189"
)


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
class RollbackAlarms:
    """Thresholds of the alarms that roll a blue/green update back."""

    max_5xx_per_minute: int = 1
    #: ModelLatency p90 above this for 2 of 3 minutes.
    max_model_latency: cdk.Duration = DEFAULT_MAX_MODEL_LATENCY


class ModelDeployment(Construct):
    """Deploys each approved model version of one stage to its endpoint, safely, once, visibly.

    Exposes ``state_machine``, ``rule``, ``topic``, ``dead_letter_queue``, ``execution_role``,
    ``trigger_function``, ``plan_function``, ``smoke_test_function``, ``alarms``,
    ``notifications_key``.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        naming: Naming,
        endpoint_sizing: ServerlessEndpoint | InstanceEndpoint,
        key: kms.IKey,
        artifacts_bucket: s3.IBucket,
        model_package_group_name: str,
        require_promotion: bool,
        log_retention_days: int,
        removal_policy: cdk.RemovalPolicy,
        smoke_test_row: str = DEFAULT_SMOKE_TEST_ROW,
        feature_count: int = FEATURE_COUNT,
        model_artifact_keys: Sequence[str],
        traffic_shifting: TrafficShifting | None = None,
        rollback_alarms: RollbackAlarms | None = None,
        poll_interval: cdk.Duration = DEFAULT_POLL_INTERVAL,
        workflow_timeout: cdk.Duration = DEFAULT_WORKFLOW_TIMEOUT,
        image_repositories: Sequence[str] = ("sagemaker-xgboost",),
        powertools_layer_version: int = POWERTOOLS_LAYER_VERSION,
    ) -> None:
        super().__init__(scope, id_)
        stack = cdk.Stack.of(self)
        if len(smoke_test_row.split(",")) != feature_count:
            raise ValueError(
                f"smoke_test_row has {len(smoke_test_row.split(','))} values, "
                f"expected {feature_count}"
            )
        traffic_shifting = traffic_shifting or TrafficShifting()
        rollback_alarms = rollback_alarms or RollbackAlarms()
        self._naming = naming
        self._stack = stack
        self._removal_policy = removal_policy
        self._log_retention_days = log_retention_days
        self._key = key

        endpoint_name = naming.endpoint
        resource_prefix = naming.resource("deploy", 40)  # model/config names: <prefix>-v<n>-<id>
        endpoint_arn = self._sagemaker_arn("endpoint", endpoint_name)

        # --- Notifications: topic + DLQ, with their own key (EventBridge and CloudWatch alarms
        # need key-policy access, which the stage's data key does not give them).
        self.notifications_key = kms.Key(
            self,
            "NotificationsKey",
            description=f"{naming.prefix}: model deployment notifications and dead letters",
            enable_key_rotation=True,
            pending_window=cdk.Duration.days(7),
            removal_policy=removal_policy,
        )
        alarm_arns_pattern = stack.format_arn(
            service="cloudwatch",
            resource="alarm",
            resource_name=f"{naming.prefix}-*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        # CloudWatch alarm actions publish to the SSE-KMS topic: AWS's documented key grant,
        # limited to this stage's alarms in this account (confused-deputy conditions).
        self.notifications_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToUseTheKey",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": alarm_arns_pattern},
                },
            )
        )
        # EventBridge sends undeliverable approval events to the SSE-KMS dead-letter queue and
        # publishes timed-out/aborted executions to the SSE-KMS topic: documented grant, limited
        # to this stage's two rules (names are fixed, so no reference cycle) in this account.
        approval_rule_name = naming.resource("deploy-on-approval", EVENT_RULE_MAX)
        ended_rule_name = naming.resource("deploy-ended-abnormally", EVENT_RULE_MAX)
        rule_arns = [
            stack.format_arn(service="events", resource="rule", resource_name=name)
            for name in (approval_rule_name, ended_rule_name)
        ]
        self.notifications_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowEventBridgeToUseTheKey",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnEquals": {"aws:SourceArn": rule_arns},
                },
            )
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=naming.resource("deployments", SNS_MAX),
            display_name=f"{naming.prefix} model deployments",
            master_key=self.notifications_key,
            enforce_ssl=True,
        )
        # A topic policy replaces SNS's default one: alarms of this stage must be let in again.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowThisStageAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": alarm_arns_pattern},
                },
            )
        )
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            queue_name=naming.resource("deploy-trigger-dlq", SQS_MAX),
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.notifications_key,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
            removal_policy=removal_policy,
        )
        acknowledge(
            self.dead_letter_queue,
            "Serverless-SQSRedrivePolicy",
            "This queue is the dead-letter queue; a redrive policy on it would need yet another "
            "queue. Its messages are kept 14 days and alarmed on.",
        )

        # --- Alarms: blue/green auto-rollback on the endpoint, and dead letters.
        dimensions = {"EndpointName": endpoint_name, "VariantName": "AllTraffic"}
        rollback_alarm_names = [
            naming.resource("endpoint-5xx", 255),
            naming.resource("endpoint-latency", 255),
        ]
        alarm_5xx = cloudwatch.Alarm(
            self,
            "Endpoint5xxAlarm",
            alarm_name=rollback_alarm_names[0],
            alarm_description=f"{endpoint_name}: model 5xx errors (rolls a blue/green update back)",
            metric=cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name="Invocation5XXErrors",
                dimensions_map=dimensions,
                statistic="Sum",
                period=cdk.Duration.minutes(1),
            ),
            threshold=rollback_alarms.max_5xx_per_minute,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm_latency = cloudwatch.Alarm(
            self,
            "EndpointLatencyAlarm",
            alarm_name=rollback_alarm_names[1],
            alarm_description=(
                f"{endpoint_name}: ModelLatency p90 above "
                f"{rollback_alarms.max_model_latency.to_milliseconds()} ms "
                "(rolls a blue/green update back)"
            ),
            metric=cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name="ModelLatency",  # microseconds
                dimensions_map=dimensions,
                statistic="p90",
                period=cdk.Duration.minutes(1),
            ),
            threshold=rollback_alarms.max_model_latency.to_milliseconds() * 1000,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm_dlq = cloudwatch.Alarm(
            self,
            "DeadLetterAlarm",
            alarm_name=naming.resource("deploy-dead-letters", 255),
            alarm_description="An approval event or a deployment Lambda invocation failed for good",
            metric=self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=cdk.Duration.minutes(5), statistic="Maximum"
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.alarms = (alarm_5xx, alarm_latency, alarm_dlq)
        for alarm in self.alarms:
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.topic))

        # --- The SageMaker execution role of the deployed models.
        self.execution_role = iam.Role(
            self,
            "ModelExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"{naming.prefix}: SageMaker models deployed by the deployment workflow",
        )
        # SageMaker downloads the model.tar.gz of the version it serves (GetObject, decrypted
        # with the stage key): those keys only, never the rest of the bucket.
        if not model_artifact_keys:
            raise ValueError("model_artifact_keys: at least one key pattern of model.tar.gz")
        artifact_patterns = list(model_artifact_keys)
        self.execution_role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[artifacts_bucket.arn_for_objects(p) for p in artifact_patterns],
            )
        )
        artifacts_bucket.grant_put(self.execution_role, f"{DATA_CAPTURE_PREFIX}*")
        if isinstance(endpoint_sizing, InstanceEndpoint):
            # Blue/green auto-rollback: SageMaker reads the alarms with the model's role.
            self.execution_role.add_to_policy(
                iam.PolicyStatement(
                    actions=["cloudwatch:DescribeAlarms"],
                    resources=[alarm_5xx.alarm_arn, alarm_latency.alarm_arn],
                )
            )
        key.grant_encrypt_decrypt(self.execution_role)
        endpoint_logs_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"/aws/sagemaker/Endpoints/{endpoint_name}:*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        self.execution_role.add_to_policy(
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
        self.execution_role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
                resources=image_repository_arns,
            )
        )
        self.execution_role.add_to_policy(
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"])
        )
        bucket_logical_id = self._logical_id(artifacts_bucket)
        execution_acks = [
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
        for finding, reason in execution_acks:
            acknowledge(self.execution_role, finding, reason)
        self._acknowledge_grant_actions(self.execution_role)

        # --- Lambdas.
        layer = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "PowertoolsLayer",
            f"arn:{stack.partition}:lambda:{stack.region}:{POWERTOOLS_LAYER_ACCOUNT}:layer:"
            f"AWSLambdaPowertoolsPythonV3-{POWERTOOLS_PYTHON}-x86_64:{powertools_layer_version}",
        )
        self.plan_function = self._function(
            "PlanFunction",
            "deploy_plan",
            "deploy-plan",
            "Plans one deployment: resolves the package, guards, idempotency (changes nothing)",
            layer,
            timeout=cdk.Duration.seconds(60),
        )
        package_arns = self._sagemaker_arn("model-package", f"{model_package_group_name}/*")
        config_arns = self._sagemaker_arn("endpoint-config", f"{resource_prefix}-*")
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

        self.smoke_test_function = self._function(
            "SmokeTestFunction",
            "smoke_test",
            "deploy-smoke-test",
            "Invokes the freshly deployed endpoint with a sample row (CSV and JSON)",
            layer,
            timeout=cdk.Duration.seconds(180),
        )
        self.smoke_test_function.add_to_role_policy(
            iam.PolicyStatement(actions=["sagemaker:InvokeEndpoint"], resources=[endpoint_arn])
        )

        # --- The state machine.
        alarm_arns = [alarm_5xx.alarm_arn, alarm_latency.alarm_arn]
        sizing = endpoint_sizing
        plan_stage: dict[str, object] = {
            "modelPackageGroupName": model_package_group_name,
            "endpointName": endpoint_name,
            "resourcePrefix": resource_prefix,
            "requirePromotion": require_promotion,
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
            models=self._sagemaker_arn("model", f"{resource_prefix}-*"),
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
            rollback_alarms=alarm_arns,
            execution_role=self.execution_role.role_arn,
            key=key.key_arn,
        )
        workflow = DeploymentWorkflow(
            self,
            "Workflow",
            settings=WorkflowSettings(
                prefix=naming.prefix,
                endpoint_name=endpoint_name,
                endpoint_arn=endpoint_arn,
                sizing=sizing,
                plan_function=self.plan_function,
                smoke_test_function=self.smoke_test_function,
                topic=self.topic,
                execution_role_arn=self.execution_role.role_arn,
                key_arn=key.key_arn,
                data_capture_uri=artifacts_bucket.s3_url_for_object(DATA_CAPTURE_PREFIX),
                rollback_alarm_names=rollback_alarm_names,
                plan_stage=plan_stage,
                smoke_test_row=smoke_test_row,
                feature_count=feature_count,
                poll_interval=poll_interval,
                blue_green_termination_wait=cdk.Duration.minutes(5),
                blue_green_max_duration=cdk.Duration.hours(2),
                iam=workflow_iam,
            ),
        )
        state_machine_logs = self._log_group(
            "StateMachineLogs", f"/aws/vendedlogs/states/{state_machine_name}"
        )
        self.state_machine = sfn.StateMachine(
            self,
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
        self.state_machine.add_to_role_policy(self._notifications_key_use())
        self._acknowledge_state_machine_role(workflow_iam, isinstance(sizing, InstanceEndpoint))

        # --- Trigger: rule -> Lambda (idempotent start) -> state machine.
        self.trigger_function = self._function(
            "TriggerFunction",
            "deploy_trigger",
            "deploy-trigger",
            "Starts one deployment per approved model package change (idempotent)",
            layer,
            timeout=cdk.Duration.seconds(30),
            # No reservation: a new account's concurrency limit (10) cannot spare one. Duplicate
            # events are stopped by execution names and the running-execution check instead.
            concurrency_reason=(
                "Invoked by EventBridge a few times per approval; new accounts (limit 10) cannot "
                "reserve capacity, and duplicates are refused by the execution name instead."
            ),
            environment={
                "STATE_MACHINE_ARN": self.state_machine.state_machine_arn,
                "MODEL_PACKAGE_GROUP_NAME": model_package_group_name,
            },
        )
        self.state_machine.grant_start_execution(self.trigger_function)
        self.trigger_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:ListExecutions"], resources=[self.state_machine.state_machine_arn]
            )
        )
        self.rule = events.Rule(
            self,
            "ApprovalRule",
            rule_name=approval_rule_name,
            description=(
                f"{naming.prefix}: an Approved version of {model_package_group_name} starts a "
                "deployment"
            ),
            event_pattern=events.EventPattern(
                source=[EVENT_SOURCE],
                detail_type=[EVENT_DETAIL_TYPE],
                detail={
                    "ModelPackageGroupName": [model_package_group_name],
                    "ModelApprovalStatus": ["Approved"],
                    # Only a complete package can be deployed (the plan step checks it again).
                    "ModelPackageStatus": ["Completed"],
                },
            ),
        )
        self.rule.add_target(
            targets.LambdaFunction(
                self.trigger_function,
                dead_letter_queue=self.dead_letter_queue,
                retry_attempts=8,
                max_event_age=cdk.Duration.hours(4),
            )
        )

        # Timeouts and aborts cannot be caught inside the state machine: report them too.
        self.execution_status_rule = events.Rule(
            self,
            "ExecutionEndedRule",
            rule_name=ended_rule_name,
            description=f"{naming.prefix}: a deployment execution timed out or was aborted",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "stateMachineArn": [self.state_machine.state_machine_arn],
                    "status": ["TIMED_OUT", "ABORTED"],
                },
            ),
        )
        # EventBridge publishes with a role only this rule (in this account) may assume: no
        # topic or key policy statement for the events principal (confused-deputy safe).
        publisher = role_for_source(
            self,
            "ExecutionEndedPublisherRole",
            service="events.amazonaws.com",
            source_arn=rule_arns[1],
            description=f"{naming.prefix}: EventBridge publishes ended deployments to the topic",
        )
        acknowledge(
            publisher,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "CDK writes the role's single statement set (sns:Publish on this topic, its key) "
            "into its own policy; a managed policy would be attached to this one role only.",
        )
        acknowledge(
            publisher,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "Action group emitted by CDK's Topic.grant_publish for the topic's own key only.",
        )
        self.execution_status_rule.add_target(
            targets.SnsTopic(
                self.topic,
                authorize_using_role=True,
                role=publisher,
                dead_letter_queue=self.dead_letter_queue,
                message=events.RuleTargetInput.from_object(
                    {
                        "stage": naming.prefix,
                        "endpoint": endpoint_name,
                        "status": events.EventField.from_path("$.detail.status"),
                        "execution": events.EventField.from_path("$.detail.executionArn"),
                        "cause": "the deployment workflow ended without its own cleanup: check "
                        "the endpoint and delete any model/config the execution created",
                    }
                ),
            )
        )

        for resource, role in (
            (self.plan_function, self.plan_function.role),
            (self.smoke_test_function, self.smoke_test_function.role),
            (self.trigger_function, self.trigger_function.role),
            (self.state_machine, self.state_machine.role),
        ):
            self._depend_on_policy_only(resource, role)

    # ----------------------------------------------------------------------------------------

    def _depend_on_policy_only(self, resource: IConstruct, role: iam.IRole | None) -> None:
        """CDK makes a function/state machine DependsOn its role and the role's policy; the role
        is already implied by the GetAtt on its ARN (cfn-lint W3005). Keep the policy only: it
        must be attached before the first invocation."""
        cfn = resource.node.default_child
        policy = role.node.try_find_child("DefaultPolicy") if role is not None else None
        if not isinstance(cfn, cdk.CfnResource) or policy is None:
            return
        cfn.add_override("DependsOn", [self._logical_id(policy)])

    def _sagemaker_arn(self, resource: str, name: str) -> str:
        return self._stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

    def _logical_id(self, construct: IConstruct) -> str:
        child = construct.node.default_child
        assert isinstance(child, cdk.CfnElement)
        return cdk.Stack.of(child).get_logical_id(child)

    def _log_group(self, id_: str, name: str) -> logs.LogGroup:
        group = logs.LogGroup(
            self,
            id_,
            log_group_name=name,
            encryption_key=self._key,
            removal_policy=self._removal_policy,
        )
        cfn = group.node.default_child
        assert isinstance(cfn, logs.CfnLogGroup)
        cfn.retention_in_days = self._log_retention_days
        return group

    def _function(
        self,
        id_: str,
        folder: str,
        suffix: str,
        description: str,
        layer: lambda_.ILayerVersion,
        *,
        timeout: cdk.Duration,
        reserved_concurrency: int | None = None,
        concurrency_reason: str = (
            "Invoked synchronously by the deployment state machine, a few times per "
            "deployment; a reservation would only take capacity from the account pool."
        ),
        environment: dict[str, str] | None = None,
    ) -> lambda_.Function:
        name = self._naming.resource(suffix, 64)
        function = lambda_.Function(
            self,
            id_,
            function_name=name,
            description=f"{self._naming.prefix}: {description}",
            runtime=LAMBDA_RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler="handler.handler",
            code=lambda_.Code.from_asset(
                str(LAMBDAS_DIR / folder), exclude=["__pycache__", "*.pyc", "requirements.txt"]
            ),
            layers=[layer],
            memory_size=256,
            timeout=timeout,
            tracing=lambda_.Tracing.ACTIVE,
            dead_letter_queue=self.dead_letter_queue,
            reserved_concurrent_executions=reserved_concurrency,
            log_group=self._log_group(f"{id_}Logs", f"/aws/lambda/{name}"),
            environment={
                "POWERTOOLS_SERVICE_NAME": f"{self._naming.prefix}-deployment",
                "POWERTOOLS_LOG_LEVEL": "INFO",
                **(environment or {}),
            },
        )
        role = function.role
        assert role is not None
        acknowledge(
            role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaBasicExecutionRole]",
            "The AWS-managed basic execution policy only lets the function write its own logs.",
        )
        for finding, reason in (
            (
                "AwsSolutions-IAM5[Resource::*]",
                "X-Ray PutTraceSegments/PutTelemetryRecords do not support resource-level "
                "permissions (active tracing).",
            ),
            (
                "NIST.800.53.R5-IAMNoInlinePolicy",
                "CDK writes each function's least-privilege statements into its own role's "
                "policy; a managed policy would be attached to this one role only.",
            ),
        ):
            acknowledge(role, finding, reason)
        # Lambda sends failed async events to the DLQ with the function's role: SSE-KMS.
        function.add_to_role_policy(self._notifications_key_use())
        acknowledge(
            function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "The function only calls AWS APIs (SageMaker, Step Functions) over TLS with IAM "
            "auth; it reaches no resource in a VPC.",
        )
        if reserved_concurrency is None:
            acknowledge(function, "NIST.800.53.R5-LambdaConcurrency", concurrency_reason)
        return function

    def _notifications_key_use(self) -> iam.PolicyStatement:
        """What a sender needs on the notifications key (SSE-KMS topic and queue)."""
        return iam.PolicyStatement(
            actions=["kms:GenerateDataKey", "kms:Decrypt"],
            resources=[self.notifications_key.key_arn],
        )

    def _acknowledge_grant_actions(self, role: iam.IRole) -> None:
        for action in ("kms:ReEncrypt*", "kms:GenerateDataKey*", "s3:Abort*"):
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Action::{action}]",
                "Action group emitted by CDK's grant_* on this stage's bucket prefixes and data "
                "key only.",
            )
        acknowledge(
            role,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "CDK grant_* writes this role's least-privilege statements into its own policy; a "
            "managed policy would be attached to this one role only.",
        )

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
                f"AwsSolutions-IAM5[Resource::<{self._logical_id(function)}.Arn>:*]",
                "CDK's LambdaInvoke grants the function and its versions/aliases (ARN:*); only "
                "this stage's deployment function.",
            )
