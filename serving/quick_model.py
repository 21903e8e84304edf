"""A small model in the serving artifact format, for tests and load tests.

Fits an XGBoost booster on scikit-learn's bundled breast-cancer data (offline) behind the same
feature transform the pipeline uses, and saves it with ``model_format.save_model``. It is not the
pipeline's model: it only has the right format, features and a plausible score distribution.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipelines.model_build.model_code import model_format


def snake_case(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def train_quick_model(model_dir: Path, rounds: int = 30, seed: int = 0) -> Path:
    """Train and save a model into ``model_dir``; returns ``model_dir``."""
    import xgboost as xgb
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    features = [snake_case(str(n)) for n in bunch.feature_names]
    transform = model_format.FeatureTransform.fit(features, bunch.data)
    matrix = xgb.DMatrix(transform.apply(bunch.data), label=bunch.target, feature_names=features)
    params = {
        "objective": "binary:logistic",
        "eval_metric": "auc",
        "max_depth": 3,
        "eta": 0.2,
        "seed": seed,
        "nthread": 1,
    }
    booster = xgb.train(params, matrix, num_boost_round=rounds)
    model_format.save_model(Path(model_dir), booster, transform)
    return Path(model_dir)


def main(argv: list[str] | None = None) -> int:
    """``python -m serving.quick_model DIR``: train and save a model into DIR (the serving-image
    workflow mounts it into the container as /opt/ml/model)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m serving.quick_model DIR", file=sys.stderr)
        return 2
    print(f"model saved in {train_quick_model(Path(args[0]))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
