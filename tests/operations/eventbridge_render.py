"""EventBridge's input transformer, as AWS documents it ("Amazon EventBridge input
transformation"), for tests: moto's own renderer pastes strings unquoted where the template has
an unquoted placeholder, which real EventBridge does not.

* ``InputPathsMap`` values are JSON paths into the event (``$.a.b``; a missing path is null);
* a placeholder ``<name>`` INSIDE a JSON string is replaced by the value's text;
* a placeholder outside quotes is replaced by the value as JSON (strings quoted and escaped).
"""

from __future__ import annotations

import json
import re
from typing import Any

_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")


def _lookup(event: dict[str, Any], path: str) -> Any:
    assert path.startswith("$."), path
    value: Any = event
    for part in path[2:].split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def render(transformer: dict[str, Any], event: dict[str, Any]) -> Any:
    values = {
        name: _lookup(event, path) for name, path in transformer.get("InputPathsMap", {}).items()
    }
    template: str = transformer["InputTemplate"]
    out: list[str] = []
    in_string = escaped = False
    i = 0
    while i < len(template):
        char = template[i]
        match = _PLACEHOLDER.match(template, i)
        if match and match.group(1) in values:
            value = values[match.group(1)]
            if in_string:
                text = value if isinstance(value, str) else json.dumps(value)
                out.append(json.dumps(text)[1:-1])
            else:
                out.append(json.dumps(value))
            i = match.end()
            continue
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        out.append(char)
        i += 1
    return json.loads("".join(out))
