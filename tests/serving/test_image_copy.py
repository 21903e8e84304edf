"""The deploy-time copy of the serving image (serving/image_copy.py) against ECR's API, with
botocore's Stubber (moto has no layer-upload API): every request is checked in order, and against
ECR's whole input shape (tests/botocore_shapes.py)."""

from __future__ import annotations

import io
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from serving import image_copy
from tests.botocore_shapes import validate

SOURCE = "cdk-hnb659fds-container-assets-111111111111-us-east-1"
TARGET = "mlops-br-feat-byoc-serving"
TAG = "70d30eb49d9b023dea3562c538b1688a6209764dd4002a9813755f4c227a921d"
DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPTED = [*image_copy.IMAGE_MANIFEST_TYPES, *image_copy.INDEX_TYPES]


def digest(char: str) -> str:
    return "sha256:" + char * 64


CONFIG, LAYER_A, LAYER_B = digest("c"), digest("a"), digest("b")
MANIFEST_DIGEST, INDEX_DIGEST, ATTESTATION = digest("d"), digest("e"), digest("f")
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": DOCKER_V2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": 7, "digest": CONFIG},
        "layers": [
            {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
             "size": 25, "digest": LAYER_A},
            {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
             "size": 3, "digest": LAYER_B},
        ],
    }
)  # fmt: skip
INDEX = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [  # BuildKit: the image, then its provenance attestation
            {"mediaType": DOCKER_V2, "digest": MANIFEST_DIGEST, "size": 100,
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ATTESTATION,
             "size": 50, "platform": {"os": "unknown", "architecture": "unknown"}},
        ],
    }
)  # fmt: skip
BLOBS = {CONFIG: b"config!", LAYER_A: bytes(range(25)), LAYER_B: b"xyz"}
UPLOADS = {
    CONFIG: "0a1b2c3d-0000-4000-8000-00000000000c",
    LAYER_A: "0a1b2c3d-0000-4000-8000-00000000000a",
}


