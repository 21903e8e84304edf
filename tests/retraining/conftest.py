"""Fixtures for the retraining tests (no AWS: synthesized templates and moto)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from tests.retraining.retraining_stages import (
    REGION,
    SynthesizedRetraining,
    synthesized_retraining,
)


@pytest.fixture(scope="session")
def staging() -> SynthesizedRetraining:
    return synthesized_retraining()["staging"]


@pytest.fixture(scope="session")
def dev() -> SynthesizedRetraining:
    return synthesized_retraining()["dev"]


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def moto_aws(aws_env: None) -> Iterator[None]:
    """moto with real execution of state machines (the boto3 session is kept between tests)."""
    with mock_aws(
        config={
            "stepfunctions": {"execute_state_machine": True},
            "core": {"reset_boto3_session": False},
        }
    ):
        yield
