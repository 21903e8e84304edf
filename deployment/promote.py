"""Promote a model version from staging to prod: the second approval prod requires.

Staging deploys any approved version of its model package group. Prod deploys only a version
promoted with this tool, which, with read access to staging and write access to prod:

1. checks the staging package is ``Approved`` and ``Completed`` and in the staging group;
2. checks the staging endpoint is ``InService``, tagged by the deployment workflow with that
   package's ARN, and its current endpoint config's model really is that package;
3. copies the model artifact into prod's artifacts bucket (``promoted-models/...``), hashing it;
4. registers it in prod's model package group with the same container (image, environment) and
   ``CustomerMetadataProperties``: ``promoted-to-prod=true``, ``promoted-from`` (staging ARN),
   ``promoted-by`` (caller ARN), ``promoted-at``, ``source-model-data-url``, ``model-data-sha256``;
5. approves it, which starts prod's deployment workflow (its plan step refuses any approved
   version without that metadata).

Re-running it for the same staging version reuses the prod version already registered.

The command is ``mlops promote`` (``cli/``), which the promotion pipeline's PromoteModel step
runs too (``promotion/commands.py``)::

    mlops promote --package-arn <staging model package ARN> \\
        --source-profile staging --target-profile prod [--target-bucket NAME] [--dry-run]
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import ClientError

from infra.naming import Naming

PROMOTED_PREFIX = "promoted-models/"
PACKAGE_TAG = "model-package-arn"  # written on the endpoint by the deployment workflow
PROMOTED_KEY = "promoted-to-prod"
PROMOTED_FROM_KEY = "promoted-from"
PROMOTED_BY_KEY = "promoted-by"
PROMOTED_AT_KEY = "promoted-at"
SOURCE_DATA_KEY = "source-model-data-url"
SHA256_KEY = "model-data-sha256"
#: Inference-specification keys copied as they are to the prod package.
_SPEC_KEYS = (
    "SupportedTransformInstanceTypes",
    "SupportedRealtimeInferenceInstanceTypes",
    "SupportedContentTypes",
    "SupportedResponseMIMETypes",
)
_CONTAINER_KEYS = ("Image", "Environment", "Framework", "FrameworkVersion", "NearestModelName")


class PromotionError(Exception):
    """The version may not be promoted; the message says why, in one line."""


@dataclass(frozen=True)
class PromotionNames:
    source_group: str
    source_endpoint: str
    target_group: str
    target_bucket: str

    @classmethod
    def for_project(cls, project: str, target_bucket: str) -> PromotionNames:
        staging, prod = Naming(project, "staging"), Naming(project, "prod")
        return cls(
            source_group=staging.model_package_group,
            source_endpoint=staging.endpoint,
            target_group=prod.model_package_group,
            target_bucket=target_bucket,
        )


@dataclass(frozen=True)
class PromotionResult:
    source_package_arn: str
    target_package_arn: str | None
    created: bool
    approved: bool
    model_data_url: str | None
    sha256: str | None
    message: str


def _split_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://") or "/" not in url[5:]:
        raise PromotionError(f"not an S3 object URL: {url}")
    bucket, key = url[5:].split("/", 1)
    return bucket, key


def _single_container(package: dict[str, Any]) -> dict[str, Any]:
    containers = package.get("InferenceSpecification", {}).get("Containers", [])
    if len(containers) != 1 or not containers[0].get("ModelDataUrl"):
        raise PromotionError(
            f"{package['ModelPackageArn']} must have exactly one container with a ModelDataUrl"
        )
    return dict(containers[0])


def verify_staging(sagemaker: Any, package_arn: str, names: PromotionNames) -> dict[str, Any]:
    """The staging package, once every promotion precondition holds."""
    try:
        package = dict(sagemaker.describe_model_package(ModelPackageName=package_arn))
    except ClientError as error:
        raise PromotionError(f"cannot read {package_arn}: {error}") from error
    if package.get("ModelPackageGroupName") != names.source_group:
        raise PromotionError(f"{package_arn} is not in the staging group {names.source_group}")
    if package.get("ModelApprovalStatus") != "Approved":
        raise PromotionError(f"{package_arn} is {package.get('ModelApprovalStatus')} in staging")
    if package.get("ModelPackageStatus") != "Completed":
        raise PromotionError(f"{package_arn} is {package.get('ModelPackageStatus')}")
    container = _single_container(package)

    try:
        endpoint = sagemaker.describe_endpoint(EndpointName=names.source_endpoint)
    except ClientError as error:
        raise PromotionError(f"staging endpoint {names.source_endpoint}: {error}") from error
    if endpoint.get("EndpointStatus") != "InService":
        raise PromotionError(f"{names.source_endpoint} is {endpoint.get('EndpointStatus')}")
    tags = {
        t["Key"]: t["Value"]
        for t in sagemaker.list_tags(ResourceArn=endpoint["EndpointArn"]).get("Tags", [])
    }
    if tags.get(PACKAGE_TAG) != package_arn:
        raise PromotionError(
            f"{names.source_endpoint} serves {tags.get(PACKAGE_TAG, 'no tagged package')}, "
            f"not {package_arn}: deploy it to staging first"
        )
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    for variant in config.get("ProductionVariants", []):
        model = sagemaker.describe_model(ModelName=variant["ModelName"])
        served = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
        if served.get("ModelPackageName") != package_arn and (
            served.get("Image") != container.get("Image")
            or served.get("ModelDataUrl") != container.get("ModelDataUrl")
        ):
            raise PromotionError(
                f"{names.source_endpoint} variant {variant['VariantName']} runs model "
                f"{variant['ModelName']}, which is not {package_arn}"
            )
    return package


def find_promoted(sagemaker: Any, target_group: str, source_arn: str) -> dict[str, Any] | None:
    """The prod version already promoted from ``source_arn``, if any."""
    paginator = sagemaker.get_paginator("list_model_packages")
    for page in paginator.paginate(ModelPackageGroupName=target_group):
        for summary in page.get("ModelPackageSummaryList", []):
            package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            if (package.get("CustomerMetadataProperties") or {}).get(
                PROMOTED_FROM_KEY
            ) == source_arn:
                return dict(package)
    return None


class _HashingReader:
    """File-like wrapper hashing what is read through it (streams the copy, no temp file)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk: bytes = self._stream.read(size) if size >= 0 else self._stream.read()
        self._hash.update(chunk)
        return chunk

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def copy_artifact(source_s3: Any, target_s3: Any, source_url: str, bucket: str, key: str) -> str:
    """Copy ``source_url`` to ``s3://bucket/key`` (the bucket's default SSE-KMS); its SHA-256."""
    source_bucket, source_key = _split_s3_url(source_url)
    body = source_s3.get_object(Bucket=source_bucket, Key=source_key)["Body"]
    reader = _HashingReader(body)
    target_s3.upload_fileobj(reader, bucket, key)
    return reader.hexdigest()


