"""What a first deploy needs, checked with your AWS credentials before ``cdk deploy`` finds out.

``mlops preflight [--cdk-out DIR]`` (or ``python -m cli.preflight``)

For every account and region a stage of ``cdk.json`` deploys to (and the tooling account of the
promotion pipeline, when ``delivery`` is configured):

* the CDK bootstrap stack ``CDKToolkit`` exists and its ``BootstrapVersion`` output is at least
  what the synthesized templates require (``requiresBootstrapStackVersion`` in ``cdk.out``'s
  manifests; without ``cdk.out``, what aws-cdk-lib's default synthesizer requires);
* the tooling account is trusted: the bootstrap's deploy and file-publishing roles name it in
  their trust policy (skipped, with a note, without a ``delivery`` section);
* the service-linked roles the stacks rely on: ``AWSServiceRoleForApplicationAutoScaling_
  SageMakerEndpoint`` where a stage's endpoint runs on instances (the deployment workflow
  registers the variant with Application Auto Scaling); serverless endpoints, Glue, Lambda, Step
  Functions, EventBridge and Scheduler need none;

and, with ``delivery``, that its CodeConnections connection is ``AVAILABLE``; with
``branch_environments.deploy_role_arn``, that the dev account has GitHub's OIDC provider and the
role, trusting it only for ``branch_environments.github_repository`` (a ``sub`` condition).

An account other than the one of your credentials is read through the bootstrap's lookup role
(``cdk-hnb659fds-lookup-role-ACCOUNT-REGION``, read-only, trusted by ``cdk bootstrap --trust``
or ``--trust-for-lookup``); when that fails the account is reported as not checkable.

Everything missing is printed in plain words with the command that fixes it.

Exit status: 0 when every check passed; 1 when something is missing (each on its own line with
its fix); 2 without usable credentials (one line), or when cdk.json is invalid.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from infra.config import (
    ENVIRONMENTS,
    PLACEHOLDER_ACCOUNTS,
    AppConfig,
    ConfigError,
    InstanceEndpoint,
)

QUALIFIER = "hnb659fds"  # the CDK bootstrap's default qualifier (DefaultStackSynthesizer)
TOOLKIT_STACK = "CDKToolkit"
#: The name Application Auto Scaling gives SageMaker's service-linked role ("Amazon SageMaker AI and
#: Application Auto Scaling", Application Auto Scaling user guide); the deployment workflow's
#: iam:CreateServiceLinkedRole statement names the same role.
AUTOSCALING_SLR = "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
AUTOSCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"
#: Bootstrap roles a pipeline in the tooling account assumes in a stage account.
TRUSTING_ROLES = ("deploy-role", "file-publishing-role")
REPO_ROOT = Path(__file__).resolve().parent.parent
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"


class NoCredentials(RuntimeError):
    """No usable AWS credentials: the one line printed."""


@dataclass(frozen=True)
class Target:
    """One account/region to check and why."""

    account: str
    region: str
    stages: tuple[str, ...]
    tooling: bool = False
    needs_autoscaling_role: bool = False

    @property
    def where(self) -> str:
        return f"{self.account}/{self.region}"


@dataclass(frozen=True)
class Problem:
    where: str
    what: str
    fix: str


@dataclass
class Result:
    passed: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def ok(self, where: str, what: str) -> None:
        self.passed.append(f"{where}: {what}")

    def missing(self, where: str, what: str, fix: str) -> None:
        self.problems.append(Problem(where, what, fix))

    def lines(self) -> list[str]:
        out = [f"ok       {line}" for line in self.passed]
        out += [f"note     {line}" for line in self.notes]
        for problem in self.problems:
            out += [f"MISSING  {problem.where}: {problem.what}", f"         fix: {problem.fix}"]
        return out


# ----------------------------------------------------------------------------------------------
# What is required


def required_bootstrap_version(cdk_out: Path | None) -> tuple[int, str]:
    """The highest ``requiresBootstrapStackVersion`` of the synthesized stacks, and where it
    came from."""
    if cdk_out is not None and (cdk_out / "manifest.json").is_file():
        versions = []
        for manifest in [cdk_out / "manifest.json", *cdk_out.glob("assembly-*/manifest.json")]:
            artifacts = json.loads(manifest.read_text()).get("artifacts", {})
            for artifact in artifacts.values():
                version = artifact.get("properties", {}).get("requiresBootstrapStackVersion")
                if isinstance(version, int):
                    versions.append(version)
        if versions:
            return max(versions), f"{cdk_out}/ manifests"
    return (
        _library_bootstrap_version(),
        "the minimum of aws-cdk-lib's default synthesizer; no cdk.out: make synth for the "
        "exact version",
    )


def _library_bootstrap_version() -> int:
    """What aws-cdk-lib's DefaultStackSynthesizer requires of a stack with file assets."""
    import tempfile

    import aws_cdk as cdk

    with tempfile.TemporaryDirectory() as outdir:
        app = cdk.App(outdir=outdir, builtin_cloud_formation_validation=False)
        stack = cdk.Stack(
            app, "Probe", env=cdk.Environment(account="123456789012", region="us-east-1")
        )
        stack.synthesizer.add_file_asset(
            source_hash="probe", file_name=__file__, packaging=cdk.FileAssetPackaging.FILE
        )
        artifact = app.synth().get_stack_by_name("Probe")
        return int(artifact.manifest.properties.requires_bootstrap_stack_version or 0)  # type: ignore[union-attr]


