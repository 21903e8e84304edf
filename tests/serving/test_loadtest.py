"""serving.loadtest: model resolution, results, and a short end-to-end run (no timing asserts)."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from serving import loadtest
from serving.loadtest import LoadTestError, Results
from serving.processes import alive, children, stop_process_group, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 120.0  # seconds any wait may take on a loaded machine before it fails


def test_model_dir_as_directory_archive_or_directory_with_archive(model_dir, tmp_path):
    assert loadtest.resolve_model_dir(model_dir, tmp_path / "a")[0] == model_dir

    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in model_dir.iterdir():
            tar.add(path, arcname=path.name)
    extracted, origin = loadtest.resolve_model_dir(archive, tmp_path / "b")
    assert (extracted / "xgboost-model.json").is_file() and origin == str(archive)
    assert extracted.is_relative_to(tmp_path / "b")

    extracted, _ = loadtest.resolve_model_dir(tmp_path, tmp_path / "c")
    assert (extracted / "feature_transform.json").is_file()


def test_unusable_model_dir_is_an_error(tmp_path):
    with pytest.raises(LoadTestError, match=r"expected a directory with xgboost-model\.json"):
        loadtest.resolve_model_dir(tmp_path / "empty", tmp_path / "scratch")


def test_default_model_prefers_the_pipeline_output(model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(loadtest, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(loadtest, "PIPELINE_MODEL", model_dir)
    found, origin = loadtest.resolve_model_dir(None, tmp_path / "scratch")
    assert found == model_dir and "local pipeline run" in origin


def test_default_model_is_a_quick_model_otherwise(tmp_path, monkeypatch):
    trained = []

    def fake_train(path):
        trained.append(path)
        path.mkdir(parents=True)
        (path / "xgboost-model.json").write_text("{}")

    monkeypatch.setattr(loadtest, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(loadtest, "PIPELINE_MODEL", tmp_path / "none")
    monkeypatch.setattr(loadtest, "PIPELINE_TRAIN_OUTPUT", tmp_path / "none")
    monkeypatch.setattr(loadtest, "QUICK_MODEL", tmp_path / "quick")
    monkeypatch.setattr("serving.quick_model.train_quick_model", fake_train)
    assert loadtest.resolve_model_dir(None, tmp_path / "s")[0] == tmp_path / "quick"
    assert loadtest.resolve_model_dir(None, tmp_path / "s")[0] == tmp_path / "quick"
    assert trained == [tmp_path / "quick"]  # trained once, then reused


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert loadtest.percentile(values, 50) == 50.0
    assert loadtest.percentile(values, 99) == 99.0
    assert loadtest.percentile(values, 100) == 100.0
    assert loadtest.percentile([3.0], 99) == 3.0
    assert math.isnan(loadtest.percentile([], 50))


def test_results_from_raw_latencies_and_from_locust_csv(tmp_path):
    raw = tmp_path / "latencies.json"
    raw.write_text(
        json.dumps(
            {
                "started_at": 100.0,
                "stopped_at": 102.0,
                "requests": 4,
                "failures": 1,
                "response_times_ms": [4.0, 1.0, 2.0, 3.0],
            }
        )
    )
    results = loadtest.read_results(raw, tmp_path / "missing.csv")
    assert (results.requests, results.failures, results.rps) == (4, 1, 2.0)
    assert (results.p50, results.p99, results.max) == (2.0, 4.0, 4.0)

    stats = tmp_path / "stats.csv"
    stats.write_text(
        "Type,Name,Request Count,Failure Count,Requests/s,50%,95%,99%,Max Response Time\n"
        "POST,/invocations [csv],10,0,5.0,1,2,3,4\n"
        ",Aggregated,20,0,10.0,1,2,3,5\n"
    )
    results = loadtest.read_results(tmp_path / "none.json", stats)
    assert (results.requests, results.rps, results.p99, results.max) == (20, 10.0, 3.0, 5.0)
    with pytest.raises(LoadTestError):
        loadtest.read_results(tmp_path / "none.json", tmp_path / "none.csv")


@pytest.mark.parametrize(
    ("rps", "p99", "failures", "verdict"),
    [
        (501.0, 9.9, 0, "MET"),
        (499.0, 1.0, 0, "NOT MET"),
        (600.0, 10.0, 0, "NOT MET"),
        (600.0, 1.0, 2, "NOT MET"),
    ],
)
def test_table_and_verdict(rps, p99, failures, verdict):
    results = Results(1000, failures, rps, 1.0, 2.0, p99, 20.0, "raw response times")
    table = loadtest.render_table(results)
    assert table.splitlines()[-1].endswith(f"  {verdict}")
    for row in ("requests", "failures", "req/s achieved", "p50 latency (ms)", "max latency (ms)"):
        assert row in table


def test_loadtest_smoke(model_dir):
    """A short, low-rate run end to end: server, locust, table; then no process left behind."""
    result = subprocess.run(
        [
            *(sys.executable, "-m", "serving.loadtest", "--model-dir", str(model_dir)),
            *("--rps", "40", "--duration", "2", "--users", "4"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=DEADLINE * 3,  # a hang fails the test; the run itself takes seconds
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for row in (
        "requests",
        "failures",
        "req/s achieved",
        "p50 latency (ms)",
        "p95 latency (ms)",
        "p99 latency (ms)",
        "max latency (ms)",
        "target p99 < 10 ms at >= 40 req/s",
    ):
        assert row in out, out
    requests = int(
        next(line.split()[-1] for line in out.splitlines() if line.startswith("requests"))
    )
    failures = next(line.split()[-1] for line in out.splitlines() if line.startswith("failures"))
    assert requests > 0 and failures == "0"

    def leftovers() -> str:
        return subprocess.run(
            ["pgrep", "-f", f"--model-dir {model_dir} --host 127.0.0.1 --port 0"],
            capture_output=True,
            text=True,
        ).stdout.strip()

    # killed processes leave /proc asynchronously: poll, with a generous deadline
    wait_until(lambda: leftovers() == "", DEADLINE, "no server process left")


def test_ctrl_c_stops_everything(model_dir):
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "serving.loadtest", "--model-dir", str(model_dir)),
            *("--rps", "20", "--duration", "60", "--users", "2"),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # started with Ctrl-C ignored, as a background job of a non-interactive shell is (and
        # as this test's worker may be after other tests): Ctrl-C must still stop the run
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        for line in process.stdout:
            if line.startswith("load:"):
                break
        # the server and locust
        wait_until(lambda: len(children(process.pid)) == 2, DEADLINE, "two child processes")
        started = children(process.pid)
        process.send_signal(signal.SIGINT)
        assert process.wait(DEADLINE) == 130
        assert "interrupted" in process.stderr.read()
        # loadtest waits for both before it exits
        assert [pid for pid in started if alive(pid)] == []
    finally:
        stop_process_group(process)
