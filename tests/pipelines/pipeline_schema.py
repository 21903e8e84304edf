"""Validation of pipeline definitions against AWS's public JSON schema.

The schema is vendored beside this file (``schemas/``, an unmodified copy of the public
"SageMaker Pipeline Definition JSON Schema" that ``../shared/schemas`` also holds), so the check
runs on every clone, with or without ``../shared``; ``.ci/run`` fails if the two copies differ.

The schema predates more than the two top-level keys ``PipelineExperimentConfig`` and
``MlflowConfig``. It also has no pipeline functions (``Std:Join``, ``Std:JsonGet``) as argument
values, a RetryPolicy's ``ExceptionType`` is one string where the service takes a list, and
``PropertyFiles``, a container's ``Environment``, ``ModelApprovalStatus``,
``DriftCheckBaselines``, ``SkipModelValidation``, ``CustomerMetadataProperties`` and
``OutputDataConfig.CompressionType`` are missing (all in botocore's CreateModelPackage and
CreateTrainingJob input shapes, which test_job_arguments.py validates against).
:func:`schema_view` rewrites exactly those constructs (tests check the function values
separately and show each rewrite is needed); everything else is validated as rendered.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_PATH = Path(__file__).resolve().with_name("schemas") / "pipeline-definition.schema.json"
NEWER_TOP_LEVEL_KEYS = ("PipelineExperimentConfig", "MlflowConfig")  # the schema predates them

SCHEMA_GAPS = (
    "functions",
    "retry_exception_lists",
    "property_files",
    "register_fields",
    "compression_type",
)
FUNCTIONS = ("Std:Join", "Std:JsonGet")
REGISTER_FIELDS = (
    "ModelApprovalStatus",
    "DriftCheckBaselines",
    "SkipModelValidation",
    "CustomerMetadataProperties",
)


def schema_view(doc: dict[str, Any], gaps: tuple[str, ...] = SCHEMA_GAPS) -> dict[str, Any]:
    def view(node: Any) -> Any:
        if isinstance(node, list):
            return [view(value) for value in node]
        if not isinstance(node, dict):
            return node
        if "functions" in gaps and len(node) == 1 and next(iter(node)) in FUNCTIONS:
            return {"Get": next(iter(node))}
        out = {key: view(value) for key, value in node.items()}
        if "retry_exception_lists" in gaps and "RetryPolicies" in out:
            out["RetryPolicies"] = [
                dict(policy, ExceptionType=kind)
                for policy in out["RetryPolicies"]
                for kind in policy["ExceptionType"]
            ]
        if "property_files" in gaps and out.get("Type") == "Processing":
            out.pop("PropertyFiles", None)
        if "register_fields" in gaps and out.get("Type") == "RegisterModel":
            args = out["Arguments"] = dict(out["Arguments"])
            for key in REGISTER_FIELDS:
                args.pop(key, None)
            for container in args["InferenceSpecification"]["Containers"]:
                container.pop("Environment", None)
        if "compression_type" in gaps and "OutputDataConfig" in out:
            out["OutputDataConfig"] = dict(out["OutputDataConfig"])
            out["OutputDataConfig"].pop("CompressionType", None)
        return out

    result: dict[str, Any] = view(copy.deepcopy(doc))
    for key in NEWER_TOP_LEVEL_KEYS:
        result.pop(key)
    return result


def schema_validator() -> Callable[[dict[str, Any]], list[str]]:
    """Errors of a document against the unmodified schema."""
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)

    def errors(document: dict[str, Any]) -> list[str]:
        return [
            f"{list(e.absolute_path)}: {e.message[:300]}" for e in validator.iter_errors(document)
        ]

    return errors
