"""Load-test the local model server with locust; print latency percentiles and throughput.

    python -m serving.loadtest [--model-dir DIR] [--rps 500] [--duration 20] [--users N]

Starts ``python -m serving.server`` on a free loopback port (``--port 0``), waits for
``/ping``, checks one request of every payload kind, runs locust headless as a subprocess
(``serving/locustfile.py``, constant-rate users, ``--reset-stats`` so the ramp-up is excluded,
bounded ``--run-time``), then stops everything, also on failure or Ctrl-C, and prints a table.
The target is p99 < 10 ms at >= 500 req/s; users offer 1% above ``--rps`` so that sampling noise
cannot push an on-pace run below it. Percentiles come from locust's raw response times (its CSV
rounds them to whole milliseconds). A CPU line tells how busy the machine was with other work.

Model: ``--model-dir`` (a dir with ``xgboost-model.json``, a ``model.tar.gz``, or a dir holding
one); by default what the local pipeline run produced (``.work/pipeline-local/model``, else
``.work/pipeline-local/s3/Train/model/model.tar.gz``), else a quick model trained into
``.work/loadtest-model`` (reused on later runs).

Exit status: 0 when the run completed without failed requests (whether or not the target was
met), 1 when requests failed or the server or locust broke, 2 on bad arguments, 130 on Ctrl-C.

Endpoint mode (a deployed SageMaker endpoint instead of the local server):

    python -m serving.loadtest --endpoint-name NAME --region R [--rps 20] [--duration 60]
        [--max-p99-ms 1000] [--max-error-rate 0.01] [--min-rps N] [--endpoint-url URL]

checks one signed request of every payload kind, then runs locust's ``SageMakerEndpointUser``:
``POST /endpoints/NAME/invocations`` on ``https://runtime.sagemaker.R.amazonaws.com`` (or
``--endpoint-url``), each request signed with botocore's SigV4Auth (service ``sagemaker``) and
credentials from the default chain; it needs ``sagemaker:InvokeEndpoint`` on the endpoint. It
prints p50/p95/p99, the error rate and req/s against the thresholds (``--min-rps`` defaults to
90% of ``--rps``). Exit status: 0 when every threshold is met, 1 when one is missed or the run
broke, 2 on bad arguments or without credentials, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import http.client
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.payloads import (
    BATCH_ROWS,
    KIND_WEIGHTS,
    check_response,
    load_feature_rows,
    make_payload,
)
from serving.processes import tree_cpu_seconds
from serving.server import LISTENING

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
PIPELINE_MODEL = REPO_ROOT / ".work" / "pipeline-local" / "model"
# where the local pipeline run currently leaves its Train step's output (a model.tar.gz)
PIPELINE_TRAIN_OUTPUT = REPO_ROOT / ".work" / "pipeline-local" / "s3" / "Train" / "model"
QUICK_MODEL = REPO_ROOT / ".work" / "loadtest-model"
MODEL_FILE = "xgboost-model.json"
TARGET_RPS = 500.0
TARGET_P99_MS = 10.0
OFFER_HEADROOM = 1.01
DEFAULT_USER_RATE = 20.0  # requests/s per locust user when --users is not given
# Endpoint mode: a remote round trip takes tens of ms, so each user offers fewer requests/s.
ENDPOINT_USER_RATE = 5.0
DEFAULT_MIN_RPS_SHARE = 0.9
DEFAULT_MAX_P99_MS = 1000.0
DEFAULT_MAX_ERROR_RATE = 0.01
ENDPOINT_RPS = 20.0
ENDPOINT_DURATION = 60
LOCAL_DURATION = 20
SERVER_START_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0


class LoadTestError(RuntimeError):
    """The run itself failed (not: the target was missed)."""


@dataclass
class Results:
    requests: int
    failures: int
    rps: float
    p50: float
    p95: float
    p99: float
    max: float
    source: str

    def target_met(self, target_rps: float = TARGET_RPS, target_p99: float = TARGET_P99_MS) -> bool:
        return self.failures == 0 and self.rps >= target_rps and self.p99 < target_p99

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 1.0


@dataclass(frozen=True)
class Thresholds:
    """Pass thresholds of an endpoint run (from the command line)."""

    max_p99_ms: float
    max_error_rate: float
    min_rps: float

    def checks(self, results: Results) -> list[tuple[str, str, bool]]:
        """(threshold, measured, met) for each threshold."""
        return [
            (f"p99 <= {self.max_p99_ms:g} ms", f"{results.p99:.2f} ms",
             results.p99 <= self.max_p99_ms),
            (f"error rate <= {self.max_error_rate:g}", f"{results.error_rate:.4f}",
             results.error_rate <= self.max_error_rate),
            (f"req/s >= {self.min_rps:g}", f"{results.rps:.1f}", results.rps >= self.min_rps),
        ]  # fmt: skip

    def missed(self, results: Results) -> list[str]:
        return [
            f"{name} (measured {value})" for name, value, met in self.checks(results) if not met
        ]


# ----------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------


def resolve_model_dir(model_arg: Path | None, scratch: Path) -> tuple[Path, str]:
    """A model directory to serve and a description of where it came from."""
    if model_arg is not None:
        found = _model_in(model_arg, scratch)
        if found is None:
            raise LoadTestError(
                f"{model_arg}: expected a directory with {MODEL_FILE}, a model.tar.gz, "
                "or a directory holding model.tar.gz"
            )
        return found, str(model_arg)
    for candidate in (PIPELINE_MODEL, PIPELINE_TRAIN_OUTPUT):
        found = _model_in(candidate, scratch) if candidate.exists() else None
        if found is not None:
            return found, f"{_shown(candidate)} (local pipeline run)"
    if not (QUICK_MODEL / MODEL_FILE).is_file():
        from serving.quick_model import train_quick_model

        print(f"training a quick model into {_shown(QUICK_MODEL)} ...", flush=True)
        train_quick_model(QUICK_MODEL)
    return QUICK_MODEL, f"{_shown(QUICK_MODEL)} (quick model)"


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _model_in(path: Path, scratch: Path) -> Path | None:
    if path.is_dir() and (path / MODEL_FILE).is_file():
        return path
    archive = path / "model.tar.gz" if path.is_dir() else path
    if archive.is_file() and archive.name.endswith((".tar.gz", ".tgz")):
        target = scratch / "model"
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        if (target / MODEL_FILE).is_file():
            return target
    return None


# ----------------------------------------------------------------------------------------------
# Processes
# ----------------------------------------------------------------------------------------------


def _die_with_parent() -> None:  # runs in the child, between fork and exec
    # Linux: the child gets SIGTERM when this process dies, even by SIGKILL; elsewhere the
    # finally blocks still stop the children
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_process(cmd: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own process group (stopped as a group), output to ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process group, SIGKILL it after ``timeout``; idempotent."""
    if proc is None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; sweep its group for stragglers (e.g. server workers)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        break
    if proc.poll() is None:
        proc.wait(timeout)