def targets(config: AppConfig) -> list[Target]:
    """Every account/region to check, once each."""
    found: dict[tuple[str, str], Target] = {}
    for name in ENVIRONMENTS:
        env = config.environments[name]
        key = (env.account, env.region)
        previous = found.get(key, Target(env.account, env.region, ()))
        found[key] = Target(
            env.account,
            env.region,
            (*previous.stages, name),
            previous.tooling,
            previous.needs_autoscaling_role or isinstance(env.sizing.endpoint, InstanceEndpoint),
        )
    delivery = config.delivery
    if delivery is not None:
        key = (delivery.account, delivery.region)
        previous = found.get(key, Target(delivery.account, delivery.region, ()))
        found[key] = Target(
            previous.account,
            previous.region,
            previous.stages,
            True,
            previous.needs_autoscaling_role,
        )
    return list(found.values())


def bootstrap_command(config: AppConfig, target: Target) -> str:
    """The command that bootstraps (or upgrades) ``target``, as the README gives it."""
    command = f"npx cdk bootstrap aws://{target.account}/{target.region}"
    delivery = config.delivery
    if delivery is None:
        return command
    from promotion.bootstrap import policy_arn

    if not target.tooling:
        command += f" --trust {delivery.account}"
    return command + (
        f" --cloudformation-execution-policies {policy_arn(config.project, target.account)}"
    )


# ----------------------------------------------------------------------------------------------
# Checks (each takes the clients it needs)


def check_bootstrap(cfn: Any, target: Target, required: int, fix: str, result: Result) -> None:
    try:
        stacks = cfn.describe_stacks(StackName=TOOLKIT_STACK)["Stacks"]
    except cfn.exceptions.ClientError as error:
        if "does not exist" not in str(error):
            raise
        result.missing(
            target.where,
            f"the CDK bootstrap stack {TOOLKIT_STACK} does not exist (needed by "
            f"{', '.join(target.stages) or 'the promotion pipeline'})",
            fix,
        )
        return
    stack = stacks[0]
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
    version_text = outputs.get("BootstrapVersion", "")
    if stack["StackStatus"].endswith(("_FAILED", "ROLLBACK_COMPLETE")):
        result.missing(
            target.where,
            f"the CDK bootstrap stack {TOOLKIT_STACK} is in {stack['StackStatus']}",
            f"inspect it (aws cloudformation describe-stack-events --stack-name "
            f"{TOOLKIT_STACK} --region {target.region}), then: {fix}",
        )
        return
    if not version_text.isdigit():
        result.missing(target.where, f"{TOOLKIT_STACK} has no BootstrapVersion output", fix)
        return
    version = int(version_text)
    if version < required:
        result.missing(
            target.where,
            f"bootstrap version {version} is older than the {required} the templates need",
            fix,
        )
    else:
        result.ok(target.where, f"{TOOLKIT_STACK} bootstrap version {version} (>= {required})")


