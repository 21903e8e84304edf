"""Where a stage's deployment reports: the SNS topic, the dead-letter queue and their KMS key."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.compliance import acknowledge
from infra.naming import SNS_MAX, SQS_MAX, Naming


class DeploymentNotifications:
    """One job: the deployment's outbox. The topic (outcomes, alarms, abnormal ends) and the
    dead-letter queue (approval events and Lambda invocations that failed for good), encrypted
    with a key whose policy lets EventBridge (and, with alarms, CloudWatch) use it for this
    stage's rules and alarms only: by default a key of their own, so the stage's data key names
    no service principal; with ``key`` (``cost_controls.kms_keys: single``) that key, whose
    policy gets the same statements.

    Built into ``scope`` (the ModelDeployment) so paths and logical ids stay those of the
    deployed stacks. Exposes ``key``, ``topic``, ``dead_letter_queue``, ``alarm_arns_pattern``.
    """

    def __init__(
        self,
        scope: Construct,
        *,
        naming: Naming,
        removal_policy: cdk.RemovalPolicy,
        event_rule_names: Sequence[str],
        alarms: bool = True,
        key: kms.IKey | None = None,
    ) -> None:
        stack = cdk.Stack.of(scope)
        self.key: kms.IKey = key or kms.Key(
            scope,
            "NotificationsKey",
            description=f"{naming.prefix}: model deployment notifications and dead letters",
            enable_key_rotation=True,
            pending_window=cdk.Duration.days(7),
            removal_policy=removal_policy,
        )
        #: This stage's alarms (their names start with the stage prefix).
        self.alarm_arns_pattern = stack.format_arn(
            service="cloudwatch",
            resource="alarm",
            resource_name=f"{naming.prefix}-*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        if alarms:
            # CloudWatch alarm actions publish to the SSE-KMS topic: AWS's documented key grant,
            # limited to this stage's alarms in this account (confused-deputy conditions).
            self._add_key_statement(
                iam.PolicyStatement(
                    sid="AllowCloudWatchAlarmsToUseTheKey",
                    principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    resources=["*"],
                    conditions={
                        "StringEquals": {"aws:SourceAccount": stack.account},
                        "ArnLike": {"aws:SourceArn": self.alarm_arns_pattern},
                    },
                )
            )
        # EventBridge sends undeliverable approval events to the SSE-KMS dead-letter queue and
        # publishes timed-out/aborted executions to the SSE-KMS topic: documented grant, limited
        # to this stage's rules (names are fixed, so no reference cycle) in this account.
        rule_arns = [
            stack.format_arn(service="events", resource="rule", resource_name=name)
            for name in event_rule_names
        ]
        self._add_key_statement(
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
            scope,
            "Topic",
            topic_name=naming.resource("deployments", SNS_MAX),
            display_name=f"{naming.prefix} model deployments",
            master_key=self.key,
            enforce_ssl=True,
        )
        if alarms:
            # A topic policy replaces SNS's default one: alarms of this stage must be let in
            # again.
            self.topic.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="AllowThisStageAlarmsToPublish",
                    principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                    actions=["sns:Publish"],
                    resources=[self.topic.topic_arn],
                    conditions={
                        "StringEquals": {"aws:SourceAccount": stack.account},
                        "ArnLike": {"aws:SourceArn": self.alarm_arns_pattern},
                    },
                )
            )
        self.dead_letter_queue = sqs.Queue(
            scope,
            "DeadLetterQueue",
            queue_name=naming.resource("deploy-trigger-dlq", SQS_MAX),
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.key,
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

    def _add_key_statement(self, statement: iam.PolicyStatement) -> None:
        """Into the key's policy (the stage's data key's when given: its stack's template)."""
        if not self.key.add_to_resource_policy(statement).statement_added:
            raise ValueError(f"{self.key.node.path}: an imported key's policy cannot be extended")
