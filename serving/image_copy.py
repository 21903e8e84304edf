"""Deploy-time copy of the serving image into the stage's own ECR repository.

The custom resource ``Custom::ServingImageCopy`` (``serving/infrastructure.py``) runs this Lambda
when its properties change. CDK builds the image at deploy time (``DockerImageAsset``) and
publishes it to the CDK bootstrap repository under its content hash, before the stack that holds
the resource deploys (``cdk deploy``, and the promotion pipeline's Assets stage alike); this
handler copies it, blob by blob through ECR's API, into the stage's repository under the same
immutable tag. No Docker daemon is involved and nothing is copied twice: blobs the repository
already has are skipped, and a tag that already exists is left as it is.

Only the image for ``linux/amd64`` (the asset's platform) is copied: when the source tag names an
image index (BuildKit with attestations, or the containerd image store), the copy is that
platform's single image manifest, the form SageMaker's ``CreateModel`` pulls.

Deleting the resource deletes nothing: registered model packages keep pointing at their image
until the repository's lifecycle rule expires it (or the branch stage's repository goes with its
stack). Every failure is answered to CloudFormation as ``FAILED`` with a one-line reason.
"""

from __future__ import annotations

import contextlib
import json
import logging
import urllib.request
from collections.abc import Callable
from typing import Any, BinaryIO

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)

PLATFORM = ("linux", "amd64")
IMAGE_MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
INDEX_TYPES = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
#: Used when InitiateLayerUpload names no part size.
DEFAULT_PART_BYTES = 10 * 1024 * 1024
DOWNLOAD_TIMEOUT_S = 60
PROPERTIES = ("SourceRepository", "SourceTag", "TargetRepository", "TargetTag")

Opener = Callable[[str], BinaryIO]


class CopyError(Exception):
    """The image cannot be copied; the message is the one line CloudFormation shows."""


def _open(url: str) -> BinaryIO:
    # A presigned S3 URL of the blob (GetDownloadUrlForLayer): HTTPS only.
    if not url.startswith("https://"):
        raise CopyError(f"refusing a non-HTTPS layer download URL: {url[:60]}")
    response: BinaryIO = urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)
    return response


def existing_digest(ecr: Any, repository: str, tag: str) -> str | None:
    """The digest the tag points at in ``repository``, or None when the tag does not exist."""
    try:
        images = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ecr.exceptions.ImageNotFoundException:
        return None
    details = images.get("imageDetails") or []
    return str(details[0]["imageDigest"]) if details else None


def _manifest(ecr: Any, repository: str, image_id: dict[str, str]) -> tuple[str, str, str]:
    """(manifest text, media type, digest) of one image of ``repository``."""
    answer = ecr.batch_get_image(
        repositoryName=repository,
        imageIds=[image_id],
        acceptedMediaTypes=[*IMAGE_MANIFEST_TYPES, *INDEX_TYPES],
    )
    images = answer.get("images") or []
    if not images:
        failure = (answer.get("failures") or [{}])[0]
        raise CopyError(
            f"{repository} {image_id}: {failure.get('failureCode', 'not found')} "
            f"{failure.get('failureReason', '')}".strip()
        )
    image = images[0]
    text = str(image["imageManifest"])
    media_type = image.get("imageManifestMediaType") or json.loads(text).get("mediaType")
    return text, str(media_type), str(image["imageId"].get("imageDigest", ""))


def resolve_image_manifest(ecr: Any, repository: str, tag: str) -> tuple[str, str, str]:
    """The single-platform image manifest the tag names (via its index for linux/amd64)."""
    text, media_type, digest = _manifest(ecr, repository, {"imageTag": tag})
    if media_type in INDEX_TYPES:
        wanted = [
            entry
            for entry in json.loads(text).get("manifests", [])
            if (entry.get("platform") or {}).get("os") == PLATFORM[0]
            and (entry.get("platform") or {}).get("architecture") == PLATFORM[1]
        ]
        if not wanted:
            raise CopyError(f"{repository}:{tag} is an index without a {'/'.join(PLATFORM)} image")
        text, media_type, digest = _manifest(ecr, repository, {"imageDigest": wanted[0]["digest"]})
    if media_type not in IMAGE_MANIFEST_TYPES:
        raise CopyError(f"{repository}:{tag} has an unsupported manifest type {media_type}")
    return text, media_type, digest


def blob_digests(manifest: str) -> list[str]:
    """The config blob and the layers an image manifest references, in order."""
    document = json.loads(manifest)
    return [document["config"]["digest"], *(layer["digest"] for layer in document["layers"])]


def missing_blobs(ecr: Any, repository: str, digests: list[str]) -> list[str]:
    """The digests ``repository`` does not hold yet (BatchCheckLayerAvailability takes 100)."""
    missing: list[str] = []
    for start in range(0, len(digests), 100):
        batch = digests[start : start + 100]
        answer = ecr.batch_check_layer_availability(repositoryName=repository, layerDigests=batch)
        available = {
            layer["layerDigest"]
            for layer in answer.get("layers", [])
            if layer.get("layerAvailability") == "AVAILABLE"
        }
        missing += [digest for digest in batch if digest not in available]
    return missing


