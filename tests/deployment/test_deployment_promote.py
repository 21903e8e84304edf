"""``deployment.promote`` (``mlops promote``): staging -> prod promotion, in moto (one account
stands in for both; the tool only ever sees two boto3 sessions). The staging package carries
what the model-build pipeline registers: ``ModelMetrics`` and ``DriftCheckBaselines`` pointing at
the Evaluate and DataQualityBaseline outputs (``reference.csv`` next to the statistics); every
CreateModelPackage request the tool sends is validated against botocore's whole input shape."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from deployment_moto import XGBOOST_IMAGE
from moto import mock_aws

from deployment import promote
from lambdas.deploy_plan import handler as plan
from tests.botocore_shapes import validate
from tests.served_version import serve_version

REGION = "us-east-1"
NAMES = promote.PromotionNames.for_project("mlops", target_bucket="prod-artifacts")
ARTIFACT = b"model.tar.gz bytes" * 1000
RUN = "s3://staging-artifacts/pipelines/mlops-staging-model-build/exec-7"
BASELINE_DIR = f"{RUN}/DataQualityBaseline/baseline"
#: The pipeline's output files the package names (and the reference next to the statistics).
FILES = {
    f"{BASELINE_DIR}/statistics.json": b'{"dataset": {"item_count": 399}}',
    f"{BASELINE_DIR}/constraints.json": b'{"features": []}',
    f"{BASELINE_DIR}/reference.csv": b"mean radius,mean texture\n14.1,19.2\n",
    f"{RUN}/Evaluate/evaluation/evaluation.json": b'{"binary_classification_metrics": {}}',
}
PROMOTED = "s3://prod-artifacts/promoted-models/mlops-staging-models/v1"


def _source(uri: str) -> dict[str, str]:
    return {"ContentType": "application/json", "S3Uri": uri}


#: What the model-build pipeline registers (drift_job backend: the repository's own baseline).
PIPELINE_FIELDS: dict[str, Any] = {
    "ModelMetrics": {
        "ModelQuality": {"Statistics": _source(f"{RUN}/Evaluate/evaluation/evaluation.json")},
        "ModelDataQuality": {
            "Statistics": _source(f"{BASELINE_DIR}/statistics.json"),
            "Constraints": _source(f"{BASELINE_DIR}/constraints.json"),
        },
    },
    "DriftCheckBaselines": {
        "ModelDataQuality": {
            "Statistics": _source(f"{BASELINE_DIR}/statistics.json"),
            "Constraints": _source(f"{BASELINE_DIR}/constraints.json"),
        }
    },
}


@pytest.fixture
def staging(aws_env: None) -> Iterator[dict[str, Any]]:
    """A staging package, approved and served by the staging endpoint (tagged by the workflow).
    ``requests``: the CreateModelPackage requests sent (the fixture's own included)."""
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in ("staging-artifacts", "prod-artifacts"):
            s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket="staging-artifacts", Key="pipelines/run-7/model.tar.gz", Body=ARTIFACT)
        for url, body in FILES.items():
            s3.put_object(Bucket="staging-artifacts", Key=url.split("/", 3)[3], Body=body)
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        for group in (NAMES.source_group, NAMES.target_group):
            sagemaker.create_model_package_group(ModelPackageGroupName=group)
        arn = _register(
            sagemaker, NAMES.source_group, "s3://staging-artifacts/pipelines/run-7/model.tar.gz"
        )
        _serve(sagemaker, arn)
        SENT.clear()
        yield {"sagemaker": sagemaker, "s3": s3, "arn": arn}
        for request in SENT:  # the whole input shape, not only what botocore checks
            assert validate("sagemaker", "CreateModelPackage", request) == []


def _register(
    sagemaker: Any,
    group: str,
    url: str,
    status: str = "Approved",
    fields: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
    image: str = XGBOOST_IMAGE,
) -> str:
    extra = dict(PIPELINE_FIELDS if fields is None else fields)
    if metadata:
        extra["CustomerMetadataProperties"] = metadata
    return str(
        sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelApprovalStatus=status,
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": image,
                        "ModelDataUrl": url,
                        "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
                    }
                ],
                "SupportedContentTypes": ["text/csv", "application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            **extra,
        )["ModelPackageArn"]
    )


