"""Evaluate step (SageMaker Processing, XGBoost image).

Extracts ``<model-dir>/model.tar.gz`` (the Train step's artifact), imports ``model_format`` from
the artifact's own ``code/`` directory, scores the RAW test split and writes
``<output-dir>/evaluation.json`` in SageMaker's model-quality format::

    {"version": 0.0, "dataset": {"item_count": n},
     "binary_classification_metrics": {
        "auc": {"value": .., "standard_deviation": "NaN"}, "accuracy": {...},
        "precision": {...}, "recall": {...}, "f1": {...},
        "confusion_matrix": {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}}}}

(confusion matrix keyed actual -> predicted; a row is positive when its probability is at least
``--classification-threshold``). ``--auc-threshold`` is the pipeline's ``AucThreshold`` parameter,
which the condition step compares the AUC with: it is checked here first (a finite number in
[0, 1], as ``contract.check_threshold``), so a NaN, infinite or out-of-range value fails the
execution with a clear message instead of silently deciding the registration.
Deterministic: same model and data, byte-identical file.
Standalone (stdlib, numpy, pandas, scikit-learn, xgboost; Python 3.8, pandas 1.x). Failures:
one line on stderr and in ``--failure-file``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import tarfile
import tempfile
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

TARGET = "target"
MODEL_ARTIFACT = "model.tar.gz"
EVALUATION_FILE = "evaluation.json"
CODE_SUBDIR = "code"
MODEL_FORMAT_FILE = "model_format.py"


class StepError(Exception):
    """A problem with the step's input: reported as one line, no traceback."""


