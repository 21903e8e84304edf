"""The botocore-model validator (tests/botocore_shapes.py) catches what the service rejects."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.model import Shape

from tests.botocore_shapes import Runtime, validate, validate_shape

ROLE = "arn:aws:iam::123456789012:role/mlops-dev-model-build"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def processing_job(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "ProcessingJobName": "pipelines-a1b2c3d4e5f6-Preprocess-Xy12AbCdEf",
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 30,
            }
        },
        "AppSpecification": {"ImageUri": IMAGE, "ContainerArguments": ["--seed", "42"]},
        "RoleArn": ROLE,
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    request.update(changes)
    return request


def test_a_valid_request_has_no_errors() -> None:
    assert validate("sagemaker", "CreateProcessingJob", processing_job()) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (  # wrong enum
            {"ProcessingResources": {"ClusterConfig": {
                "InstanceCount": 1, "InstanceType": "m5.large", "VolumeSizeInGB": 30}}},
            "ProcessingResources.ClusterConfig.InstanceType: 'm5.large' is not one of "
            "ProcessingInstanceType: ",
        ),
        (  # missing required member
            {"AppSpecification": {"ContainerArguments": ["--seed", "42"]}},
            "AppSpecification.ImageUri: required member of AppSpecification is missing",
        ),
        (  # too-long string (job names: at most 63 characters)
            {"ProcessingJobName": "p" * 64},
            "ProcessingJobName: 64 characters, at most 63 allowed (ProcessingJobName)",
        ),
        (  # pattern
            {"RoleArn": "mlops-dev-model-build"},
            "RoleArn: 'mlops-dev-model-build' does not match RoleArn's pattern ",
        ),
        (  # unknown member
            {"ProcessingJobname": "x"},
            "ProcessingJobname: unknown member of CreateProcessingJobRequest",
        ),
        (  # type
            {"StoppingCondition": {"MaxRuntimeInSeconds": "3600"}},
            "StoppingCondition.MaxRuntimeInSeconds: expected an integer "
            "(ProcessingMaxRuntimeInSeconds)",
        ),
        (  # number range
            {"StoppingCondition": {"MaxRuntimeInSeconds": 0}},
            "StoppingCondition.MaxRuntimeInSeconds: 0 is below the minimum 1",
        ),
        (  # list size, and a list member too long
            {"AppSpecification": {"ImageUri": IMAGE, "ContainerArguments": ["a" * 257]}},
            "AppSpecification.ContainerArguments[0]: 257 characters, at most 256 allowed",
        ),
        (
            {"AppSpecification": {"ImageUri": IMAGE, "ContainerArguments": ["a"] * 101}},
            "AppSpecification.ContainerArguments: 101 items, at most 100 allowed",
        ),
        (  # map key
            {"Environment": {"1BAD": "x"}},
            "Environment<key '1BAD'>: '1BAD' does not match ProcessingEnvironmentKey's pattern",
        ),
    ],
)  # fmt: skip
def test_a_broken_argument_is_caught(change: dict[str, Any], expected: str) -> None:
    errors = validate("sagemaker", "CreateProcessingJob", processing_job(**change))
    assert errors and errors[0].startswith(expected), errors
    assert {e.split(":")[0] for e in errors} == {expected.split(":")[0]}, errors


def test_union_structures_take_exactly_one_member() -> None:
    union = {"Tags": [{"Key": "a", "Value": "b"}]}
    assert validate("sagemaker", "CreateProcessingJob", processing_job(**union)) == []
    errors = validate(
        "stepfunctions",
        "StartExecution",
        {"stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:x"},
    )
    assert errors == []
    # A union from the SageMaker model: exactly one member.
    assert validate_shape("sagemaker", "AutoMLProblemTypeConfig", {}) == [
        "<request>: union AutoMLProblemTypeConfig takes exactly one member, got []"
    ]


def test_java_patterns_are_matched_whole_and_with_unicode_classes() -> None:
    request = {
        "ModelPackageGroupName": "mlops-dev-models",
        "CustomerMetadataProperties": {"InputDataVersion": "2026-11-30/v1", "bad": "a,b"},
    }
    errors = validate("sagemaker", "CreateModelPackage", request)
    assert errors == [
        "CustomerMetadataProperties.bad: 'a,b' does not match CustomerMetadataValue's pattern "
        "([\\p{L}\\p{Z}\\p{N}_.:\\/=+\\-@]*)${1,256}"
    ]


def test_runtime_values_and_literals() -> None:
    seen: list[str] = []

    def literal(value: Any, shape: Shape) -> Any:
        if isinstance(value, dict) and set(value) == {"Get"}:
            seen.append(f"{value['Get']}:{shape.type_name}")
            return {"string": "ml.m5.large", "integer": 0}[shape.type_name]
        return value

    cluster = {"InstanceCount": {"Get": "Count"}, "InstanceType": {"Get": "Type"}}
    request = processing_job(
        ProcessingResources={"ClusterConfig": {**cluster, "VolumeSizeInGB": Runtime("later")}}
    )
    errors = validate("sagemaker", "CreateProcessingJob", request, literal=literal)
    assert seen == ["Count:integer", "Type:string"]
    assert errors == [  # the literal is validated: 0 instances are too few
        "ProcessingResources.ClusterConfig.InstanceCount: 0 is below the minimum 1 "
        "(ProcessingInstanceCount)"
    ]