def _serve(sagemaker: Any, arn: str, tag: str | None = None) -> None:
    name = "mlops-staging-deploy-v1-aaaa"
    serve_version(sagemaker, arn, endpoint=NAMES.source_endpoint, name=name, tag=tag)


#: The CreateModelPackage requests the tool sent (validated by the fixture).
SENT: list[dict[str, Any]] = []


def _promote(arn: str, **kwargs: Any) -> promote.PromotionResult:
    session = boto3.Session(region_name=REGION)

    def record(params: dict[str, Any], **_: Any) -> None:
        SENT.append(json.loads(json.dumps(params)))

    session.events.register("provide-client-params.sagemaker.CreateModelPackage", record)
    return promote.promote(arn, source=session, target=session, names=NAMES, **kwargs)


def _objects(s3: Any, bucket: str = "prod-artifacts") -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def _prod_packages(sagemaker: Any) -> list[dict[str, Any]]:
    summaries = sagemaker.list_model_packages(ModelPackageGroupName=NAMES.target_group)
    return [
        sagemaker.describe_model_package(ModelPackageName=s["ModelPackageArn"])
        for s in summaries["ModelPackageSummaryList"]
    ]


def test_promotion_copies_the_artifact_registers_and_approves_in_prod(
    staging: dict[str, Any],
) -> None:
    result = _promote(staging["arn"])

    assert (result.created, result.approved) == (True, True)
    (package,) = _prod_packages(staging["sagemaker"])
    assert package["ModelApprovalStatus"] == "Approved"
    metadata = package["CustomerMetadataProperties"]
    assert metadata["promoted-to-prod"] == "true"
    assert metadata["promoted-from"] == staging["arn"]
    assert metadata["promoted-by"].startswith("arn:aws:")
    assert metadata["model-data-sha256"] == hashlib.sha256(ARTIFACT).hexdigest()
    (container,) = package["InferenceSpecification"]["Containers"]
    assert container["Image"] == XGBOOST_IMAGE
    assert container["ModelDataUrl"] == result.model_data_url
    assert result.model_data_url is not None
    key = result.model_data_url.removeprefix("s3://prod-artifacts/")
    assert key.startswith("promoted-models/mlops-staging-models/v1/")
    copied = staging["s3"].get_object(Bucket="prod-artifacts", Key=key)["Body"].read()
    assert copied == ARTIFACT


class _NoOtherExecutions:
    """ListExecutions (RUNNING) of the deploy state machine: only the one planning."""

    def get_paginator(self, operation: str) -> Any:
        return self

    def paginate(self, **_: Any) -> list[dict[str, Any]]:
        return [{"executions": []}]


def test_prods_deploy_guard_accepts_a_promoted_version_only(staging: dict[str, Any]) -> None:
    sagemaker = staging["sagemaker"]
    approved_directly = _register(sagemaker, NAMES.target_group, "s3://prod-artifacts/x.tar.gz")
    promoted = _promote(staging["arn"]).target_package_arn

    def decide(arn: str | None) -> plan.Plan:
        event = plan.PlanEvent.model_validate(
            {
                "request": {"packageArn": arn},
                "executionName": "x",
                "executionArn": "arn:aws:states:us-east-1:333333333333:execution:deploy:x",
                "executionStartTime": "2026-01-01T00:00:00Z",
                "stateMachineArn": "arn:aws:states:us-east-1:333333333333:stateMachine:deploy",
                "stage": {
                    "modelPackageGroupName": NAMES.target_group,
                    "endpointName": "mlops-prod-endpoint",
                    "resourcePrefix": "mlops-prod-deploy",
                    "requirePromotion": True,
                    "endpointMode": "serverless",
                },
            }
        )
        return plan.plan_deployment(event, sagemaker=sagemaker, sfn=_NoOtherExecutions())

    assert decide(approved_directly).code == "NotPromoted"
    assert decide(promoted).action == "deploy"


