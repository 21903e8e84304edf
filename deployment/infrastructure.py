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

:class:`ModelDeployment` composes parts with one job each (in the order they are built):
:class:`~deployment.notifications.DeploymentNotifications` (topic, DLQ, their key),
:class:`~deployment.guardrails.GuardrailAlarms`,
:class:`~deployment.execution_role.ModelExecutionRole`,
:class:`~deployment.deploy_workflow.DeployWorkflow` (state machine, plan and smoke-test
Lambdas, log group, role) and :class:`~deployment.trigger.ApprovalTrigger` (approval rule,
trigger Lambda, abnormal-end rule). Each part builds its resources into the ModelDeployment
itself, not into a child construct of its own: an extra level in the construct path would
change every logical id, and CloudFormation would replace (for named resources: fail to
replace) the resources of deployed stages.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from deployment.deploy_workflow import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_SHIFT_WAIT,
    DEFAULT_WORKFLOW_TIMEOUT,
    DeployWorkflow,
    TrafficShifting,
    WorkflowTarget,
)
from deployment.execution_role import DATA_CAPTURE_PREFIX, ModelExecutionRole
from deployment.functions import (
    LAMBDAS_DIR,
    POWERTOOLS_LAYER_ACCOUNT,
    POWERTOOLS_LAYER_VERSION,
    POWERTOOLS_PYTHON,
    DeploymentFunctions,
    powertools_layer,
)
from deployment.guardrails import DEFAULT_MAX_MODEL_LATENCY, GuardrailAlarms, RollbackAlarms
from deployment.notifications import DeploymentNotifications
from deployment.trigger import (
    EVENT_DETAIL_TYPE,
    EVENT_SOURCE,
    ApprovalTrigger,
    TriggerRuleNames,
)
from infra.config import InstanceEndpoint, ServerlessEndpoint
from infra.lambda_runtime import LAMBDA_RUNTIME
from infra.naming import Naming

__all__ = [
    "DATA_CAPTURE_PREFIX",
    "DEFAULT_MAX_MODEL_LATENCY",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_SHIFT_WAIT",
    "DEFAULT_SMOKE_TEST_ROW",
    "DEFAULT_WORKFLOW_TIMEOUT",
    "EVENT_DETAIL_TYPE",
    "EVENT_SOURCE",
    "FEATURE_COUNT",
    "LAMBDAS_DIR",
    "LAMBDA_RUNTIME",
    "POWERTOOLS_LAYER_ACCOUNT",
    "POWERTOOLS_LAYER_VERSION",
    "POWERTOOLS_PYTHON",
    "PROMOTED_MODELS_PREFIX",
    "ModelDeployment",
    "RollbackAlarms",
    "TrafficShifting",
]

PROMOTED_MODELS_PREFIX = "promoted-models/"  # == deployment.promote.PROMOTED_PREFIX

#: Features of the breast-cancer model (raw columns, target excluded).
FEATURE_COUNT = 30
#: A sample row (the first one of the bundled dataset) when the dataset file is not available.
DEFAULT_SMOKE_TEST_ROW = (
    "17.99,10.38,122.8,1001.0,0.1184,0.2776,0.3001,0.1471,0.2419,0.07871,1.095,0.9053,8.589,"
    "153.4,0.006399,0.04904,0.05373,0.01587,0.03003,0.006193,25.38,17.33,184.6,2019.0,0.1622,"
    "0.6656,0.7119,0.2654,0.4601,0.1189"
)


