"""The model artifact format shared by training, evaluation and serving.

A model directory (the content of ``model.tar.gz``) holds two files:

* ``xgboost-model.json``: the XGBoost booster, saved in XGBoost's portable JSON format;
* ``feature_transform.json``: the feature transform fitted by the Preprocess step on the training
  split (median imputation, then standardisation), with the ordered feature names.

This module is shipped inside the training/serving source directory, so it imports only numpy and
xgboost (both present in the SageMaker XGBoost framework container).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MODEL_FILE = "xgboost-model.json"
TRANSFORM_FILE = "feature_transform.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class FeatureTransform:
    """Median imputation followed by standardisation, column by column."""

    features: tuple[str, ...]
    medians: tuple[float, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]

    @classmethod
    def fit(cls, features: Sequence[str], matrix: np.ndarray) -> FeatureTransform:
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(features):
            raise ValueError(
                f"expected a 2-D matrix with {len(features)} columns, got shape {matrix.shape}"
            )
        medians = np.nanmedian(matrix, axis=0)
        medians = np.where(np.isnan(medians), 0.0, medians)
        imputed = np.where(np.isnan(matrix), medians, matrix)
        means = imputed.mean(axis=0)
        scales = imputed.std(axis=0)
        scales = np.where(scales > 0, scales, 1.0)
        return cls(
            features=tuple(features),
            medians=tuple(float(v) for v in medians),
            means=tuple(float(v) for v in means),
            scales=tuple(float(v) for v in scales),
        )

    def apply(self, matrix: np.ndarray) -> np.ndarray:
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim == 1:
            matrix = matrix.reshape(1, -1)
        if matrix.shape[1] != len(self.features):
            raise ValueError(
                f"expected {len(self.features)} features per row, got {matrix.shape[1]}"
            )
        medians = np.asarray(self.medians)
        imputed = np.where(np.isnan(matrix), medians, matrix)
        transformed: np.ndarray = (imputed - np.asarray(self.means)) / np.asarray(self.scales)
        return transformed

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "features": list(self.features),
            "medians": list(self.medians),
            "means": list(self.means),
            "scales": list(self.scales),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureTransform:
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"unsupported feature transform format: {data.get('format_version')!r}"
            )
        features = tuple(str(f) for f in data["features"])
        columns = [tuple(float(v) for v in data[k]) for k in ("medians", "means", "scales")]
        if any(len(c) != len(features) for c in columns):
            raise ValueError("feature transform columns do not match the feature list")
        if any(not math.isfinite(v) for c in columns for v in c):
            raise ValueError("feature transform holds non-finite values")
        return cls(features, *columns)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> FeatureTransform:
        return cls.from_dict(json.loads(path.read_text()))


@dataclass(frozen=True)
class LoadedModel:
    """A booster plus the transform it was trained behind."""

    booster: Any  # xgboost.Booster; typed loosely so this module imports without xgboost
    transform: FeatureTransform

    @property
    def features(self) -> tuple[str, ...]:
        return self.transform.features

    def predict(self, raw_rows: np.ndarray) -> np.ndarray:
        """Probability of the positive class for each row of raw (untransformed) features."""
        import xgboost as xgb

        transformed = self.transform.apply(raw_rows)
        matrix = xgb.DMatrix(transformed, feature_names=list(self.features))
        return np.asarray(self.booster.predict(matrix), dtype=np.float64)


def save_model(model_dir: Path, booster: Any, transform: FeatureTransform) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(model_dir / MODEL_FILE))
    transform.save(model_dir / TRANSFORM_FILE)


def load_model(model_dir: Path) -> LoadedModel:
    import xgboost as xgb

    model_path = Path(model_dir) / MODEL_FILE
    transform_path = Path(model_dir) / TRANSFORM_FILE
    for path in (model_path, transform_path):
        if not path.is_file():
            raise FileNotFoundError(f"model directory {model_dir} has no {path.name}")
    booster = xgb.Booster()
    booster.load_model(str(model_path))
    return LoadedModel(booster=booster, transform=FeatureTransform.load(transform_path))
