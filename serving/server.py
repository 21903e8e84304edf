"""Local model server following SageMaker's inference container contract.

* ``GET /ping``: 200 once the model is loaded (workers load it before they accept connections).
* ``POST /invocations``: ``transform_fn`` of ``pipelines/model_build/model_code/inference.py``,
  the hook the SageMaker XGBoost container calls, with the request headers read as the image's
  ``sagemaker-containers`` worker reads them (``ContentType`` before ``Content-Type``, JSON when
  both are absent; an absent or ``*/*`` Accept becomes ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``).
  A bad request gets the handler's 4xx and JSON body
  ``{"error": <reason phrase>, "status": <code>, "message": <message>}``; any exception from
  the handler gets a 500, as in the image. Bodies are capped at 6 MB, as on SageMaker endpoints.
* ``GET /execution-parameters``: batch-transform hints, as SageMaker containers offer them.

Stack: standard library only. A small HTTP/1.1 server on asyncio (keep-alive, pipelining,
``Expect: 100-continue``, ``Content-Length`` bodies; no chunked uploads), pre-forked: the parent
binds the socket, forks ``--workers`` processes (default: one per core, like the container's
model server) that each load the model and serve the shared socket on their own event loop, and
supervises them. A request costs ~0.2 ms of model time, so it runs inline on the event loop.
Measured at 500 req/s next to locust on the 2-core machine (server CPU per request): this server
0.35-0.5 ms, uvicorn + httptools + uvloop about the same, gunicorn sync or gthread workers
0.6-0.9 ms; the percentiles were set by whatever else ran on the machine more than by the stack,
so the one without dependencies won here. It is a local test and benchmark server (loopback by
default), not the production path: SageMaker serves the same handler with its own model server,
or, in the project's serving image, ``ServingApp`` under uvicorn (``serving/serve.py``).

    python -m serving.server --model-dir .work/pipeline-local/model [--port 8080] [--host 127.0.0.1]

``--port 0`` picks a free port; the ``listening on http://HOST:PORT`` line on stderr tells which.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from types import ModuleType
from typing import Any

from pipelines.model_build.model_code import inference, model_format

DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # SageMaker real-time endpoints cap requests at 6 MB
MAX_HEADER_BYTES = 64 * 1024
KEEPALIVE_TIMEOUT = 75.0  # seconds an idle connection is kept open
DEFAULT_ACCEPT = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json")
LISTENING = "listening on"
JSON = "application/json"

logger = logging.getLogger("serving.server")


def _reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Error"


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"


def error_response(status: int, message: str) -> Response:
    body = {"error": _reason(status), "status": status, "message": message}
    return Response(status, json.dumps(body).encode())


class ServingApp:
    """The container contract for one model, independent of the HTTP layer."""

    def __init__(self, model_dir: str | Path, handler: ModuleType = inference) -> None:
        self.handler = handler
        self.model_dir = str(model_dir)
        self.model = handler.model_fn(self.model_dir)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        """Answer one request; ``headers`` has lower-case names."""
        path = path.split("?", 1)[0]
        if path == "/invocations":
            if method != "POST":
                return error_response(405, "use POST /invocations")
            content_type = headers.get("contenttype") or headers.get("content-type") or JSON
            return self.invoke(body, content_type, headers.get("accept"))
        if path == "/ping":
            if method not in ("GET", "HEAD"):
                return error_response(405, "use GET /ping")
            return Response(200, b"", "text/plain")
        if path == "/execution-parameters" and method == "GET":
            params = {
                "MaxConcurrentTransforms": os.cpu_count() or 1,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": MAX_PAYLOAD_BYTES // (1024 * 1024),
            }
            return Response(200, json.dumps(params).encode())
        return error_response(404, f"no route for {method} {path}")

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> Response:
        """``transform_fn``, with the body decoded as the image's worker decodes it."""
        if not accept or accept.strip() == "*/*":
            accept = DEFAULT_ACCEPT
        content: bytes | str = body
        if content_type in (JSON, "text/csv"):  # sagemaker-containers' UTF8_TYPES
            content = body.decode("utf-8", "replace")
        try:
            result = self.handler.transform_fn(self.model, content, content_type, accept)
        except Exception:
            logger.exception("invocation failed")
            return error_response(500, "internal error while serving the request")
        if isinstance(result, self.handler.ErrorResponse):
            return Response(result.status, result.body, result.content_type)
        response, response_type = result
        if isinstance(response, str):
            response = response.encode("utf-8")
        return Response(200, bytes(response), response_type)


