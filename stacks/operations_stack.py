"""Stateless stack: the continuous operations of a stage: ingestion, retraining, monitoring.

It holds the stage's ``operations`` SNS topic (encrypted with the stage's data key) and what
reports to it: the model-build pipeline's failed/stopped executions (here), the ingestion
workflow (``ingestion/``) and the retraining workflow (``retraining/``, added to this stack).

Cross-stack inputs are typed resources from the stateful stack (key, buckets) and plain names
(Glue job, crawler, database, pipeline): names are fixed at synth time, so only the key and the
buckets become CloudFormation exports.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from data_lake.infrastructure import DataLake
from deployment.infrastructure import DATA_CAPTURE_PREFIX
from deployment.workflow import VARIANT_NAME
from infra.compliance import acknowledge, skip_checkov
from infra.config import StageConfig
from infra.naming import EVENT_RULE_MAX, SNS_MAX, SQS_MAX, Naming
from infra.service_roles import role_for_source
from ingestion.infrastructure import CURATED_PREFIX, Ingestion
from monitoring.dashboard import DASHBOARD_NAME_MAX, StageDashboard
from monitoring.drift.baseline import PROMOTED_BASELINE_KEYS
from monitoring.infrastructure import DriftJobMonitoring
from monitoring.model_monitor import ModelMonitorBackend
from pipelines.model_build.infrastructure import PIPELINE_PREFIX
from retraining.infrastructure import Retraining

#: Where drift runs keep their manifest and report: <prefix><endpoint>/<job name>/.
DRIFT_REPORT_PREFIX = "drift-reports/"
PIPELINE_STATUS_DETAIL_TYPE = "SageMaker Model Building Pipeline Execution Status Change"
#: The statuses an operator must hear about (``Succeeded`` and ``Executing`` are routine).
PIPELINE_ALERT_STATUSES = ("Failed", "Stopped")


def pipeline_console_url(region: str, pipeline_name: str) -> str:
    """The SageMaker AI console page listing the executions of ``pipeline_name``.

    EventBridge input transformers copy event fields verbatim and cannot split a string, and an
    execution's id exists in the event only as the last segment of ``pipelineExecutionArn``; so
    the message carries this page (the execution is found there by its display name, also in
    the message) plus the full execution ARN for ``aws sagemaker describe-pipeline-execution``.
    """
    return (
        f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}"
        f"#/pipelines/{pipeline_name}/executions"
    )


class PipelineStatusNotifications(Construct):
    """``Failed``/``Stopped`` executions of ONE pipeline -> EventBridge -> the operations topic.

    EventBridge publishes with a role only this rule (in this account) may assume: the topic and
    its key need no statement for the events service principal (confused-deputy safe).
    Exposes ``rule`` and ``publisher_role``.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        naming: Naming,
        topic: sns.ITopic,
        dead_letter_queue: sqs.IQueue,
        pipeline_name: str,
        pipeline_arn: str,
    ) -> None:
        super().__init__(scope, id_)
        stack = cdk.Stack.of(self)
        rule_name = naming.resource("pipeline-failed", EVENT_RULE_MAX)
        rule_arn = stack.format_arn(service="events", resource="rule", resource_name=rule_name)
        self.rule = events.Rule(
            self,
            "Rule",
            rule_name=rule_name,
            description=f"{naming.prefix}: a {pipeline_name} execution failed or was stopped",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=[PIPELINE_STATUS_DETAIL_TYPE],
                detail={
                    "pipelineArn": [pipeline_arn],
                    "currentPipelineExecutionStatus": list(PIPELINE_ALERT_STATUSES),
                },
            ),
        )
        self.publisher_role = role_for_source(
            self,
            "PublisherRole",
            service="events.amazonaws.com",
            source_arn=rule_arn,
            description=f"{naming.prefix}: EventBridge publishes pipeline failures to the topic",
        )
        acknowledge(
            self.publisher_role,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "CDK writes the role's single statement set (sns:Publish on this topic, its key) "
            "into its own policy; a managed policy would be attached to this one role only.",
        )
        acknowledge(
            self.publisher_role,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "Action group emitted by CDK's Topic.grant_publish for the topic's own key only.",
        )
        self.rule.add_target(
            targets.SnsTopic(
                topic,
                authorize_using_role=True,
                role=self.publisher_role,
                dead_letter_queue=dead_letter_queue,
                message=events.RuleTargetInput.from_object(
                    {
                        "stage": naming.prefix,
                        "pipeline": pipeline_name,
                        "status": events.EventField.from_path(
                            "$.detail.currentPipelineExecutionStatus"
                        ),
                        "execution": events.EventField.from_path("$.detail.pipelineExecutionArn"),
                        "displayName": events.EventField.from_path(
                            "$.detail.pipelineExecutionDisplayName"
                        ),
                        "started": events.EventField.from_path("$.detail.executionStartTime"),
                        "ended": events.EventField.from_path("$.detail.executionEndTime"),
                        "console": pipeline_console_url(stack.region, pipeline_name),
                        "howToInspect": "aws sagemaker list-pipeline-execution-steps "
                        "--pipeline-execution-arn EXECUTION (the execution field)",
                    }
                ),
            )
        )


