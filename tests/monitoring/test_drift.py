"""The drift core with Evidently, through ``make drift-local``'s runner and the job entry point.

Evidently costs ~5 s of CPU to import and ~2 s per 30-feature run (mostly its HTML widgets), so
the two shipped batches run ONCE per test session (``drift_local``, shared by xdist workers through
a file lock) and the tests read their outputs.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
from moto import mock_aws

from monitoring.drift import batches, core, job, local_run, metrics
from monitoring.drift.core import DriftInputError
from pipelines.model_build.contract import BUNDLED_DATASET
from tests.botocore_shapes import validate
from tests.conftest import no_network
from tests.monitoring.drift_memo import shared_drift_runs

REPO = Path(__file__).resolve().parents[2]
# Importing evidently 0.7.23 warns about its own dependencies (numpy.core, litestar's DI API).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@dataclass
class LocalRun:
    out: Path
    code: int
    stdout: str
    network_attempts: list[str]

    def report(self, name: str) -> dict[str, Any]:
        return dict(json.loads((self.out / name / core.REPORT_JSON).read_text()))


@pytest.fixture(scope="session")
def drift_local(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> LocalRun:
    """``make drift-local``'s runner, once per test session even across xdist workers."""
    root = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):  # an xdist worker: the workers share the parent
        root = root.parent
    out = root / "drift-local"
    with (root / "drift-local.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        done = root / "drift-local.json"
        if not done.exists():
            stdout = io.StringIO()
            with (
                no_network() as attempts,
                contextlib.redirect_stdout(stdout),
                shared_drift_runs(),  # the drift workflow's tests run the same two comparisons
            ):
                code = local_run.main(["--output-dir", str(out)])
            run = {"code": code, "stdout": stdout.getvalue(), "network_attempts": attempts}
            done.write_text(json.dumps(run))
        run = json.loads(done.read_text())
    return LocalRun(out, run["code"], run["stdout"], run["network_attempts"])


@pytest.fixture(scope="module")
def features() -> list[str]:
    return list(pd.read_csv(batches.DATA_DIR / "clean.csv", nrows=0).columns)


def test_drift_local_finds_drift_on_the_shifted_batch_only(
    drift_local: LocalRun, features: list[str]
) -> None:
    assert drift_local.code == 0, drift_local.stdout
    assert drift_local.network_attempts == []  # runs as a network-isolated job would
    assert "as expected (drift on the shifted batch only)" in drift_local.stdout

    clean = drift_local.report("clean")["summary"]
    assert clean["dataset_drift"] is False
    assert clean["number_of_drifted_features"] == 0
    assert clean["drifted_features"] == []

    shifted = drift_local.report("shifted")["summary"]
    assert shifted["dataset_drift"] is True
    # Exactly the scaled features, none of the untouched *_error ones.
    assert shifted["drifted_features"] == batches.shifted_features(features)
    assert shifted["number_of_drifted_features"] == 20
    assert shifted["share_of_drifted_features"] == pytest.approx(20 / 30)
    assert shifted["drift_share_threshold"] == core.DEFAULT_DRIFT_SHARE
    assert (shifted["reference_rows"], shifted["current_rows"]) == (569, 300)


def test_per_feature_results_are_evidentlys_ks_verdicts(drift_local: LocalRun) -> None:
    for name in batches.BATCHES:
        report = drift_local.report(name)
        rows = report["features"]
        assert len(rows) == 30
        for row in rows:
            # 569 reference rows (<= 1000): Evidently's default is the two-sample KS test.
            assert (row["method"], row["threshold"], row["score_kind"]) == (
                "K-S p_value",
                0.05,
                "p_value",
            )
            assert row["drifted"] is (row["score"] < row["threshold"]), row
        values = {
            m["config"]["column"]: m["value"]
            for m in report["evidently"]["metrics"]
            if m["config"]["type"] == "evidently:metric_v2:ValueDrift"
        }
        assert values == {row["name"]: row["score"] for row in rows}


def test_the_printed_table_names_each_feature_and_verdict(drift_local: LocalRun) -> None:
    shifted = drift_local.stdout.split("== shifted batch")[1]
    lines = {line.split()[0]: line.split()[1] for line in shifted.splitlines() if "K-S" in line}
    assert lines["mean_radius"] == "YES"
    assert lines["radius_error"] == "no"
    assert len(lines) == 30
    assert "drifted features: 20/30 (share 0.67" in shifted


def test_reports_and_metric_data_are_written(drift_local: LocalRun) -> None:
    out = drift_local.out / "shifted"
    assert sorted(p.name for p in out.iterdir()) == [
        core.REPORT_HTML,
        core.REPORT_JSON,
        metrics.METRIC_DATA_FILE,
    ]
    html = (out / core.REPORT_HTML).read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<html") or "<!doctype html>" in html[:200].lower()
    assert "worst_fractal_dimension" in html

    report = drift_local.report("shifted")
    assert report["schema_version"] == core.REPORT_SCHEMA_VERSION
    context = report["context"]
    assert context["endpoint_name"] == batches.ENDPOINT
    assert context["reference"] == BUNDLED_DATASET
    assert context["window"]["hour_partitions"] == ["2026/01/15/10", "2026/01/15/11"]
    assert context["capture"]["files"] == 4
    assert context["capture"]["rows"] == 300
    assert context["capture"]["rejected_records"] == 0

    namespace, datums = metrics.read_metric_data(out / metrics.METRIC_DATA_FILE)
    assert namespace == metrics.DEFAULT_NAMESPACE
    assert (
        validate("cloudwatch", "PutMetricData", {"Namespace": namespace, "MetricData": datums})
        == []
    )
    assert len(datums) == 5 + 2 * 30
    share = [d for d in datums if d["MetricName"] == metrics.SHARE_OF_DRIFTED_FEATURES]
    assert share[0]["Value"] == pytest.approx(20 / 30)
    assert share[0]["Timestamp"].isoformat() == "2026-01-15T12:00:00+00:00"  # the window's end


def test_large_reference_switches_to_wasserstein_and_runs_are_deterministic() -> None:
    """Over 1000 reference rows Evidently's default becomes the normed Wasserstein distance."""
    picked = ["mean_radius", "mean_texture", "radius_error", "texture_error"]
    dataset = pd.read_csv(REPO / BUNDLED_DATASET)
    reference = pd.concat([dataset] * 2, ignore_index=True)  # 1138 rows
    current = pd.read_csv(batches.DATA_DIR / "shifted.csv")
    runs = [core.detect_drift(reference, current, picked) for _ in range(2)]
    result = runs[0].result
    assert {f.method for f in result.features} == {"Wasserstein distance (normed)"}
    assert {f.score_kind for f in result.features} == {"distance"}
    for f in result.features:
        assert f.drifted is (f.score >= f.threshold), f
    assert result.drifted_features == ("mean_radius", "mean_texture")
    assert result.share == 0.5
    assert result.dataset_drift is True  # share >= drift_share, Evidently's rule
    documents = [json.dumps(core.report_document(run, {"k": 1}), sort_keys=True) for run in runs]
    assert documents[0] == documents[1]


# ---- bad input: clear one-line errors, before Evidently is ever run ------------------------


FEATURES = ["a", "b"]


def frame(rows: int = 40, **columns: Any) -> pd.DataFrame:
    data: dict[str, Any] = {"a": np.arange(rows, dtype=float), "b": np.ones(rows)}
    data.update(columns)
    return pd.DataFrame(data)


@pytest.mark.parametrize(
    ("current", "kwargs", "message"),
    [
        (frame().drop(columns="b"), {}, "current data lacks feature column\\(s\\) b"),
        (frame(0), {}, "current data has no rows"),
        (frame(b=["x"] * 40), {}, "current data column 'b' is not numeric"),
        (frame(b=[True] * 40), {}, "current data column 'b' is not numeric"),
        (frame(b=[np.inf] * 40), {}, "current data column 'b' holds an infinite value"),
        (frame(b=[np.nan] * 40), {}, "current data column 'b' has no values"),
        (frame(5), {}, "current data has 5 rows, at least 30 needed"),
        (frame(), {"drift_share": 0.0}, "drift share must be in \\(0, 1\\]"),
        (frame(), {"features": ["a", "a"]}, "feature\\(s\\) listed twice: a"),
        (frame(), {"features": []}, "no features to compare"),
    ],
)
def test_bad_inputs_are_one_line_errors(
    current: pd.DataFrame, kwargs: dict[str, Any], message: str
) -> None:
    features = kwargs.pop("features", FEATURES)
    with pytest.raises(DriftInputError, match=message) as caught:
        core.detect_drift(frame(), current, features, **kwargs)
    assert "\n" not in str(caught.value)


def test_reference_missing_columns_is_named() -> None:
    with pytest.raises(DriftInputError, match="reference data lacks feature column\\(s\\) a"):
        core.detect_drift(frame().drop(columns="a"), frame(), FEATURES)


# ---- the job's command line: exit 1, one line on stderr and in the failure file -------------


def capture_tree(root: Path, hour: str, lines: list[str]) -> Path:
    path = root / hour / "f.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return root


def csv_record(values: list[float]) -> str:
    data = ",".join(map(str, values))
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "text/csv",
                    "mode": "INPUT",
                    "data": data,
                    "encoding": "CSV",
                }
            },
            "eventMetadata": {"eventId": "x", "inferenceTime": "2026-01-15T10:00:00Z"},
            "eventVersion": "0",
        }
    )


