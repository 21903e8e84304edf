"""Promote a model version from staging to prod: the second approval prod requires.

Staging deploys any approved version of its model package group. Prod deploys only a version
promoted with this tool, which, with read access to staging and write access to prod:

1. checks the staging package is ``Approved`` and ``Completed`` and in the staging group;
2. checks the staging endpoint is ``InService``, tagged by the deployment workflow with that
   package's ARN, and its current endpoint config's model really is that package;
3. checks the staging package has its drift-check baseline (``DriftCheckBaselines.
   ModelDataQuality.Statistics``; with a Model Monitor baseline its ``Constraints`` too; with the
   repository's own, the ``reference.csv`` the drift job compares against, next to the
   statistics) and that every file its ``DriftCheckBaselines`` and ``ModelMetrics`` name can be
   read, before anything is written;
4. copies the model artifact into prod's artifacts bucket (``promoted-models/<staging group>/
   v<version>/model.tar.gz``), hashing it, and those baseline files under ``.../v<version>/
   baselines/`` (their paths below the files' common directory: files next to each other stay
   so, as the drift job's Prepare step needs for ``reference.csv``);
5. registers it in prod's model package group with the same container (image, environment), the
   source's ``DriftCheckBaselines`` and ``ModelMetrics`` pointing at the copies (what prod's
   drift job and Model Monitor read; prod's monitoring roles may read only that prefix), and
   ``CustomerMetadataProperties``: ``promoted-to-prod=true``, ``promoted-from`` (staging ARN),
   ``promoted-by`` (caller ARN), ``promoted-at``, ``source-model-data-url``,
   ``model-data-sha256``, and the source's ``DataQualityBaselineFormat`` when it has one (the
   monitor_sync Lambda schedules only Model Monitor baselines);
6. approves it, which starts prod's deployment workflow (its plan step refuses any approved
   version without that metadata).

A staging version without a drift-check baseline is refused (prod's monitoring could not run on
it) unless ``allow_missing_baselines`` (``--without-baselines``) says to promote it anyway.
Re-running it for the same staging version reuses the prod version already registered; nothing
is written while any check fails.

The command is ``mlops promote`` (``cli/``), which the promotion pipeline's PromoteModel step
runs too (``promotion/commands.py``)::

    mlops promote --package-arn <staging model package ARN> \\
        --source-profile staging --target-profile prod [--target-bucket NAME] [--dry-run]
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import ClientError

from infra.naming import Naming
from monitoring.drift.baseline import PROMOTED_BASELINES_DIR, REFERENCE_FILE
from serving.promoted_image import ImageNotPromotable, promoted_image, repository_name

PROMOTED_PREFIX = "promoted-models/"
PACKAGE_TAG = "model-package-arn"  # written on the endpoint by the deployment workflow
PROMOTED_KEY = "promoted-to-prod"
PROMOTED_FROM_KEY = "promoted-from"
PROMOTED_BY_KEY = "promoted-by"
PROMOTED_AT_KEY = "promoted-at"
SOURCE_DATA_KEY = "source-model-data-url"
SHA256_KEY = "model-data-sha256"
#: The source's marker that its drift-check baseline is Model Monitor's (== pipelines/model_build/
#: definition.py BASELINE_FORMAT_*, read by lambdas/monitor_sync): kept on the promoted version.
BASELINE_FORMAT_KEY = "DataQualityBaselineFormat"
BASELINE_FORMAT_MODEL_MONITOR = "model-monitor"
#: The package fields whose files are copied, and rewritten to point at the copies.
BASELINE_FIELDS = ("DriftCheckBaselines", "ModelMetrics")
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
    #: The serving-image repositories (serving_image: custom); None: images are kept as they are.
    source_serving_repository: str | None = None
    target_serving_repository: str | None = None

    @classmethod
    def for_project(cls, project: str, target_bucket: str) -> PromotionNames:
        staging, prod = Naming(project, "staging"), Naming(project, "prod")
        return cls(
            source_group=staging.model_package_group,
            source_endpoint=staging.endpoint,
            target_group=prod.model_package_group,
            target_bucket=target_bucket,
            source_serving_repository=repository_name(staging),
            target_serving_repository=repository_name(prod),
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
    #: The promoted version's baseline files (copied now, or already there).
    baselines: tuple[str, ...] = ()


def _split_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://") or "/" not in url[5:] or url.endswith("/"):
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


@dataclass(frozen=True)
class BaselineCopies:
    """What promotion copies besides the model, and the fields that point at the copies."""

    files: dict[str, str]  # source URL -> target key
    fields: dict[str, Any]  # DriftCheckBaselines / ModelMetrics, with the copies' S3Uri

    def urls(self, bucket: str) -> tuple[str, ...]:
        return tuple(f"s3://{bucket}/{key}" for key in self.files.values())


def _s3_uris(node: Any) -> list[str]:
    """Every ``S3Uri`` (MetricsSource, FileSource) in a package field, in order."""
    if isinstance(node, dict):
        found = [str(node["S3Uri"])] if isinstance(node.get("S3Uri"), str) else []
        return found + [
            uri for key, value in node.items() if key != "S3Uri" for uri in _s3_uris(value)
        ]
    if isinstance(node, list):
        return [uri for value in node for uri in _s3_uris(value)]
    return []


def _relative_keys(urls: list[str], prefix: str) -> dict[str, str]:
    """``prefix`` + each file's path below the files' common directory (the bucket counts as
    one): distinct files get distinct keys, neighbours stay neighbours."""
    if not urls:
        return {}
    parts = {url: url.removeprefix("s3://").split("/") for url in urls}
    directories = [p[:-1] for p in parts.values()]
    depth = 0
    while all(len(d) > depth and d[depth] == directories[0][depth] for d in directories):
        depth += 1
    return {url: prefix + "/".join(p[depth:]) for url, p in parts.items()}


def _rewrite(node: Any, targets: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            key: targets[value] if key == "S3Uri" and value in targets else _rewrite(value, targets)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite(value, targets) for value in node]
    return node


def _is_model_monitor(package: dict[str, Any]) -> bool:
    metadata = package.get("CustomerMetadataProperties") or {}
    return metadata.get(BASELINE_FORMAT_KEY) == BASELINE_FORMAT_MODEL_MONITOR


def baseline_files(package: dict[str, Any]) -> list[str]:
    """The files the package's baseline fields name, and (the repository's own baseline) the
    ``reference.csv`` next to its drift-check statistics, which the drift job reads."""
    urls = _s3_uris([package.get(f) for f in BASELINE_FIELDS])
    quality = (package.get("DriftCheckBaselines") or {}).get("ModelDataQuality") or {}
    statistics = (quality.get("Statistics") or {}).get("S3Uri")
    if statistics and not _is_model_monitor(package):
        urls.append(str(statistics).rsplit("/", 1)[0] + "/" + REFERENCE_FILE)
    return list(dict.fromkeys(urls))


def plan_baselines(
    package: dict[str, Any], bucket: str, prefix: str, *, required: bool = True
) -> BaselineCopies:
    """The baseline files of ``package`` and their keys under ``prefix`` in ``bucket``.

    ``required``: the drift-check statistics must be there (with a Model Monitor baseline, the
    constraints too); refused in one line otherwise. The repository's own baseline (no Model
    Monitor marker) also needs its ``reference.csv``, next to the statistics."""
    arn = package.get("ModelPackageArn", "the package")
    fields = {f: copy.deepcopy(package[f]) for f in BASELINE_FIELDS if package.get(f)}
    quality = (fields.get("DriftCheckBaselines") or {}).get("ModelDataQuality") or {}
    statistics = (quality.get("Statistics") or {}).get("S3Uri")
    model_monitor = _is_model_monitor(package)
    missing = None
    if not statistics:
        missing = "DriftCheckBaselines.ModelDataQuality.Statistics"
    elif model_monitor and not (quality.get("Constraints") or {}).get("S3Uri"):
        missing = "DriftCheckBaselines.ModelDataQuality.Constraints (a Model Monitor baseline)"
    if missing and required:
        raise PromotionError(
            f"{arn} has no {missing}: prod's drift monitoring would have no baseline "
            "(--without-baselines promotes it anyway)"
        )
    urls = baseline_files(package)
    for url in urls:
        _split_s3_url(url)
    files = _relative_keys(urls, prefix)
    targets = {url: f"s3://{bucket}/{key}" for url, key in files.items()}
    return BaselineCopies(files, {f: _rewrite(v, targets) for f, v in fields.items()})


def _prod_image(
    container: dict[str, Any], names: PromotionNames, target: boto3.Session, who: str
) -> str | None:
    """The image the prod version names: staging's own serving image (serving_image: custom)
    becomes prod's, with the same content tag, which prod's repository must hold; AWS's prebuilt
    images stay as they are."""
    image = container.get("Image")
    source, target_repository = names.source_serving_repository, names.target_serving_repository
    if image is None or source is None or target_repository is None:
        return None
    try:
        return promoted_image(
            str(image),
            source_repository=source,
            target_repository=target_repository,
            target_account=who.split(":")[4],  # the caller's ARN: arn:aws:sts::<account>:...
            target_ecr=target.client("ecr"),
        )
    except ImageNotPromotable as error:
        raise PromotionError(str(error)) from error


def _check_readable(source_s3: Any, arn: str, urls: list[str]) -> None:
    for url in urls:
        bucket, key = _split_s3_url(url)
        try:
            source_s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            raise PromotionError(f"cannot read {url}, a baseline file of {arn}: {error}") from error


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
    allow_missing_baselines: bool = False,
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
        baselines = tuple(baseline_files(existing))
        # UpdateModelPackage cannot add DriftCheckBaselines: a version promoted without them
        # stays so; say it.
        note = "" if existing.get("DriftCheckBaselines") else " (without drift baselines)"
        if existing.get("ModelApprovalStatus") == "Approved":
            return PromotionResult(
                package_arn, arn, False, True, url, metadata.get(SHA256_KEY),
                f"already promoted{note}", baselines,
            )  # fmt: skip
        if not dry_run:
            _approve(target_sm, arn, metadata, f"promoted from {package_arn} by {who}")
        return PromotionResult(
            package_arn, arn, False, not dry_run, url, metadata.get(SHA256_KEY),
            ("re-approved the version promoted earlier" if not dry_run else "would re-approve")
            + note,
            baselines,
        )  # fmt: skip

    version = package.get("ModelPackageVersion", "unversioned")
    prefix = f"{PROMOTED_PREFIX}{names.source_group}/v{version}/"
    key = f"{prefix}model.tar.gz"
    url = f"s3://{names.target_bucket}/{key}"
    plan = plan_baselines(
        package,
        names.target_bucket,
        f"{prefix}{PROMOTED_BASELINES_DIR}/",
        required=not allow_missing_baselines,
    )
    source_s3 = source.client("s3")
    _check_readable(source_s3, package_arn, list(plan.files))
    image = _prod_image(container, names, target, who)
    if dry_run:
        return PromotionResult(
            package_arn, None, False, False, url, None, "checks passed (dry run)",
            plan.urls(names.target_bucket),
        )  # fmt: skip

    target_s3 = target.client("s3")
    sha256 = copy_artifact(
        source_s3, target_s3, container["ModelDataUrl"], names.target_bucket, key
    )
    for source_url, baseline_key in plan.files.items():
        copy_artifact(source_s3, target_s3, source_url, names.target_bucket, baseline_key)
    metadata = {
        PROMOTED_KEY: "true",
        PROMOTED_FROM_KEY: package_arn,
        PROMOTED_BY_KEY: who[:256],
        PROMOTED_AT_KEY: (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        SOURCE_DATA_KEY: container["ModelDataUrl"][:256],
        SHA256_KEY: sha256,
    }
    source_format = (package.get("CustomerMetadataProperties") or {}).get(BASELINE_FORMAT_KEY)
    if source_format:
        metadata[BASELINE_FORMAT_KEY] = source_format
    spec = package["InferenceSpecification"]
    new_container = {k: container[k] for k in _CONTAINER_KEYS if k in container}
    new_container["ModelDataUrl"] = url
    if image is not None:
        new_container["Image"] = image
    new_spec = {"Containers": [new_container], **{k: spec[k] for k in _SPEC_KEYS if k in spec}}
    arn = str(
        target_sm.create_model_package(
            ModelPackageGroupName=names.target_group,
            ModelPackageDescription=f"promoted from {package_arn}"[:1024],
            InferenceSpecification=new_spec,
            ModelApprovalStatus="PendingManualApproval",
            CustomerMetadataProperties=metadata,
            **plan.fields,
        )["ModelPackageArn"]
    )
    _approve(target_sm, arn, metadata, f"promoted from {package_arn} by {who}")
    message = "promoted and approved" + (
        "" if plan.fields.get("DriftCheckBaselines") else (" (without drift baselines)")
    )
    return PromotionResult(
        package_arn, arn, True, True, url, sha256, message, plan.urls(names.target_bucket)
    )


def artifacts_bucket_from_stack(cloudformation: Any, stack_name: str) -> str:
    """The ``ArtifactsBucketName`` output of prod's stateful stack."""
    stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    for output in stacks[0].get("Outputs", []):
        if output["OutputKey"] == "ArtifactsBucketName":
            return str(output["OutputValue"])
    raise PromotionError(f"stack {stack_name} has no ArtifactsBucketName output")