def wait_for_url(log_path: Path, proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The server's URL, from the line it prints once its socket is bound (``--port 0``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            if LISTENING in line:
                return line.split(LISTENING, 1)[1].split()[0]
        if proc.poll() is not None:
            raise LoadTestError(f"server exited with status {proc.returncode} while starting")
        time.sleep(0.05)
    raise LoadTestError(f"server did not start listening within {timeout:.0f} s")


def wait_for_ping(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LoadTestError(f"server exited with status {proc.returncode} while starting")
        try:
            conn = http.client.HTTPConnection(host, port, timeout=1)
            conn.request("GET", "/ping")
            if conn.getresponse().status == 200:
                conn.close()
                return
            conn.close()
        except OSError:
            pass
        time.sleep(0.1)
    raise LoadTestError(f"server did not answer /ping with 200 within {timeout:.0f} s")


def check_and_warm_up(host: str, port: int, rounds: int = 20) -> None:
    """One request of every payload kind must succeed; then a few more warm the workers up."""
    features, rows = load_feature_rows()
    kinds = list(KIND_WEIGHTS)
    for i in range(rounds * len(kinds)):
        kind = kinds[i % len(kinds)]
        picked = rows[i % len(rows) : i % len(rows) + (BATCH_ROWS if "batch" in kind else 1)]
        payload = make_payload(kind, features, picked)
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            conn.request(
                "POST",
                "/invocations",
                body=payload.body,
                headers={"Content-Type": payload.content_type, "Accept": "application/json"},
            )
            response = conn.getresponse()
            body = response.read()
        except OSError as exc:
            raise LoadTestError(f"{kind} request to the server failed: {exc}") from exc
        finally:
            conn.close()
        problem = (
            f"HTTP {response.status}: {body[:300]!r}"
            if response.status != 200
            else check_response(body, payload.rows)
        )
        if problem:
            raise LoadTestError(f"{kind} payload rejected by the server: {problem}")


class CpuMeter:
    """CPU use (in cores) of the machine and of process trees over a window; Linux /proc only."""

    def __init__(self, *pids: int) -> None:
        self.pids = pids
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, list[float]] | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields) - fields[3] - fields[4]) / ticks  # minus idle and iowait
        return time.monotonic(), busy, [tree_cpu_seconds(p) for p in self.pids]

    def cores(self) -> tuple[float, list[float], float] | None:
        """(machine busy cores, [cores of each tree], seconds) since construction."""
        end = self._sample()
        if self.start is None or end is None:
            return None
        wall = max(end[0] - self.start[0], 1e-9)
        trees = [(b - a) / wall for a, b in zip(self.start[2], end[2], strict=True)]
        return (end[1] - self.start[1]) / wall, trees, wall