def run_job(tmp_path: Path, reference: Path, capture: Path, *extra: str) -> tuple[int, str]:
    failure = tmp_path / "failure"
    failure.unlink(missing_ok=True)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = job.main(
            [
                "--reference",
                str(reference),
                "--capture-dir",
                str(capture),
                "--window-start",
                "2026-01-15T10:00:00Z",
                "--window-end",
                "2026-01-15T11:00:00Z",
                "--endpoint-name",
                "ep",
                "--output-dir",
                str(tmp_path / "out"),
                "--failure-file",
                str(failure),
                *extra,
            ]
        )
    message = failure.read_text() if failure.exists() else ""
    if code != 0:
        assert message.count("\n") == 1 and f"ERROR: {message.strip()}" in stderr.getvalue()
    return code, message


@pytest.fixture
def reference_csv(tmp_path: Path) -> Path:
    path = tmp_path / "reference.csv"
    pd.DataFrame({"a": np.arange(40.0), "b": np.ones(40), "target": 0}).to_csv(path, index=False)
    return path


def test_job_with_an_empty_capture_window(tmp_path: Path, reference_csv: Path) -> None:
    root = capture_tree(tmp_path / "cap", "2026/01/15/09", [csv_record([1, 2])])
    code, message = run_job(tmp_path, reference_csv, root)
    assert code == 1
    assert "no capture files (yyyy/mm/dd/hh/*.jsonl) in window 2026-01-15T10:00:00Z" in message
    code, message = run_job(tmp_path, reference_csv, tmp_path / "nowhere")
    assert (code, message.strip()) == (
        1,
        f"{tmp_path / 'nowhere'}: capture directory does not exist",
    )


