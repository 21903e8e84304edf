"""The serving image's HTTP application: SageMaker's container contract as a raw ASGI app.

The same contract as ``serving/server.py`` (both answer through :class:`serving.server.ServingApp`,
which calls ``transform_fn`` of ``pipelines/model_build/model_code/inference.py``):

* ``GET /ping``: 200 once the model is loaded (``create_app`` loads it before uvicorn accepts a
  connection in that worker).
* ``POST /invocations``: the handler's answer; content type, 4xx JSON errors, 500 on a handler
  crash, ``Accept`` defaulting as in the image's ``sagemaker-containers`` worker.
* ``GET /execution-parameters``: batch-transform hints.
* Bodies above 6 MB get a 413 and the connection is closed (``Content-Length`` checked before
  the body is read, the received size while it is read); a chunked upload gets a 411 (SageMaker
  sends ``Content-Length``), as the local server answers.

No framework: a request costs a dict lookup and a ``transform_fn`` call on top of uvicorn's
httptools parser. ``serving/serve.py`` runs it (the image's ``serve`` entry point).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from serving.serve import DEFAULT_MODEL_DIR, MODEL_DIR_ENV
from serving.server import MAX_PAYLOAD_BYTES, Response, ServingApp, error_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Request headers ServingApp reads (ASGI servers lower-case header names).
_WANTED = frozenset((b"content-type", b"contenttype", b"accept"))
_CLOSE = [(b"connection", b"close")]


class ContractApp:
    """ASGI 3 application around one loaded model (HTTP only; no lifespan events needed)."""

    def __init__(self, model_dir: str | Path) -> None:
        self.serving = ServingApp(model_dir)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan (when enabled) or websocket: nothing to do
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
            return
        headers: dict[str, str] = {}
        length = -1
        for name, value in scope["headers"]:
            if name in _WANTED:
                headers[name.decode("latin-1")] = value.decode("latin-1")
            elif name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = MAX_PAYLOAD_BYTES + 1  # the parser refuses these before us
            elif name == b"transfer-encoding":
                message = "send the body with Content-Length (no chunked encoding)"
                await _respond(send, error_response(411, message), close=True)
                return
        if length > MAX_PAYLOAD_BYTES:
            message = f"payload of {length} bytes exceeds {MAX_PAYLOAD_BYTES}"
            await _respond(send, error_response(413, message), close=True)
            return
        body = b""
        if length > 0:
            body = await _read_body(receive)
        response = self.serving.handle(scope["method"], scope["path"], headers, body)
        await _respond(send, response, head_only=scope["method"] == "HEAD")


async def _read_body(receive: Receive) -> bytes:
    """The whole body (bounded by the Content-Length already checked: the parser delivers no
    more than it announced)."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    parts = [body]
    while message.get("more_body", False):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def _respond(
    send: Send, response: Response, head_only: bool = False, close: bool = False
) -> None:
    headers = [
        (b"content-type", response.content_type.encode("latin-1")),
        (b"content-length", str(len(response.body)).encode("latin-1")),
    ]
    if close:
        headers += _CLOSE
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head_only else response.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app() -> ContractApp:
    """The app factory uvicorn calls in each worker: loads the model from ``SM_MODEL_DIR``.

    Then everything allocated so far (the imported libraries, the model: ~10^5 objects) is
    moved out of the garbage collector's generations (``gc.freeze``): a full collection scans
    only what requests allocate instead of pausing a worker for milliseconds, the p99's scale.
    """
    app = ContractApp(os.environ.get(MODEL_DIR_ENV) or DEFAULT_MODEL_DIR)
    gc.collect()
    gc.freeze()
    return app
