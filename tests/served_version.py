"""What the deployment workflow leaves in a staging account, made with plain SageMaker calls (for
moto): a model of the version, an endpoint config and the endpoint serving it, tagged with the
version's ARN (``deployment.promote.PACKAGE_TAG``, what promotion checks)."""

from __future__ import annotations

from typing import Any

from deployment.promote import PACKAGE_TAG


def serve_version(
    sagemaker: Any, package_arn: str, *, endpoint: str, name: str, tag: str | None = None
) -> str:
    """Serve ``package_arn`` on ``endpoint`` (model and endpoint config ``name``, one
    ml.m5.large instance), tagged with ``tag`` (default: ``package_arn``). Returns the endpoint
    ARN."""
    sagemaker.create_model(
        ModelName=name,
        PrimaryContainer={"ModelPackageName": package_arn},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/model",
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    arn = str(
        sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=name)["EndpointArn"]
    )
    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": PACKAGE_TAG, "Value": tag or package_arn}])
    return arn
