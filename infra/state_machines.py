"""What every Step Functions workflow of a stage shares: a STANDARD state machine with X-Ray
tracing and full execution logging into an encrypted log group, a dependency on its role's policy
only, and the acknowledgment of the role's unscopable log-delivery and X-Ray permissions."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct, IConstruct

from infra.compliance import acknowledge
from infra.log_retention import encrypted_log_group


def logical_id(construct: IConstruct) -> str:
    """The CloudFormation logical id of ``construct``'s resource (its default child)."""
    child = construct.node.default_child
    assert isinstance(child, cdk.CfnElement)
    return cdk.Stack.of(child).get_logical_id(child)


def logged_state_machine(
    scope: Construct,
    *,
    name: str,
    comment: str,
    definition: sfn.IChainable,
    timeout: cdk.Duration,
    key: kms.IKey,
    log_retention_days: int,
    removal_policy: cdk.RemovalPolicy,
) -> sfn.StateMachine:
    """State machine ``StateMachine`` named ``name`` in ``scope``, logging ALL events with
    execution data to log group ``StateMachineLogs`` (``/aws/vendedlogs/states/<name>``)."""
    log_group = encrypted_log_group(
        scope,
        "StateMachineLogs",
        name=f"/aws/vendedlogs/states/{name}",
        key=key,
        retention_days=log_retention_days,
        removal_policy=removal_policy,
    )
    machine = sfn.StateMachine(
        scope,
        "StateMachine",
        state_machine_name=name,
        comment=comment,
        definition_body=sfn.DefinitionBody.from_chainable(definition),
        state_machine_type=sfn.StateMachineType.STANDARD,
        timeout=timeout,
        tracing_enabled=True,
        logs=sfn.LogOptions(
            destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True
        ),
    )
    # CDK makes the state machine DependsOn its role AND the role's policy; the role is already
    # implied by the GetAtt on its ARN (cfn-lint W3005). Keep the policy only: it must be
    # attached before the first execution.
    policy = machine.role.node.try_find_child("DefaultPolicy")
    cfn_machine = machine.node.default_child
    assert isinstance(policy, iam.Policy) and isinstance(cfn_machine, cdk.CfnResource)
    cfn_machine.add_override("DependsOn", [logical_id(policy)])
    return machine


def acknowledge_log_delivery(role: iam.IRole) -> None:
    """The ``Resource::*`` statements CDK grants every logged, traced state machine's role."""
    acknowledge(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        "Step Functions log delivery (logs:*LogDelivery, DescribeLogGroups...) and X-Ray "
        "writes do not support resource-level permissions.",
    )