class Ecr:
    """An ECR client whose every call must be the next expected one, shape-checked."""

    def __init__(self) -> None:
        self.client = boto3.client(
            "ecr",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.stubber = Stubber(self.client)

    def expect(self, operation: str, params: dict[str, Any], response: dict[str, Any]) -> None:
        name = self.client.meta.method_to_api_mapping[operation]
        assert validate("ecr", name, params) == [], (operation, validate("ecr", name, params))
        self.stubber.add_response(operation, response, params)

    def refuse(self, operation: str, params: dict[str, Any], code: str) -> None:
        self.stubber.add_client_error(
            operation, service_error_code=code, http_status_code=400, expected_params=params
        )


@pytest.fixture
def ecr() -> Iterator[Ecr]:
    stub = Ecr()
    with stub.stubber:
        yield stub
        stub.stubber.assert_no_pending_responses()


def image(manifest: str, media_type: str, digest_: str, **image_id: str) -> dict[str, Any]:
    return {
        "images": [
            {
                "repositoryName": SOURCE,
                "imageId": {"imageDigest": digest_, **image_id},
                "imageManifest": manifest,
                "imageManifestMediaType": media_type,
            }
        ],
        "failures": [],
    }


PROPS = {"SourceRepository": SOURCE, "SourceTag": TAG, "TargetRepository": TARGET, "TargetTag": TAG}


def expect_source_manifest(ecr: Ecr) -> None:
    """The source tag names a single-platform manifest."""
    ecr.expect(
        "batch_get_image",
        {"repositoryName": SOURCE, "imageIds": [{"imageTag": TAG}], "acceptedMediaTypes": ACCEPTED},
        image(MANIFEST, DOCKER_V2, MANIFEST_DIGEST, imageTag=TAG),
    )


def expect_target_tag(ecr: Ecr, digest_: str) -> None:
    """The target repository already has the tag, naming ``digest_``."""
    ecr.expect(
        "describe_images",
        {"repositoryName": TARGET, "imageIds": [{"imageTag": TAG}]},
        {"imageDetails": [{"imageDigest": digest_, "imageTags": [TAG]}]},
    )


def expect_source_index(ecr: Ecr) -> None:
    ecr.expect(
        "batch_get_image",
        {"repositoryName": SOURCE, "imageIds": [{"imageTag": TAG}], "acceptedMediaTypes": ACCEPTED},
        image(INDEX, OCI_INDEX, INDEX_DIGEST, imageTag=TAG),
    )
    ecr.expect(
        "batch_get_image",
        {
            "repositoryName": SOURCE,
            "imageIds": [{"imageDigest": MANIFEST_DIGEST}],
            "acceptedMediaTypes": ACCEPTED,
        },
        image(MANIFEST, DOCKER_V2, MANIFEST_DIGEST),
    )


def opener_of(blobs: dict[str, bytes], opened: list[str]) -> image_copy.Opener:
    def open_url(url: str) -> Any:
        opened.append(url)
        return io.BytesIO(blobs[url.rsplit("/", 1)[-1]])

    return open_url


def test_copies_the_amd64_image_of_an_index_part_by_part_skipping_blobs_it_has(ecr: Ecr) -> None:
    expect_source_index(ecr)
    ecr.refuse(
        "describe_images",
        {"repositoryName": TARGET, "imageIds": [{"imageTag": TAG}]},
        "ImageNotFoundException",
    )
    ecr.expect(
        "batch_check_layer_availability",
        {"repositoryName": TARGET, "layerDigests": [CONFIG, LAYER_A, LAYER_B]},
        {
            "layers": [
                {"layerDigest": CONFIG, "layerAvailability": "UNAVAILABLE"},
                {"layerDigest": LAYER_A, "layerAvailability": "UNAVAILABLE"},
                {"layerDigest": LAYER_B, "layerAvailability": "AVAILABLE"},
            ],
            "failures": [],
        },
    )
    for blob, parts in ((CONFIG, [(0, 6)]), (LAYER_A, [(0, 9), (10, 19), (20, 24)])):
        ecr.expect(
            "get_download_url_for_layer",
            {"repositoryName": SOURCE, "layerDigest": blob},
            {"downloadUrl": f"https://prod-us-east-1-starport-layer-bucket.s3.amazonaws.com/{blob}",
             "layerDigest": blob},
        )  # fmt: skip
        ecr.expect(
            "initiate_layer_upload",
            {"repositoryName": TARGET},
            {"uploadId": UPLOADS[blob], "partSize": 10},
        )
        for first, last in parts:
            ecr.expect(
                "upload_layer_part",
                {
                    "repositoryName": TARGET,
                    "uploadId": UPLOADS[blob],
                    "partFirstByte": first,
                    "partLastByte": last,
                    "layerPartBlob": BLOBS[blob][first : last + 1],
                },
                {"uploadId": UPLOADS[blob], "lastByteReceived": last},
            )
        ecr.expect(
            "complete_layer_upload",
            {"repositoryName": TARGET, "uploadId": UPLOADS[blob], "layerDigests": [blob]},
            {"repositoryName": TARGET, "uploadId": UPLOADS[blob], "layerDigest": blob},
        )
    ecr.expect(
        "put_image",
        {
            "repositoryName": TARGET,
            "imageManifest": MANIFEST,
            "imageManifestMediaType": DOCKER_V2,
            "imageTag": TAG,
        },
        {"image": {"repositoryName": TARGET, "imageId": {"imageDigest": MANIFEST_DIGEST}}},
    )
    opened: list[str] = []
    result = image_copy.copy_image(
        ecr.client,
        source_repository=SOURCE,
        source_tag=TAG,
        target_repository=TARGET,
        target_tag=TAG,
        opener=opener_of(BLOBS, opened),
    )
    assert result == MANIFEST_DIGEST
    assert [url.rsplit("/", 1)[-1] for url in opened] == [CONFIG, LAYER_A]  # B was there


def test_an_existing_tag_with_the_same_image_is_kept(ecr: Ecr) -> None:
    expect_source_manifest(ecr)
    expect_target_tag(ecr, MANIFEST_DIGEST)
    result = image_copy.copy_image(
        ecr.client, source_repository=SOURCE, source_tag=TAG, target_repository=TARGET,
        target_tag=TAG, opener=opener_of({}, []),
    )  # fmt: skip
    assert result == MANIFEST_DIGEST


def test_an_existing_tag_naming_another_image_is_refused(ecr: Ecr) -> None:
    expect_source_manifest(ecr)
    expect_target_tag(ecr, digest("9"))
    status, reason, _, data = image_copy.handle(
        {
            "RequestType": "Update",
            "PhysicalResourceId": f"{TARGET}:old",
            "ResourceProperties": PROPS,
        },
        ecr.client,
    )  # fmt: skip
    assert (status, data) == ("FAILED", {})
    assert reason == f"{TARGET}:{TAG} exists with digest {digest('9')}, not {MANIFEST_DIGEST}"


def test_a_source_tag_missing_from_the_asset_repository_fails_in_one_line(ecr: Ecr) -> None:
    ecr.expect(
        "batch_get_image",
        {"repositoryName": SOURCE, "imageIds": [{"imageTag": TAG}], "acceptedMediaTypes": ACCEPTED},
        {"images": [], "failures": [{"imageId": {"imageTag": TAG}, "failureCode": "ImageNotFound",
                                     "failureReason": "Requested image not found"}]},
    )  # fmt: skip
    status, reason, physical_id, _ = image_copy.handle(
        {
            "RequestType": "Create",
            "LogicalResourceId": "ServingImage166AB411",
            "ResourceProperties": PROPS,
        },
        ecr.client,
    )  # fmt: skip
    assert status == "FAILED" and "\n" not in reason
    assert "ImageNotFound Requested image not found" in reason
    assert physical_id == "ServingImage166AB411"  # the Delete that follows deletes nothing


def test_success_answers_the_target_and_digest(ecr: Ecr) -> None:
    expect_source_manifest(ecr)
    expect_target_tag(ecr, MANIFEST_DIGEST)
    answer = image_copy.handle({"RequestType": "Create", "ResourceProperties": PROPS}, ecr.client)
    assert answer[0] == "SUCCESS"
    assert answer[2:] == (f"{TARGET}:{TAG}", {"ImageDigest": MANIFEST_DIGEST})


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"RequestType": "Create"}, "the event has no ResourceProperties object"),
        (
            {"RequestType": "Create", "ResourceProperties": {"SourceRepository": SOURCE,
                                                             "SourceTag": ""}},
            "lacks non-empty strings for SourceTag, TargetRepository, TargetTag",
        ),
        ({"RequestType": "Upsert", "ResourceProperties": {}}, "unknown RequestType 'Upsert'"),
    ],
)  # fmt: skip
def test_malformed_events_fail_without_any_ecr_call(
    ecr: Ecr, event: dict[str, Any], expected: str
) -> None:
    status, reason, _, _ = image_copy.handle(event, ecr.client)  # no response queued: no call
    assert (status, reason.endswith(expected)) == ("FAILED", True), reason


