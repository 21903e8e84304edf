"""The training baseline of the model version an endpoint serves: where its reference sample is.

    package_arn = served_model_package(sagemaker, "mlops-prod-endpoint")
    package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    uri = reference_uri(package)   # s3://.../baseline/reference.csv

The deployment workflow creates the endpoint's model from the approved package
(``PrimaryContainer.ModelPackageName``); the model-build pipeline registers the
DataQualityBaseline step's ``statistics.json`` as the package's
``DriftCheckBaselines.ModelDataQuality.Statistics``. The reference sample the drift job compares
against, ``reference.csv``, is written by that step into the same output prefix, so its URI is
the statistics URI with the file name replaced. For a launcher (Lambda, Step Functions task),
not for the network-isolated job itself. The sagemaker client is passed in.
"""

from __future__ import annotations

from typing import Any

REFERENCE_FILE = "reference.csv"
#: Promotion (``deployment.promote``) copies a version's baseline files under
#: ``promoted-models/<staging group>/v<version>/baselines/``: prod serves only promoted
#: versions, so that (an IAM key pattern) is what prod's monitoring jobs may read.
PROMOTED_MODELS_PREFIX = "promoted-models/"  # == deployment.promote.PROMOTED_PREFIX
PROMOTED_BASELINES_DIR = "baselines"
PROMOTED_BASELINE_KEYS = f"{PROMOTED_MODELS_PREFIX}*/{PROMOTED_BASELINES_DIR}/"


class BaselineError(ValueError):
    """The endpoint's model version has no usable baseline: one line."""


def served_model_package(sagemaker: Any, endpoint_name: str, variant: str | None = None) -> str:
    """The model package ARN behind ``endpoint_name`` (its only, or the named, variant)."""
    endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variants = config.get("ProductionVariants", [])
    if variant is not None:
        variants = [v for v in variants if v.get("VariantName") == variant]
    if len(variants) != 1:
        names = [v.get("VariantName") for v in config.get("ProductionVariants", [])]
        raise BaselineError(
            f"endpoint {endpoint_name}: expected one variant"
            f"{f' named {variant!r}' if variant else ''}, found {names}"
        )
    model_name = variants[0]["ModelName"]
    model = sagemaker.describe_model(ModelName=model_name)
    containers = [model["PrimaryContainer"]] if "PrimaryContainer" in model else []
    containers += model.get("Containers", [])
    packages = [c["ModelPackageName"] for c in containers if c.get("ModelPackageName")]
    if len(packages) != 1:
        raise BaselineError(
            f"endpoint {endpoint_name}: model {model_name} was not created from one model package"
        )
    return str(packages[0])


def reference_uri(package: dict[str, Any]) -> str:
    """``reference.csv`` next to the package's drift-check ``statistics.json``."""
    arn = package.get("ModelPackageArn", "the model package")
    try:
        statistics = package["DriftCheckBaselines"]["ModelDataQuality"]["Statistics"]["S3Uri"]
    except (KeyError, TypeError):
        raise BaselineError(
            f"{arn} has no DriftCheckBaselines.ModelDataQuality.Statistics: no training baseline"
        ) from None
    statistics = str(statistics)
    if not statistics.startswith("s3://") or "/" not in statistics[len("s3://") :]:
        raise BaselineError(f"{arn}: baseline statistics URI {statistics!r} is not an S3 object")
    return statistics.rsplit("/", 1)[0] + "/" + REFERENCE_FILE
