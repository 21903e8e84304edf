"""train.py (script mode): SM_* channels, deterministic model, metric lines, code/ copied."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from mb_helpers import BUNDLED_CSV, MODEL_CODE_DIR, preprocess_args
from sklearn.metrics import roc_auc_score

from pipelines.model_build import contract

FAST = ["--num_round", "40", "--early_stopping_rounds", "10"]


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory, preprocess: ModuleType) -> Path:
    """Preprocess 250 rows of the bundled dataset (raw splits + transform)."""
    root = tmp_path_factory.mktemp("splits")
    source = root / "raw.csv"
    lines = BUNDLED_CSV.read_text().splitlines(keepends=True)
    source.write_text("".join(lines[:251]))
    assert preprocess.main(preprocess_args(source, root, columns=contract.INPUT_COLUMNS)) == 0
    return root


def channel_env(splits: Path, model_dir: Path) -> dict[str, str]:
    return {
        "SM_CHANNEL_TRAIN": str(splits / "train"),
        "SM_CHANNEL_VALIDATION": str(splits / "validation"),
        "SM_CHANNEL_TRANSFORM": str(splits / "transform"),
        "SM_MODEL_DIR": str(model_dir),
    }


def run_main(
    train_script: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    argv: list[str],
) -> int:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return int(train_script.main(argv))


def test_trains_loadable_model_with_code_dir(
    train_script: ModuleType,
    model_format: ModuleType,
    splits: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model_dir = tmp_path / "model"
    assert run_main(train_script, monkeypatch, channel_env(splits, model_dir), FAST) == 0
    out = capsys.readouterr().out

    assert sorted(p.name for p in model_dir.iterdir()) == [
        "code",
        "feature_transform.json",
        "xgboost-model.json",
    ]
    expected_code = {
        n
        for n in ("inference.py", "model_format.py", "data_capture.py", "online_features.py")
        if (MODEL_CODE_DIR / n).exists()
    }
    assert {p.name for p in (model_dir / "code").iterdir()} == expected_code
    assert "model_format.py" in expected_code
    assert (model_dir / "code" / "model_format.py").read_bytes() == (
        MODEL_CODE_DIR / "model_format.py"
    ).read_bytes()

    model = model_format.load_model(model_dir)
    test = pd.read_csv(splits / "test" / "test.csv")
    probabilities = model.predict(test[list(model.features)].to_numpy())
    assert probabilities.shape == (len(test),)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert roc_auc_score(test["target"], probabilities) > 0.9

    # Metric lines the metric definitions parse: SageMaker (and a tuning job) takes the LAST value
    # each regex finds, which must be the kept (best) iteration's.
    regex = {m.name: m.regex for m in contract.TRAIN.metric_definitions}
    assert set(regex) == {"train:auc", "validation:auc", "train:logloss", "validation:logloss"}
    found = {name: [float(v) for v in re.findall(pattern, out)] for name, pattern in regex.items()}
    rounds = [line for line in out.splitlines() if line.startswith("[")]
    assert len(rounds) > 10
    for name, values in found.items():
        assert len(values) == len(rounds) + 1, name  # one per round, plus the final line
        assert f"{name.replace(':', '-')}: {values[-1]:.6f}" in out.strip().splitlines()[-4:]
    # Early stopping keeps the round with the lowest validation log loss: the tuning objective
    # (minimised) is that round's value, and it discriminates where the AUC has saturated.
    logloss = found["validation:logloss"]
    assert logloss[-1] == min(logloss[:-1])
    best = logloss[:-1].index(logloss[-1])
    assert found["validation:auc"][-1] == found["validation:auc"][best]
    assert 0.9 < found["validation:auc"][-1] <= 1.0
    assert 0.0 < logloss[-1] < 0.5


def test_training_is_deterministic(
    train_script: ModuleType,
    splits: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outputs = []
    for name in ("one", "two"):
        model_dir = tmp_path / name
        assert run_main(train_script, monkeypatch, channel_env(splits, model_dir), FAST) == 0
        outputs.append((model_dir / "xgboost-model.json").read_bytes())
    assert outputs[0] == outputs[1]


def test_best_iteration_is_kept(
    train_script: ModuleType, model_format: ModuleType, splits: Path, tmp_path: Path
) -> None:
    args = train_script.parse_args(FAST, channel_env(splits, tmp_path / "m"))
    booster, _, metrics = train_script.train(args)
    assert booster.num_boosted_rounds() == int(metrics["best_iteration"]) + 1


def test_hyperparameters_and_env_defaults(train_script: ModuleType, tmp_path: Path) -> None:
    env = {"SM_CHANNEL_TRAIN": "/x/train", "SM_MODEL_DIR": "/x/model"}
    args = train_script.parse_args(["--max_depth", "3", "--eta", "0.1", "--seed", "7"], env)
    assert (args.max_depth, args.eta, args.seed) == (3, 0.1, 7)
    assert args.train == Path("/x/train") and args.model_dir == Path("/x/model")
    assert args.validation == Path("/opt/ml/input/data/validation")
    defaults = train_script.parse_args([], {})
    assert defaults.model_dir == Path("/opt/ml/model")


def test_unknown_hyperparameter_is_a_warning(
    train_script: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    args = train_script.parse_args(["--max_depth", "2", "--foo", "1"], {})
    assert args.max_depth == 2
    assert "ignoring unknown arguments: --foo 1" in capsys.readouterr().out


def test_copy_serving_code_tolerates_missing_inference(
    train_script: ModuleType, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "model_format.py").write_text("# stub\n")
    copied = train_script.copy_serving_code(tmp_path / "model", source)
    assert copied == ["model_format.py"]
    assert [p.name for p in (tmp_path / "model" / "code").iterdir()] == ["model_format.py"]


def test_missing_channel_fails_with_one_line(
    train_script: ModuleType,
    splits: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = channel_env(splits, tmp_path / "model")
    env["SM_CHANNEL_VALIDATION"] = str(tmp_path / "missing")
    assert run_main(train_script, monkeypatch, env, FAST) == 1
    err = capsys.readouterr().err
    assert err == f"ERROR: channel 'validation': {tmp_path / 'missing'} does not exist\n"


def test_transform_is_applied_before_training(
    train_script: ModuleType, model_format: ModuleType, splits: Path
) -> None:
    transform = model_format.FeatureTransform.load(splits / "transform" / "feature_transform.json")
    data = pd.read_csv(splits / "train" / "train.csv")
    matrix, labels = train_script.to_dmatrix(data, transform)
    expected = transform.apply(data[list(transform.features)].to_numpy())
    assert np.allclose(matrix.get_data().toarray(), expected)
    assert labels.tolist() == data["target"].tolist()
