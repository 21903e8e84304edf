"""The Lambda functions and log groups of a stage's deployment, built the same way for every part.

The trigger (:mod:`deployment.trigger`) and the deploy workflow (:mod:`deployment.deploy_workflow`)
each own their functions; :class:`DeploymentFunctions` gives them one shape: Python on the
AWS-managed Powertools layer, X-Ray, a KMS-encrypted log group with the stage's retention, the
notifications dead-letter queue, and the cdk-nag acknowledgments every such function needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from infra.compliance import acknowledge
from infra.lambda_runtime import LAMBDA_RUNTIME
from infra.log_retention import encrypted_log_group
from infra.naming import Naming

LAMBDAS_DIR = Path(__file__).resolve().parent.parent / "lambdas"

#: AWS-managed Powertools for AWS Lambda (Python) v3 layer (account 017000801446). The layer
#: version is pinned (reproducible synth); the handlers use only Powertools v3 APIs that the
#: dev pin (requirements-dev.txt) also has. Check/bump with
#: ``aws lambda list-layer-versions --layer-name arn:aws:lambda:<region>:017000801446:layer:``
#: ``AWSLambdaPowertoolsPythonV3-python314-x86_64``.
POWERTOOLS_LAYER_ACCOUNT = "017000801446"
# 27 is the newest V3 layer version public references show (mid-2026); a version that does not
# exist fails the deploy, an older one only lacks newer Powertools features (none used here).
POWERTOOLS_LAYER_VERSION = 27
POWERTOOLS_PYTHON = "python314"

STATE_MACHINE_CONCURRENCY_REASON = (
    "Invoked synchronously by the deployment state machine, a few times per "
    "deployment; a reservation would only take capacity from the account pool."
)


def powertools_layer(scope: Construct, version: int) -> lambda_.ILayerVersion:
    stack = cdk.Stack.of(scope)
    return lambda_.LayerVersion.from_layer_version_arn(
        scope,
        "PowertoolsLayer",
        f"arn:{stack.partition}:lambda:{stack.region}:{POWERTOOLS_LAYER_ACCOUNT}:layer:"
        f"AWSLambdaPowertoolsPythonV3-{POWERTOOLS_PYTHON}-x86_64:{version}",
    )


def logical_id(construct: IConstruct) -> str:
    """The CloudFormation logical id of ``construct``'s resource (for nag findings, DependsOn)."""
    child = construct.node.default_child
    assert isinstance(child, cdk.CfnElement)
    return cdk.Stack.of(child).get_logical_id(child)


def depend_on_policy_only(resource: IConstruct, role: iam.IRole | None) -> None:
    """CDK makes a function/state machine DependsOn its role and the role's policy; the role
    is already implied by the GetAtt on its ARN (cfn-lint W3005). Keep the policy only: it
    must be attached before the first invocation."""
    cfn = resource.node.default_child
    policy = role.node.try_find_child("DefaultPolicy") if role is not None else None
    if not isinstance(cfn, cdk.CfnResource) or policy is None:
        return
    cfn.add_override("DependsOn", [logical_id(policy)])


def notifications_key_use(notifications_key: kms.IKey) -> iam.PolicyStatement:
    """What a sender needs on the notifications key (SSE-KMS topic and queue)."""
    return iam.PolicyStatement(
        actions=["kms:GenerateDataKey", "kms:Decrypt"],
        resources=[notifications_key.key_arn],
    )


@dataclass(frozen=True)
class DeploymentFunctions:
    """Builds the deployment's log groups and functions into ``scope`` (the ModelDeployment,
    so construct paths and logical ids do not depend on which part builds them)."""

    scope: Construct
    naming: Naming
    #: The stage's data key: log groups are encrypted with it.
    key: kms.IKey
    removal_policy: cdk.RemovalPolicy
    log_retention_days: int
    layer: lambda_.ILayerVersion
    dead_letter_queue: sqs.IQueue
    notifications_key: kms.IKey

    def log_group(self, id_: str, name: str) -> logs.LogGroup:
        return encrypted_log_group(
            self.scope,
            id_,
            name=name,
            key=self.key,
            retention_days=self.log_retention_days,
            removal_policy=self.removal_policy,
        )

    def function(
        self,
        id_: str,
        folder: str,
        suffix: str,
        description: str,
        *,
        timeout: cdk.Duration,
        reserved_concurrency: int | None = None,
        concurrency_reason: str = STATE_MACHINE_CONCURRENCY_REASON,
        environment: dict[str, str] | None = None,
    ) -> lambda_.Function:
        name = self.naming.resource(suffix, 64)
        function = lambda_.Function(
            self.scope,
            id_,
            function_name=name,
            description=f"{self.naming.prefix}: {description}",
            runtime=LAMBDA_RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler="handler.handler",
            code=lambda_.Code.from_asset(
                str(LAMBDAS_DIR / folder), exclude=["__pycache__", "*.pyc", "requirements.txt"]
            ),
            layers=[self.layer],
            memory_size=256,
            timeout=timeout,
            tracing=lambda_.Tracing.ACTIVE,
            dead_letter_queue=self.dead_letter_queue,
            reserved_concurrent_executions=reserved_concurrency,
            log_group=self.log_group(f"{id_}Logs", f"/aws/lambda/{name}"),
            environment={
                "POWERTOOLS_SERVICE_NAME": f"{self.naming.prefix}-deployment",
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
        function.add_to_role_policy(notifications_key_use(self.notifications_key))
        acknowledge(
            function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "The function only calls AWS APIs (SageMaker, Step Functions) over TLS with IAM "
            "auth; it reaches no resource in a VPC.",
        )
        if reserved_concurrency is None:
            acknowledge(function, "NIST.800.53.R5-LambdaConcurrency", concurrency_reason)
        return function
