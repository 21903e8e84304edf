"""Run the model-build pipeline locally: same scripts, same arguments, same (mapped) paths.

    python -m pipelines.model_build.local_run [--work-dir .work/pipeline-local]
        [--input PATH] [--threshold 0.9] [--data-version LABEL]

Steps run in the pipeline's order, each script in its own process with exactly the argument list
of ``contract.py`` (forked from a helper that has imported pandas, scikit-learn and XGBoost once:
``step_process.py``). Each step gets its own "container" under ``<work>/steps/<Step>/``: every
``/opt/ml/...`` path is mapped to ``<work>/steps/<Step>/opt/ml/...``, inputs are copied in
before the step (as SageMaker downloads them from S3), the step's code is copied to where
SageMaker puts it (so a script importing something it is not shipped with fails here too), and
outputs are copied out to ``<work>/s3/<Step>/<output>/`` afterwards. Between Train and Evaluate,
``/opt/ml/model`` is tarred into ``<work>/s3/Train/model/model.tar.gz``. Logs:
``<work>/logs/<Step>.log``. The pipeline parameters the steps take as arguments get the
options' values: ``--data-version`` (default: ``sha256:`` and the start of a hash of the input
CSV files' names and bytes) and ``--threshold``.

Exit status: 0 when the model would be registered, 3 when the AUC condition fails (the pipeline
would take the Fail step), 1 when a step fails (its one-line failure message is printed).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.model_build import contract as c
from pipelines.model_build.step_process import StepProcesses, third_party_modules

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WORK_DIR = Path(".work/pipeline-local")
MARKER = ".local-run"
EXIT_REGISTER = 0
EXIT_STEP_FAILED = 1
EXIT_CONDITION_FAILED = 3
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


def step_imports() -> tuple[str, ...]:
    """The third-party modules the step scripts and the training code import (preloaded once
    by :class:`~pipelines.model_build.step_process.StepProcesses`' helper)."""
    files = [REPO_ROOT / spec.script for spec in c.PROCESSING_STEPS]
    files += sorted((REPO_ROOT / c.TRAIN.source_dir).glob("*.py"))
    return third_party_modules(files)


class StepFailed(Exception):
    def __init__(self, step: str, message: str, log: Path | None = None) -> None:
        super().__init__(f"{step} failed: {message}")
        self.step = step
        self.message = message
        self.log = log


@dataclass
class StepResult:
    name: str
    seconds: float
    note: str = ""


@dataclass
class RunResult:
    steps: list[StepResult] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    auc: float | None = None
    threshold: float = c.DEFAULT_AUC_THRESHOLD
    registered: bool = False
    failure: StepFailed | None = None
    evaluation_path: Path | None = None

    @property
    def exit_code(self) -> int:
        if self.failure is not None:
            return EXIT_STEP_FAILED
        return EXIT_REGISTER if self.registered else EXIT_CONDITION_FAILED

    @property
    def total_seconds(self) -> float:
        return sum(step.seconds for step in self.steps)


class Sandbox:
    """One step's container file system, rooted under the work dir."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def host(self, container_path: str) -> Path:
        if not container_path.startswith("/opt/ml/"):
            raise ValueError(f"not a container path: {container_path}")
        return self.root / container_path.lstrip("/")

    def map_args(self, arguments: Iterable[str]) -> list[str]:
        return [str(self.host(a)) if a.startswith("/opt/ml/") else a for a in arguments]

    def unmap(self, text: str) -> str:
        """Host paths back to container paths (for messages, as SageMaker would show them)."""
        return text.replace(str(self.root) + os.sep, "/").replace(str(self.root), "/")


def _copy_into(source: Path, destination: Path) -> None:
    """Copy a file into a directory, or a directory's content into a directory."""
    destination.mkdir(parents=True, exist_ok=True)
    if source.is_file():
        shutil.copyfile(source, destination / source.name)
    elif source.is_dir():
        shutil.copytree(source, destination, dirs_exist_ok=True, ignore=_IGNORE)
    else:
        raise FileNotFoundError(source)


def deterministic_targz(source_dir: Path, archive: Path) -> None:
    """tar.gz of a directory's content (entries at the root, like SageMaker's model.tar.gz),
    with sorted entries and fixed metadata, so the same content gives the same bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(source_dir.rglob("*")):
            if "__pycache__" in path.parts:
                continue
            info = tar.gettarinfo(str(path), arcname=path.relative_to(source_dir).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            info.mode = 0o755 if path.is_dir() else 0o644
            if path.is_file():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with archive.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(buffer.getvalue())


def content_version(input_path: Path) -> str:
    """A data version derived from the content: the CSV files Preprocess reads, names and bytes."""
    files = (
        [input_path]
        if input_path.is_file()
        else sorted(p for p in input_path.rglob("*") if p.is_file() and p.suffix.lower() == ".csv")
    )
    digest = hashlib.sha256()
    for path in files:
        name = path.name if path == input_path else path.relative_to(input_path).as_posix()
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"sha256:{digest.hexdigest()[:16]}"


def json_get(document: Mapping[str, Any], key_path: Iterable[str]) -> Any:
    value: Any = document
    for key in key_path:
        value = value[key]
    return value


class LocalPipeline:
    def __init__(
        self,
        work_dir: Path,
        input_path: Path,
        threshold: float,
        *,
        data_version: str | None = None,
        python: str = sys.executable,
        echo: Callable[[str], None] = print,
        fork: bool | None = None,
    ) -> None:
        self.work_dir = work_dir.resolve()
        self.input_path = input_path.resolve()
        self.threshold = c.check_threshold(threshold, "threshold")
        self.data_version = data_version
        self.python = python
        self.echo = echo
        self.processes = StepProcesses(python, step_imports(), fork=fork)

    # ---- layout ---------------------------------------------------------------------------

    def s3(self, ref: c.StepOutputRef) -> Path:
        return self.work_dir / "s3" / ref.step / ref.output

    def sandbox(self, step: str) -> Sandbox:
        return Sandbox(self.work_dir / "steps" / step)

    def log_path(self, step: str) -> Path:
        return self.work_dir / "logs" / f"{step}.log"

    def prepare_work_dir(self) -> None:
        work = self.work_dir
        if work.exists() and any(work.iterdir()) and not (work / MARKER).exists():
            raise StepFailed(
                "setup", f"refusing to clear non-empty {work}: it has no {MARKER} marker"
            )
        for sub in ("steps", "s3", "logs"):
            shutil.rmtree(work / sub, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        (work / MARKER).write_text("created by pipelines.model_build.local_run\n")

    def resolve(self, source: c.Source) -> Path:
        if isinstance(source, c.StepOutputRef):
            return self.s3(source)
        if isinstance(source, c.PipelineData):
            return self.input_path
        return REPO_ROOT / source.path

    # ---- running --------------------------------------------------------------------------

    def _execute(
        self,
        step: str,
        sandbox: Sandbox,
        command: list[str],
        cwd: Path,
        env_overrides: Mapping[str, str],
        failure_file: Path | None,
    ) -> str:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update({"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"})
        env.update(env_overrides)
        completed = self.processes.run(command, cwd=cwd, env=env)
        log = self.log_path(step)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(
            f"$ {' '.join(command)}\n--- stdout\n{completed.stdout}--- stderr\n{completed.stderr}"
        )
        if completed.returncode != 0:
            message = ""
            if failure_file is not None and failure_file.is_file():
                message = failure_file.read_text(encoding="utf-8").strip()
            if not message:
                lines = [line for line in completed.stderr.splitlines() if line.strip()]
                message = lines[-1].strip() if lines else f"exit status {completed.returncode}"
                message = message.removeprefix("ERROR: ")
            message = sandbox.unmap(" ".join(message.split()))
            raise StepFailed(step, message, log)
        return completed.stdout

    def parameter_values(self) -> dict[str, str]:
        """The pipeline parameters the contract's arguments take, as the local options give them."""
        version = self.data_version
        if version is None:
            version = content_version(self.input_path) if self.input_path.exists() else ""
        return {
            c.PARAM_INPUT_DATA_VERSION: version,
            c.PARAM_AUC_THRESHOLD: repr(self.threshold),
        }

    def run_processing(self, spec: c.ProcessingStepSpec) -> str:
        sandbox = self.sandbox(spec.name)
        for given in spec.inputs:
            source = self.resolve(given.source)
            if not source.exists():
                raise StepFailed(spec.name, f"input {given.name!r}: {source} does not exist")
            _copy_into(source, sandbox.host(given.container_path))
        script = sandbox.host(spec.code_container_path)
        script.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / spec.script, script)
        for item in spec.outputs:
            sandbox.host(item.container_path).mkdir(parents=True, exist_ok=True)
        stdout = self._execute(
            spec.name,
            sandbox,
            [
                self.python,
                str(script),
                *sandbox.map_args(spec.resolved_arguments(self.parameter_values())),
            ],
            cwd=sandbox.root,
            env_overrides={},
            failure_file=sandbox.host(spec.failure_file),
        )
        for item in spec.outputs:
            produced = sandbox.host(item.container_path)
            for name in item.files:
                if not (produced / name).is_file():
                    raise StepFailed(spec.name, f"output {item.name!r} lacks {name}")
            _copy_into(produced, self.s3(c.StepOutputRef(spec.name, item.name)))
        return stdout

    def run_training(self, spec: c.TrainingStepSpec) -> dict[str, float]:
        sandbox = self.sandbox(spec.name)
        code_dir = sandbox.host(spec.code_dir)
        _copy_into(REPO_ROOT / spec.source_dir, code_dir)
        for channel in spec.channels:
            _copy_into(self.resolve(channel.source), sandbox.host(channel.container_path))
        env = {name: str(sandbox.host(path)) for name, path in spec.environment().items()}
        for path in (spec.model_dir, spec.output_data_dir):
            sandbox.host(path).mkdir(parents=True, exist_ok=True)
        stdout = self._execute(
            spec.name,
            sandbox,
            [self.python, str(code_dir / spec.entry_point), *spec.arguments()],
            cwd=code_dir,
            env_overrides=env,
            failure_file=None,
        )
        archive = self.s3(c.StepOutputRef(spec.name, c.TRAIN_MODEL_OUTPUT)) / c.MODEL_ARTIFACT
        deterministic_targz(sandbox.host(spec.model_dir), archive)
        metrics: dict[str, float] = {}
        for definition in spec.metric_definitions:
            found = re.findall(definition.regex, stdout)
            if found:
                metrics[definition.name] = float(found[-1])  # the last value, as SageMaker
        return metrics

    def evaluate_condition(self, spec: c.ConditionSpec) -> tuple[float, dict[str, Any], Path]:
        path = self.s3(c.StepOutputRef(spec.step, spec.output)) / spec.path
        report = json.loads(path.read_text())
        try:
            auc = float(json_get(report, spec.key_path))
        except (KeyError, TypeError, ValueError):
            raise StepFailed(spec.name, f"{spec.path} has no number at {spec.json_path}") from None
        return auc, report, path

    def _record(self, result: RunResult, name: str, start: float, note: str) -> None:
        step = StepResult(name, time.perf_counter() - start, note)
        result.steps.append(step)
        self.echo(f"{step.name:<22}{step.seconds:>8.2f}  {step.note}")

    def run_step(self, name: str, result: RunResult) -> str:
        """Run one step; returns the note for the timing table."""
        if name == c.TRAIN_STEP:
            metrics = self.run_training(c.TRAIN)
            objective = metrics.get(c.TRAIN.objective_metric)
            return "ok" if objective is None else f"ok ({c.TRAIN.objective_metric} {objective:.4f})"
        if name == c.CONDITION_STEP:
            auc, report, path = self.evaluate_condition(c.CONDITION)
            result.auc = auc
            result.metrics = report["binary_classification_metrics"]
            result.evaluation_path = path
            result.registered = auc >= self.threshold
            return f"-> {c.REGISTER_STEP}" if result.registered else f"-> {c.FAIL_STEP}"
        processing = {spec.name: spec for spec in c.PROCESSING_STEPS}
        self.run_processing(processing[name])
        return "ok"

    def run(self) -> RunResult:
        result = RunResult(threshold=self.threshold)
        self.echo(f"work dir {self.work_dir}")
        self.echo(f"{'step':<22}{'seconds':>8}  result")
        try:
            self.prepare_work_dir()
            if not self.input_path.exists():
                raise StepFailed("setup", f"input {self.input_path} does not exist")
            for name in c.STEP_ORDER:
                start = time.perf_counter()
                try:
                    note = self.run_step(name, result)
                except StepFailed:
                    self._record(result, name, start, "FAILED")
                    raise
                self._record(result, name, start, note)
        except StepFailed as failure:
            result.failure = failure
        self.echo(f"{'total':<22}{result.total_seconds:>8.2f}")
        return result