def _trust_principals(document: Any) -> set[str]:
    if isinstance(document, str):
        document = json.loads(unquote(document))
    principals: set[str] = set()
    for statement in document.get("Statement", []):
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if statement.get("Effect") != "Allow" or "sts:AssumeRole" not in actions:
            continue
        aws = statement.get("Principal", {}).get("AWS", [])
        principals.update([aws] if isinstance(aws, str) else aws)
    return principals


def check_trust(iam: Any, target: Target, tooling_account: str, fix: str, result: Result) -> None:
    for role in TRUSTING_ROLES:
        name = f"cdk-{QUALIFIER}-{role}-{target.account}-{target.region}"
        try:
            document = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
        except iam.exceptions.NoSuchEntityException:
            result.missing(target.where, f"the bootstrap role {name} does not exist", fix)
            continue
        principals = _trust_principals(document)
        trusted = any(
            p == tooling_account or p.endswith(f":iam::{tooling_account}:root") for p in principals
        )
        if trusted:
            result.ok(target.where, f"{name} trusts the tooling account {tooling_account}")
        else:
            result.missing(
                target.where,
                f"{name} does not trust the tooling account {tooling_account}: the pipeline "
                "cannot deploy here",
                fix,
            )


def check_autoscaling_role(iam: Any, target: Target, result: Result) -> None:
    try:
        iam.get_role(RoleName=AUTOSCALING_SLR)
    except iam.exceptions.NoSuchEntityException:
        result.missing(
            target.where,
            f"the service-linked role {AUTOSCALING_SLR} does not exist; "
            f"{', '.join(target.stages)} scale their endpoint variants with Application Auto "
            "Scaling, which needs it",
            f"aws iam create-service-linked-role --aws-service-name {AUTOSCALING_SERVICE}"
            f"  # with credentials for {target.account}",
        )
        return
    result.ok(target.where, f"service-linked role {AUTOSCALING_SLR} exists")