def wait_with_rusage(proc: subprocess.Popen[bytes], timeout: float) -> float | None:
    """Wait for ``proc``; its CPU seconds (with its reaped children), None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        time.sleep(0.05)
    return None


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def read_results(latency_file: Path, stats_csv: Path) -> Results:
    """Results from the raw latency file, else from locust's aggregated CSV row."""
    if latency_file.is_file():
        data = json.loads(latency_file.read_text())
        times = sorted(float(t) for t in data["response_times_ms"])
        window = max(float(data["stopped_at"]) - float(data["started_at"]), 1e-9)
        return Results(
            requests=int(data["requests"]),
            failures=int(data["failures"]),
            rps=len(times) / window,
            p50=percentile(times, 50),
            p95=percentile(times, 95),
            p99=percentile(times, 99),
            max=times[-1] if times else math.nan,
            source="raw response times",
        )
    if stats_csv.is_file():
        with stats_csv.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("Name") == "Aggregated":
                    return Results(
                        requests=int(row["Request Count"]),
                        failures=int(row["Failure Count"]),
                        rps=float(row["Requests/s"]),
                        p50=float(row["50%"]),
                        p95=float(row["95%"]),
                        p99=float(row["99%"]),
                        max=float(row["Max Response Time"]),
                        source="locust CSV (whole ms)",
                    )
    raise LoadTestError("locust wrote no results")


def render_table(results: Results, target_rps: float = TARGET_RPS) -> str:
    rows = [
        ("requests", f"{results.requests}"),
        ("failures", f"{results.failures}"),
        ("req/s achieved", f"{results.rps:.1f}"),
        ("p50 latency (ms)", f"{results.p50:.2f}"),
        ("p95 latency (ms)", f"{results.p95:.2f}"),
        ("p99 latency (ms)", f"{results.p99:.2f}"),
        ("max latency (ms)", f"{results.max:.2f}"),
    ]
    met = results.target_met(target_rps)
    verdict = "MET" if met else "NOT MET"
    rows.append((f"target p99 < {TARGET_P99_MS:g} ms at >= {target_rps:g} req/s", verdict))
    width = max(len(name) for name, _ in rows)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 9}"]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


def render_endpoint_table(results: Results, thresholds: Thresholds) -> str:
    rows = [
        ("requests", f"{results.requests}"),
        ("failures", f"{results.failures}"),
        ("error rate", f"{results.error_rate:.4f}"),
        ("req/s achieved", f"{results.rps:.1f}"),
        ("p50 latency (ms)", f"{results.p50:.2f}"),
        ("p95 latency (ms)", f"{results.p95:.2f}"),
        ("p99 latency (ms)", f"{results.p99:.2f}"),
        ("max latency (ms)", f"{results.max:.2f}"),
    ]
    rows += [(f"threshold {name}", "MET" if met else "MISSED") for name, _, met in
             thresholds.checks(results)]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 9}"]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Run
