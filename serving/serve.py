"""The serving image's ``serve`` entry point: uvicorn (httptools, uvloop) running ``serving.asgi``.

SageMaker starts a real-time endpoint's container as ``docker run <image> serve``; the image's
``ENTRYPOINT`` is this module, so ``serve`` arrives as the first argument (no argument means
``serve`` too; ``train`` or anything else is refused in one line, exit 2). Settings come from
the environment, with the names and defaults of AWS's own framework containers
(``sagemaker-containers``' ``_params``/``ServingEnv``):

=================================  ==============================================================
``SAGEMAKER_MODEL_SERVER_WORKERS``  worker processes (default: one per CPU the container may use)
``SAGEMAKER_BIND_TO_PORT``          port (default 8080; SageMaker sets it in inference pipelines)
``SM_MODEL_DIR``                    the model directory (default ``/opt/ml/model``)
``SAGEMAKER_SERVING_LOG_LEVEL``     uvicorn's log level (default ``warning``; no access log)
=================================  ==============================================================

A bad value exits 2 with one line naming the variable, the value and what is allowed.

The parent binds the socket (``SO_REUSEADDR``, backlog 2048), prints ``listening on
http://HOST:PORT`` and hands it to uvicorn's process supervisor, which spawns the workers, each
loading the model before it accepts a connection, restarts a worker that dies and stops them
all on SIGTERM/SIGINT. One worker: served in this process.

    python -m serving.serve serve [--host 0.0.0.0] [--port N] [--model-dir DIR]

``--port 0`` binds any free port (tests, ``make bench-serving``). This is the code and the
configuration the image runs; the bench and the contract tests run exactly this module.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Mapping
from typing import Any, SupportsIndex

# Standard library only at import: the HEALTHCHECK runs this module every 30 s.

#: Where SageMaker extracts the model artifact; ``SM_MODEL_DIR`` overrides it.
DEFAULT_MODEL_DIR = "/opt/ml/model"
MODEL_DIR_ENV = "SM_MODEL_DIR"
WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"
PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
LOG_LEVEL_ENV = "SAGEMAKER_SERVING_LOG_LEVEL"
DEFAULT_PORT = 8080
BACKLOG = 2048
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
APP = "serving.asgi:create_app"
#: ``serve`` (SageMaker's command) and ``healthcheck`` (the image's HEALTHCHECK: GET /ping on
#: the loopback, exit 0 on a 200, 1 otherwise).
COMMANDS = ("serve", "healthcheck")


class SettingError(Exception):
    """A setting from the environment or the command line is invalid (one-line message)."""


def available_cpus() -> int:
    """CPUs this process may run on (the container's CPU set), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _int_setting(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise SettingError(f"{name}={raw!r}: expected an integer from {low} to {high}")
    return value


def workers_from(env: Mapping[str, str]) -> int:
    return _int_setting(env, WORKERS_ENV, available_cpus(), 1, 256)


def port_from(env: Mapping[str, str]) -> int:
    return _int_setting(env, PORT_ENV, DEFAULT_PORT, 1, 65535)


def log_level_from(env: Mapping[str, str]) -> str:
    level = env.get(LOG_LEVEL_ENV, "").strip().lower() or "warning"
    if level not in LOG_LEVELS:
        raise SettingError(
            f"{LOG_LEVEL_ENV}={env[LOG_LEVEL_ENV]!r}: expected one of {', '.join(LOG_LEVELS)}"
        )
    return level


def _socket(family: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (one worker, served in this process)."""
    sock = _socket(socket.AF_INET6 if ":" in host else socket.AF_INET, reuse_port=False)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    return sock


def worker_listener(family: int, address: tuple[str, int]) -> socket.socket:
    """Run in a worker as it unpickles its :class:`PortReservation`: a socket of its own on the
    port. Bound, not listening: uvicorn's startup listens on it once the model is loaded, so no
    connection waits in the backlog of a worker still loading (or restarting)."""
    sock = _socket(family, reuse_port=True)
    sock.bind(address)
    return sock


class PortReservation(socket.socket):
    """The port, held by the supervisor; each worker gets a listening socket of its own on it.

    uvicorn's supervisor hands every worker it spawns (and respawns) the sockets it was given, by
    pickling them. This socket pickles as its address: a worker unpickles it as a NEW socket
    bound to that address with ``SO_REUSEPORT`` (:func:`worker_listener`), listening once
    the worker serves. The
    kernel then spreads new connections evenly over the workers' sockets (a hash of the
    connection's addresses) instead of letting the workers race for one shared backlog, in
    which the first to wake takes a burst: with one shared socket, one of two workers held 35
    of locust's 50 connections here, and its queue set the p99. This socket itself is bound
    with ``SO_REUSEPORT`` but never listens (a listening one would get a share of the
    connections that no worker accepts); it keeps the port, also when ``--port 0`` chose it. A
    worker that dies takes its socket along (connections still in its backlog are reset, as
    with any SO_REUSEPORT listener); its replacement binds a new one and listens once loaded.
    """

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        return (worker_listener, (self.family, self.getsockname()[:2]))


def reserve_port(host: str, port: int) -> PortReservation:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = PortReservation(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def uvicorn_config(workers: int, log_level: str) -> object:
    """The uvicorn configuration of the image (one place: the bench and tests use it too)."""
    import uvicorn

    from serving.server import KEEPALIVE_TIMEOUT, MAX_HEADER_BYTES

    return uvicorn.Config(
        APP,
        factory=True,
        workers=workers,
        http="httptools",
        loop="uvloop",
        lifespan="off",  # the model loads in the factory, before the worker accepts
        interface="asgi3",
        access_log=False,  # a log line per request would cost more than the request
        log_level=log_level,
        server_header=False,
        date_header=True,
        proxy_headers=False,
        timeout_keep_alive=int(KEEPALIVE_TIMEOUT),
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        backlog=BACKLOG,
    )


def serve(host: str, port: int, workers: int, log_level: str) -> int:
    from uvicorn import Server
    from uvicorn.supervisors import Multiprocess

    from serving.server import LISTENING

    config = uvicorn_config(workers, log_level)
    sock = reserve_port(host, port) if workers > 1 else bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(
        f"serving.serve {LISTENING} http://{shown}:{bound_port} "
        f"({workers} workers, uvicorn httptools uvloop)",
        file=sys.stderr,
        flush=True,
    )
    try:
        if workers > 1:
            Multiprocess(config, sockets=[sock]).run()  # type: ignore[arg-type]
            return 0
        server = Server(config)  # type: ignore[arg-type]
        server.run(sockets=[sock])
        return 0 if server.started else 1
    finally:
        sock.close()


def healthcheck(port: int, timeout: float = 4.0) -> int:
    """0 when ``GET /ping`` on this container's port answers 200, else 1 (with one line why)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/ping")
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        print(f"unhealthy: GET /ping on port {port}: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    if status != 200:
        print(f"unhealthy: GET /ping on port {port} answered {status}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="serve", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument(
        "command", nargs="?", default="serve", help="serve (default) or healthcheck"
    )
    parser.add_argument("--host", default="0.0.0.0", help="bind address (0.0.0.0)")
    parser.add_argument("--port", type=int, default=None, help=f"port (${PORT_ENV} or 8080)")
    parser.add_argument("--model-dir", default=None, help=f"${MODEL_DIR_ENV} or /opt/ml/model")
    args = parser.parse_args(argv)
    env = os.environ if env is None else env
    if args.command not in COMMANDS:
        print(
            f"error: unknown command {args.command!r}: this image only serves "
            f"(commands: {', '.join(COMMANDS)})",
            file=sys.stderr,
        )
        return 2
    try:
        port = port_from(env) if args.port is None else args.port
        if args.command == "healthcheck":
            return healthcheck(port)
        workers = workers_from(env)
        log_level = log_level_from(env)
    except SettingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from pipelines.model_build.model_code.model_format import MODEL_FILE

    model_dir = args.model_dir or env.get(MODEL_DIR_ENV) or DEFAULT_MODEL_DIR
    if not os.path.isfile(os.path.join(model_dir, MODEL_FILE)):
        print(f"error: {model_dir} holds no {MODEL_FILE} (the model)", file=sys.stderr)
        return 2
    os.environ[MODEL_DIR_ENV] = model_dir  # read by create_app in every worker
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr)
    try:
        return serve(args.host, port, workers, log_level)
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{port}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
