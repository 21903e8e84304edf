"""The approval rule and trigger of a stage's deployment: an Approved, Completed version of the
stage's model package group starts the deploy workflow, exactly once; executions that time out
or are aborted are reported on the topic."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn

from deployment.functions import DeploymentFunctions, depend_on_policy_only
from infra.compliance import acknowledge
from infra.naming import EVENT_RULE_MAX, Naming
from infra.service_roles import role_for_source

EVENT_SOURCE = "aws.sagemaker"
EVENT_DETAIL_TYPE = "SageMaker Model Package State Change"


@dataclass(frozen=True)
class TriggerRuleNames:
    """Fixed names of the trigger's two rules: the notifications key policy names them before
    the rules exist (no reference cycle)."""

    approval: str
    ended: str

    @classmethod
    def of(cls, naming: Naming) -> TriggerRuleNames:
        return cls(
            approval=naming.resource("deploy-on-approval", EVENT_RULE_MAX),
            ended=naming.resource("deploy-ended-abnormally", EVENT_RULE_MAX),
        )


class ApprovalTrigger:
    """One job: start the deploy workflow on approval. EventBridge rule (retries + DLQ) ->
    trigger Lambda (idempotent start, one execution per package change) -> state machine; and a
    second rule that reports executions ending without their own cleanup (timeout, abort).

    Built into ``functions.scope`` (the ModelDeployment) so paths and logical ids stay those of
    the deployed stacks. Exposes ``function``, ``rule``, ``execution_status_rule``.
    """

    def __init__(
        self,
        functions: DeploymentFunctions,
        *,
        rule_names: TriggerRuleNames,
        model_package_group_name: str,
        endpoint_name: str,
        state_machine: sfn.IStateMachine,
        topic: sns.ITopic,
        dead_letter_queue: sqs.IQueue,
    ) -> None:
        scope = functions.scope
        naming = functions.naming
        stack = cdk.Stack.of(scope)
        self.function = functions.function(
            "TriggerFunction",
            "deploy_trigger",
            "deploy-trigger",
            "Starts one deployment per approved model package change (idempotent)",
            timeout=cdk.Duration.seconds(30),
            # No reservation: a new account's concurrency limit (10) cannot spare one. Duplicate
            # events are stopped by execution names and the running-execution check instead.
            concurrency_reason=(
                "Invoked by EventBridge a few times per approval; new accounts (limit 10) cannot "
                "reserve capacity, and duplicates are refused by the execution name instead."
            ),
            environment={
                "STATE_MACHINE_ARN": state_machine.state_machine_arn,
                "MODEL_PACKAGE_GROUP_NAME": model_package_group_name,
            },
        )
        state_machine.grant_start_execution(self.function)
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:ListExecutions"], resources=[state_machine.state_machine_arn]
            )
        )
        self.rule = events.Rule(
            scope,
            "ApprovalRule",
            rule_name=rule_names.approval,
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
                self.function,
                dead_letter_queue=dead_letter_queue,
                retry_attempts=8,
                max_event_age=cdk.Duration.hours(4),
            )
        )

        # Timeouts and aborts cannot be caught inside the state machine: report them too.
        self.execution_status_rule = events.Rule(
            scope,
            "ExecutionEndedRule",
            rule_name=rule_names.ended,
            description=f"{naming.prefix}: a deployment execution timed out or was aborted",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "stateMachineArn": [state_machine.state_machine_arn],
                    "status": ["TIMED_OUT", "ABORTED"],
                },
            ),
        )
        # EventBridge publishes with a role only this rule (in this account) may assume: no
        # topic or key policy statement for the events principal (confused-deputy safe).
        publisher = role_for_source(
            scope,
            "ExecutionEndedPublisherRole",
            service="events.amazonaws.com",
            source_arn=stack.format_arn(
                service="events", resource="rule", resource_name=rule_names.ended
            ),
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
                topic,
                authorize_using_role=True,
                role=publisher,
                dead_letter_queue=dead_letter_queue,
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
        depend_on_policy_only(self.function, self.function.role)