# ----------------------------------------------------------------------------------------------


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


#: Ctrl-C is installed explicitly too: a process started with SIGINT ignored (a background job of
#: a non-interactive shell, or a parent that ignores it) inherits that, and Python then leaves it
#: ignored, so the run went on to its end and exited 0 instead of stopping with 130.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def _raise_on_signal(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace) -> int:
    users = args.users or max(1, math.ceil(args.rps / DEFAULT_USER_RATE))
    user_rate = args.rps * OFFER_HEADROOM / users
    scratch = Path(tempfile.mkdtemp(prefix="loadtest-"))
    server = locust = None
    previous = {s: signal.signal(s, _raise_on_signal) for s in STOP_SIGNALS}
    try:
        model_dir, origin = resolve_model_dir(args.model_dir, scratch)
        server_log = scratch / "server.log"
        server_cmd = [
            sys.executable, "-m", "serving.server", "--model-dir", str(model_dir),
            "--host", "127.0.0.1", "--port", "0", "--log-level", "WARNING",
        ]  # fmt: skip
        if args.workers:
            server_cmd += ["--workers", str(args.workers)]
        server = start_process(server_cmd, server_log)
        try:
            url = wait_for_url(server_log, server, SERVER_START_TIMEOUT)
            host, port = url.removeprefix("http://").rsplit(":", 1)
            wait_for_ping(host, int(port), server, SERVER_START_TIMEOUT)
            check_and_warm_up(host, int(port))
        except LoadTestError as exc:
            raise LoadTestError(f"{exc}\n--- server log ---\n{_tail(server_log)}") from None

        csv_dir = Path(args.csv_dir) if args.csv_dir else scratch
        csv_dir.mkdir(parents=True, exist_ok=True)
        csv_prefix = csv_dir / "loadtest"
        latency_file = scratch / "latencies.json"
        locust_log = scratch / "locust.log"
        locust_cmd = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "LocalInvocationsUser",
            "--headless", "--host", url,
            "--users", str(users), "--spawn-rate", str(users * 4),
            "--run-time", f"{args.duration}s", "--stop-timeout", "2",
            "--reset-stats", "--only-summary", "--csv", str(csv_prefix),
            "--user-rate", f"{user_rate:.6f}", "--latency-file", str(latency_file),
            "--loglevel", "WARNING",
        ]  # fmt: skip
        workers = args.workers or os.cpu_count() or 1
        print(
            f"model:  {origin}\n"
            f"server: {url} (serving.server, {workers} workers)\n"
            f"load:   {args.duration} s at {args.rps:g} req/s: {users} users x "
            f"{user_rate:.2f} req/s = {users * user_rate:.1f} req/s offered",
            flush=True,
        )
        locust = start_process(locust_cmd, locust_log)
        meter = CpuMeter(server.pid)
        locust_cpu = wait_with_rusage(locust, args.duration + 60)
        if locust_cpu is None:
            raise LoadTestError(f"locust did not finish\n{_tail(locust_log)}")
        cpu = meter.cores()
        if server.poll() is not None:
            raise LoadTestError(f"server died during the run\n{_tail(server_log)}")
        try:
            results = read_results(latency_file, Path(f"{csv_prefix}_stats.csv"))
        except (LoadTestError, ValueError, KeyError) as exc:
            raise LoadTestError(
                f"no usable results ({exc}); locust exited with {locust.returncode}\n"
                f"{_tail(locust_log)}"
            ) from None
        if locust.returncode not in (0, 1):  # 1: some requests failed, reported below
            raise LoadTestError(f"locust exited with {locust.returncode}\n{_tail(locust_log)}")
        print()
        print(render_table(results, args.rps))
        print(f"(percentiles from {results.source}; ramp-up excluded)")
        if cpu is not None:
            busy, (server_cores,), wall = cpu
            locust_cores = locust_cpu / wall
            other = max(0.0, busy - server_cores - locust_cores)
            print(
                f"CPU during the run, in cores of {os.cpu_count()}: server {server_cores:.2f}, "
                f"locust {locust_cores:.2f}, other processes {other:.2f}"
                + ("  (a busy machine inflates latency)" if other > 0.25 else "")
            )
        if results.requests == 0:
            print("error: no requests completed", file=sys.stderr)
            return 1
        if results.failures:
            print(f"error: {results.failures} requests failed; locust's output:", file=sys.stderr)
            print(_tail(locust_log), file=sys.stderr)
            return 1
        return 0
    except LoadTestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the server and locust", file=sys.stderr)
        return 130
    finally:
        stop_process(locust)
        stop_process(server)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(scratch, ignore_errors=True)


