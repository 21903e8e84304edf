"""local_run end to end on the bundled dataset: registration decision, determinism, failures."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from mb_helpers import BUNDLED_CSV, REPO_ROOT

from pipelines.model_build import contract as c
from pipelines.model_build import local_run


@dataclass
class Run:
    work_dir: Path
    result: local_run.RunResult
    lines: list[str]


def execute(
    work_dir: Path, threshold: float, input_path: Path = BUNDLED_CSV, *, fork: bool | None = None
) -> Run:
    lines: list[str] = []
    pipeline = local_run.LocalPipeline(
        work_dir, input_path, threshold, echo=lines.append, fork=fork
    )
    result = pipeline.run()
    local_run.report(result, echo=lines.append)
    return Run(work_dir, result, lines)


@pytest.fixture(scope="session")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return execute(tmp_path_factory.mktemp("local-run-1"), c.DEFAULT_AUC_THRESHOLD)


@pytest.fixture(scope="session")
def second_run(tmp_path_factory: pytest.TempPathFactory, first_run: Run) -> Run:
    """The same pipeline again, with a threshold just above the AUC the first run achieved, its
    steps as plain subprocesses (each with its own hash seed): the first run's steps were forked
    from the step helper, so identical outputs also show the helper changes nothing."""
    assert first_run.result.auc is not None
    threshold = first_run.result.auc + 0.001
    return execute(tmp_path_factory.mktemp("local-run-2"), threshold, fork=False)


def test_bundled_dataset_would_be_registered(first_run: Run) -> None:
    result = first_run.result
    assert result.failure is None, result.failure
    assert [s.name for s in result.steps] == list(c.STEP_ORDER)
    assert result.auc is not None and result.auc >= 0.97
    assert result.registered and result.exit_code == 0
    assert first_run.lines[-1] == f"would register: yes (auc {result.auc:.4f} >= 0.90)"
    assert result.metrics["accuracy"]["value"] > 0.9
    # Speed is measured by `make bench`, never asserted here: this checks the timing table.
    assert all(step.seconds >= 0 for step in result.steps)
    assert result.total_seconds == sum(step.seconds for step in result.steps)
    table = "\n".join(first_run.lines)
    for name in c.STEP_ORDER:
        assert name in table
    assert "total" in table


def test_steps_ran_with_the_contract_arguments(first_run: Run) -> None:
    for spec in c.PROCESSING_STEPS:
        sandbox = local_run.Sandbox(first_run.work_dir / "steps" / spec.name)
        command = (first_run.work_dir / "logs" / f"{spec.name}.log").read_text().splitlines()[0]
        script = sandbox.host(spec.code_container_path)
        values = {
            c.PARAM_INPUT_DATA_VERSION: local_run.content_version(BUNDLED_CSV),
            c.PARAM_AUC_THRESHOLD: repr(c.DEFAULT_AUC_THRESHOLD),
        }
        arguments = spec.resolved_arguments(values)
        assert command == " ".join(["$", sys.executable, str(script), *sandbox.map_args(arguments)])
        assert all(isinstance(a, str) for a in arguments)
    train_command = (first_run.work_dir / "logs" / "Train.log").read_text().splitlines()[0]
    assert train_command.endswith("/opt/ml/code/train.py " + " ".join(c.TRAIN.arguments()))


def test_outputs_are_where_the_contract_says(first_run: Run) -> None:
    s3 = first_run.work_dir / "s3"
    for spec in c.PROCESSING_STEPS:
        for output in spec.outputs:
            for name in output.files:
                assert (s3 / spec.name / output.name / name).is_file()
    archive = s3 / c.TRAIN_STEP / c.TRAIN_MODEL_OUTPUT / c.MODEL_ARTIFACT
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {c.MODEL_FILE, c.TRANSFORM_FILE, "code/model_format.py"} <= names
    statistics = json.loads((s3 / c.BASELINE_STEP / "baseline" / c.STATISTICS_FILE).read_text())
    assert len(statistics["features"]) == 30
    assert statistics["dataset"]["item_count"] == 399


def test_threshold_above_auc_takes_the_fail_step(second_run: Run) -> None:
    result = second_run.result
    assert result.failure is None
    assert not result.registered and result.exit_code == local_run.EXIT_CONDITION_FAILED == 3
    assert second_run.lines[-1].startswith("would NOT register: auc ")
    assert second_run.lines[-1].endswith(f"-> Fail step ({c.FAIL_STEP})")


def test_runs_are_deterministic(first_run: Run, second_run: Run) -> None:
    for relative in (
        "s3/Evaluate/evaluation/evaluation.json",
        "s3/Train/model/model.tar.gz",
        "s3/DataQualityBaseline/baseline/statistics.json",
        "s3/Preprocess/train/train.csv",
    ):
        one = (first_run.work_dir / relative).read_bytes()
        assert one == (second_run.work_dir / relative).read_bytes(), relative


def test_step_failure_exits_non_zero_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("".join(BUNDLED_CSV.read_text().splitlines(keepends=True)[:13]))
    # main() is the command's exit status (`sys.exit(main())`); an exception would escape here.
    code = local_run.main(["--work-dir", str(tmp_path / "work"), "--input", str(bad)])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.splitlines() == [
        "Preprocess failed: /opt/ml/processing/input/raw/bad.csv: too few rows (12 < 50)",
        f"log: {tmp_path / 'work' / 'logs' / 'Preprocess.log'}",
    ]
    assert "Preprocess" in out and "FAILED" in out


def test_refuses_to_clear_a_foreign_work_dir(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    run = execute(tmp_path, 0.9)
    assert run.result.exit_code == 1
    assert "refusing to clear" in str(run.result.failure)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_threshold_formatting() -> None:
    assert local_run._format_threshold(0.9) == "0.90"
    assert local_run._format_threshold(0.999) == "0.999"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-0.01", "1.01", "abc"])
def test_threshold_outside_the_unit_range_is_refused_before_any_step(
    value: str, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    completed = subprocess.run(
        [sys.executable, "-m", "pipelines.model_build.local_run", "--work-dir", str(work),
         f"--threshold={value}"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert completed.stderr.splitlines()[-1].endswith(
        f"error: argument --threshold: must be a finite number in [0, 1], got {value!r}"
    )
    assert not work.exists()  # nothing ran
    with pytest.raises(ValueError, match=r"must be a finite number in \[0, 1\]"):
        local_run.LocalPipeline(work, BUNDLED_CSV, float(value) if value != "abc" else 2.0)


def test_data_version_reaches_preprocess(first_run: Run, tmp_path: Path) -> None:
    version = local_run.content_version(BUNDLED_CSV)
    assert version.startswith("sha256:") and len(version) == len("sha256:") + 16
    log = (first_run.work_dir / "logs" / f"{c.PREPROCESS_STEP}.log").read_text()
    assert f"--data-version={version}" in log.splitlines()[0]
    assert f"(version {version}): 569 rows, 30 features" in log
    copy = tmp_path / "copy.csv"
    copy.write_bytes(BUNDLED_CSV.read_bytes() + b"")
    assert local_run.content_version(copy) != version  # the file name is part of it
    edited = tmp_path / "breast_cancer.csv"
    edited.write_bytes(BUNDLED_CSV.read_bytes().replace(b"17.99", b"17.98", 1))
    assert local_run.content_version(edited) != version


def test_invalid_data_version_fails_in_preprocess(tmp_path: Path) -> None:
    lines: list[str] = []
    pipeline = local_run.LocalPipeline(
        tmp_path / "work", BUNDLED_CSV, 0.9, data_version="a,b", echo=lines.append
    )
    result = pipeline.run()
    assert result.exit_code == local_run.EXIT_STEP_FAILED
    assert result.failure is not None and result.failure.step == c.PREPROCESS_STEP
    assert result.failure.message.startswith("InputDataVersion 'a,b' is not a valid version")