def test_promotion_is_idempotent(staging: dict[str, Any]) -> None:
    """A rerun registers nothing and writes no object again (no new S3 version)."""
    first = _promote(staging["arn"])
    s3 = staging["s3"]
    s3.put_bucket_versioning(Bucket="prod-artifacts", VersioningConfiguration={"Status": "Enabled"})
    again = _promote(staging["arn"])

    assert (again.created, again.approved, again.message) == (False, True, "already promoted")
    assert again.target_package_arn == first.target_package_arn
    assert len(_prod_packages(staging["sagemaker"])) == 1
    assert again.baselines and set(again.baselines) == set(first.baselines)
    versions = s3.list_object_versions(Bucket="prod-artifacts").get("Versions", [])
    assert {v["VersionId"] for v in versions} == {"null"}  # only what the first run wrote
    assert len(SENT) == 1


def test_dry_run_changes_nothing(staging: dict[str, Any]) -> None:
    result = _promote(staging["arn"], dry_run=True)

    assert (result.created, result.approved, result.target_package_arn) == (False, False, None)
    assert _prod_packages(staging["sagemaker"]) == []
    assert set(result.baselines) == {_promoted_uri(u) for u in FILES}  # what it would copy
    assert _objects(staging["s3"]) == {} and SENT == []


def test_refuses_a_version_staging_does_not_serve(staging: dict[str, Any]) -> None:
    other = _register(
        staging["sagemaker"], NAMES.source_group, "s3://staging-artifacts/other.tar.gz"
    )

    with pytest.raises(promote.PromotionError, match="deploy it to staging first"):
        _promote(other)
    assert _prod_packages(staging["sagemaker"]) == []


def test_refuses_a_version_not_approved_in_staging(staging: dict[str, Any]) -> None:
    staging["sagemaker"].update_model_package(
        ModelPackageArn=staging["arn"], ModelApprovalStatus="Rejected"
    )
    with pytest.raises(promote.PromotionError, match="Rejected in staging"):
        _promote(staging["arn"])


def test_refuses_a_package_of_another_group(staging: dict[str, Any]) -> None:
    dev = "mlops-dev-models"
    staging["sagemaker"].create_model_package_group(ModelPackageGroupName=dev)
    arn = _register(
        staging["sagemaker"], dev, "s3://staging-artifacts/pipelines/run-7/model.tar.gz"
    )
    with pytest.raises(promote.PromotionError, match="not in the staging group"):
        _promote(arn)