def check_endpoint(signer: Any, timeout: float = 30.0) -> None:
    """One signed request of every payload kind must be answered with valid predictions."""
    from urllib.parse import urlsplit

    features, rows = load_feature_rows()
    parts = urlsplit(signer.base_url)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    for kind in KIND_WEIGHTS:
        payload = make_payload(kind, features, rows[: BATCH_ROWS if "batch" in kind else 1])
        headers = signer.headers(payload.body, payload.content_type)
        conn = connection_class(parts.hostname, parts.port, timeout=timeout)
        try:
            conn.request("POST", signer.path, body=payload.body, headers=headers)
            response = conn.getresponse()
            body = response.read()
        except OSError as exc:
            raise LoadTestError(f"{kind} request to {signer.url} failed: {exc}") from exc
        finally:
            conn.close()
        if response.status != 200:
            raise LoadTestError(
                f"{signer.url} answered a signed {kind} request with HTTP {response.status}: "
                f"{body[:300].decode(errors='replace')}"
            )
        problem = check_response(body, payload.rows)
        if problem:
            raise LoadTestError(f"{kind} payload: {problem}")


def run_endpoint(args: argparse.Namespace) -> int:
    """Endpoint mode: signed requests to a deployed endpoint, results against thresholds."""
    from serving.sigv4 import InvocationSigner, SigningError, default_credentials

    try:
        signer = InvocationSigner(
            args.endpoint_name, args.region, default_credentials(), args.endpoint_url
        )
    except SigningError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    thresholds = Thresholds(
        max_p99_ms=args.max_p99_ms,
        max_error_rate=args.max_error_rate,
        min_rps=args.min_rps if args.min_rps is not None else args.rps * DEFAULT_MIN_RPS_SHARE,
    )
    users = args.users or max(1, math.ceil(args.rps / ENDPOINT_USER_RATE))
    user_rate = args.rps * OFFER_HEADROOM / users
    scratch = Path(tempfile.mkdtemp(prefix="loadtest-"))
    locust = None
    previous = {s: signal.signal(s, _raise_on_signal) for s in STOP_SIGNALS}
    try:
        check_endpoint(signer)
        csv_dir = Path(args.csv_dir) if args.csv_dir else scratch
        csv_dir.mkdir(parents=True, exist_ok=True)
        csv_prefix = csv_dir / "loadtest"
        latency_file = scratch / "latencies.json"
        locust_log = scratch / "locust.log"
        locust_cmd = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "SageMakerEndpointUser",
            "--headless", "--host", signer.base_url,
            "--endpoint-name", args.endpoint_name, "--aws-region", args.region,
            "--users", str(users), "--spawn-rate", str(users * 4),
            "--run-time", f"{args.duration}s", "--stop-timeout", "5",
            "--reset-stats", "--only-summary", "--csv", str(csv_prefix),
            "--user-rate", f"{user_rate:.6f}", "--latency-file", str(latency_file),
            "--loglevel", "WARNING",
        ]  # fmt: skip
        print(
            f"endpoint: {args.endpoint_name} ({signer.url}, SigV4 {args.region}/sagemaker)\n"
            f"load:     {args.duration} s at {args.rps:g} req/s: {users} users x "
            f"{user_rate:.2f} req/s = {users * user_rate:.1f} req/s offered",
            flush=True,
        )
        locust = start_process(locust_cmd, locust_log)
        if wait_with_rusage(locust, args.duration + 120) is None:
            raise LoadTestError(f"locust did not finish\n{_tail(locust_log)}")
        try:
            results = read_results(latency_file, Path(f"{csv_prefix}_stats.csv"))
        except (LoadTestError, ValueError, KeyError) as exc:
            raise LoadTestError(
                f"no usable results ({exc}); locust exited with {locust.returncode}\n"
                f"{_tail(locust_log)}"
            ) from None
        if locust.returncode not in (0, 1):  # 1: some requests failed, judged below
            raise LoadTestError(f"locust exited with {locust.returncode}\n{_tail(locust_log)}")
        print()
        print(render_endpoint_table(results, thresholds))
        print(f"(percentiles from {results.source}; ramp-up excluded)")
        missed = thresholds.missed(results) if results.requests else ["no requests completed"]
        if missed:
            print("error: threshold missed: " + "; ".join(missed), file=sys.stderr)
            if results.failures:
                print(_tail(locust_log), file=sys.stderr)
            return 1
        return 0
    except LoadTestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping locust", file=sys.stderr)
        return 130
    finally:
        stop_process(locust)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(scratch, ignore_errors=True)


