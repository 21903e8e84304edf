"""The local stdlib server: what is particular to it (in-process handler crash, the pre-forking
CLI). The contract itself over HTTP, for this server and the image's: test_contract.py."""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from serving import server as server_module
from serving.processes import alive, children, stop_process_group, wait_until
from serving.server import BackgroundServer
from tests.serving.test_contract import request

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[BackgroundServer]:
    with BackgroundServer(model_dir, port=0) as running:
        yield running


@pytest.fixture
def conn(server: BackgroundServer) -> Iterator[http.client.HTTPConnection]:
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    yield connection
    connection.close()


def test_handler_crash_is_a_500_with_a_json_error(server, conn, monkeypatch):
    def broken(_data, _model):
        raise RuntimeError("boom")

    monkeypatch.setattr(server.app.handler, "predict", broken)
    response, raw = request(conn, "POST", "/invocations", "1", {"Content-Type": "text/csv"})
    assert response.status == 500
    assert json.loads(raw)["status"] == 500


DEADLINE = 120.0  # seconds any wait below may take on a loaded machine before it fails


@contextlib.contextmanager
def cli_server(model_dir: Path, workers: int) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``python -m serving.server --port 0`` in a process group of its own, yielding the process
    and its URL once it listens. On exit, whatever happened inside (a failing assertion too),
    the whole group is stopped: no pre-forked worker outlives the test."""
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "serving.server", "--model-dir", str(model_dir)),
            *("--port", "0", "--workers", str(workers)),
        ],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []

    def read() -> None:
        for line in process.stderr:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        listening = [""]

        def started() -> bool:
            listening[0] = next((x for x in lines if server_module.LISTENING in x), "")
            return bool(listening[0]) or process.poll() is not None

        wait_until(started, DEADLINE, "the listening line")
        assert listening[0], "".join(lines)
        yield process, listening[0].split(server_module.LISTENING, 1)[1].split()[0]
    finally:
        stop_process_group(process)
        reader.join(DEADLINE)


def ping(url: str) -> int | None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=DEADLINE)
    try:
        return request(conn, "GET", "/ping")[0].status
    except OSError:
        return None
    finally:
        conn.close()


def test_cli_serves_and_stops_cleanly_on_sigterm(model_dir):
    """Pre-forked workers serve; SIGTERM stops them all and the server exits 0."""
    with cli_server(model_dir, workers=2) as (process, url):
        wait_until(lambda: ping(url) == 200, DEADLINE, "/ping answering 200")
        workers = children(process.pid)
        assert len(workers) == 2  # forked before the listening line is printed
        process.send_signal(signal.SIGTERM)
        assert process.wait(DEADLINE) == 0
        # the supervisor reaps its workers before it exits
        assert [pid for pid in workers if alive(pid)] == []


def test_a_failing_test_leaves_no_worker_behind(model_dir):
    with pytest.raises(RuntimeError, match="simulated"), cli_server(model_dir, 2) as (process, _):
        workers = children(process.pid)
        assert len(workers) == 2
        raise RuntimeError("simulated test failure")
    assert [pid for pid in (process.pid, *workers) if alive(pid)] == []


def test_workers_exit_when_the_supervisor_dies(model_dir):
    """Even while they still load the model: orphans must not keep serving the socket."""
    with cli_server(model_dir, workers=2) as (process, _):
        workers = children(process.pid)
        assert len(workers) == 2
        process.kill()  # SIGKILL: no chance to stop its workers
        process.wait()
        wait_until(
            lambda: not [pid for pid in workers if alive(pid)], DEADLINE, "orphaned workers exit"
        )