class ModelDeployment(Construct):
    """Deploys each approved model version of one stage to its endpoint, safely, once, visibly.

    Exposes ``state_machine``, ``rule``, ``execution_status_rule``, ``topic``,
    ``dead_letter_queue``, ``execution_role``, ``trigger_function``, ``plan_function``,
    ``smoke_test_function``, ``alarms``, ``notifications_key``.
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
        serving_repository: str | None = None,
        powertools_layer_version: int = POWERTOOLS_LAYER_VERSION,
        alarms: bool = True,
        notifications_key: kms.IKey | None = None,
        online_feature_group: str | None = None,
    ) -> None:
        """``alarms``: False leaves the guardrail alarms out (serverless endpoints only: an
        instance endpoint's blue/green update rolls back on them). ``notifications_key``: the
        key of the topic and the dead-letter queue (default: a key of their own)."""
        super().__init__(scope, id_)
        if not alarms and isinstance(endpoint_sizing, InstanceEndpoint):
            raise ValueError(
                "alarms=False needs a serverless endpoint (blue/green rolls back on them)"
            )
        if len(smoke_test_row.split(",")) != feature_count:
            raise ValueError(
                f"smoke_test_row has {len(smoke_test_row.split(','))} values, "
                f"expected {feature_count}"
            )
        endpoint_name = naming.endpoint
        rule_names = TriggerRuleNames.of(naming)

        notifications = DeploymentNotifications(
            self,
            naming=naming,
            removal_policy=removal_policy,
            event_rule_names=(rule_names.approval, rule_names.ended),
            alarms=alarms,
            key=notifications_key,
        )
        self.notifications_key = notifications.key
        self.topic = notifications.topic
        self.dead_letter_queue = notifications.dead_letter_queue

        guardrails = (
            GuardrailAlarms(
                self,
                naming=naming,
                endpoint_name=endpoint_name,
                thresholds=rollback_alarms or RollbackAlarms(),
                dead_letter_queue=self.dead_letter_queue,
                topic=self.topic,
            )
            if alarms
            else None
        )
        self.alarms = guardrails.alarms if guardrails else ()
        rollback_alarm_names = guardrails.rollback_alarm_names if guardrails else []
        rollback_alarm_arns = guardrails.rollback_alarm_arns if guardrails else []

        self.execution_role = ModelExecutionRole(
            self,
            naming=naming,
            endpoint_name=endpoint_name,
            key=key,
            artifacts_bucket=artifacts_bucket,
            model_artifact_keys=model_artifact_keys,
            image_repositories=image_repositories,
            serving_repository=serving_repository,
            rollback_alarm_arns=(
                rollback_alarm_arns if isinstance(endpoint_sizing, InstanceEndpoint) else []
            ),
        ).role

        functions = DeploymentFunctions(
            scope=self,
            naming=naming,
            key=key,
            removal_policy=removal_policy,
            log_retention_days=log_retention_days,
            layer=powertools_layer(self, powertools_layer_version),
            dead_letter_queue=self.dead_letter_queue,
            notifications_key=self.notifications_key,
        )
        workflow = DeployWorkflow(
            functions,
            target=WorkflowTarget(
                endpoint_name=endpoint_name,
                endpoint_sizing=endpoint_sizing,
                model_package_group_name=model_package_group_name,
                require_promotion=require_promotion,
                smoke_test_row=smoke_test_row,
                feature_count=feature_count,
                online_feature_group=online_feature_group,
            ),
            key=key,
            artifacts_bucket=artifacts_bucket,
            topic=self.topic,
            execution_role=self.execution_role,
            rollback_alarm_names=rollback_alarm_names,
            rollback_alarm_arns=rollback_alarm_arns,
            traffic_shifting=traffic_shifting or TrafficShifting(),
            poll_interval=poll_interval,
            workflow_timeout=workflow_timeout,
        )
        self.plan_function = workflow.plan_function
        self.smoke_test_function = workflow.smoke_test_function
        self.state_machine = workflow.state_machine

        trigger = ApprovalTrigger(
            functions,
            rule_names=rule_names,
            model_package_group_name=model_package_group_name,
            endpoint_name=endpoint_name,
            state_machine=self.state_machine,
            topic=self.topic,
            dead_letter_queue=self.dead_letter_queue,
        )
        self.trigger_function = trigger.function
        self.rule = trigger.rule
        self.execution_status_rule = trigger.execution_status_rule