def _share(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text}")
    return value


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.loadtest",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument("--model-dir", type=Path, default=None, help="model dir or model.tar.gz")
    parser.add_argument(
        "--rps",
        type=_positive(float),
        default=None,
        help=f"target req/s (default {TARGET_RPS:g}; endpoint mode {ENDPOINT_RPS:g})",
    )
    parser.add_argument(
        "--duration",
        type=_positive(int),
        default=None,
        help=f"seconds of load (default {LOCAL_DURATION}; endpoint mode {ENDPOINT_DURATION})",
    )
    parser.add_argument(
        "--users",
        type=_positive(int),
        default=None,
        help=f"locust users (default: rps / {DEFAULT_USER_RATE:g}, rounded up)",
    )
    parser.add_argument(
        "--workers", type=_positive(int), default=None, help="server workers (default: cores)"
    )
    parser.add_argument("--csv-dir", default=None, help="keep locust's CSV files in this dir")
    endpoint = parser.add_argument_group("endpoint mode (a deployed SageMaker endpoint)")
    endpoint.add_argument("--endpoint-name", default=None, help="load this endpoint, SigV4-signed")
    endpoint.add_argument("--region", default=None, help="the endpoint's region")
    endpoint.add_argument(
        "--endpoint-url",
        default=None,
        help="base URL (default https://runtime.sagemaker.REGION.amazonaws.com)",
    )
    endpoint.add_argument(
        "--max-p99-ms",
        type=_positive(float),
        default=None,
        help=f"p99 threshold in ms (default {DEFAULT_MAX_P99_MS:g})",
    )
    endpoint.add_argument(
        "--max-error-rate",
        type=_share,
        default=None,
        help=f"threshold on the share of failed requests (default {DEFAULT_MAX_ERROR_RATE:g})",
    )
    endpoint.add_argument(
        "--min-rps",
        type=_positive(float),
        default=None,
        help=f"throughput threshold (default {DEFAULT_MIN_RPS_SHARE * 100:g}%% of --rps)",
    )
    args = parser.parse_args(argv)
    endpoint_only = {
        "--region": args.region,
        "--endpoint-url": args.endpoint_url,
        "--max-p99-ms": args.max_p99_ms,
        "--max-error-rate": args.max_error_rate,
        "--min-rps": args.min_rps,
    }
    if args.endpoint_name is None:
        given = [flag for flag, value in endpoint_only.items() if value is not None]
        if given:
            parser.error(f"{', '.join(given)}: only with --endpoint-name")
        args.rps = TARGET_RPS if args.rps is None else args.rps
        args.duration = LOCAL_DURATION if args.duration is None else args.duration
        return run(args)
    if args.model_dir is not None or args.workers is not None:
        parser.error("--model-dir and --workers are for the local server, not --endpoint-name")
    if not args.region:
        parser.error("--endpoint-name needs --region")
    args.rps = ENDPOINT_RPS if args.rps is None else args.rps
    args.duration = ENDPOINT_DURATION if args.duration is None else args.duration
    if args.max_p99_ms is None:
        args.max_p99_ms = DEFAULT_MAX_P99_MS
    if args.max_error_rate is None:
        args.max_error_rate = DEFAULT_MAX_ERROR_RATE
    return run_endpoint(args)


if __name__ == "__main__":
    raise SystemExit(main())
