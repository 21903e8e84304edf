"""evaluate.py: model.tar.gz extraction, code/ import, model-quality evaluation.json."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from mb_helpers import MODEL_CODE_DIR, write_csv
from sklearn import metrics as skm

from pipelines.model_build import contract
from pipelines.model_build.local_run import deterministic_targz


def test_metrics_on_known_predictions(evaluate: ModuleType) -> None:
    labels = np.array([0, 0, 0, 1, 1])
    probabilities = np.array([0.1, 0.6, 0.7, 0.4, 0.9])  # tp 1, fn 1, fp 2, tn 1
    result = evaluate.classification_metrics(labels, probabilities, 0.5)
    values = {k: v["value"] for k, v in result.items() if k != "confusion_matrix"}
    assert values == pytest.approx(
        {"auc": 4 / 6, "accuracy": 0.4, "precision": 1 / 3, "recall": 0.5, "f1": 0.4}
    )
    assert result["confusion_matrix"] == {"0": {"0": 1, "1": 2}, "1": {"0": 1, "1": 1}}
    assert all(v["standard_deviation"] == "NaN" for k, v in result.items() if "value" in v)
    labels = np.array([0, 0, 1, 1])
    perfect = evaluate.classification_metrics(labels, np.array([0.0, 0.2, 0.7, 1.0]), 0.5)
    assert {k: v["value"] for k, v in perfect.items() if k != "confusion_matrix"} == {
        "auc": 1.0, "accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0,
    }  # fmt: skip
    nothing_positive = evaluate.classification_metrics(labels, np.array([0.1, 0.2, 0.3, 0.4]), 0.5)
    assert nothing_positive["precision"]["value"] == 0.0  # no division by zero
    assert nothing_positive["f1"]["value"] == 0.0


@pytest.fixture
def known_model(tmp_path: Path, model_format: ModuleType) -> tuple[Path, pd.DataFrame]:
    """A model.tar.gz with a one-feature XGBoost model (probability increases with x),
    and a test split of 40 rows."""
    import xgboost as xgb

    rng = np.random.default_rng(3)
    x = rng.normal(size=200)
    y = (x + rng.normal(scale=0.7, size=200) > 0).astype(int)
    transform = model_format.FeatureTransform.fit(["x"], x.reshape(-1, 1))
    matrix = xgb.DMatrix(transform.apply(x.reshape(-1, 1)), label=y, feature_names=["x"])
    params = {"objective": "binary:logistic", "max_depth": 2, "nthread": 1, "seed": 0}
    booster = xgb.train(params, matrix, num_boost_round=5)
    model_dir = tmp_path / "model"
    model_format.save_model(model_dir, booster, transform)
    (model_dir / "code").mkdir()
    shutil.copyfile(MODEL_CODE_DIR / "model_format.py", model_dir / "code" / "model_format.py")
    deterministic_targz(model_dir, tmp_path / "artifact" / "model.tar.gz")
    test = pd.DataFrame({"target": y[:40], "x": x[:40]})
    return tmp_path / "artifact", test


def run_evaluate(
    evaluate: ModuleType, model: Path, test: Path, out: Path, auc_threshold: str = "0.9"
) -> int:
    args = ["--model-dir", str(model), "--test", str(test), "--output-dir", str(out)]
    args += [f"--auc-threshold={auc_threshold}"]  # one argument, as the pipeline gives it
    return int(evaluate.main([*args, "--failure-file", str(out / "msg")]))


def test_evaluation_json_matches_sklearn(
    evaluate: ModuleType,
    model_format: ModuleType,
    known_model: tuple[Path, pd.DataFrame],
    tmp_path: Path,
) -> None:
    artifact, test = known_model
    write_csv(tmp_path / "test" / "test.csv", test)
    assert run_evaluate(evaluate, artifact, tmp_path / "test", tmp_path / "out") == 0
    report = json.loads((tmp_path / "out" / "evaluation.json").read_text())

    with tarfile.open(artifact / "model.tar.gz") as tar:
        tar.extractall(tmp_path / "extracted", filter="data")
    model = model_format.load_model(tmp_path / "extracted")
    probabilities = model.predict(test[["x"]].to_numpy())
    predicted = (probabilities >= 0.5).astype(int)
    y = test["target"].to_numpy()
    m = report["binary_classification_metrics"]
    assert m["auc"]["value"] == pytest.approx(skm.roc_auc_score(y, probabilities))
    assert m["accuracy"]["value"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert m["precision"]["value"] == pytest.approx(skm.precision_score(y, predicted))
    assert m["recall"]["value"] == pytest.approx(skm.recall_score(y, predicted))
    assert m["f1"]["value"] == pytest.approx(skm.f1_score(y, predicted))
    (tn, fp), (fn, tp) = skm.confusion_matrix(y, predicted).tolist()
    assert m["confusion_matrix"] == {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}}
    assert report["dataset"] == {"item_count": 40}
    # The condition step's JsonGet path resolves to the AUC.
    value = report
    for key in contract.CONDITION.key_path:
        value = value[key]
    assert value == m["auc"]["value"]
    assert 0.7 < value <= 1.0


def test_evaluation_is_deterministic(
    evaluate: ModuleType, known_model: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    artifact, test = known_model
    source = write_csv(tmp_path / "test.csv", test)
    for name in ("one", "two"):
        assert run_evaluate(evaluate, artifact, source, tmp_path / name) == 0
    one, two = (tmp_path / n / "evaluation.json" for n in ("one", "two"))
    assert one.read_bytes() == two.read_bytes()


def test_artifact_without_code_is_reported(
    evaluate: ModuleType,
    known_model: tuple[Path, pd.DataFrame],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    artifact, test = known_model
    stripped = tmp_path / "stripped"
    with tarfile.open(artifact / "model.tar.gz") as tar:
        tar.extractall(stripped, filter="data")
    shutil.rmtree(stripped / "code")
    deterministic_targz(stripped, tmp_path / "bad" / "model.tar.gz")
    source = write_csv(tmp_path / "test.csv", test)
    assert run_evaluate(evaluate, tmp_path / "bad", source, tmp_path / "out") == 1
    assert (
        capsys.readouterr().err == "ERROR: model.tar.gz: no code/model_format.py in the artifact\n"
    )


def test_test_split_missing_feature_is_reported(
    evaluate: ModuleType, known_model: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    artifact, test = known_model
    source = write_csv(tmp_path / "test.csv", test.rename(columns={"x": "y"}))
    assert run_evaluate(evaluate, artifact, source, tmp_path / "out") == 1
    assert (tmp_path / "out" / "msg").read_text() == f"{source}: missing column 'x'\n"


def test_missing_artifact_is_reported(evaluate: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    assert run_evaluate(evaluate, tmp_path / "model", tmp_path, tmp_path / "out") == 1
    assert (tmp_path / "out" / "msg").read_text() == f"{tmp_path / 'model'}: no model.tar.gz\n"


def test_archive_escaping_members_are_refused(evaluate: ModuleType, tmp_path: Path) -> None:
    archive = tmp_path / "model" / "model.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        data = b"x"
        info = tarfile.TarInfo("../evil.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert run_evaluate(evaluate, tmp_path / "model", tmp_path, tmp_path / "out") == 1
    assert "escapes the archive" in (tmp_path / "out" / "msg").read_text()
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize(
    "value", ["NaN", "nan", "Infinity", "-Infinity", "inf", "-0.01", "1.01", "2", "", "abc"]
)
def test_auc_threshold_parameter_is_checked_before_scoring(
    evaluate: ModuleType,
    known_model: tuple[Path, pd.DataFrame],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    value: str,
) -> None:
    """The pipeline's AucThreshold reaches Evaluate as text (a Float parameter rendered with
    Std:Join): NaN or out of range would otherwise decide the registration silently."""
    artifact, test = known_model
    source = write_csv(tmp_path / "test.csv", test)
    assert run_evaluate(evaluate, artifact, source, tmp_path / "out", auc_threshold=value) == 1
    message = f"AucThreshold must be a finite number in [0, 1], got {value!r}"
    assert capsys.readouterr().err == f"ERROR: {message}\n"
    assert (tmp_path / "out" / "msg").read_text() == message + "\n"
    assert not (tmp_path / "out" / "evaluation.json").exists()


@pytest.mark.parametrize("value", ["0", "0.0", "0.9", "1", "1.0"])
def test_auc_threshold_in_the_closed_unit_range_is_accepted(
    evaluate: ModuleType, known_model: tuple[Path, pd.DataFrame], tmp_path: Path, value: str
) -> None:
    artifact, test = known_model
    source = write_csv(tmp_path / "test.csv", test)
    assert run_evaluate(evaluate, artifact, source, tmp_path / "out", auc_threshold=value) == 0
    assert contract.check_threshold(value) == float(value)
