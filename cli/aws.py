"""boto3 sessions and clients for the CLI: ``--profile``/``--region`` first, then the stage's
configured region, then the default chain. Credentials are resolved when a call is signed: a
missing or expired one surfaces there and becomes exit code 3 (:mod:`cli.errors`)."""

from __future__ import annotations

import re
from typing import Any

import boto3
from botocore.config import Config

from cli.errors import EXIT_CREDENTIALS, EXIT_USAGE, CliError
from infra.config import StageConfig

#: Standard retries with backoff for every client the CLI makes.
BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})

_PACKAGE_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sagemaker:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):"
    r"model-package/(?P<group>[A-Za-z0-9-]{1,63})/(?P<version>[0-9]+)$"
)


def session(profile: str | None = None, region: str | None = None) -> boto3.Session:
    return boto3.Session(profile_name=profile, region_name=region)


def client(sess: boto3.Session, service: str, region: str | None = None) -> Any:
    """A client in ``region`` (else the session's); a session without one raises NoRegionError."""
    return sess.client(service, region_name=region or sess.region_name, config=BOTO_CONFIG)


def check_account(sess: boto3.Session, stage: StageConfig) -> None:
    """Refuse credentials of another account than the stage's: there the stage's resources do
    not exist (``status`` would call it not deployed) or are someone else's (``teardown``).
    cdk.json's placeholder accounts name no real account: nothing to compare with."""
    if stage.environment.placeholder_account:
        return
    caller = str(client(sess, "sts", stage.environment.region).get_caller_identity()["Account"])
    if caller != stage.environment.account:
        raise CliError(
            f"the credentials are for account {caller}; {stage.stage_id} is in account "
            f"{stage.environment.account}",
            "use --profile with credentials for that account",
            EXIT_CREDENTIALS,
        )


def parse_package_arn(arn: str) -> dict[str, str]:
    """The parts of a versioned model package ARN; a one-line usage error otherwise."""
    match = _PACKAGE_ARN.match(arn)
    if not match:
        raise CliError(
            f"not a model version ARN: {arn!r}",
            "expected arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>",
            EXIT_USAGE,
        )
    return match.groupdict()
