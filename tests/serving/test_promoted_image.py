"""The image a version promoted to prod names (serving/promoted_image.py), against ECR's API
with Stubber (requests also checked against ECR's whole input shape)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from serving.promoted_image import ImageNotPromotable, promoted_image
from tests.botocore_shapes import validate

STAGING, PROD = "222222222222", "333333333333"
TAG = "70d30eb49d9b023dea3562c538b1688a6209764dd4002a9813755f4c227a921d"
STAGING_IMAGE = f"{STAGING}.dkr.ecr.us-east-1.amazonaws.com/mlops-staging-serving:{TAG}"
PROD_IMAGE = f"{PROD}.dkr.ecr.us-east-1.amazonaws.com/mlops-prod-serving:{TAG}"
XGBOOST = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
DESCRIBE = {"repositoryName": "mlops-prod-serving", "imageIds": [{"imageTag": TAG}]}


@pytest.fixture
def ecr() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "ecr", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    assert validate("ecr", "DescribeImages", DESCRIBE) == []
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def promote(image: str, client: Any) -> str:
    return promoted_image(
        image,
        source_repository="mlops-staging-serving",
        target_repository="mlops-prod-serving",
        target_account=PROD,
        target_ecr=client,
    )


def test_staging_image_becomes_prods_same_tag_once_prod_has_it(
    ecr: tuple[Any, Stubber],
) -> None:
    client, stubber = ecr
    stubber.add_response(
        "describe_images",
        {"imageDetails": [{"imageDigest": "sha256:" + "d" * 64, "imageTags": [TAG]}]},
        DESCRIBE,
    )
    assert promote(STAGING_IMAGE, client) == PROD_IMAGE


@pytest.mark.parametrize("code", ["ImageNotFoundException", "RepositoryNotFoundException"])
def test_prod_without_the_image_is_refused_in_one_line(ecr: tuple[Any, Stubber], code: str) -> None:
    client, stubber = ecr
    stubber.add_client_error("describe_images", service_error_code=code, expected_params=DESCRIBE)
    with pytest.raises(ImageNotPromotable) as raised:
        promote(STAGING_IMAGE, client)
    assert f"prod has no mlops-prod-serving:{TAG}" in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "image",
    [XGBOOST, f"{STAGING}.dkr.ecr.us-east-1.amazonaws.com/other-repository:{TAG}", "not-an-image"],
)
def test_other_images_are_kept_without_any_call(ecr: tuple[Any, Stubber], image: str) -> None:
    client, _ = ecr
    assert promote(image, client) == image
