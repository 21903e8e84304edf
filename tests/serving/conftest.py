"""Fixtures for the serving tests: one small model per session, trained offline."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.model_build.model_code import inference
from pipelines.model_build.model_code.model_format import LoadedModel
from serving.payloads import load_feature_rows
from serving.quick_model import train_quick_model

IMAGE_SITE = Path(__file__).resolve().parent / "image_site"


@pytest.fixture(scope="package", autouse=True)
def image_packages_only() -> Iterator[None]:
    """Python processes started by the serving tests import only what the serving image
    installs: scikit-learn is hidden from them (``image_site/sitecustomize.py``)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "PYTHONPATH",
            os.pathsep.join(filter(None, (str(IMAGE_SITE), os.environ.get("PYTHONPATH")))),
        )
        yield


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
