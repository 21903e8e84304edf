"""SageMaker's inference container contract over real HTTP: the same tests for every server.

Locally each test runs against both servers of the repository:

* ``image``: ``python -m serving.serve serve`` with 2 workers, the serving image's entry point,
  uvicorn configuration and code (run from the repository);
* ``local``: ``serving.server``'s stdlib server (the local test and load-test server).

With ``SERVING_CONTRACT_URL`` set (the GitHub workflow ``serving-image.yml``: the built image
under ``docker run -p 8080:8080 ... serve``) they run against that URL only, and
``SERVING_CONTRACT_MODEL_DIR`` must name the model directory the container serves (mounted at
``/opt/ml/model``): the scores it answers are compared with the handler's, computed here.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from pipelines.model_build.model_code import inference
from serving.bench import listening_sockets
from serving.processes import stop_process_group, wait_until
from serving.server import LISTENING, MAX_PAYLOAD_BYTES, BackgroundServer

REPO_ROOT = Path(__file__).resolve().parents[2]
URL_ENV = "SERVING_CONTRACT_URL"
MODEL_DIR_ENV = "SERVING_CONTRACT_MODEL_DIR"
DEADLINE = 120.0  # seconds a wait may take on a loaded machine before it fails
STACKS = ["container"] if os.environ.get(URL_ENV) else ["image", "local"]


class Served:
    """A running server: its base URL and the model directory it serves."""

    def __init__(self, url: str, model_dir: Path) -> None:
        parts = urlsplit(url)
        assert parts.scheme == "http" and parts.hostname and parts.port, url
        self.url = url
        self.host = parts.hostname
        self.port = parts.port
        self.model_dir = model_dir


def start_image_server(model_dir: Path, workers: int) -> tuple[subprocess.Popen[str], str]:
    """``python -m serving.serve serve --port 0`` in a process group of its own; returns the
    process and its URL once every worker listens."""
    env = {**os.environ, "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers)}
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "serving.serve", "serve", "--host", "127.0.0.1"),
            *("--port", "0", "--model-dir", str(model_dir)),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        wait_until(
            lambda: any(LISTENING in x for x in lines) or process.poll() is not None,
            DEADLINE,
            "the listening line",
        )
        listening = next((x for x in lines if LISTENING in x), "")
        assert listening, "".join(lines)
        url = listening.split(LISTENING, 1)[1].split()[0]
        port = int(url.rsplit(":", 1)[1])
        wait_until(
            lambda: listening_sockets(port) >= workers or process.poll() is not None,
            DEADLINE,
            f"{workers} listening workers",
        )
        assert process.poll() is None, "".join(lines)
    except BaseException:
        stop_process_group(process)
        raise
    return process, url


@pytest.fixture(scope="module", params=STACKS)
def served(request: pytest.FixtureRequest, model_dir: Path) -> Iterator[Served]:
    if request.param == "container":
        given = os.environ.get(MODEL_DIR_ENV, "")
        if not given or not (Path(given) / "xgboost-model.json").is_file():
            pytest.fail(f"{URL_ENV} needs {MODEL_DIR_ENV}: the model directory it serves")
        yield Served(os.environ[URL_ENV], Path(given))
    elif request.param == "image":
        process, url = start_image_server(model_dir, workers=2)
        try:
            yield Served(url, model_dir)
        finally:
            stop_process_group(process)
    else:
        with BackgroundServer(model_dir, port=0) as running:
            yield Served(running.url, model_dir)


@pytest.fixture
def conn(served: Served) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection(served.host, served.port, timeout=30)
    yield connection
    connection.close()


def request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response, response.read()


def csv_line(row: list[float]) -> str:
    return ",".join(repr(v) for v in row)


def raw_exchange(served: Served, data: bytes, until: bytes = b"}") -> bytes:
    with socket.create_connection((served.host, served.port), timeout=30) as sock:
        sock.sendall(data)
        received = b""
        while not received.endswith(until):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def header_lines(raw: bytes) -> list[bytes]:
    return [line.lower() for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]]


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


def test_scores_are_the_handlers_exactly(served, conn, rows):
    """The server answers what transform_fn answers for the model it serves, byte for byte."""
    model = inference.model_fn(str(served.model_dir))
    body = "".join(csv_line(r) + "\n" for r in rows)
    expected, content_type = inference.transform_fn(model, body, "text/csv", "application/json")
    response, raw = request(conn, "POST", "/invocations", body, {"Content-Type": "text/csv"})
    assert (response.status, response.getheader("Content-Type")) == (200, content_type)
    assert raw.decode() == expected
    reference = model.predict(np.array(rows))  # the DMatrix path: the same scores
    assert [p["score"] for p in json.loads(raw)["predictions"]] == reference.tolist()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": "text/csv"}, 200),  # no Accept: JSON
        ({"Content-Type": "text/csv", "Accept": "*/*"}, 200),
        ({"Content-Type": "text/csv", "Accept": "application/json;q=0.9"}, 200),
        ({"ContentType": "text/csv", "Content-Type": "text/plain"}, 200),  # ContentType first
        ({"Content-Type": "text/csv", "Accept": "text/html"}, 406),
    ],
)
def test_content_type_and_accept_handling(conn, rows, headers, status):
    response, raw = request(conn, "POST", "/invocations", csv_line(rows[0]), headers)
    assert response.status == status, raw
    assert response.getheader("Content-Type") == "application/json"


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


def test_routes_and_methods(conn):
    response, raw = request(conn, "GET", "/invocations")
    assert response.status == 405
    assert json.loads(raw)["status"] == 405
    response, raw = request(conn, "GET", "/nope")
    assert response.status == 404
    assert json.loads(raw)["message"] == "no route for GET /nope"
    response, raw = request(conn, "POST", "/ping")
    assert response.status == 405
    response, raw = request(conn, "HEAD", "/ping")
    assert (response.status, raw) == (200, b"")
    response, raw = request(conn, "GET", "/execution-parameters")
    assert response.status == 200
    assert json.loads(raw)["MaxPayloadInMB"] == 6


def test_expect_100_continue(served, rows):
    body = csv_line(rows[0]).encode()
    with socket.create_connection((served.host, served.port), timeout=30) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
            b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        response = b""
        while not response.endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'"predictions"' in response


def test_pipelined_requests_are_answered_in_order(served):
    ping = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"
    missing = b"GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    received = raw_exchange(served, ping + missing)
    assert received.startswith(b"HTTP/1.1 200 OK")
    assert received.index(b"200 OK") < received.index(b"404 Not Found")


def test_a_body_over_6_mb_is_refused_before_it_is_sent(served):
    """413 on the Content-Length alone, and the connection is closed (nothing more is read)."""
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
        b"Content-Length: %d\r\n\r\n" % (MAX_PAYLOAD_BYTES + 1)
    )
    received = raw_exchange(served, head, until=b"\x00")  # read until the server closes
    assert received.split(b" ")[1] == b"413"
    assert b"connection: close" in header_lines(received)
    assert json.loads(received.split(b"\r\n\r\n", 1)[1])["status"] == 413


def test_a_body_of_6_mb_is_read(served, rows):
    """At the cap the body is accepted and parsed: here too many rows (a 400, not a 413)."""
    line = (csv_line(rows[0]) + "\n").encode()
    body = line * (MAX_PAYLOAD_BYTES // len(line))
    conn = http.client.HTTPConnection(served.host, served.port, timeout=60)
    try:
        response, raw = request(conn, "POST", "/invocations", body, {"Content-Type": "text/csv"})
    finally:
        conn.close()
    assert len(body) <= MAX_PAYLOAD_BYTES
    assert response.status == 400
    assert "too many rows" in json.loads(raw)["message"]


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"NONSENSE\r\n\r\n", b"400"),
        (b"POST /invocations HTTP/1.1\r\nContent-Length: x\r\n\r\n", b"400"),
        (b"POST /invocations HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"411"),
    ],
)
def test_malformed_http_is_rejected_and_closed(served, data, status):
    received = raw_exchange(served, data, until=b"\x00")  # read until the server closes
    assert received.split(b" ")[1] == status
    assert b"connection: close" in header_lines(received)
