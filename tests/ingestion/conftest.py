"""Fixtures for the ingestion tests: synthesized templates (session) and moto."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from tests.ingestion.ingestion_moto import REGION, IngestionHarness, ingestion_harness


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
def harness(
    aws_env: None, templates: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[IngestionHarness]:
    with (
        mock_aws(
            config={
                "stepfunctions": {"execute_state_machine": True},
                "core": {"reset_boto3_session": False},
            }
        ),
        ingestion_harness(templates["mlops-dev"]["Operations"], monkeypatch) as h,
    ):
        yield h