def report(result: RunResult, echo: Callable[[str], None] = print) -> None:
    if result.failure is not None:
        echo(str(result.failure))
        if result.failure.log is not None:
            echo(f"log: {result.failure.log}")
        return
    echo("")
    echo(f"{'metric':<12}{'value':>10}")
    for name in ("auc", "accuracy", "precision", "recall", "f1"):
        echo(f"{name:<12}{result.metrics[name]['value']:>10.4f}")
    matrix = result.metrics["confusion_matrix"]
    echo(
        f"confusion   tn {matrix['0']['0']}  fp {matrix['0']['1']}  "
        f"fn {matrix['1']['0']}  tp {matrix['1']['1']}"
    )
    echo(f"evaluation: {result.evaluation_path}")
    assert result.auc is not None
    threshold = _format_threshold(result.threshold)
    if result.registered:
        echo(f"would register: yes (auc {result.auc:.4f} >= {threshold})")
    else:
        echo(f"would NOT register: auc {result.auc:.4f} < {threshold} -> Fail step ({c.FAIL_STEP})")


def _format_threshold(value: float) -> str:
    """0.9 -> "0.90", 0.999 -> "0.999": never rounds the threshold shown."""
    fixed = f"{value:.2f}"
    return fixed if float(fixed) == value else repr(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.model_build.local_run",
        description="Run the model-build pipeline's steps locally, in order.",
    )
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument(
        "--input",
        type=Path,
        default=REPO_ROOT / c.BUNDLED_DATASET,
        help="raw CSV file or directory of CSV files (default: the bundled dataset)",
    )
    parser.add_argument(
        "--data-version",
        help="the InputDataVersion parameter (default: derived from the input files' content)",
    )
    parser.add_argument(
        "--threshold",
        type=_threshold_arg,
        default=c.DEFAULT_AUC_THRESHOLD,
        help="AUC threshold for registration, a finite number in [0, 1] (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    pipeline = LocalPipeline(
        args.work_dir, args.input, args.threshold, data_version=args.data_version
    )
    result = pipeline.run()
    report(result, echo=print if result.failure is None else _stderr)
    return result.exit_code


def _threshold_arg(text: str) -> float:
    try:
        return c.check_threshold(text, "--threshold")
    except ValueError as exc:  # argparse prints "argument --threshold: <message>", exit 2
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--threshold ")) from None


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
