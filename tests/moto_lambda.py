"""moto runs Lambda functions only in Docker: run one handler in process instead, as the Lambda
service would answer (the same event in, JSON out, an exception as an ``Unhandled`` function
error with ``errorType``/``errorMessage``)."""

from __future__ import annotations

import json
import types
from collections.abc import Callable
from typing import Any

import pytest
from moto.awslambda.models import LambdaBackend


def in_process_lambda(
    monkeypatch: pytest.MonkeyPatch,
    handler: Callable[[Any, Any], Any],
    name_suffix: str,
    events: list[dict[str, Any]],
) -> None:
    """moto's Lambda ``invoke`` calls ``handler``; only a function whose name ends with
    ``name_suffix`` may be invoked. Each event received is appended to ``events``."""

    def invoke(
        self: LambdaBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> bytes:
        assert function_name.rsplit(":", 1)[-1].endswith(name_suffix), function_name
        event = json.loads(body) if body else {}
        events.append(event)
        context = types.SimpleNamespace(function_name=function_name, aws_request_id="test")
        try:
            result: Any = handler(event, context)
        except Exception as error:  # the Lambda service reports any exception this way
            response_headers["x-amz-function-error"] = "Unhandled"
            result = {"errorType": type(error).__name__, "errorMessage": str(error)}
        return json.dumps(result).encode()

    monkeypatch.setattr(LambdaBackend, "invoke", invoke)
