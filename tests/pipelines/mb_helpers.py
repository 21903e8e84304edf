"""Helpers for the model-build runtime tests (a uniquely named module, so that importing it
never depends on which conftest.py pytest loaded last)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = REPO_ROOT / "pipelines" / "model_build"
SCRIPTS_DIR = BUILD_DIR / "scripts"
MODEL_CODE_DIR = BUILD_DIR / "model_code"
BUNDLED_CSV = BUILD_DIR / "data" / "breast_cancer.csv"


def load_module(path: Path, name: str) -> ModuleType:
    """Import a standalone script by path (as a fresh module)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


DATA_VERSION = "2026-11-30.1"
#: The input schema of synthetic_frame (what preprocess_args passes as --columns).
SYNTHETIC_COLUMNS = ("a", "b", "c", "target")


def synthetic_frame(rows: int = 80, seed: int = 0) -> pd.DataFrame:
    """Separable-ish binary data: features a, b, c (c integral), balanced target."""
    rng = np.random.default_rng(seed)
    target = np.arange(rows) % 2
    a = rng.normal(loc=target * 2.0, scale=1.0)
    b = rng.normal(loc=-target, scale=0.5)
    c = rng.integers(0, 5, size=rows)
    return pd.DataFrame({"a": a.round(4), "b": b.round(4), "c": c, "target": target})


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def preprocess_args(
    input_path: Path, out: Path, *extra: str, columns: tuple[str, ...] = SYNTHETIC_COLUMNS
) -> list[str]:
    return [
        "--input", str(input_path),
        "--model-code-dir", str(MODEL_CODE_DIR),
        "--train-dir", str(out / "train"),
        "--validation-dir", str(out / "validation"),
        "--test-dir", str(out / "test"),
        "--transform-dir", str(out / "transform"),
        "--failure-file", str(out / "failure" / "message"),
        f"--data-version={DATA_VERSION}",
        "--columns", *columns,
        *extra,
    ]  # fmt: skip
