"""The local server: SageMaker's container contract over real HTTP on an ephemeral port."""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import socket
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


def request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response, response.read()


def csv_line(row: list[float]) -> str:
    return ",".join(repr(v) for v in row)


def test_ping(conn):
    response, body = request(conn, "GET", "/ping")
    assert response.status == 200
    assert body == b""


def test_invocations_csv_and_json_on_one_keep_alive_connection(conn, rows, features):
    response, body = request(
        conn, "POST", "/invocations", csv_line(rows[0]), {"Content-Type": "text/csv"}
    )
    assert response.status == 200
    assert response.getheader("Content-Type") == "application/json"
    first = json.loads(body)["predictions"]
    assert len(first) == 1 and set(first[0]) == {"score", "label"}

    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    payload = {"instances": [dict(zip(features, r, strict=True)) for r in rows[:2]]}
    response, body = request(conn, "POST", "/invocations", json.dumps(payload), headers)
    assert response.status == 200
    predictions = json.loads(body)["predictions"]
    assert len(predictions) == 2
    assert predictions[0]["score"] == pytest.approx(first[0]["score"])


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        ("1,2", {"Content-Type": "text/plain"}, 415, "unsupported content type 'text/plain'"),
        (
            "[" + ",".join(["1"] * 30) + "]",
            {"Content-Type": "application/json", "Accept": "text/csv"},
            406,
            "unsupported accept 'text/csv'",
        ),
        ("", {"Content-Type": "text/csv"}, 400, "empty request body"),
        ("1,2", {"Content-Type": "text/csv"}, 400, "row 1 has 2 values, expected 30"),
        ("[1, 2", {"Content-Type": "application/json"}, 400, "malformed JSON"),
    ],
)
def test_bad_payloads_get_their_status_and_a_json_error(conn, body, headers, status, message):
    response, raw = request(conn, "POST", "/invocations", body, headers)
    assert response.status == status
    assert response.getheader("Content-Type") == "application/json"
    error = json.loads(raw)
    assert error["status"] == status
    assert error["error"] == response.reason
    assert message in error["message"]


def test_non_numeric_value_names_row_and_column(conn, rows, features):
    cells = [repr(v) for v in rows[0]]
    cells[3] = "oops"
    response, raw = request(
        conn, "POST", "/invocations", ",".join(cells), {"Content-Type": "text/csv"}
    )
    assert response.status == 400
    assert json.loads(raw)["message"] == f"row 1, column 4 ({features[3]}): 'oops' is not a number"


def test_handler_crash_is_a_500_with_a_json_error(server, conn, monkeypatch):
    def broken(_data, _model):
        raise RuntimeError("boom")

    monkeypatch.setattr(server.app.handler, "predict", broken)
    response, raw = request(conn, "POST", "/invocations", "1", {"Content-Type": "text/csv"})
    assert response.status == 500
    assert json.loads(raw)["status"] == 500


def test_routes_and_methods(conn):
    response, raw = request(conn, "GET", "/invocations")
    assert response.status == 405
    response, raw = request(conn, "GET", "/nope")
    assert response.status == 404
    assert json.loads(raw)["message"] == "no route for GET /nope"
    response, raw = request(conn, "GET", "/execution-parameters")
    assert response.status == 200
    assert json.loads(raw)["MaxPayloadInMB"] == 6


def raw_exchange(server: BackgroundServer, data: bytes, until: bytes = b"}") -> bytes:
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while not received.endswith(until):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def test_expect_100_continue(server, rows):
    body = csv_line(rows[0]).encode()
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
            b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        response = sock.recv(65536)
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'"predictions"' in response


def test_pipelined_requests_are_answered_in_order(server):
    ping = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"
    missing = b"GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    received = raw_exchange(server, ping + missing)
    assert received.startswith(b"HTTP/1.1 200 OK")
    assert received.index(b"200 OK") < received.index(b"404 Not Found")


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"NONSENSE\r\n\r\n", b"400"),
        (b"POST /invocations HTTP/1.1\r\nContent-Length: x\r\n\r\n", b"400"),
        (b"POST /invocations HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", b"413"),
        (b"POST /invocations HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"411"),
    ],
)
def test_malformed_http_is_rejected_and_closed(server, data, status):
    received = raw_exchange(server, data, until=b"\x00")  # read until the server closes
    assert received.split(b" ")[1] == status
    assert b"Connection: close" in received


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