def test_delete_keeps_the_images(ecr: Ecr) -> None:
    status, _, physical_id, _ = image_copy.handle(
        {"RequestType": "Delete", "PhysicalResourceId": f"{TARGET}:{TAG}"}, ecr.client
    )
    assert (status, physical_id) == ("SUCCESS", f"{TARGET}:{TAG}")


def test_handler_answers_cloudformation_and_ignores_what_is_not_its_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[Any] = []

    class Answer:
        def __enter__(self) -> Answer:
            return self

        def __exit__(self, *_: Any) -> None:
            return None

    def urlopen(request: Any, timeout: float) -> Answer:
        sent.append(request)
        return Answer()

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    image_copy.handler({"RequestType": "Delete"}, None)  # no ResponseURL: logged only
    assert sent == []
    url = "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x?sig=1"
    event = {
        "RequestType": "Delete",
        "ResponseURL": url,
        "StackId": "stack",
        "RequestId": "r1",
        "LogicalResourceId": "ServingImage166AB411",
        "PhysicalResourceId": f"{TARGET}:{TAG}",
    }
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    image_copy.handler(event, None)
    (request,) = sent
    assert (request.full_url, request.get_method()) == (url, "PUT")
    body = json.loads(request.data)
    assert body == {
        "Status": "SUCCESS",
        "Reason": "images stay until the repository's lifecycle rule expires them",
        "PhysicalResourceId": f"{TARGET}:{TAG}",
        "StackId": "stack",
        "RequestId": "r1",
        "LogicalResourceId": "ServingImage166AB411",
        "Data": {},
    }


def test_only_https_layer_urls_are_opened() -> None:
    with pytest.raises(image_copy.CopyError, match="non-HTTPS"):
        image_copy._open("file:///etc/passwd")
