"""What each account needs before the pipeline's first deploy: the CloudFormation execution policy
its CDK bootstrap hands to CloudFormation, and the exact commands, from ``cdk.json``.

``python -m promotion.bootstrap``                  the commands for every account, in order
``python -m promotion.bootstrap policy stage``     the stage accounts' execution policy (JSON)
``python -m promotion.bootstrap policy tooling``   the tooling account's

The execution policy replaces the bootstrap default, AdministratorAccess: CloudFormation may use
only the services the stacks declare (a test maps every resource type of the synthesized templates
to them), in the stage's region, and IAM only on roles and policies named after the project
(every stack name, hence every generated role and policy name, starts with ``<project>-``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from infra.config import ENVIRONMENTS, AppConfig, ConfigError

#: Services whose resources the stage stacks declare (CloudFormation type prefix -> IAM prefix).
STAGE_SERVICES = {
    "Athena": "athena",
    "CloudTrail": "cloudtrail",
    "CloudWatch": "cloudwatch",
    "ECR": "ecr",  # serving_image: custom (serving/infrastructure.py)
    "Events": "events",
    "Glue": "glue",
    "KMS": "kms",
    "Lambda": "lambda",
    "Logs": "logs",
    "S3": "s3",
    "SNS": "sns",
    "SQS": "sqs",
    "SageMaker": "sagemaker",
    "Scheduler": "scheduler",
    "StepFunctions": "states",
}
#: The pipeline stack's (tooling account).
TOOLING_SERVICES = {
    "CodeBuild": "codebuild",
    "CodePipeline": "codepipeline",
    "KMS": "kms",
    "S3": "s3",
}
KINDS = ("stage", "tooling")


def policy_name(project: str) -> str:
    return f"{project}-cdk-cfn-exec"


def policy_arn(project: str, account: str) -> str:
    return f"arn:aws:iam::{account}:policy/{policy_name(project)}"


def execution_policy(project: str, kind: str, region: str) -> dict[str, Any]:
    """The CloudFormation execution policy of a stage account or the tooling account."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    services = STAGE_SERVICES if kind == "stage" else TOOLING_SERVICES
    statements: list[dict[str, Any]] = [
        {
            "Sid": "DeclaredServices",
            "Effect": "Allow",
            "Action": sorted(f"{prefix}:*" for prefix in set(services.values())),
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestedRegion": region}},
        },
        {
            "Sid": "ProjectRolesAndPolicies",
            "Effect": "Allow",
            "Action": [
                "iam:AttachRolePolicy",
                "iam:CreatePolicy",
                "iam:CreatePolicyVersion",
                "iam:CreateRole",
                "iam:DeletePolicy",
                "iam:DeletePolicyVersion",
                "iam:DeleteRole",
                "iam:DeleteRolePolicy",
                "iam:DetachRolePolicy",
                "iam:GetPolicy",
                "iam:GetPolicyVersion",
                "iam:GetRole",
                "iam:GetRolePolicy",
                "iam:ListPolicyVersions",
                "iam:ListRolePolicies",
                "iam:ListAttachedRolePolicies",
                "iam:PassRole",
                "iam:PutRolePolicy",
                "iam:TagPolicy",
                "iam:TagRole",
                "iam:UntagPolicy",
                "iam:UntagRole",
                "iam:UpdateAssumeRolePolicy",
                "iam:UpdateRole",
                "iam:UpdateRoleDescription",
            ],
            "Resource": [
                f"arn:aws:iam::*:role/{project}-*",
                f"arn:aws:iam::*:policy/{project}-*",
            ],
        },
        {
            "Sid": "BootstrapVersion",
            "Effect": "Allow",
            "Action": "ssm:GetParameters",
            "Resource": "arn:aws:ssm:*:*:parameter/cdk-bootstrap/*",
        },
    ]
    if kind == "stage":
        # CloudFormation invokes the stacks' custom-resource handlers (CDK BucketDeployment);
        # a container-image asset is pulled from the bootstrap repository.
        statements.append(
            {
                "Sid": "BootstrapImageAssets",
                "Effect": "Allow",
                "Action": [
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchCheckLayerAvailability",
                ],
                "Resource": "arn:aws:ecr:*:*:repository/cdk-*",
            }
        )
    else:
        statements.append(
            {
                "Sid": "SourceConnection",
                "Effect": "Allow",
                "Action": [
                    "codeconnections:PassConnection",
                    "codeconnections:UseConnection",
                    "codestar-connections:PassConnection",
                    "codestar-connections:UseConnection",
                ],
                "Resource": "*",
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def bootstrap_commands(config: AppConfig) -> list[str]:
    """Every command, in order: the policy then the bootstrap, tooling account first."""
    delivery = config.delivery
    if delivery is None:
        raise ConfigError("mlops.delivery", None, "required for the promotion pipeline")
    project = config.project
    out: list[str] = []

    def policy(kind: str, account: str, region: str) -> None:
        out.append(
            f"aws iam create-policy --policy-name {policy_name(project)} --policy-document "
            f'"$(python -m promotion.bootstrap policy {kind} --region {region})"'
            f"  # with credentials for {account}"
        )

    policy("tooling", delivery.account, delivery.region)
    out.append(
        f"npx cdk bootstrap aws://{delivery.account}/{delivery.region} "
        f"--cloudformation-execution-policies {policy_arn(project, delivery.account)}"
    )
    seen: set[tuple[str, str]] = set()
    for name in ENVIRONMENTS:
        env = config.environments[name]
        if (env.account, env.region) in seen:
            continue
        seen.add((env.account, env.region))
        policy("stage", env.account, env.region)
        out.append(
            f"npx cdk bootstrap aws://{env.account}/{env.region} --trust {delivery.account} "
            f"--cloudformation-execution-policies {policy_arn(project, env.account)}"
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m promotion.bootstrap", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    pol = sub.add_parser("policy", help="print an execution policy (JSON)")
    pol.add_argument("kind", choices=KINDS)
    pol.add_argument("--region", help="the account's region (default: from cdk.json)")
    args = parser.parse_args(argv)
    from infra.app_builder import load_cdk_json_context
    from infra.config import CONTEXT_KEY, load_config

    try:
        config = load_config(load_cdk_json_context().get(CONTEXT_KEY))
        if args.command == "policy":
            default = (
                config.environments["dev"].region
                if args.kind == "stage"
                else (config.delivery.region if config.delivery else None)
            )
            region = args.region or default
            print(json.dumps(execution_policy(config.project, args.kind, str(region)), indent=2))
        else:
            print("\n".join(bootstrap_commands(config)))
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
