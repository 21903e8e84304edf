"""mlops preflight (cli/preflight.py) against moto (several accounts: the caller's, others
through the bootstrap's lookup role) and botocore's Stubber for CodeConnections (real service
model)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from cli import preflight as pf
from infra.config import load_config
from tests.conftest import resources_of_type

CALLER = "123456789012"  # moto's default account: the credentials' own
DEV, STAGING, PROD, TOOLING = "111122223333", "222233334444", "333344445555", "444455556666"
REGION = "us-east-1"
CONNECTION = (
    f"arn:aws:codeconnections:{REGION}:{TOOLING}:connection/12345678-1234-1234-1234-123456789012"
)


def toolkit_template(version: str) -> str:
    return json.dumps(
        {
            "Resources": {"StagingBucketPlaceholder": {"Type": "AWS::SQS::Queue"}},
            "Outputs": {"BootstrapVersion": {"Value": version}},
        }
    )


def trust(*accounts: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "sts:AssumeRole",
                    "Principal": {"AWS": [f"arn:aws:iam::{a}:root" for a in accounts]},
                }
            ],
        }
    )


@pytest.fixture
def config(mlops_config: dict[str, Any]) -> Any:
    for name, account in (("dev", DEV), ("staging", STAGING), ("prod", PROD)):
        mlops_config["environments"][name]["account"] = account
    mlops_config["branch_environments"]["deploy_role_arn"] = f"arn:aws:iam::{DEV}:role/deploy"
    mlops_config["delivery"].update(account=TOOLING, region=REGION, connection_arn=CONNECTION)
    return load_config(mlops_config)


class Accounts:
    """Clients per account in moto: the caller's directly, others via the lookup role."""

    def __init__(self) -> None:
        self.caller, self.factory = pf.session_clients(boto3.Session(region_name=REGION))
        self.connection_status = "AVAILABLE"
        self.stubbers: list[Stubber] = []

    def client(self, service: str, account: str, region: str) -> Any:
        if service == "codeconnections":  # not in moto: the real model, stubbed
            client = boto3.client(service, region_name=region)
            stubber = Stubber(client)
            stubber.add_response(
                "get_connection",
                {
                    "Connection": {
                        "ConnectionName": "mlops-github",
                        "ConnectionArn": CONNECTION,
                        "ProviderType": "GitHub",
                        "OwnerAccountId": TOOLING,
                        "ConnectionStatus": self.connection_status,
                    }
                },
                {"ConnectionArn": CONNECTION},
            )
            stubber.activate()
            self.stubbers.append(stubber)
            return client
        return self.factory(service, account, region)

    def bootstrap(self, account: str, version: str = "21", trusted: tuple[str, ...] = ()) -> None:
        self.client("cloudformation", account, REGION).create_stack(
            StackName="CDKToolkit", TemplateBody=toolkit_template(version)
        )
        iam = self.client("iam", account, REGION)
        for role in pf.TRUSTING_ROLES:
            iam.create_role(
                RoleName=f"cdk-hnb659fds-{role}-{account}-{REGION}",
                AssumeRolePolicyDocument=trust(account, *trusted),
            )

    def github_role(
        self, account: str, subject: str | None = "repo:my-org/mlops:ref:refs/heads/*"
    ) -> None:
        iam = self.client("iam", account, REGION)
        provider = iam.create_open_id_connect_provider(
            Url=f"https://{pf.GITHUB_OIDC_HOST}", ClientIDList=["sts.amazonaws.com"]
        )["OpenIDConnectProviderArn"]
        condition: dict[str, Any] = {
            "StringEquals": {f"{pf.GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com"}
        }
        if subject is not None:
            condition["StringLike"] = {f"{pf.GITHUB_OIDC_HOST}:sub": subject}
        iam.create_role(
            RoleName="deploy",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Federated": provider},
                            "Action": "sts:AssumeRoleWithWebIdentity",
                            "Condition": condition,
                        }
                    ],
                }
            ),
        )

    def autoscaling_role(self, account: str) -> None:
        self.client("iam", account, REGION).create_role(
            RoleName=pf.AUTOSCALING_SLR,
            Path=f"/aws-service-role/{pf.AUTOSCALING_SERVICE}/",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )


@pytest.fixture
def accounts(moto_aws: None) -> Iterator[Accounts]:
    yield Accounts()