def extract_artifact(archive: Path, destination: Path) -> None:
    """Extract model.tar.gz, refusing members that would land outside ``destination``."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            root = destination.resolve()
            for member in tar.getmembers():
                target = (destination / member.name).resolve()
                if root != target and root not in target.parents:
                    raise StepError(f"{archive}: member {member.name!r} escapes the archive")
                if not (member.isfile() or member.isdir()):
                    raise StepError(f"{archive}: unsupported member {member.name!r}")
            if hasattr(tarfile, "data_filter"):  # Python >= 3.12 and security backports
                tar.extractall(destination, filter="data")
            else:  # members checked above
                tar.extractall(destination)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise StepError(f"{archive}: cannot extract ({exc})") from None


def locate_model(model_dir: Path, scratch: Path) -> Path:
    """The directory holding the model files: extracted from model.tar.gz when there is one."""
    archive = model_dir / MODEL_ARTIFACT if model_dir.is_dir() else model_dir
    if archive.is_file():
        extract_artifact(archive, scratch)
        return scratch
    if (model_dir / CODE_SUBDIR).is_dir():  # an already-extracted model directory
        return model_dir
    raise StepError(f"{model_dir}: no {MODEL_ARTIFACT}")


def import_model_format(model_root: Path) -> ModuleType:
    path = model_root / CODE_SUBDIR / MODEL_FORMAT_FILE
    if not path.is_file():
        raise StepError(f"{MODEL_ARTIFACT}: no {CODE_SUBDIR}/{MODEL_FORMAT_FILE} in the artifact")
    spec = importlib.util.spec_from_file_location("model_format", path)
    if spec is None or spec.loader is None:
        raise StepError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules["model_format"] = module
    spec.loader.exec_module(module)
    return module


def read_test(test_path: Path, features: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, str]:
    if test_path.is_file():
        files = [test_path]
    elif test_path.is_dir():
        files = sorted(p for p in test_path.rglob("*") if p.is_file() and p.suffix == ".csv")
        if not files:
            raise StepError(f"{test_path}: no CSV files in directory")
    else:
        raise StepError(f"{test_path}: input path does not exist")
    frames = []
    for path in files:
        try:
            frame = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise StepError(f"{path}: file empty") from None
        for column in (TARGET, *features):
            if column not in frame.columns:
                raise StepError(f"{path}: missing column {column!r}")
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    where = str(files[0]) if len(files) == 1 else f"{test_path} ({len(files)} CSV files)"
    if data.empty:
        raise StepError(f"{where}: no data rows")
    labels = data[TARGET].to_numpy()
    if not np.isin(labels, (0, 1)).all():
        raise StepError(f"{where}: column {TARGET!r} holds values other than 0 and 1")
    if np.unique(labels).size < 2:
        raise StepError(f"{where}: a single class in {TARGET!r}; AUC is undefined")
    matrix = data[list(features)].to_numpy(dtype=np.float64)
    return matrix, labels.astype(np.int64), where


def check_threshold(text: str, name: str) -> float:
    """A finite number in [0, 1] (closed), as contract.check_threshold; else StepError."""
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise StepError(f"{name} must be a finite number in [0, 1], got {text!r}")
    return value


def _metric(value: float) -> dict[str, Any]:
    return {"value": float(value), "standard_deviation": "NaN"}


def _ratio(numerator: int, denominator: int) -> float:
    return float(numerator) / denominator if denominator else 0.0


def classification_metrics(
    labels: np.ndarray, probabilities: np.ndarray, threshold: float
) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    predicted = (probabilities >= threshold).astype(np.int64)
    tp = int(np.sum((predicted == 1) & (labels == 1)))
    tn = int(np.sum((predicted == 0) & (labels == 0)))
    fp = int(np.sum((predicted == 1) & (labels == 0)))
    fn = int(np.sum((predicted == 0) & (labels == 1)))
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "auc": _metric(roc_auc_score(labels, probabilities)),
        "accuracy": _metric(_ratio(tp + tn, labels.size)),
        "precision": _metric(precision),
        "recall": _metric(recall),
        "f1": _metric(f1),
        "confusion_matrix": {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}},
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Evaluate the trained model on the test split.")
    parser.add_argument("--model-dir", type=Path, default=Path("/opt/ml/processing/input/model"))
    parser.add_argument("--test", type=Path, default=Path("/opt/ml/processing/input/test"))
    parser.add_argument(
        "--output-dir", type=Path, default=Path("/opt/ml/processing/output/evaluation")
    )
    parser.add_argument("--classification-threshold", default="0.5")
    # The AucThreshold parameter, given on every run (no default: the pipeline passes it).
    parser.add_argument("--auc-threshold", required=True)
    parser.add_argument("--failure-file", type=Path, default=Path("/opt/ml/output/message"))
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    check_threshold(args.auc_threshold, "AucThreshold")
    cutoff = check_threshold(args.classification_threshold, "--classification-threshold")
    with tempfile.TemporaryDirectory(prefix="model-") as scratch:
        model_root = locate_model(args.model_dir, Path(scratch))
        model_format = import_model_format(model_root)
        try:
            model = model_format.load_model(model_root)
        except (FileNotFoundError, ValueError) as exc:
            raise StepError(f"{MODEL_ARTIFACT}: {exc}") from None
        matrix, labels, where = read_test(args.test, tuple(model.features))
        probabilities = model.predict(matrix)
    report: dict[str, Any] = {
        "version": 0.0,
        "dataset": {"item_count": int(labels.size)},
        "binary_classification_metrics": classification_metrics(labels, probabilities, cutoff),
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    path = args.output_dir / EVALUATION_FILE
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    metrics = report["binary_classification_metrics"]
    summary = ", ".join(
        f"{name} {metrics[name]['value']:.4f}"
        for name in ("auc", "accuracy", "precision", "recall", "f1")
    )
    print(f"{where}: {labels.size} rows: {summary}")
    return report


def _report_failure(message: str, failure_file: Path | None) -> None:
    message = " ".join(message.split())
    print(f"ERROR: {message}", file=sys.stderr)
    if failure_file is not None:
        try:
            failure_file.parent.mkdir(parents=True, exist_ok=True)
            failure_file.write_text(message + "\n", encoding="utf-8")
        except OSError:
            pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except StepError as exc:
        _report_failure(str(exc), args.failure_file)
        return 1
    except Exception as exc:  # unexpected: keep the traceback in the logs
        traceback.print_exc()
        _report_failure(f"unexpected error: {type(exc).__name__}: {exc}", args.failure_file)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
