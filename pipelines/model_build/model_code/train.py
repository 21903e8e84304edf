"""Train step: script mode entry point for the SageMaker XGBoost framework container (1.7-1).

SageMaker runs ``python train.py --<hyperparameter> <value> ...`` from ``/opt/ml/code`` (this
directory), with the data channels in ``SM_CHANNEL_TRAIN``, ``SM_CHANNEL_VALIDATION`` and
``SM_CHANNEL_TRANSFORM`` and the model directory in ``SM_MODEL_DIR`` (tarred into
``model.tar.gz`` after the job). The environment is read in ``main`` only, as argparse defaults.

* train/validation: RAW splits written by Preprocess (CSV, header, ``target`` first);
* transform: ``feature_transform.json`` fitted by Preprocess on the train split.

It applies the transform and trains ``binary:logistic`` with ``eval_metric=[auc, logloss]``
(deterministic: fixed ``seed`` and ``nthread``, ``tree_method=hist``). Early stopping uses the
validation log loss (XGBoost stops on the last metric): this small validation split's AUC
saturates at 1.0 within a few rounds, which would stop training far too early. The trees up to
the best iteration are kept. Each round prints ``[i] train-auc: x train-logloss: x
validation-auc: y validation-logloss: y``; the last lines repeat the four metrics at the best
iteration, so that the LAST value each metric definition's regex finds (what SageMaker reports,
and what a tuning job optimises: ``validation:logloss``, minimised) is the kept model's.
The model is saved with ``model_format.save_model`` and this directory's ``inference.py``,
``model_format.py`` and ``data_capture.py`` are copied to ``<model_dir>/code/`` so the artifact
carries its serving code.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import model_format  # noqa: E402  (shipped next to this script)

TARGET = "target"
#: Files copied to <model_dir>/code/ when present (requirements.txt is honoured by the
#: serving container if the serving code ever needs one).
SERVING_FILES = (
    "inference.py",
    "model_format.py",
    "data_capture.py",
    "online_features.py",
    "requirements.txt",
)
CODE_SUBDIR = "code"


class StepError(Exception):
    """A problem with the training inputs: reported as one line, no traceback."""


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train the XGBoost binary classifier.")
    # Hyperparameters (script mode passes them as --name value).
    parser.add_argument("--max_depth", type=int, default=4)
    parser.add_argument("--eta", type=float, default=0.2)
    parser.add_argument("--num_round", type=int, default=200)
    parser.add_argument("--subsample", type=float, default=0.8)
    parser.add_argument("--colsample_bytree", type=float, default=1.0)
    parser.add_argument("--min_child_weight", type=float, default=1.0)
    parser.add_argument("--gamma", type=float, default=0.0)
    parser.add_argument("--reg_lambda", type=float, default=1.0)
    parser.add_argument("--scale_pos_weight", type=float, default=1.0)
    parser.add_argument("--early_stopping_rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--nthread", type=int, default=1)
    # SageMaker training contract.
    parser.add_argument("--model-dir", type=Path, default=env.get("SM_MODEL_DIR", "/opt/ml/model"))
    parser.add_argument(
        "--train", type=Path, default=env.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train")
    )
    parser.add_argument(
        "--validation",
        type=Path,
        default=env.get("SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation"),
    )
    parser.add_argument(
        "--transform",
        type=Path,
        default=env.get("SM_CHANNEL_TRANSFORM", "/opt/ml/input/data/transform"),
    )
    return parser


def parse_args(argv: list[str], env: Mapping[str, str]) -> argparse.Namespace:
    args, unknown = build_parser(env).parse_known_args(argv)
    if unknown:
        print(f"WARNING: ignoring unknown arguments: {' '.join(unknown)}")
    return args


def read_channel(directory: Path, channel: str, features: tuple[str, ...]) -> pd.DataFrame:
    if directory.is_file():
        files = [directory]
    elif directory.is_dir():
        files = sorted(p for p in directory.rglob("*.csv") if p.is_file())
    else:
        raise StepError(f"channel {channel!r}: {directory} does not exist")
    if not files:
        raise StepError(f"channel {channel!r}: no CSV files in {directory}")
    frames = []
    for path in files:
        try:
            frame = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise StepError(f"channel {channel!r}: {path}: file empty") from None
        for column in (TARGET, *features):
            if column not in frame.columns:
                raise StepError(f"channel {channel!r}: {path}: missing column {column!r}")
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    if data.empty:
        raise StepError(f"channel {channel!r}: no data rows in {directory}")
    return data


def load_transform(directory: Path) -> model_format.FeatureTransform:
    path = directory / model_format.TRANSFORM_FILE if directory.is_dir() else directory
    if not path.is_file():
        raise StepError(f"channel 'transform': {path} does not exist")
    try:
        return model_format.FeatureTransform.load(path)
    except (ValueError, KeyError) as exc:
        raise StepError(f"channel 'transform': {path}: invalid transform ({exc})") from None


def to_dmatrix(
    data: pd.DataFrame, transform: model_format.FeatureTransform
) -> tuple[Any, np.ndarray]:
    import xgboost as xgb

    labels = data[TARGET].to_numpy(dtype=np.float64)
    matrix = transform.apply(data[list(transform.features)].to_numpy(dtype=np.float64))
    return xgb.DMatrix(matrix, label=labels, feature_names=list(transform.features)), labels


def _print_round(epoch: int, evals_log: Mapping[str, Mapping[str, list[float]]]) -> None:
    parts = [
        f"{name}-{metric}: {float(values[-1]):.6f}"
        for name, log in evals_log.items()
        for metric, values in log.items()
    ]
    print(f"[{epoch}] " + " ".join(parts), flush=True)


def train(args: argparse.Namespace) -> tuple[Any, model_format.FeatureTransform, dict[str, float]]:
    import xgboost as xgb

    transform = load_transform(args.transform)
    train_data = read_channel(args.train, "train", transform.features)
    validation_data = read_channel(args.validation, "validation", transform.features)
    dtrain, _ = to_dmatrix(train_data, transform)
    dvalidation, _ = to_dmatrix(validation_data, transform)
    print(
        f"train {len(train_data)} rows, validation {len(validation_data)} rows, "
        f"{len(transform.features)} features"
    )

    params = {
        "objective": "binary:logistic",
        # AUC is the reported metric; early stopping uses the LAST metric, the log loss, which
        # keeps improving after the (small) validation split's AUC saturates.
        "eval_metric": ["auc", "logloss"],
        "tree_method": "hist",
        "max_depth": args.max_depth,
        "eta": args.eta,
        "subsample": args.subsample,
        "colsample_bytree": args.colsample_bytree,
        "min_child_weight": args.min_child_weight,
        "gamma": args.gamma,
        "lambda": args.reg_lambda,
        "scale_pos_weight": args.scale_pos_weight,
        "seed": args.seed,
        "nthread": args.nthread,
    }

    class PrintRounds(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            _print_round(epoch, evals_log)
            return False

    history: dict[str, Any] = {}
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=args.num_round,
        evals=[(dtrain, "train"), (dvalidation, "validation")],
        early_stopping_rounds=args.early_stopping_rounds or None,
        evals_result=history,
        verbose_eval=False,
        callbacks=[PrintRounds()],
    )
    rounds = len(history["validation"]["auc"])
    best = int(booster.best_iteration) if args.early_stopping_rounds else rounds - 1
    booster = booster[: best + 1]  # keep the trees up to the best iteration
    metrics = {
        "best_iteration": float(best),
        "train-auc": float(history["train"]["auc"][best]),
        "validation-auc": float(history["validation"]["auc"][best]),
        "train-logloss": float(history["train"]["logloss"][best]),
        "validation-logloss": float(history["validation"]["logloss"][best]),
    }
    return booster, transform, metrics


def copy_serving_code(model_dir: Path, source_dir: Path = HERE) -> list[str]:
    code_dir = model_dir / CODE_SUBDIR
    code_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in SERVING_FILES:
        if (source_dir / name).is_file():
            shutil.copyfile(source_dir / name, code_dir / name)
            copied.append(name)
    return copied


def run(args: argparse.Namespace) -> dict[str, float]:
    booster, transform, metrics = train(args)
    model_format.save_model(args.model_dir, booster, transform)
    copied = copy_serving_code(args.model_dir)
    print(f"saved model to {args.model_dir} (code/: {', '.join(copied) or 'nothing'})")
    print(f"best_iteration: {int(metrics['best_iteration'])}")
    for name in ("train-auc", "train-logloss", "validation-auc", "validation-logloss"):
        print(f"{name}: {metrics[name]:.6f}", flush=True)
    return metrics


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv, os.environ)
    try:
        run(args)
    except StepError as exc:
        print(f"ERROR: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