def test_everything_in_place_passes(config: Any, accounts: Accounts) -> None:
    assert accounts.caller == CALLER
    accounts.bootstrap(TOOLING)
    for account in (DEV, STAGING, PROD):
        accounts.bootstrap(account, trusted=(TOOLING,))
    accounts.autoscaling_role(PROD)  # instance endpoints (prod): autoscaling
    accounts.github_role(DEV)
    result = pf.preflight(config, accounts.client, CALLER, (8, "test"))
    assert result.problems == []
    passed = "\n".join(result.passed)
    for account in (DEV, STAGING, PROD, TOOLING):
        assert f"{account}/{REGION}: CDKToolkit bootstrap version 21 (>= 8)" in passed
    assert passed.count("trusts the tooling account") == 6  # 3 accounts x 2 roles
    assert passed.count(pf.AUTOSCALING_SLR) == 1  # dev, staging serverless: not needed there
    assert "connection mlops-github is AVAILABLE" in passed
    assert f"{DEV}/{REGION}: deploy trusts GitHub's OIDC tokens of repo:my-org/mlops:" in passed


@pytest.mark.parametrize(
    ("subject", "problem"),
    [
        (None, "(its token.actions.githubusercontent.com:sub condition is missing)"),
        ("repo:*", "trusts GitHub tokens beyond my-org/mlops"),
        ("repo:my-org/*", "trusts GitHub tokens beyond my-org/mlops"),
        ("repo:other-org/mlops:ref:refs/heads/*", "trusts GitHub tokens beyond my-org/mlops"),
    ],
)
def test_a_github_role_trusting_more_than_this_repository_is_reported(
    config: Any, accounts: Accounts, subject: str | None, problem: str
) -> None:
    accounts.github_role(DEV, subject)
    result = pf.Result()
    pf.check_github_role(
        accounts.client("iam", DEV, REGION),
        pf.targets(config)[0],
        f"arn:aws:iam::{DEV}:role/deploy",
        "my-org/mlops",
        result,
    )
    (found,) = result.problems
    assert problem in found.what
    assert found.fix.startswith("aws iam update-assume-role-policy --role-name deploy")


def test_each_missing_thing_in_plain_words_with_its_fix(config: Any, accounts: Accounts) -> None:
    accounts.bootstrap(TOOLING)
    accounts.bootstrap(STAGING, version="5", trusted=(TOOLING,))  # too old
    accounts.bootstrap(PROD)  # not trusting the tooling account; no autoscaling role
    accounts.autoscaling_role(STAGING)
    accounts.connection_status = "PENDING"
    result = pf.preflight(config, accounts.client, CALLER, (8, "test"))
    by_what = [(p.where, p.what, p.fix) for p in result.problems]
    text = "\n".join(result.lines())
    policy = "--cloudformation-execution-policies arn:aws:iam::{}:policy/mlops-cdk-cfn-exec"
    # dev: no bootstrap stack at all
    assert f"MISSING  {DEV}/{REGION}: the CDK bootstrap stack CDKToolkit does not exist" in text
    assert (
        f"fix: npx cdk bootstrap aws://{DEV}/{REGION} --trust {TOOLING} {policy.format(DEV)}"
    ) in text
    # staging: too old
    assert f"{STAGING}/{REGION}: bootstrap version 5 is older than the 8 the templates need" in text
    # prod: no trust, no service-linked role
    assert any(
        where == f"{PROD}/{REGION}" and "does not trust the tooling account" in what
        and fix.startswith(f"npx cdk bootstrap aws://{PROD}/{REGION} --trust {TOOLING}")
        for where, what, fix in by_what
    )  # fmt: skip
    assert any(
        f"service-linked role {pf.AUTOSCALING_SLR} does not exist" in what
        and fix.startswith(
            "aws iam create-service-linked-role --aws-service-name "
            "sagemaker.application-autoscaling.amazonaws.com"
        )
        and where.startswith(PROD)
        for where, what, fix in by_what
    )
    # the connection
    assert "the connection mlops-github is PENDING, not AVAILABLE" in text
    assert "Update pending connection" in text
    # dev: no stack, neither bootstrap role, no GitHub OIDC provider nor role (5); staging:
    # too old (1); prod: two roles not trusting, no service-linked role (3); the connection
    # (1). The tooling account is fine.
    assert len(result.problems) == 10
    assert f"MISSING  {DEV}/{REGION}: GitHub's OIDC provider is not in this account" in text
    assert "fix: aws iam create-open-id-connect-provider --url https://token.actions" in text
    assert f"the branch workflows' role arn:aws:iam::{DEV}:role/deploy does not exist" in text
    assert not any(p.where.startswith(TOOLING) and "connection" not in p.what
                   for p in result.problems)  # fmt: skip
    for stubber in accounts.stubbers:
        stubber.assert_no_pending_responses()