def _read_part(stream: BinaryIO, size: int) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def copy_blob(ecr: Any, source: str, target: str, digest: str, opener: Opener = _open) -> int:
    """Stream one blob from ``source`` into ``target`` part by part; returns its size."""
    url = ecr.get_download_url_for_layer(repositoryName=source, layerDigest=digest)["downloadUrl"]
    upload = ecr.initiate_layer_upload(repositoryName=target)
    upload_id = upload["uploadId"]
    part_bytes = int(upload.get("partSize") or DEFAULT_PART_BYTES)
    first = 0
    with opener(url) as stream:
        while part := _read_part(stream, part_bytes):
            ecr.upload_layer_part(
                repositoryName=target,
                uploadId=upload_id,
                partFirstByte=first,
                partLastByte=first + len(part) - 1,
                layerPartBlob=part,
            )
            first += len(part)
    if first == 0:
        raise CopyError(f"blob {digest} of {source} downloaded empty")
    # ECR checks the uploaded bytes against the digest. Already there: uploaded meanwhile by
    # another copy (same digest, same bytes).
    with contextlib.suppress(ecr.exceptions.LayerAlreadyExistsException):
        ecr.complete_layer_upload(repositoryName=target, uploadId=upload_id, layerDigests=[digest])
    return first


def copy_image(
    ecr: Any,
    *,
    source_repository: str,
    source_tag: str,
    target_repository: str,
    target_tag: str,
    opener: Opener = _open,
) -> str:
    """Copy ``source_repository:source_tag`` to ``target_repository:target_tag``; its digest.

    A target tag that exists already is kept when it names the same manifest, and refused
    otherwise (the repository's tags are immutable, and the tag is a content hash)."""
    manifest, media_type, digest = resolve_image_manifest(ecr, source_repository, source_tag)
    current = existing_digest(ecr, target_repository, target_tag)
    if current is not None:
        if digest and current != digest:
            raise CopyError(
                f"{target_repository}:{target_tag} exists with digest {current}, not {digest}"
            )
        LOG.info("%s:%s exists (%s): nothing to copy", target_repository, target_tag, current)
        return current
    for blob in missing_blobs(ecr, target_repository, blob_digests(manifest)):
        size = copy_blob(ecr, source_repository, target_repository, blob, opener)
        LOG.info("copied %s (%d bytes)", blob, size)
    answer = ecr.put_image(
        repositoryName=target_repository,
        imageManifest=manifest,
        imageManifestMediaType=media_type,
        imageTag=target_tag,
    )
    return str(answer["image"]["imageId"]["imageDigest"])


def _properties(event: dict[str, Any]) -> dict[str, str]:
    props = event.get("ResourceProperties")
    if not isinstance(props, dict):
        raise CopyError("the event has no ResourceProperties object")
    bad = [name for name in PROPERTIES if not isinstance(props.get(name), str) or not props[name]]
    if bad:
        raise CopyError(f"ResourceProperties lacks non-empty strings for {', '.join(bad)}")
    return {name: props[name] for name in PROPERTIES}


def _respond(event: dict[str, Any], status: str, reason: str, physical_id: str, data: Any) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:1000],
            "PhysicalResourceId": physical_id,
            "StackId": event.get("StackId"),
            "RequestId": event.get("RequestId"),
            "LogicalResourceId": event.get("LogicalResourceId"),
            "Data": data,
        }
    ).encode()
    request = urllib.request.Request(  # the pre-signed HTTPS URL CloudFormation gave
        event["ResponseURL"],
        data=body,
        method="PUT",
        headers={"Content-Type": "", "Content-Length": str(len(body))},
    )
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S):
        pass


def handle(event: dict[str, Any], ecr: Any, opener: Opener = _open) -> tuple[str, str, str, Any]:
    """(status, reason, physical id, data) for one custom-resource event."""
    physical_id = str(event.get("PhysicalResourceId") or event.get("LogicalResourceId") or "copy")
    request_type = event.get("RequestType")
    if request_type == "Delete":
        reason = "images stay until the repository's lifecycle rule expires them"
        return "SUCCESS", reason, physical_id, {}
    try:
        if request_type not in ("Create", "Update"):
            raise CopyError(f"unknown RequestType {request_type!r}")
        props = _properties(event)
        digest = copy_image(
            ecr,
            source_repository=props["SourceRepository"],
            source_tag=props["SourceTag"],
            target_repository=props["TargetRepository"],
            target_tag=props["TargetTag"],
            opener=opener,
        )
    except CopyError as error:
        return "FAILED", str(error), physical_id, {}
    except Exception as error:  # an AWS error: its code and message, in one line
        LOG.exception("copy failed")
        return "FAILED", f"{type(error).__name__}: {error}".replace("\n", " "), physical_id, {}
    target = f"{props['TargetRepository']}:{props['TargetTag']}"
    return "SUCCESS", f"{target} is {digest}", target, {"ImageDigest": digest}


def handler(event: dict[str, Any], context: Any) -> None:
    """CloudFormation custom-resource entry point: always answers the ResponseURL."""
    if not isinstance(event, dict) or not isinstance(event.get("ResponseURL"), str):
        LOG.error("not a CloudFormation custom-resource event: %s", json.dumps(event)[:2000])
        return
    import boto3

    status, reason, physical_id, data = handle(event, boto3.client("ecr"))
    LOG.info("%s %s: %s", event.get("RequestType"), status, reason)
    _respond(event, status, reason, physical_id, data)