def test_job_preselected_reads_files_outside_the_layout(
    tmp_path: Path, reference_csv: Path
) -> None:
    """A ManifestFile input may not keep the hour layout: --preselected reads every file."""
    root = tmp_path / "cap"
    root.mkdir()
    (root / "flat.jsonl").write_text(csv_record([1, 2]) + "\n")
    code, message = run_job(tmp_path, reference_csv, root)
    assert code == 1 and "no capture files" in message
    code, message = run_job(tmp_path, reference_csv, root, "--preselected")
    # Found and read: now the one row is too few for a drift test.
    assert (code, message.strip()) == (
        1,
        "current data has 1 rows, at least 30 needed for a drift test",
    )


def test_job_when_every_record_is_rejected(tmp_path: Path, reference_csv: Path) -> None:
    # Three values per row, but the reference (the model) has two features.
    root = capture_tree(tmp_path / "cap", "2026/01/15/10", [csv_record([1, 2, 3])] * 3 + ["{"])
    code, message = run_job(tmp_path, reference_csv, root)
    assert code == 1
    assert "no usable captured rows" in message
    assert "4 records in 1 files, rejected (not JSON: 1, payload rejected: 3)" in message


def test_job_with_too_few_rows(tmp_path: Path, reference_csv: Path) -> None:
    root = capture_tree(tmp_path / "cap", "2026/01/15/10", [csv_record([1, 2])] * 5)
    code, message = run_job(tmp_path, reference_csv, root)
    assert (code, message.strip()) == (
        1,
        "current data has 5 rows, at least 30 needed for a drift test",
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "reference file does not exist"),
        ("", "reference file is empty"),
        ("a,b,a\n1,2,3\n", "repeated column(s) in the header: a"),
        ("target\n1\n", "no feature columns in the header"),
    ],
)
def test_job_with_a_bad_reference(tmp_path: Path, content: str | None, message: str) -> None:
    reference = tmp_path / "ref"
    reference.mkdir()
    if content is not None:
        (reference / job.REFERENCE_FILE).write_text(content)
    root = capture_tree(tmp_path / "cap", "2026/01/15/10", [csv_record([1, 2])])
    code, got = run_job(tmp_path, reference, root)
    assert code == 1
    assert message in got


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--namespace", "AWS/SageMaker"], "may not start with ':' or 'AWS/'"),
        (["--min-rows", "0"], "--min-rows must be at least 1, got 0"),
    ],
)
def test_job_with_bad_options(
    tmp_path: Path, reference_csv: Path, extra: list[str], message: str
) -> None:
    root = capture_tree(tmp_path / "cap", "2026/01/15/10", [csv_record([1, 2])] * 40)
    code, got = run_job(tmp_path, reference_csv, root, *extra)
    assert code == 1
    assert message in got


@mock_aws
def test_job_publishes_its_metrics_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    rng = np.random.default_rng(7)
    reference = tmp_path / "reference.csv"
    pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)}).to_csv(
        reference, index=False
    )
    shifted = [csv_record([float(a) + 3.0, float(b)]) for a, b in rng.normal(size=(40, 2))]
    root = capture_tree(tmp_path / "cap", "2026/01/15/10", shifted)
    code, message = run_job(
        tmp_path, reference, root, "--publish-metrics", "--namespace", "T/Drift"
    )
    assert (code, message) == (0, "")
    report = json.loads((tmp_path / "out" / core.REPORT_JSON).read_text())
    assert report["summary"]["drifted_features"] == ["a"]
    listed = boto3.client("cloudwatch").list_metrics(Namespace="T/Drift")["Metrics"]
    names = sorted((m["MetricName"], len(m["Dimensions"])) for m in listed)
    assert names == sorted(
        [(n, 1) for n in ("ShareOfDriftedFeatures", "DriftedFeatures", "DatasetDrift")]
        + [("CapturedRows", 1), ("RejectedRecords", 1)]
        + [(n, 2) for n in ("FeatureDrift", "FeatureDriftScore") for _ in "ab"]
    )
