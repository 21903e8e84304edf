"""The steps of a rendered pipeline definition (a uniquely named module, like mb_helpers)."""

from __future__ import annotations

from typing import Any


def all_steps(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every step by name, the condition's branches included (in definition order)."""
    found: dict[str, dict[str, Any]] = {}
    for step in doc["Steps"]:
        found[step["Name"]] = step
        if step["Type"] == "Condition":
            for branch in ("IfSteps", "ElseSteps"):
                found.update({s["Name"]: s for s in step["Arguments"][branch]})
    return found