def test_an_account_that_cannot_be_read_is_reported_and_the_rest_checked(
    config: Any, accounts: Accounts
) -> None:
    def client(service: str, account: str, region: str) -> Any:
        if account == PROD:
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "AssumeRole"
            )
        return accounts.client(service, account, region)

    accounts.bootstrap(TOOLING)
    for account in (DEV, STAGING):
        accounts.bootstrap(account, trusted=(TOOLING,))
    accounts.autoscaling_role(STAGING)
    accounts.github_role(DEV)
    result = pf.preflight(config, client, CALLER, (8, "test"))
    assert [(p.where, p.what) for p in result.problems] == [
        (f"{PROD}/{REGION}", f"cannot check this account from account {CALLER} (AccessDenied)")
    ]
    assert result.problems[0].fix.startswith(f"AWS_PROFILE=<a profile of {PROD}>")


def test_placeholder_accounts_are_not_called(mlops_config: dict[str, Any]) -> None:
    def client(*_: Any) -> Any:
        raise AssertionError("no AWS call for a placeholder account")

    result = pf.preflight(load_config(mlops_config), client, CALLER, (8, "test"))
    assert {p.what for p in result.problems} == {
        f"account {a} is a placeholder from the shipped cdk.json"
        for a in ("111111111111", "222222222222", "333333333333", "444444444444")
    }


def test_without_delivery_trust_and_connection_are_skipped_with_a_note(
    mlops_config: dict[str, Any], accounts: Accounts
) -> None:
    for name, account in (("dev", DEV), ("staging", STAGING), ("prod", PROD)):
        mlops_config["environments"][name]["account"] = account
    mlops_config["branch_environments"]["deploy_role_arn"] = None
    del mlops_config["delivery"]
    config = load_config(mlops_config)
    for account in (DEV, STAGING, PROD):
        accounts.bootstrap(account)  # trusts nobody else: fine without a pipeline
    result = pf.preflight(config, accounts.client, CALLER, (8, "test"))
    assert [p.what for p in result.problems] == [
        f"the service-linked role {pf.AUTOSCALING_SLR} does not exist; prod scale their "
        "endpoint variants with Application Auto Scaling, which needs it",
    ]
    assert any("no delivery section" in note for note in result.notes)
    assert pf.bootstrap_command(config, pf.targets(config)[0]) == (
        f"npx cdk bootstrap aws://{DEV}/{REGION}"
    )


def test_required_version_is_the_highest_the_manifests_ask(tmp_path: Path) -> None:
    def manifest(path: Path, *versions: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        artifacts = {
            f"s{i}": {"type": "aws:cloudformation:stack", "properties": {
                "requiresBootstrapStackVersion": v}}
            for i, v in enumerate(versions)
        }  # fmt: skip
        (path / "manifest.json").write_text(json.dumps({"artifacts": artifacts}))

    manifest(tmp_path, 6)
    manifest(tmp_path / "assembly-mlops-dev", 6, 8)
    assert pf.required_bootstrap_version(tmp_path) == (8, f"{tmp_path}/ manifests")


def test_required_version_of_the_real_synth(synthesized: Any) -> None:
    version, _ = pf.required_bootstrap_version(Path(synthesized.assembly.directory))
    assert version >= 6


def test_required_version_without_cdk_out_comes_from_aws_cdk_lib(tmp_path: Path) -> None:
    version, source = pf.required_bootstrap_version(tmp_path / "absent")
    assert version >= 6 and "aws-cdk-lib" in source


# ----------------------------------------------------------------------------------------------
# The command


def test_without_credentials_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert pf.main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "no AWS credentials found" in captured.err


def test_credentials_that_do_not_work_are_one_line(
    moto_aws: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise pf.NoCredentials("the AWS credentials found do not work: ExpiredToken")

    monkeypatch.setattr(pf, "session_clients", broken)
    assert pf.main([]) == 2
    assert capsys.readouterr().err == (
        "preflight: the AWS credentials found do not work: ExpiredToken\n"
    )


def test_main_with_the_shipped_placeholders_exits_1(
    moto_aws: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"artifacts": {}}))
    assert pf.main(["--cdk-out", str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert f"checking with the credentials of account {CALLER}" in out.out
    assert "is a placeholder from the shipped cdk.json" in out.out
    assert "thing(s) missing" in out.err


def test_the_autoscaling_role_is_the_one_the_deployment_workflow_may_create(
    templates: dict[str, Any],
) -> None:
    """AWS names it AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint; preflight checks
    for the role the prod deployment workflow's iam:CreateServiceLinkedRole statement names."""
    policies = resources_of_type(templates["mlops-prod"]["Deployment"], "AWS::IAM::Policy")
    text = json.dumps(policies)
    assert f"/{pf.AUTOSCALING_SLR}" in text
    assert pf.AUTOSCALING_SLR == "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
