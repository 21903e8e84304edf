"""``mlops approve`` / ``mlops reject`` against moto: the approval status and its comment
(UpdateModelPackage ApprovalDescription), by ARN or <group>/<version>; prod takes only promoted
versions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from typer.testing import Result

from tests.cli.conftest import as_json, one_error_line

REGION = "us-east-1"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def _register(sm: Any, group: str, metadata: dict[str, str] | None = None) -> str:
    return str(
        sm.create_model_package(
            ModelPackageGroupName=group,
            InferenceSpecification={
                "Containers": [{"Image": IMAGE, "ModelDataUrl": "s3://b/model.tar.gz"}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            ModelApprovalStatus="PendingManualApproval",
            **({"CustomerMetadataProperties": metadata} if metadata else {}),
        )["ModelPackageArn"]
    )


@pytest.fixture
def sm(moto_aws: None) -> Any:
    client = boto3.client("sagemaker", region_name=REGION)
    for group in ("mlops-staging-models", "mlops-prod-models"):
        client.create_model_package_group(ModelPackageGroupName=group)
    return client


def _described(sm: Any, arn: str) -> tuple[str, str | None]:
    package = sm.describe_model_package(ModelPackageName=arn)
    return package["ModelApprovalStatus"], package.get("ApprovalDescription")


def test_approve_by_arn_with_a_comment(sm: Any, mlops: Callable[..., Result]) -> None:
    arn = _register(sm, "mlops-staging-models", {"InputDataVersion": "glue:jr_1"})
    result = as_json(mlops("approve", arn, "--comment", "AUC 0.97 on v7", "--output", "json"))
    assert result == {
        "arn": arn,
        "group": "mlops-staging-models",
        "version": 1,
        "previous_status": "PendingManualApproval",
        "status": "Approved",
        "comment": "AUC 0.97 on v7",
    }
    assert _described(sm, arn) == ("Approved", "AUC 0.97 on v7")
    # what the pipeline recorded is still there
    metadata = sm.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"]
    assert metadata == {"InputDataVersion": "glue:jr_1"}


def test_reject_by_group_and_version(sm: Any, mlops: Callable[..., Result]) -> None:
    _register(sm, "mlops-staging-models")
    second = _register(sm, "mlops-staging-models")
    result = mlops("reject", "mlops-staging-models/2", "-m", "data leak in v8", "--region", REGION)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "mlops-staging-models v2: PendingManualApproval -> Rejected (data leak in v8)\n"
    )
    assert _described(sm, second) == ("Rejected", "data leak in v8")


def test_prod_takes_only_promoted_versions(sm: Any, mlops: Callable[..., Result]) -> None:
    unpromoted = _register(sm, "mlops-prod-models")
    line = one_error_line(mlops("approve", unpromoted, "-m", "ship it"), 1)
    assert "was not promoted from staging" in line and "mlops promote" in line
    assert _described(sm, unpromoted) == ("PendingManualApproval", None)
    promoted = _register(sm, "mlops-prod-models", {"promoted-to-prod": "true"})
    assert mlops("approve", promoted, "-m", "re-approve").exit_code == 0
    assert _described(sm, promoted)[0] == "Approved"
    # rejecting in prod needs no promotion
    assert mlops("reject", unpromoted, "-m", "stray").exit_code == 0


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (("approve", "mlops-staging-models/9", "-m", "x"), 1, "no version 9 in model package"),
        (("approve", "not a version", "-m", "x"), 2, "not a model version: 'not a version'"),
        (("approve", "arn:aws:sagemaker:us-east-1:1:model-package/g", "-m", "x"), 2, "not a"),
        (("approve", "mlops-staging-models/1", "-m", "  "), 2, "--comment is empty"),
        (("reject", "mlops-staging-models/1", "-m", "x" * 1025), 2, "1025 characters"),
    ],
)
def test_bad_references_and_comments_are_one_line(
    sm: Any, mlops: Callable[..., Result], args: tuple[str, ...], code: int, expected: str
) -> None:
    arn = _register(sm, "mlops-staging-models")
    assert expected in one_error_line(mlops(*args, "--region", REGION), code)
    assert _described(sm, arn) == ("PendingManualApproval", None)


def test_comment_is_required(sm: Any, mlops: Callable[..., Result]) -> None:
    result = mlops("approve", "mlops-staging-models/1")
    assert result.exit_code == 2 and "--comment" in result.stderr


def test_a_group_version_without_a_region_is_exit_3(
    sm: Any, mlops: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ARN carries its region; ``<group>/<number>`` needs --region or the profile's."""
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")
    line = one_error_line(mlops("approve", "mlops-staging-models/1", "-m", "ok"), 3)
    assert line == ("mlops: no AWS region (pass --region or set AWS_REGION / the profile's region)")
