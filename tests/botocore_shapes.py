"""Request parameters checked against botocore's service models: AWS's own API input shapes.

    validate(service, operation, params) -> list[str]     # [] when the request is valid
    validate_shape(service, shape_name, value) -> list[str]  # one shape of the model

One message per problem, ``"<member path>: <problem>"``. Checked, as the service does: unknown
and missing required members, types, enums, string lengths and patterns, list and map sizes,
number ranges, union structures (exactly one member). botocore's own client-side validator
checks only types, required members and minimums; this one checks the whole shape.

Patterns are Java regular expressions matched against the WHOLE value (``String.matches``),
run with the ``regex`` module (``\\p{L}`` and friends); ``$`` followed by a repetition (as in
``(...)${1,256}``, where Java repeats an assertion) is read as ``$``.

Values known only at run time:

* ``Runtime("why")``: a whole value the caller cannot know (a JSONPath result, say); accepted
  wherever it stands, since its content is decided later.
* ``literal=``: ``(value, shape) -> value`` turns an expression (a pipeline ``{"Get": ...}``,
  say) into a typed literal for the member's shape; the literal is then validated like a given
  value. Return the value unchanged for what is not an expression.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import botocore.session
import regex
from botocore.model import (
    ListShape,
    MapShape,
    OperationModel,
    ServiceModel,
    Shape,
    StructureShape,
)

Literal = Callable[[Any, Shape], Any]


@dataclass(frozen=True)
class Runtime:
    """A value decided at run time: valid for any member."""

    why: str = ""


@functools.cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@functools.cache
def service_model(service: str) -> ServiceModel:
    """botocore's model of a service, loaded once per process (the JSON is large)."""
    return _session().get_service_model(service)


@functools.cache
def operation_model(service: str, operation: str) -> OperationModel:
    return service_model(service).operation_model(operation)


def input_shape(service: str, operation: str) -> StructureShape:
    shape = operation_model(service, operation).input_shape
    if shape is None:
        raise ValueError(f"{service}.{operation} takes no input")
    return shape


def _code_point(pair: Any) -> str:
    high, low = int(pair.group(1), 16), int(pair.group(2), 16)
    return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08X}"


@functools.cache
def _pattern(text: str) -> Any:
    java = regex.sub(r"\$\{\d+(,\d*)?\}", "$", text)  # "${1,256}": Java repeats the anchor
    # Java writes a supplementary code point as a UTF-16 surrogate pair, "\uD800\uDC00".
    java = regex.sub(r"(?i)\\u(D[89AB][0-9A-F]{2})\\u(D[C-F][0-9A-F]{2})", _code_point, java)
    return regex.compile(java, regex.V0)


def validate(
    service: str,
    operation: str,
    params: Mapping[str, Any],
    *,
    literal: Literal | None = None,
) -> list[str]:
    """Problems of ``params`` as the input of ``service.operation`` ([] when valid)."""
    errors: list[str] = []
    _Validator(errors, literal).check(dict(params), input_shape(service, operation), "")
    return errors


def validate_shape(
    service: str, shape_name: str, value: Any, *, literal: Literal | None = None
) -> list[str]:
    """Problems of ``value`` as an instance of the named shape of ``service``'s model."""
    errors: list[str] = []
    shape = service_model(service).shape_for(shape_name)
    _Validator(errors, literal).check(value, shape, "")
    return errors


