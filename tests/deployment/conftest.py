"""Fixtures for the approval-driven deployment tests (no AWS: moto and synthesized templates)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from deployment_moto import DeploymentHarness, deployment_harness
from deployment_stages import SynthesizedStage, synthesized_stages


@pytest.fixture(scope="session")
def serverless_stage() -> SynthesizedStage:
    return synthesized_stages()["serverless"]


@pytest.fixture(scope="session")
def instance_stage() -> SynthesizedStage:
    return synthesized_stages()["instances"]


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
