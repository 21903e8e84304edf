"""Fixtures for the model-build runtime tests (no AWS, no network).

Request shapes are checked against botocore's SageMaker model (test_job_arguments.py); the public
pipeline-definition JSON schema, vendored in ``schemas/``, is a secondary check that also runs on
every clone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from mb_helpers import MODEL_CODE_DIR, SCRIPTS_DIR, load_module, synthetic_frame, write_csv


def _load(path: Path, name: str) -> ModuleType:
    module: ModuleType = load_module(path, name)  # typed here: mypy sees mb_helpers as Any
    return module


@pytest.fixture(scope="session")
def preprocess() -> ModuleType:
    return _load(SCRIPTS_DIR / "preprocess.py", "mb_preprocess")


@pytest.fixture(scope="session")
def baseline() -> ModuleType:
    return _load(SCRIPTS_DIR / "baseline.py", "mb_baseline")


@pytest.fixture(scope="session")
def evaluate() -> ModuleType:
    return _load(SCRIPTS_DIR / "evaluate.py", "mb_evaluate")


@pytest.fixture(scope="session")
def train_script() -> ModuleType:
    return _load(MODEL_CODE_DIR / "train.py", "mb_train")


@pytest.fixture(scope="session")
def model_format() -> ModuleType:
    return _load(MODEL_CODE_DIR / "model_format.py", "mb_model_format")


@pytest.fixture
def make_csv(tmp_path: Path) -> Callable[..., Path]:
    def _make(name: str = "data.csv", rows: int = 80, seed: int = 0) -> Path:
        path: Path = write_csv(tmp_path / "raw" / name, synthetic_frame(rows, seed))
        return path

    return _make