def _approve(sagemaker: Any, arn: str, metadata: dict[str, str], description: str) -> None:
    sagemaker.update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus="Approved",
        ApprovalDescription=description[:1024],
        CustomerMetadataProperties=metadata,  # kept as is: the deploy guard reads them
    )


def promote(
    package_arn: str,
    *,
    source: boto3.Session,
    target: boto3.Session,
    names: PromotionNames,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PromotionResult:
    source_sm = source.client("sagemaker")
    target_sm = target.client("sagemaker")
    package = verify_staging(source_sm, package_arn, names)
    container = _single_container(package)
    who = str(target.client("sts").get_caller_identity()["Arn"])

    existing = find_promoted(target_sm, names.target_group, package_arn)
    if existing is not None:
        arn = str(existing["ModelPackageArn"])
        metadata = dict(existing.get("CustomerMetadataProperties") or {})
        url = existing["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
        if existing.get("ModelApprovalStatus") == "Approved":
            return PromotionResult(
                package_arn, arn, False, True, url, metadata.get(SHA256_KEY), "already promoted"
            )
        if not dry_run:
            _approve(target_sm, arn, metadata, f"promoted from {package_arn} by {who}")
        return PromotionResult(
            package_arn, arn, False, not dry_run, url, metadata.get(SHA256_KEY),
            "re-approved the version promoted earlier" if not dry_run else "would re-approve",
        )  # fmt: skip

    version = package.get("ModelPackageVersion", "unversioned")
    key = f"{PROMOTED_PREFIX}{names.source_group}/v{version}/model.tar.gz"
    url = f"s3://{names.target_bucket}/{key}"
    if dry_run:
        return PromotionResult(
            package_arn, None, False, False, url, None, "checks passed (dry run)"
        )

    sha256 = copy_artifact(
        source.client("s3"),
        target.client("s3"),
        container["ModelDataUrl"],
        names.target_bucket,
        key,
    )
    metadata = {
        PROMOTED_KEY: "true",
        PROMOTED_FROM_KEY: package_arn,
        PROMOTED_BY_KEY: who[:256],
        PROMOTED_AT_KEY: (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        SOURCE_DATA_KEY: container["ModelDataUrl"][:256],
        SHA256_KEY: sha256,
    }
    spec = package["InferenceSpecification"]
    new_container = {k: container[k] for k in _CONTAINER_KEYS if k in container}
    new_container["ModelDataUrl"] = url
    new_spec = {"Containers": [new_container], **{k: spec[k] for k in _SPEC_KEYS if k in spec}}
    arn = str(
        target_sm.create_model_package(
            ModelPackageGroupName=names.target_group,
            ModelPackageDescription=f"promoted from {package_arn}"[:1024],
            InferenceSpecification=new_spec,
            ModelApprovalStatus="PendingManualApproval",
            CustomerMetadataProperties=metadata,
        )["ModelPackageArn"]
    )
    _approve(target_sm, arn, metadata, f"promoted from {package_arn} by {who}")
    return PromotionResult(package_arn, arn, True, True, url, sha256, "promoted and approved")


def artifacts_bucket_from_stack(cloudformation: Any, stack_name: str) -> str:
    """The ``ArtifactsBucketName`` output of prod's stateful stack."""
    stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    for output in stacks[0].get("Outputs", []):
        if output["OutputKey"] == "ArtifactsBucketName":
            return str(output["OutputValue"])
    raise PromotionError(f"stack {stack_name} has no ArtifactsBucketName output")
