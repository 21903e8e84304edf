"""Which baseline a drift run uses: the served model package's, resolved as AWS describes it."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws

from monitoring.drift import baseline
from monitoring.drift.baseline import BaselineError

ROLE = "arn:aws:iam::123456789012:role/mlops-prod-deploy"
STATS = "s3://mlops-prod-artifacts/model-build/exec-1/DataQualityBaseline/baseline/statistics.json"


def register(sm: Any, statistics: str | None = STATS) -> str:
    extra: dict[str, Any] = {}
    if statistics is not None:
        extra["DriftCheckBaselines"] = {
            "ModelDataQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": statistics},
                "Constraints": {
                    "ContentType": "application/json",
                    "S3Uri": statistics.replace("statistics", "constraints"),
                },
            }
        }
    package = sm.create_model_package(
        ModelPackageGroupName="mlops-prod-models",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
                    "ModelDataUrl": "s3://mlops-prod-artifacts/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["text/csv", "application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        **extra,
    )
    return str(package["ModelPackageArn"])


def deploy(sm: Any, endpoint: str, container: dict[str, Any], variants: int = 1) -> None:
    sm.create_model(
        ModelName=f"{endpoint}-model", PrimaryContainer=container, ExecutionRoleArn=ROLE
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"{endpoint}-config",
        ProductionVariants=[
            {
                "VariantName": f"Variant{i}" if variants > 1 else "AllTraffic",
                "ModelName": f"{endpoint}-model",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
            for i in range(variants)
        ],
    )
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=f"{endpoint}-config")


@mock_aws
def test_the_served_package_and_its_reference_sample() -> None:
    sm = boto3.client("sagemaker", region_name="us-east-1")
    sm.create_model_package_group(ModelPackageGroupName="mlops-prod-models")
    register(sm)  # version 1: not served
    served = register(sm, STATS.replace("exec-1", "exec-2"))
    deploy(sm, "mlops-prod-endpoint", {"ModelPackageName": served})

    arn = baseline.served_model_package(sm, "mlops-prod-endpoint")
    assert arn == served
    assert baseline.served_model_package(sm, "mlops-prod-endpoint", "AllTraffic") == served
    package = sm.describe_model_package(ModelPackageName=arn)
    assert baseline.reference_uri(package) == (
        "s3://mlops-prod-artifacts/model-build/exec-2/DataQualityBaseline/baseline/reference.csv"
    )


@mock_aws
def test_endpoints_without_a_single_package_are_errors() -> None:
    sm = boto3.client("sagemaker", region_name="us-east-1")
    sm.create_model_package_group(ModelPackageGroupName="mlops-prod-models")
    served = register(sm)
    deploy(sm, "image-only", {"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1"})
    with pytest.raises(BaselineError, match="model image-only-model was not created from one"):
        baseline.served_model_package(sm, "image-only")
    deploy(sm, "two-variants", {"ModelPackageName": served}, variants=2)
    with pytest.raises(
        BaselineError, match="expected one variant, found \\['Variant0', 'Variant1'\\]"
    ):
        baseline.served_model_package(sm, "two-variants")
    assert baseline.served_model_package(sm, "two-variants", "Variant1") == served
    with pytest.raises(BaselineError, match="named 'Blue'"):
        baseline.served_model_package(sm, "two-variants", "Blue")


@pytest.mark.parametrize(
    ("package", "message"),
    [
        ({"ModelPackageArn": "arn:p/1"}, "arn:p/1 has no DriftCheckBaselines.ModelDataQuality"),
        ({"DriftCheckBaselines": {"ModelDataQuality": {}}}, "has no DriftCheckBaselines"),
        (
            {"DriftCheckBaselines": {"ModelDataQuality": {"Statistics": {"S3Uri": "s3://bucket"}}}},
            "is not an S3 object",
        ),
        (
            {"DriftCheckBaselines": {"ModelDataQuality": {"Statistics": {"S3Uri": "/tmp/x.json"}}}},
            "is not an S3 object",
        ),
    ],
)
def test_packages_without_a_baseline_are_errors(package: dict[str, Any], message: str) -> None:
    with pytest.raises(BaselineError, match=message):
        baseline.reference_uri(package)
