"""Fixtures for the ingestion tests: synthesized templates (session) and moto."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.ingestion.ingestion_moto import IngestionHarness, ingestion_harness


@pytest.fixture
def harness(
    moto_aws: None, templates: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[IngestionHarness]:
    with ingestion_harness(templates["mlops-dev"]["Operations"], monkeypatch) as h:
        yield h