# ----------------------------------------------------------------------------------------------
# HTTP/1.1 on asyncio
# ----------------------------------------------------------------------------------------------


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HttpProtocol(asyncio.Protocol):
    """One connection: parses requests from the byte stream and answers them in order."""

    def __init__(self, app: ServingApp, connections: set[HttpProtocol]) -> None:
        self.app = app
        self.connections = connections
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pending: tuple[str, str, str, dict[str, str], int, bool] | None = None
        self.last_active = time.monotonic()
        self.continue_sent = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        self.buffer += data
        try:
            while self.transport is not None and self._next_request():
                pass
        except _BadRequest as exc:
            self._write(error_response(exc.status, str(exc)), "HTTP/1.1", keep_alive=False)
        except Exception:  # a bug here must not leave the client waiting
            logger.exception("failed to answer a request")
            self._write(error_response(500, "internal server error"), "HTTP/1.1", keep_alive=False)

    def _next_request(self) -> bool:
        """Answer the next complete request in the buffer; False when more bytes are needed."""
        if self.pending is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEADER_BYTES:
                    raise _BadRequest(431, "request header too large")
                return False
            head = bytes(self.buffer[:end]).decode("latin-1")
            del self.buffer[: end + 4]
            self.pending = self._parse_head(head)
            self.continue_sent = False
        method, path, version, headers, length, keep_alive = self.pending
        if len(self.buffer) < length:
            if headers.get("expect", "").lower() == "100-continue" and not self.continue_sent:
                self.continue_sent = True
                assert self.transport is not None
                self.transport.write(f"{version} 100 Continue\r\n\r\n".encode("latin-1"))
            return False
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        self.pending = None
        response = self.app.handle(method, path, headers, body)
        self._write(response, version, keep_alive, head_only=method == "HEAD")
        return keep_alive

    @staticmethod
    def _parse_head(head: str) -> tuple[str, str, str, dict[str, str], int, bool]:
        lines = head.split("\r\n")
        while lines and not lines[0]:  # tolerate blank lines between requests
            lines.pop(0)
        parts = lines[0].split(" ") if lines else []
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(400, "malformed request line")
        method, path, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _BadRequest(400, f"malformed header line {line[:60]!r}")
            headers[name.lower()] = value.strip()
        if "transfer-encoding" in headers:
            raise _BadRequest(411, "send the body with Content-Length (no chunked encoding)")
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise _BadRequest(400, "invalid Content-Length") from None
        if length < 0:
            raise _BadRequest(400, "invalid Content-Length")
        if length > MAX_PAYLOAD_BYTES:
            raise _BadRequest(413, f"payload of {length} bytes exceeds {MAX_PAYLOAD_BYTES}")
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            keep_alive = "keep-alive" in connection
        else:
            keep_alive = "close" not in connection
        return method, path, version, headers, length, keep_alive

    def _write(
        self, response: Response, version: str, keep_alive: bool, head_only: bool = False
    ) -> None:
        transport = self.transport
        if transport is None:
            return
        head = (
            f"{version} {response.status} {_reason(response.status)}\r\n"
            f"Content-Type: {response.content_type}\r\n"
            f"Content-Length: {len(response.body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        ).encode("latin-1")
        transport.write(head if head_only else head + response.body)
        if not keep_alive:
            transport.close()
            self.transport = None


async def _close_idle(connections: set[HttpProtocol], timeout: float) -> None:
    while True:
        await asyncio.sleep(min(timeout, 10.0))
        cutoff = time.monotonic() - timeout
        for conn in list(connections):
            if conn.last_active < cutoff and conn.pending is None and conn.transport is not None:
                conn.transport.close()


async def serve_socket(
    app: ServingApp, sock: socket.socket, stop: asyncio.Event | None = None
) -> None:
    """Serve ``sock`` (bound, listening) on the running loop until ``stop`` is set."""
    loop = asyncio.get_running_loop()
    connections: set[HttpProtocol] = set()
    server = await loop.create_server(lambda: HttpProtocol(app, connections), sock=sock)
    sweeper = asyncio.ensure_future(_close_idle(connections, KEEPALIVE_TIMEOUT))
    stop = stop or asyncio.Event()
    try:
        await stop.wait()
    finally:
        sweeper.cancel()
        server.close()
        for conn in list(connections):
            if conn.transport is not None:
                conn.transport.close()
        await server.wait_closed()


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


# ----------------------------------------------------------------------------------------------
# Running: in a thread (tests) or pre-forked (CLI)
# ----------------------------------------------------------------------------------------------


class BackgroundServer:
    """A single-process server on a thread of this process, e.g. for tests.

    >>> with BackgroundServer(model_dir) as server:  # doctest: +SKIP
    ...     urllib.request.urlopen(server.url + "/ping")
    """

    def __init__(self, model_dir: str | Path, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.app = ServingApp(model_dir)
        self.sock = bind(host, port)
        self.url = _address(self.sock)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="serving.server", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            self._ready.set()
            await serve_socket(self.app, self.sock, self._stop)

        self._loop.run_until_complete(main())
        self._loop.close()

    def start(self, deadline: float = 120.0) -> BackgroundServer:
        """Start serving; RuntimeError if the loop is not running after ``deadline`` seconds."""
        self._thread.start()
        if not self._ready.wait(deadline):
            raise RuntimeError(f"the server thread did not start within {deadline:g} s")
        return self

    def stop(self, deadline: float = 120.0) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(deadline)
        self.sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _worker_main(model_dir: Path, sock: socket.socket, supervisor: int) -> int:
    """Body of a forked worker: load the model, serve until SIGTERM/SIGINT or until the
    ``supervisor`` (its parent, whose pid is taken before the fork: the supervisor may die while
    this worker still loads the model) is gone."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    app = ServingApp(model_dir)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def watch_parent() -> None:  # exit if the supervisor is gone
        while os.getppid() == supervisor:
            await asyncio.sleep(0.2)
        stop.set()

    async def main() -> None:
        watcher = asyncio.ensure_future(watch_parent())
        try:
            await serve_socket(app, sock, stop)
        finally:
            watcher.cancel()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return 0


def serve(
    model_dir: str | Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, workers: int = 0
) -> int:
    """Bind, fork ``workers`` processes (default: one per core) and supervise them.

    Returns when SIGTERM/SIGINT arrives (0) or a worker dies (1), after stopping all workers.
    The parent never imports XGBoost state into the children: each worker loads the model after
    the fork, so no OpenMP thread pool crosses a fork.
    """
    model_dir = Path(model_dir).resolve()
    workers = workers or os.cpu_count() or 1
    sock = bind(host, port)
    children: dict[int, int] = {}

    def on_signal(signum: int, _frame: Any) -> None:
        raise _Stop(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    supervisor = os.getpid()
    try:
        for index in range(workers):
            pid = os.fork()
            if pid == 0:  # child: never returns into the parent's code
                code = 1
                try:
                    code = _worker_main(model_dir, sock, supervisor)
                except BaseException:
                    logger.exception("worker %d failed", index)
                finally:
                    os._exit(code)
            children[pid] = index
        print(
            f"serving.server {LISTENING} {_address(sock)} ({workers} workers, model {model_dir})",
            file=sys.stderr,
            flush=True,
        )
        while children:
            pid, wait_status = os.waitpid(-1, 0)
            index = children.pop(pid)
            code = os.waitstatus_to_exitcode(wait_status)
            logger.error("worker %d (pid %d) exited with %d: stopping", index, pid, code)
            status = 1
            break
    except _Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _stop_children(children)
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


class _Stop(Exception):
    """Raised by the supervisor's signal handler to leave its wait."""


def _stop_children(children: dict[int, int], timeout: float = 5.0) -> None:
    """SIGTERM the workers, SIGKILL those still alive after ``timeout``, reap them all."""
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while children and time.monotonic() < deadline:
        for pid in list(children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                children.pop(pid)
        if children:
            time.sleep(0.02)
    for pid in list(children):
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        children.pop(pid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.server", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--model-dir", required=True, type=Path, help="directory with xgboost-model.json"
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"bind address ({DEFAULT_HOST})")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT}; 0: any free port)"
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="worker processes (default: one per core)"
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (INFO)")
    args = parser.parse_args(argv)
    if not (args.model_dir / model_format.MODEL_FILE).is_file():
        parser.error(f"{args.model_dir} holds no {model_format.MODEL_FILE}")
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s",
    )
    return serve(args.model_dir, host=args.host, port=args.port, workers=args.workers)


if __name__ == "__main__":
    raise SystemExit(main())
