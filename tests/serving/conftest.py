"""Fixtures for the serving tests: one small model per session, trained offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.model_build.model_code import inference
from pipelines.model_build.model_code.model_format import LoadedModel
from serving.payloads import load_feature_rows
from serving.quick_model import train_quick_model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_quick_model(tmp_path_factory.mktemp("serving-model") / "model", rounds=10)


@pytest.fixture(scope="session")
def model(model_dir: Path) -> LoadedModel:
    return inference.model_fn(str(model_dir))


@pytest.fixture(scope="session")
def features(model: LoadedModel) -> list[str]:
    return list(model.features)


@pytest.fixture(scope="session")
def rows() -> list[list[float]]:
    return load_feature_rows()[1][:20]