def _string_values(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def check_github_role(
    iam: Any, target: Target, role_arn: str, repository: str | None, result: Result
) -> None:
    """The branch workflows' OIDC role: GitHub's provider in the account, the role, and its
    trust limited to this repository's tokens."""
    provider = f"arn:aws:iam::{target.account}:oidc-provider/{GITHUB_OIDC_HOST}"
    guide = "README 'The OIDC role'"
    try:
        iam.get_open_id_connect_provider(OpenIDConnectProviderArn=provider)
    except iam.exceptions.NoSuchEntityException:
        result.missing(
            target.where,
            "GitHub's OIDC provider is not in this account: the branch workflows cannot sign in",
            f"aws iam create-open-id-connect-provider --url https://{GITHUB_OIDC_HOST} "
            "--client-id-list sts.amazonaws.com",
        )
    name = role_arn.rsplit("/", 1)[-1]
    try:
        document = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
    except iam.exceptions.NoSuchEntityException:
        result.missing(
            target.where,
            f"the branch workflows' role {role_arn} does not exist",
            f"aws iam create-role --role-name {name} --assume-role-policy-document "
            f"file://trust.json ({guide})",
        )
        return
    if isinstance(document, str):
        document = json.loads(unquote(document))
    subjects: list[str] = []
    federated = False
    for statement in document.get("Statement", []):
        principal = statement.get("Principal", {})
        if statement.get("Effect") != "Allow" or provider not in _string_values(
            principal.get("Federated") if isinstance(principal, dict) else None
        ):
            continue
        federated = True
        for operator, conditions in statement.get("Condition", {}).items():
            if operator in ("StringEquals", "StringLike"):
                subjects += _string_values(conditions.get(f"{GITHUB_OIDC_HOST}:sub"))
    # repo:OWNER/NAME:... with no wildcard in the repository (and this one when configured)
    one_repo = re.compile(
        rf"repo:{re.escape(repository)}:" if repository else r"repo:[^*:/]+/[^*:]+:"
    )
    if not federated:
        result.missing(
            target.where,
            f"{name} does not trust GitHub's OIDC provider",
            f"aws iam update-assume-role-policy --role-name {name} --policy-document "
            f"file://trust.json ({guide})",
        )
    elif not subjects or not all(one_repo.match(s) for s in subjects):
        result.missing(
            target.where,
            f"{name} trusts GitHub tokens beyond {repository or 'one repository'} "
            f"(its {GITHUB_OIDC_HOST}:sub condition is {subjects or 'missing'})",
            f"aws iam update-assume-role-policy --role-name {name} --policy-document "
            f"file://trust.json ({guide}: sub repo:{repository or 'OWNER/NAME'}:ref:refs/heads/*)",
        )
    else:
        result.ok(target.where, f"{name} trusts GitHub's OIDC tokens of {', '.join(subjects)}")


def check_connection(connections: Any, connection_arn: str, result: Result) -> None:
    region = connection_arn.split(":")[3]
    where = f"{connection_arn.split(':')[4]}/{region}"
    try:
        connection = connections.get_connection(ConnectionArn=connection_arn)["Connection"]
    except connections.exceptions.ResourceNotFoundException:
        result.missing(
            where,
            f"the connection {connection_arn} does not exist",
            f"aws codeconnections create-connection --provider-type GitHub --connection-name "
            f"<name> --region {region}, then put its ARN in cdk.json delivery.connection_arn",
        )
        return
    status = connection.get("ConnectionStatus")
    if status == "AVAILABLE":
        result.ok(where, f"connection {connection.get('ConnectionName')} is AVAILABLE")
        return
    result.missing(
        where,
        f"the connection {connection.get('ConnectionName')} is {status}, not AVAILABLE: "
        "the pipeline cannot read the repository",
        "complete the handshake in the console (no CLI can): "
        f"https://console.aws.amazon.com/codesuite/settings/connections?region={region} -> "
        "the connection -> Update pending connection",
    )


# ----------------------------------------------------------------------------------------------
# The run


ClientFactory = Callable[[str, str, str], Any]  # (service, account, region) -> client


def session_clients(session: Any) -> tuple[str, ClientFactory]:
    """The caller's account, and clients per service/account/region: the caller's own account
    directly, others through the bootstrap's lookup role."""
    try:
        caller = session.client("sts").get_caller_identity()["Account"]
    except Exception as error:  # expired or invalid credentials: one line
        raise NoCredentials(f"the AWS credentials found do not work: {error}") from None
    credentials: dict[tuple[str, str], dict[str, str]] = {}
    clients: dict[tuple[str, str, str], Any] = {}

    def client(service: str, account: str, region: str) -> Any:
        """One client per service/account/region, all on this session (its botocore session
        loads each service model once)."""
        key = (service, account, region)
        if key in clients:
            return clients[key]
        if account == caller:
            clients[key] = session.client(service, region_name=region)
            return clients[key]
        if (account, region) not in credentials:
            role = f"arn:aws:iam::{account}:role/cdk-{QUALIFIER}-lookup-role-{account}-{region}"
            assumed = session.client("sts", region_name=region).assume_role(
                RoleArn=role, RoleSessionName="mlops-preflight"
            )["Credentials"]
            credentials[(account, region)] = {
                "aws_access_key_id": assumed["AccessKeyId"],
                "aws_secret_access_key": assumed["SecretAccessKey"],
                "aws_session_token": assumed["SessionToken"],
            }
        clients[key] = session.client(service, region_name=region, **credentials[(account, region)])
        return clients[key]

    return caller, client


def preflight(
    config: AppConfig, clients: ClientFactory, caller: str, required: tuple[int, str]
) -> Result:
    """Every check (see the module docstring); never raises for what it finds missing."""
    result = Result()
    version, source = required
    result.notes.append(f"templates need bootstrap version >= {version} ({source})")
    delivery = config.delivery
    if delivery is None:
        result.notes.append(
            "trust from a tooling account and the connection not checked: cdk.json has no "
            "delivery section (no promotion pipeline)"
        )
    for target in targets(config):
        if target.account in PLACEHOLDER_ACCOUNTS:
            result.missing(
                target.where,
                f"account {target.account} is a placeholder from the shipped cdk.json",
                "put your account ids in cdk.json (environments.*.account, delivery.account)",
            )
            continue
        fix = bootstrap_command(config, target)
        try:
            check_bootstrap(clients("cloudformation", target.account, target.region), target,
                            version, fix, result)  # fmt: skip
            iam = clients("iam", target.account, target.region)
            if delivery is not None and target.account != delivery.account:
                check_trust(iam, target, delivery.account, fix, result)
            if target.needs_autoscaling_role:
                check_autoscaling_role(iam, target, result)
            branches = config.branch_environments
            dev = config.environments["dev"]
            if branches.deploy_role_arn and (target.account, target.region) == (
                dev.account,
                dev.region,
            ):
                check_github_role(
                    iam, target, branches.deploy_role_arn, branches.github_repository, result
                )
        except Exception as error:  # cannot reach or read the account: say so, go on
            code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
            result.missing(
                target.where,
                f"cannot check this account from account {caller} ({code or error})",
                f"AWS_PROFILE=<a profile of {target.account}> mlops preflight "
                f"(the lookup role of a bootstrapped account trusts only the accounts given "
                "to cdk bootstrap --trust)",
            )
    if delivery is not None and delivery.account not in PLACEHOLDER_ACCOUNTS:
        region = delivery.connection_arn.split(":")[3]
        service = delivery.connection_arn.split(":")[2]
        try:
            check_connection(clients(service, delivery.account, region), delivery.connection_arn,
                             result)  # fmt: skip
        except Exception as error:
            code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
            result.missing(
                f"{delivery.account}/{region}",
                f"cannot read the connection {delivery.connection_arn} ({code or error})",
                f"rerun with credentials for {delivery.account}",
            )
    return result


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mlops preflight",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Exit status: 0 all passed, 1 something missing, 2 no credentials or bad config.",
    )
    parser.add_argument(
        "--cdk-out",
        type=Path,
        default=REPO_ROOT / "cdk.out",
        help="synthesized cloud assembly (default cdk.out; make synth writes it)",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    import boto3

    session = boto3.Session()
    if session.get_credentials() is None:
        print(
            "preflight: no AWS credentials found (environment, profile, SSO or instance role); "
            "nothing checked",
            file=sys.stderr,
        )
        return 2
    from infra.config import CONTEXT_KEY, load_config
    from infra.workspace import load_cdk_json_context

    try:
        config = load_config(load_cdk_json_context().get(CONTEXT_KEY))
        caller, clients = session_clients(session)
    except (ConfigError, NoCredentials) as error:
        print(f"preflight: {error}", file=sys.stderr)
        return 2
    print(f"preflight: checking with the credentials of account {caller}")
    result = preflight(config, clients, caller, required_bootstrap_version(args.cdk_out))
    print("\n".join(result.lines()))
    if result.problems:
        print(f"preflight: {len(result.problems)} thing(s) missing", file=sys.stderr)
        return 1
    print("preflight: everything a first deploy needs is in place")
    return 0


if __name__ == "__main__":
    sys.exit(main())