def test_cli_prints_the_result_and_refuses_with_exit_code_1(staging: dict[str, Any]) -> None:
    """``mlops promote``: the result as JSON; a refusal in one line on stderr, exit 1."""
    from typer.testing import CliRunner

    from cli.main import app

    base = [
        "promote",
        "--package-arn",
        staging["arn"],
        "--region",
        REGION,
        "--target-bucket",
        "prod-artifacts",
    ]
    runner = CliRunner()
    result = runner.invoke(app, [*base, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["message"] == "checks passed (dry run)"
    result = runner.invoke(app, ["promote", "--package-arn", staging["arn"] + "9", *base[3:]])
    assert result.exit_code == 1
    assert result.stderr.startswith("mlops: promotion refused: ")
    assert result.stderr.count("\n") == 1


def test_promoted_artifacts_prefix_is_the_one_the_stacks_grant() -> None:
    from deployment.infrastructure import PROMOTED_MODELS_PREFIX
    from deployment.promote import PROMOTED_PREFIX

    assert PROMOTED_PREFIX == PROMOTED_MODELS_PREFIX


# ---- drift baselines ----------------------------------------------------------------------------


def _serve_instead(sagemaker: Any, arn: str) -> None:
    """The staging endpoint updated to serve ``arn`` (as the deployment workflow does)."""
    # moto has no UpdateEndpoint: the endpoint again, on the new config
    sagemaker.delete_endpoint(EndpointName=NAMES.source_endpoint)
    name = "mlops-staging-deploy-v2-bbbb"
    serve_version(sagemaker, arn, endpoint=NAMES.source_endpoint, name=name)


def _promoted_uri(source: str) -> str:
    """Where promotion copies a pipeline output file: its path below the run's directory."""
    return f"{PROMOTED}/baselines/{source.removeprefix(RUN + '/')}"


def test_promotion_copies_the_baselines_and_the_prod_version_points_at_them(
    staging: dict[str, Any],
) -> None:
    result = _promote(staging["arn"])

    (package,) = _prod_packages(staging["sagemaker"])
    expected = json.loads(json.dumps(PIPELINE_FIELDS))
    for group in expected.values():
        for kind in group.values():
            for source in kind.values():
                source["S3Uri"] = _promoted_uri(source["S3Uri"])
    assert package["DriftCheckBaselines"] == expected["DriftCheckBaselines"]
    assert package["ModelMetrics"] == expected["ModelMetrics"]
    copies = _objects(staging["s3"])
    for source, body in FILES.items():  # reference.csv too, next to the copied statistics
        assert copies[_promoted_uri(source).removeprefix("s3://prod-artifacts/")] == body
    assert len(copies) == len(FILES) + 1  # and the model
    assert set(result.baselines) == {_promoted_uri(u) for u in FILES}
    assert "DataQualityBaselineFormat" not in package["CustomerMetadataProperties"]
    (request,) = SENT
    assert request["DriftCheckBaselines"] == expected["DriftCheckBaselines"]


def test_a_model_monitor_baseline_keeps_its_format_marker_and_needs_no_reference(
    staging: dict[str, Any],
) -> None:
    """monitor_sync schedules only packages marked as Model Monitor's; its QualityCheck output
    has no reference.csv."""
    sagemaker, s3 = staging["sagemaker"], staging["s3"]
    check = f"{RUN}/DataQualityBaseline/model-monitor"
    for name in ("statistics.json", "constraints.json"):
        s3.put_object(
            Bucket="staging-artifacts", Key=f"{check}/{name}".split("/", 3)[3], Body=b"{}"
        )
    fields = {
        "DriftCheckBaselines": {
            "ModelDataQuality": {
                "Statistics": _source(f"{check}/statistics.json"),
                "Constraints": _source(f"{check}/constraints.json"),
            }
        }
    }
    arn = _register(
        sagemaker,
        NAMES.source_group,
        "s3://staging-artifacts/pipelines/run-7/model.tar.gz",
        fields=fields,
        metadata={"DataQualityBaselineFormat": "model-monitor", "InputDataVersion": "v1"},
    )
    _serve_instead(sagemaker, arn)

    _promote(arn)

    (package,) = _prod_packages(sagemaker)
    metadata = package["CustomerMetadataProperties"]
    assert metadata["DataQualityBaselineFormat"] == "model-monitor"
    assert "InputDataVersion" not in metadata  # only the marker is carried over
    quality = package["DriftCheckBaselines"]["ModelDataQuality"]
    prefix = "s3://prod-artifacts/promoted-models/mlops-staging-models/v2/baselines/"
    assert quality["Statistics"]["S3Uri"] == f"{prefix}statistics.json"
    assert quality["Constraints"]["S3Uri"] == f"{prefix}constraints.json"
    assert not any(key.endswith("reference.csv") for key in _objects(s3))


def test_a_version_without_baselines_is_refused_and_nothing_is_written(
    staging: dict[str, Any],
) -> None:
    """Refused (dry run too) unless --without-baselines; then its ModelMetrics still follow."""
    sagemaker = staging["sagemaker"]
    fields = {"ModelMetrics": PIPELINE_FIELDS["ModelMetrics"]}
    expected = "has no DriftCheckBaselines.ModelDataQuality.Statistics"
    arn = _register(
        sagemaker,
        NAMES.source_group,
        "s3://staging-artifacts/pipelines/run-7/model.tar.gz",
        fields=fields,
    )
    _serve_instead(sagemaker, arn)

    for dry_run in (True, False):
        with pytest.raises(promote.PromotionError, match=expected) as raised:
            _promote(arn, dry_run=dry_run)
        assert "--without-baselines" in str(raised.value) and "\n" not in str(raised.value)
    assert _prod_packages(sagemaker) == [] and _objects(staging["s3"]) == {}

    from typer.testing import CliRunner

    from cli.main import app

    args = [
        "promote",
        "--package-arn",
        arn,
        "--region",
        REGION,
        "--target-bucket",
        "prod-artifacts",
    ]
    result = CliRunner().invoke(app, [*args, "--without-baselines"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["message"] == "promoted and approved (without drift baselines)"
    (package,) = _prod_packages(sagemaker)
    assert "DriftCheckBaselines" not in package
    evaluation = _promoted_uri(f"{RUN}/Evaluate/evaluation/evaluation.json")
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == evaluation.replace(
        "/v1/", "/v2/"
    )
    assert _promote(arn).message == "already promoted (without drift baselines)"


@pytest.mark.parametrize(
    "missing", [f"{BASELINE_DIR}/reference.csv", f"{RUN}/Evaluate/evaluation/evaluation.json"]
)
def test_an_unreadable_baseline_file_is_refused_before_anything_is_written(
    staging: dict[str, Any], missing: str
) -> None:
    staging["s3"].delete_object(Bucket="staging-artifacts", Key=missing.split("/", 3)[3])

    with pytest.raises(promote.PromotionError, match=f"cannot read {missing}, a baseline file"):
        _promote(staging["arn"])
    assert _prod_packages(staging["sagemaker"]) == [] and _objects(staging["s3"]) == {}


def test_the_baseline_format_marker_is_the_pipelines_and_monitor_syncs() -> None:
    from lambdas.monitor_sync import handler as monitor_sync
    from pipelines.model_build import definition

    marker = (promote.BASELINE_FORMAT_KEY, promote.BASELINE_FORMAT_MODEL_MONITOR)
    assert marker == (definition.BASELINE_FORMAT_METADATA, definition.BASELINE_FORMAT_MODEL_MONITOR)
    assert marker == (
        monitor_sync.BASELINE_FORMAT_METADATA,
        monitor_sync.BASELINE_FORMAT_MODEL_MONITOR,
    )


def test_a_custom_image_version_names_prods_own_image_once_prod_has_it(
    staging: dict[str, Any],
) -> None:
    """serving_image: custom: staging's image is in staging's repository, which prod's models
    cannot pull; the prod version names prod's repository with the same content tag, and is
    refused (nothing written) while prod's repository lacks that tag."""
    sagemaker, account = staging["sagemaker"], "123456789012"  # moto's account
    tag = "70d30eb49d9b023dea3562c538b1688a6209764dd4002a9813755f4c227a921d"
    image = f"{account}.dkr.ecr.{REGION}.amazonaws.com/{NAMES.source_serving_repository}:{tag}"
    url = "s3://staging-artifacts/pipelines/run-7/model.tar.gz"
    arn = _register(sagemaker, NAMES.source_group, url, image=image)
    _serve_instead(sagemaker, arn)
    ecr = boto3.client("ecr", region_name=REGION)
    ecr.create_repository(repositoryName="mlops-prod-serving")

    expected = f"prod has no mlops-prod-serving:{tag}"
    for dry_run in (True, False):
        with pytest.raises(promote.PromotionError, match=expected):
            _promote(arn, dry_run=dry_run)
    assert _prod_packages(sagemaker) == [] and _objects(staging["s3"]) == {}

    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"digest": "sha256:" + "c" * 64},
        "layers": [],
    }
    ecr.put_image(
        repositoryName="mlops-prod-serving", imageManifest=json.dumps(manifest), imageTag=tag
    )
    assert _promote(arn).created
    (package,) = _prod_packages(sagemaker)
    (container,) = package["InferenceSpecification"]["Containers"]
    assert (
        container["Image"] == f"{account}.dkr.ecr.{REGION}.amazonaws.com/mlops-prod-serving:{tag}"
    )
