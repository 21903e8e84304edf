"""Fixtures for the approval-driven deployment tests (no AWS: moto and synthesized templates)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from deployment_moto import REGION, DeploymentHarness, deployment_harness
from deployment_stages import SynthesizedStage, synthesized_stages
from moto import mock_aws


@pytest.fixture(scope="session")
def serverless_stage() -> SynthesizedStage:
    return synthesized_stages()["serverless"]


@pytest.fixture(scope="session")
def instance_stage() -> SynthesizedStage:
    return synthesized_stages()["instances"]


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "deployment-tests",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def moto_aws(aws_env: None) -> Iterator[None]:
    """moto with real execution of state machines. The boto3 default session is kept between
    tests (same fake credentials) so botocore parses each service model once per session."""
    with mock_aws(
        config={
            "stepfunctions": {"execute_state_machine": True},
            "core": {"reset_boto3_session": False},
        }
    ):
        yield


@pytest.fixture
def serverless_harness(
    moto_aws: None, serverless_stage: SynthesizedStage, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DeploymentHarness]:
    with deployment_harness(serverless_stage, monkeypatch) as harness:
        yield harness


@pytest.fixture
def instance_harness(
    moto_aws: None, instance_stage: SynthesizedStage, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DeploymentHarness]:
    with deployment_harness(instance_stage, monkeypatch) as harness:
        yield harness
