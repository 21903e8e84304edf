"""The serving image's entry point (serving/serve.py) and ASGI app (serving/asgi.py).

The HTTP contract itself is in test_contract.py (run against this entry point too); here: the
settings from the environment, the commands, the worker sockets, the health check, shutdown,
and the ASGI app's own paths driven in-process.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing.reduction
import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from serving import asgi, serve
from serving.bench import listening_sockets
from serving.processes import alive, children, stop_process_group, wait_until
from serving.server import MAX_PAYLOAD_BYTES
from tests.serving.test_contract import DEADLINE, start_image_server

# -- settings ----------------------------------------------------------------------------------


def test_settings_default_as_sagemaker_containers_does() -> None:
    assert serve.workers_from({}) == serve.available_cpus()
    assert serve.port_from({}) == 8080
    assert serve.log_level_from({}) == "warning"
    env = {
        "SAGEMAKER_MODEL_SERVER_WORKERS": " 3 ",
        "SAGEMAKER_BIND_TO_PORT": "9000",
        "SAGEMAKER_SERVING_LOG_LEVEL": "INFO",
    }
    assert (serve.workers_from(env), serve.port_from(env), serve.log_level_from(env)) == (
        3,
        9000,
        "info",
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SAGEMAKER_MODEL_SERVER_WORKERS": "two"}, "SAGEMAKER_MODEL_SERVER_WORKERS='two': "),
        ({"SAGEMAKER_MODEL_SERVER_WORKERS": "0"}, "expected an integer from 1 to 256"),
        ({"SAGEMAKER_BIND_TO_PORT": "70000"}, "SAGEMAKER_BIND_TO_PORT='70000': expected an"),
        ({"SAGEMAKER_SERVING_LOG_LEVEL": "loud"}, "expected one of critical, error, warning"),
    ],
)
def test_a_bad_setting_exits_2_in_one_line(
    env: dict[str, str], message: str, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve.main(["serve", "--model-dir", str(model_dir)], env=env) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1


def test_train_or_any_other_command_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert serve.main(["train"], env={}) == 2
    assert "unknown command 'train': this image only serves" in capsys.readouterr().err


def test_a_missing_model_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert serve.main(["serve"], env={"SM_MODEL_DIR": str(tmp_path)}) == 2
    assert f"{tmp_path} holds no xgboost-model.json" in capsys.readouterr().err


def test_uvicorn_configuration() -> None:
    import uvicorn

    config = serve.uvicorn_config(2, "warning")
    assert isinstance(config, uvicorn.Config)
    assert (config.app, config.factory, config.workers) == ("serving.asgi:create_app", True, 2)
    assert (config.http, config.loop, config.lifespan) == ("httptools", "uvloop", "off")
    assert config.access_log is False and config.server_header is False
    assert config.timeout_keep_alive == 75


# -- worker sockets ----------------------------------------------------------------------------


def test_the_port_reservation_reaches_a_worker_as_a_socket_of_its_own() -> None:
    reservation = serve.reserve_port("127.0.0.1", 0)
    port = reservation.getsockname()[1]
    try:
        assert listening_sockets(port) == 0  # the reservation never listens
        # what uvicorn's supervisor does to hand it to a spawned worker
        data = multiprocessing.reduction.ForkingPickler.dumps(reservation)
        worker_socket = multiprocessing.reduction.ForkingPickler.loads(data)
        try:
            assert type(worker_socket) is socket.socket
            assert worker_socket.fileno() != reservation.fileno()
            assert worker_socket.getsockname() == ("127.0.0.1", port)
            assert worker_socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            assert listening_sockets(port) == 0  # listens once its worker serves
            worker_socket.listen(8)
            assert listening_sockets(port) == 1
        finally:
            worker_socket.close()
    finally:
        reservation.close()


def workers_of(supervisor: int) -> list[int]:
    """The worker processes (not multiprocessing's resource tracker, also a child)."""
    return [
        pid
        for pid in children(supervisor)
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def test_two_workers_listen_each_on_its_own_socket_a_dead_one_is_replaced_sigterm_stops_all(
    model_dir: Path,
) -> None:
    process, url = start_image_server(model_dir, workers=2)
    try:
        port = int(url.rsplit(":", 1)[1])
        assert listening_sockets(port) == 2
        first, second = workers_of(process.pid)
        assert serve.healthcheck(port) == 0
        os.kill(first, signal.SIGKILL)  # uvicorn's supervisor spawns a replacement ...
        wait_until(
            lambda: len(workers_of(process.pid)) == 2 and first not in workers_of(process.pid),
            DEADLINE,
            "a replacement worker",
        )
        # ... which gets a socket of its own from the reservation and listens once loaded
        wait_until(lambda: listening_sockets(port) == 2, DEADLINE, "the replacement listening")
        spawned = children(process.pid)
        assert second in workers_of(process.pid)
        process.send_signal(signal.SIGTERM)
        assert process.wait(DEADLINE) == 0
        wait_until(lambda: not [p for p in spawned if alive(p)], DEADLINE, "workers exit")
        assert serve.healthcheck(port) == 1  # nothing listens any more
    finally:
        stop_process_group(process)


def test_healthcheck_fails_in_one_line_when_nothing_answers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        assert serve.main(["healthcheck"], env={"SAGEMAKER_BIND_TO_PORT": str(port)}) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"unhealthy: GET /ping on port {port}: ") and err.count("\n") == 1


# -- the ASGI app in-process ---------------------------------------------------------------------


def call(
    app: asgi.ContractApp,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    parts: list[bytes],
) -> tuple[int, dict[bytes, bytes], bytes, int]:
    """Run one request through the app; (status, headers, body, body messages read)."""
    received = list(parts)
    sent: list[dict[str, Any]] = []
    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        body = received.pop(0) if received else b""
        return {"type": "http.request", "body": body, "more_body": bool(received)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": headers}
    asyncio.run(app(scope, receive, send))
    start, body = sent
    return start["status"], dict(start["headers"]), body["body"], reads


@pytest.fixture(scope="module")
def app(model_dir: Path) -> asgi.ContractApp:
    return asgi.ContractApp(model_dir)


def test_a_body_in_several_messages_is_joined(app: asgi.ContractApp, rows) -> None:
    line = ",".join(repr(v) for v in rows[0]).encode()
    headers = [(b"content-type", b"text/csv"), (b"content-length", str(len(line)).encode())]
    status, response_headers, body, reads = call(
        app, "POST", "/invocations", headers, [line[:10], line[10:50], line[50:]]
    )
    assert (status, reads) == (200, 3)
    assert response_headers[b"content-type"] == b"application/json"
    assert response_headers[b"content-length"] == str(len(body)).encode()
    assert len(json.loads(body)["predictions"]) == 1


def test_oversized_and_chunked_bodies_are_refused_unread(app: asgi.ContractApp) -> None:
    too_long = [(b"content-length", str(MAX_PAYLOAD_BYTES + 1).encode())]
    status, headers, body, reads = call(app, "POST", "/invocations", too_long, [b"x"])
    assert (status, reads, headers[b"connection"]) == (413, 0, b"close")
    assert json.loads(body)["message"] == (
        f"payload of {MAX_PAYLOAD_BYTES + 1} bytes exceeds {MAX_PAYLOAD_BYTES}"
    )
    chunked = [(b"transfer-encoding", b"chunked")]
    status, headers, body, reads = call(app, "POST", "/invocations", chunked, [b"x"])
    assert (status, reads, headers[b"connection"]) == (411, 0, b"close")


def test_a_handler_crash_is_a_500_with_a_json_error(
    app: asgi.ContractApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_data: Any, _model: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(app.serving.handler, "predict", broken)
    headers = [(b"content-type", b"text/csv"), (b"content-length", b"1")]
    status, _, body, _ = call(app, "POST", "/invocations", headers, [b"1"])
    assert status == 500
    assert json.loads(body) == {
        "error": "Internal Server Error",
        "status": 500,
        "message": "internal error while serving the request",
    }


def test_head_gets_no_body(app: asgi.ContractApp) -> None:
    status, _, body, _ = call(app, "HEAD", "/ping", [], [])
    assert (status, body) == (200, b"")


def test_lifespan_events_are_acknowledged(app: asgi.ContractApp) -> None:
    events = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return events.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_create_app_loads_the_model_of_sm_model_dir(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    monkeypatch.setenv("SM_MODEL_DIR", str(model_dir))
    try:
        created = asgi.create_app()
        assert created.serving.model_dir == str(model_dir)
        assert gc.get_freeze_count() > 0  # startup objects moved out of the collector's way
    finally:
        gc.unfreeze()
