"""The Preprocess script as a module (it is shipped standalone, not imported as a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pipelines.model_build import contract

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def preprocess() -> ModuleType:
    path = REPO / contract.SCRIPTS_DIR / "preprocess.py"
    spec = importlib.util.spec_from_file_location("fs_preprocess", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fs_preprocess"] = module
    spec.loader.exec_module(module)
    return module