class OperationsStack(cdk.Stack):
    """The stage's continuous operations. Exposes ``topic`` (the operations SNS topic),
    ``dead_letter_queue``, ``pipeline_notifications``, ``ingestion`` (None when
    ``ingestion.enabled`` is false) and the resources it was given, for constructs added
    later."""

    @classmethod
    def on_lake(
        cls,
        scope: Construct,
        id_: str,
        *,
        config: StageConfig,
        lake: DataLake,
        pipeline_name: str,
        **kwargs: Any,
    ) -> OperationsStack:
        """The stack wired to ``lake`` (the stage's stateful data lake): its key, buckets and
        the Glue job, crawler and database it names."""
        return cls(
            scope,
            id_,
            config=config,
            key=lake.key,
            raw_bucket=lake.raw_bucket,
            curated_bucket=lake.curated_bucket,
            artifacts_bucket=lake.artifacts_bucket,
            etl_job_name=lake.etl_job_name,
            crawler_name=str(lake.crawler.name),
            database_name=lake.database_name,
            pipeline_name=pipeline_name,
            **kwargs,
        )

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: StageConfig,
        key: kms.IKey,
        raw_bucket: s3.IBucket,
        curated_bucket: s3.IBucket,
        artifacts_bucket: s3.IBucket,
        etl_job_name: str,
        crawler_name: str,
        database_name: str,
        pipeline_name: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        naming = config.naming
        self.config = config
        self.key = key
        self.raw_bucket = raw_bucket
        self.curated_bucket = curated_bucket
        self.artifacts_bucket = artifacts_bucket
        self.etl_job_name = etl_job_name
        self.crawler_name = crawler_name
        self.database_name = database_name
        self.pipeline_name = pipeline_name
        self.pipeline_arn = self.format_arn(
            service="sagemaker", resource="pipeline", resource_name=pipeline_name
        )

        # Encrypted with the stage's data key. Senders are roles of this stage (EventBridge via
        # conditioned roles, Step Functions via its execution role): their IAM policies grant
        # sns:Publish and the key use, so neither the topic nor the key policy names a service
        # principal.
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=naming.resource("operations", SNS_MAX),
            display_name=f"{naming.prefix} operations",
            master_key=key,
            enforce_ssl=True,
        )
        # Events EventBridge could not deliver (to the topic, to the ingestion workflow). SSE-SQS:
        # EventBridge cannot send to a queue under a KMS key whose policy does not name it, and
        # the data key (stateful stack) is not edited from here. CDK's queue policy lets only
        # this stack's rules send (aws:SourceArn).
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            queue_name=naming.resource("operations-dlq", SQS_MAX),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        skip_checkov(
            self.dead_letter_queue,
            "CKV_AWS_27",
            "Encrypted at rest with SSE-SQS: EventBridge cannot deliver to a queue under a KMS "
            "key whose policy does not name it (checkov recognises only KmsMasterKeyId).",
        )
        acknowledge(
            self.dead_letter_queue,
            "AwsSolutions-SQS3",
            "This queue IS the dead-letter queue of this stack's EventBridge targets (target "
            "DeadLetterConfig, which the rule does not recognise as DLQ use).",
        )
        acknowledge(
            self.dead_letter_queue,
            "Serverless-SQSRedrivePolicy",
            "This queue is the dead-letter queue; a redrive policy on it would need yet another "
            "queue. Its messages are kept 14 days.",
        )
        self.pipeline_notifications = PipelineStatusNotifications(
            self,
            "PipelineStatus",
            naming=naming,
            topic=self.topic,
            dead_letter_queue=self.dead_letter_queue,
            pipeline_name=pipeline_name,
            pipeline_arn=self.pipeline_arn,
        )
        settings = config.environment.ingestion
        self.ingestion: Ingestion | None = None
        if settings.enabled:
            self.ingestion = Ingestion(
                self,
                "Ingestion",
                naming=naming,
                key=key,
                raw_bucket=raw_bucket,
                curated_bucket=curated_bucket,
                etl_job_name=etl_job_name,
                crawler_name=crawler_name,
                pipeline_name=pipeline_name,
                topic=self.topic,
                dead_letter_queue=self.dead_letter_queue,
                quiet_period=cdk.Duration.seconds(settings.quiet_period_seconds),
                start_pipeline=settings.start_pipeline,
                log_retention_days=config.environment.retention.log_days,
                removal_policy=(
                    cdk.RemovalPolicy.DESTROY if config.is_ephemeral else cdk.RemovalPolicy.RETAIN
                ),
            )
            cdk.CfnOutput(
                self,
                "IngestionStateMachineArn",
                value=self.ingestion.state_machine.state_machine_arn,
            )
        # Alarms and a schedule -> the debounced retraining workflow, on the curated dataset
        # the ingestion writes (README "Retraining").
        retraining = config.environment.retraining
        self.retraining: Retraining | None = None
        if retraining.enabled:
            self.retraining = Retraining(
                self,
                "Retraining",
                naming=naming,
                settings=retraining,
                pipeline_name=pipeline_name,
                input_data_url=curated_bucket.s3_url_for_object(CURATED_PREFIX),
                key=key,
                log_retention_days=config.environment.retention.log_days,
                removal_policy=(
                    cdk.RemovalPolicy.DESTROY if config.is_ephemeral else cdk.RemovalPolicy.RETAIN
                ),
                topic=self.topic,
                dead_letter_queue=self.dead_letter_queue,
                alarms=config.environment.cost_controls.alarms,
            )
            cdk.CfnOutput(
                self,
                "RetrainingStateMachineArn",
                value=self.retraining.state_machine.state_machine_arn,
            )
        self._add_monitoring(config, key, artifacts_bucket, pipeline_name)
        # One dashboard: endpoint, drift, pipeline, workflows (README "Dashboard"), unless
        # cost_controls.dashboard is off (branch stages by default, README "Cost").
        self.dashboard: StageDashboard | None = None
        if config.environment.cost_controls.dashboard:
            self.dashboard = self._dashboard(config, pipeline_name)
        cdk.CfnOutput(self, "OperationsTopicArn", value=self.topic.topic_arn)
        cdk.CfnOutput(self, "OperationsDeadLetterQueueUrl", value=self.dead_letter_queue.queue_url)

    def _dashboard(self, config: StageConfig, pipeline_name: str) -> StageDashboard:
        naming = config.naming
        retraining = config.environment.retraining
        workflows = [
            (title, machine.state_machine.state_machine_arn)
            for title, machine in (
                ("Ingestion", self.ingestion),
                ("Retraining", self.retraining),
                ("Drift", self.drift_monitoring),
            )
            if machine is not None
        ]
        return StageDashboard(
            self,
            "Dashboard",
            dashboard_name=naming.resource("operations", DASHBOARD_NAME_MAX),
            endpoint_name=naming.endpoint,
            variant_name=VARIANT_NAME,
            pipeline_name=pipeline_name,
            state_machines=workflows,
            drift_backend=config.environment.monitoring.backend,
            drift_share_threshold=retraining.drift_share_threshold if retraining.enabled else None,
        )

    def _add_monitoring(
        self, config: StageConfig, key: kms.IKey, artifacts_bucket: s3.IBucket, pipeline_name: str
    ) -> None:
        """The endpoint's monitoring backend, as ``monitoring.backend`` says (README
        "Monitoring"): ``drift_job`` (monitoring/infrastructure.py), ``model_monitor``
        (monitoring/model_monitor.py: SageMaker Model Monitor's job definitions and schedules,
        made by a Lambda once the endpoint is in service); ``off`` builds nothing."""
        settings = config.environment.monitoring
        naming = config.naming
        vpc = config.environment.vpc
        # Prod serves only promoted versions: their baselines are the copies promotion made.
        baselines = (
            PROMOTED_BASELINE_KEYS if config.is_prod else f"{PIPELINE_PREFIX}/{pipeline_name}/"
        )
        self.drift_monitoring: DriftJobMonitoring | None = None
        if settings.backend == "drift_job":
            self.drift_monitoring = DriftJobMonitoring(
                self,
                "DriftMonitoring",
                naming=naming,
                endpoint_name=naming.endpoint,
                variant_name=VARIANT_NAME,
                artifacts_bucket=artifacts_bucket,
                key=key,
                capture_prefix=DATA_CAPTURE_PREFIX,
                report_prefix=DRIFT_REPORT_PREFIX,
                baseline_prefix=baselines,
                model_package_group_name=naming.model_package_group,
                # The deployment workflow's model and endpoint-config names: <stage>-deploy-...
                model_name_prefix=naming.resource("deploy", 40),
                schedule_expression=settings.schedule,
                window_hours=settings.window_hours,
                instance_type=config.environment.sizing.processing_instance_type,
                topic=self.topic,
                log_retention_days=config.environment.retention.log_days,
                removal_policy=(
                    cdk.RemovalPolicy.DESTROY if config.is_ephemeral else cdk.RemovalPolicy.RETAIN
                ),
                subnet_ids=vpc.subnet_ids if vpc else (),
                security_group_ids=vpc.security_group_ids if vpc else (),
            )
            cdk.CfnOutput(
                self,
                "DriftStateMachineArn",
                value=self.drift_monitoring.state_machine.state_machine_arn,
            )
        self.model_monitor: ModelMonitorBackend | None = None
        if settings.backend == "model_monitor":
            self.model_monitor = ModelMonitorBackend(
                self,
                "ModelMonitor",
                naming=naming,
                endpoint_name=naming.endpoint,
                deployment_resource_prefix=naming.resource("deploy", 40),
                model_package_group_name=naming.model_package_group,
                pipeline_name=pipeline_name,
                key=key,
                artifacts_bucket=artifacts_bucket,
                schedule_expression=settings.schedule,
                window_hours=settings.window_hours,
                instance_type=config.environment.sizing.processing_instance_type,
                log_retention_days=config.environment.retention.log_days,
                removal_policy=(
                    cdk.RemovalPolicy.DESTROY if config.is_ephemeral else cdk.RemovalPolicy.RETAIN
                ),
                ground_truth_s3_uri=settings.ground_truth_s3_uri,
                baseline_prefix=baselines,
                dead_letter_queue=self.dead_letter_queue,
                subnet_ids=vpc.subnet_ids if vpc else (),
                security_group_ids=vpc.security_group_ids if vpc else (),
            )
