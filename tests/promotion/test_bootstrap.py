"""The bootstrap commands and CloudFormation execution policies (README "Promote"): every resource
type the synthesized stacks declare is covered by its account's policy, IAM only on the project's
names, the named actions exist in botocore's API models, the commands trust the tooling account."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from infra.config import load_config
from promotion import bootstrap
from tests.promotion.conftest import PIPELINE_STACK

#: Resource types that need no service permission of their own.
NO_PERMISSION = {"AWS::CDK::Metadata"}
#: IAM actions that authorize something other than one API call (no operation of that name).
PERMISSION_ONLY = {
    "iam:PassRole",
    "codeconnections:PassConnection",
    "codeconnections:UseConnection",
    "codestar-connections:PassConnection",
    "codestar-connections:UseConnection",
}


def _types(files: list[Path]) -> set[str]:
    types: set[str] = set()
    for path in files:
        types.update(r["Type"] for r in json.loads(path.read_text())["Resources"].values())
    return types


def _covered(policy: dict[str, Any], resource_type: str, services: dict[str, str]) -> bool:
    if resource_type in NO_PERMISSION:
        return True
    allowed = {
        action
        for statement in policy["Statement"]
        for action in (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        )
    }
    if resource_type.startswith("Custom::"):  # CloudFormation invokes the stack's handler
        return "lambda:*" in allowed
    _, service, _ = resource_type.split("::")
    if service == "IAM":
        return "iam:CreateRole" in allowed and "iam:CreatePolicy" in allowed
    prefix = services.get(service)
    return prefix is not None and f"{prefix}:*" in allowed


def test_stage_policy_covers_every_resource_type_of_every_stage(
    template_files: list[Path],
) -> None:
    policy = bootstrap.execution_policy("mlops", "stage", "us-east-1")
    missing = {
        t for t in _types(template_files) if not _covered(policy, t, bootstrap.STAGE_SERVICES)
    }
    assert missing == set(), f"extend promotion/bootstrap.py STAGE_SERVICES: {missing}"


def test_tooling_policy_covers_the_pipeline_stack(default_branch_out: Path) -> None:
    policy = bootstrap.execution_policy("mlops", "tooling", "us-east-1")
    types = _types([default_branch_out / f"{PIPELINE_STACK}.template.json"])
    assert "AWS::CodePipeline::Pipeline" in types
    missing = {t for t in types if not _covered(policy, t, bootstrap.TOOLING_SERVICES)}
    assert missing == set(), f"extend promotion/bootstrap.py TOOLING_SERVICES: {missing}"


def test_iam_is_limited_to_the_projects_names(
    template_files: list[Path], default_branch_out: Path, synthesized: Any
) -> None:
    policy = bootstrap.execution_policy("mlops", "stage", "us-east-1")
    (iam,) = [s for s in policy["Statement"] if s["Sid"] == "ProjectRolesAndPolicies"]
    assert iam["Resource"] == ["arn:aws:iam::*:role/mlops-*", "arn:aws:iam::*:policy/mlops-*"]
    assert all(a.startswith("iam:") and "*" not in a for a in iam["Action"])
    # Generated role and policy names start with their stack's name, named ones with the project.
    stacks = [s for stage in synthesized.report["stages"] for s in stage["stacks"]]
    assert stacks and all(name.startswith("mlops-") for name in stacks)
    files = [*template_files, default_branch_out / f"{PIPELINE_STACK}.template.json"]
    for path in files:
        for resource in json.loads(path.read_text())["Resources"].values():
            props = resource.get("Properties", {})
            for key in ("RoleName", "ManagedPolicyName"):
                if key in props:
                    assert str(props[key]).startswith("mlops-"), (path.name, props[key])


def test_named_actions_exist_in_botocore() -> None:
    session = botocore.session.get_session()
    for kind in bootstrap.KINDS:
        for statement in bootstrap.execution_policy("mlops", kind, "eu-west-1")["Statement"]:
            actions = statement["Action"]
            for action in [actions] if isinstance(actions, str) else actions:
                prefix, name = action.split(":")
                if name == "*" or action in PERMISSION_ONLY:
                    continue
                model = session.get_service_model(prefix)
                assert name in model.operation_names, action


def test_services_are_confined_to_the_accounts_region() -> None:
    policy = bootstrap.execution_policy("mlops", "stage", "eu-west-1")
    (services,) = [s for s in policy["Statement"] if s["Sid"] == "DeclaredServices"]
    assert services["Condition"] == {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}
    with pytest.raises(ValueError, match="kind must be one of stage, tooling"):
        bootstrap.execution_policy("mlops", "admin", "eu-west-1")


def test_bootstrap_commands_trust_the_tooling_account(cdk_context: dict[str, Any]) -> None:
    config = load_config(cdk_context["mlops"])
    lines = bootstrap.bootstrap_commands(config)
    bootstraps = [line for line in lines if line.startswith("npx cdk bootstrap")]
    policy = "arn:aws:iam::{0}:policy/mlops-cdk-cfn-exec"
    assert bootstraps == [
        "npx cdk bootstrap aws://444444444444/us-east-1 "
        f"--cloudformation-execution-policies {policy.format('444444444444')}",
        *[
            f"npx cdk bootstrap aws://{account}/us-east-1 --trust 444444444444 "
            f"--cloudformation-execution-policies {policy.format(account)}"
            for account in ("111111111111", "222222222222", "333333333333")
        ],
    ]
    creates = [line for line in lines if line.startswith("aws iam create-policy")]
    assert len(creates) == 4 and "policy tooling" in creates[0]
    assert all("policy stage --region us-east-1" in line for line in creates[1:])
    # each policy is created before the bootstrap that names it
    assert [line.split()[0] for line in lines] == ["aws", "npx"] * 4


def test_cli_prints_valid_policy_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert bootstrap.main(["policy", "stage", "--region", "eu-west-1"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document == bootstrap.execution_policy("mlops", "stage", "eu-west-1")
    assert bootstrap.main([]) == 0
    assert capsys.readouterr().out.count("npx cdk bootstrap") == 4