class _Validator:
    def __init__(self, errors: list[str], literal: Literal | None) -> None:
        self.errors = errors
        self.literal = literal

    def fail(self, path: str, problem: str) -> None:
        self.errors.append(f"{path or '<request>'}: {problem}")

    def check(self, value: Any, shape: Shape, path: str) -> None:
        if self.literal is not None:
            value = self.literal(value, shape)
        if isinstance(value, Runtime):
            return
        kind = shape.type_name
        checker = getattr(self, f"_{kind}", None)
        if checker is None:
            raise ValueError(f"{path}: no check for shape type {kind!r} ({shape.name})")
        checker(value, shape, path)

    # ---- containers -------------------------------------------------------------------------

    def _structure(self, value: Any, shape: Shape, path: str) -> None:
        assert isinstance(shape, StructureShape)
        if not isinstance(value, dict):
            self.fail(path, f"expected a structure ({shape.name}), got {_kind(value)}")
            return
        members = shape.members
        for key in value:
            if key not in members:
                self.fail(_join(path, key), f"unknown member of {shape.name}")
        for key in shape.required_members:
            if key not in value:
                self.fail(_join(path, key), f"required member of {shape.name} is missing")
        if shape.metadata.get("union"):
            given = [k for k in value if k in members]
            if len(given) != 1:
                self.fail(path, f"union {shape.name} takes exactly one member, got {given}")
        for key, item in value.items():
            if key in members:
                self.check(item, members[key], _join(path, key))

    def _list(self, value: Any, shape: Shape, path: str) -> None:
        assert isinstance(shape, ListShape)
        if not isinstance(value, list | tuple):
            self.fail(path, f"expected a list ({shape.name}), got {_kind(value)}")
            return
        self._size(len(value), shape, path, "items")
        for i, item in enumerate(value):
            self.check(item, shape.member, f"{path}[{i}]")

    def _map(self, value: Any, shape: Shape, path: str) -> None:
        assert isinstance(shape, MapShape)
        if not isinstance(value, dict):
            self.fail(path, f"expected a map ({shape.name}), got {_kind(value)}")
            return
        self._size(len(value), shape, path, "entries")
        for key, item in value.items():
            self.check(key, shape.key, f"{path}<key {key!r}>")
            self.check(item, shape.value, _join(path, str(key)))

    def _size(self, size: int, shape: Shape, path: str, what: str) -> None:
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and size < low:
            self.fail(path, f"{size} {what}, at least {low} allowed ({shape.name})")
        if high is not None and size > high:
            self.fail(path, f"{size} {what}, at most {high} allowed ({shape.name})")

    # ---- scalars ------------------------------------------------------------------------------

    def _string(self, value: Any, shape: Shape, path: str) -> None:
        if not isinstance(value, str):
            self.fail(path, f"expected a string ({shape.name}), got {_kind(value)}")
            return
        enum = shape.enum
        if enum and value not in enum:
            self.fail(path, f"{value!r} is not one of {shape.name}: {', '.join(enum)}")
        self._size(len(value), shape, path, "characters")
        pattern = shape.metadata.get("pattern")
        if pattern is not None and _pattern(pattern).fullmatch(value) is None:
            self.fail(path, f"{value!r} does not match {shape.name}'s pattern {pattern}")

    def _integer(self, value: Any, shape: Shape, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"expected an integer ({shape.name}), got {_kind(value)}")
            return
        self._range(value, shape, path)

    _long = _integer

    def _double(self, value: Any, shape: Shape, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, f"expected a number ({shape.name}), got {_kind(value)}")
            return
        if not math.isfinite(value):
            self.fail(path, f"{value!r} is not a finite number ({shape.name})")
            return
        self._range(value, shape, path)

    _float = _double

    def _range(self, value: float, shape: Shape, path: str) -> None:
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and value < low:
            self.fail(path, f"{value} is below the minimum {low} ({shape.name})")
        if high is not None and value > high:
            self.fail(path, f"{value} is above the maximum {high} ({shape.name})")

    def _boolean(self, value: Any, shape: Shape, path: str) -> None:
        if not isinstance(value, bool):
            self.fail(path, f"expected a boolean ({shape.name}), got {_kind(value)}")

    def _timestamp(self, value: Any, shape: Shape, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, datetime | date | str | int | float):
            self.fail(path, f"expected a timestamp ({shape.name}), got {_kind(value)}")

    def _blob(self, value: Any, shape: Shape, path: str) -> None:
        if not isinstance(value, bytes | bytearray | str):
            self.fail(path, f"expected bytes ({shape.name}), got {_kind(value)}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:120]
