"""The deployment's guardrail alarms: endpoint 5xx and model latency (blue/green auto-rollback)
and dead letters, each notifying the deployment topic."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.naming import Naming

DEFAULT_MAX_MODEL_LATENCY = cdk.Duration.seconds(1)


@dataclass(frozen=True)
class RollbackAlarms:
    """Thresholds of the alarms that roll a blue/green update back."""

    max_5xx_per_minute: int = 1
    #: ModelLatency p90 above this for 2 of 3 minutes.
    max_model_latency: cdk.Duration = DEFAULT_MAX_MODEL_LATENCY


class GuardrailAlarms:
    """One job: watch the endpoint and the dead letters. The two endpoint alarms are the ones
    SageMaker watches during a blue/green update (and rolls back on); all three notify the topic.

    Built into ``scope`` (the ModelDeployment) so paths and logical ids stay those of the
    deployed stacks. Exposes ``alarms``, ``rollback_alarms`` (5xx, latency),
    ``rollback_alarm_names``, ``dead_letter_alarm``.
    """

    def __init__(
        self,
        scope: Construct,
        *,
        naming: Naming,
        endpoint_name: str,
        thresholds: RollbackAlarms,
        dead_letter_queue: sqs.IQueue,
        topic: sns.ITopic,
    ) -> None:
        dimensions = {"EndpointName": endpoint_name, "VariantName": "AllTraffic"}
        self.rollback_alarm_names = [
            naming.resource("endpoint-5xx", 255),
            naming.resource("endpoint-latency", 255),
        ]
        alarm_5xx = cloudwatch.Alarm(
            scope,
            "Endpoint5xxAlarm",
            alarm_name=self.rollback_alarm_names[0],
            alarm_description=f"{endpoint_name}: model 5xx errors (rolls a blue/green update back)",
            metric=cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name="Invocation5XXErrors",
                dimensions_map=dimensions,
                statistic="Sum",
                period=cdk.Duration.minutes(1),
            ),
            threshold=thresholds.max_5xx_per_minute,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm_latency = cloudwatch.Alarm(
            scope,
            "EndpointLatencyAlarm",
            alarm_name=self.rollback_alarm_names[1],
            alarm_description=(
                f"{endpoint_name}: ModelLatency p90 above "
                f"{thresholds.max_model_latency.to_milliseconds()} ms "
                "(rolls a blue/green update back)"
            ),
            metric=cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name="ModelLatency",  # microseconds
                dimensions_map=dimensions,
                statistic="p90",
                period=cdk.Duration.minutes(1),
            ),
            threshold=thresholds.max_model_latency.to_milliseconds() * 1000,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.dead_letter_alarm = cloudwatch.Alarm(
            scope,
            "DeadLetterAlarm",
            alarm_name=naming.resource("deploy-dead-letters", 255),
            alarm_description="An approval event or a deployment Lambda invocation failed for good",
            metric=dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=cdk.Duration.minutes(5), statistic="Maximum"
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.rollback_alarms = (alarm_5xx, alarm_latency)
        self.alarms = (alarm_5xx, alarm_latency, self.dead_letter_alarm)
        for alarm in self.alarms:
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))

    @property
    def rollback_alarm_arns(self) -> list[str]:
        return [alarm.alarm_arn for alarm in self.rollback_alarms]
