"""Fixtures for the retraining tests (no AWS: synthesized templates and moto)."""

from __future__ import annotations

import pytest

from tests.retraining.retraining_stages import (
    SynthesizedRetraining,
    synthesized_retraining,
)


@pytest.fixture(scope="session")
def staging() -> SynthesizedRetraining:
    return synthesized_retraining()["staging"]


@pytest.fixture(scope="session")
def dev() -> SynthesizedRetraining:
    return synthesized_retraining()["dev"]
