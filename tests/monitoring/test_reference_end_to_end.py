"""The pipeline's reference sample, found the way the drift job finds it, drives the drift core.

The local pipeline runner (``make pipeline-local``'s ``LocalPipeline``) runs Preprocess and
DataQualityBaseline on the bundled dataset with the contract's arguments; their output prefix is
uploaded to (moto) S3 as the SageMaker pipeline would, registered as the package's drift-check
``statistics.json`` and served by an endpoint. ``monitoring.drift.baseline`` then resolves the
endpoint -> model -> package -> ``reference.csv``; the file read back from S3 is the reference of
the drift job on the shipped clean and shifted capture batches.

In prod the endpoint serves the version ``deployment.promote`` registered: the drift workflow's
Prepare step (``monitoring.drift.launch``) resolves that package's reference to the copy
promotion made in prod's bucket.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest

from deployment import promote
from monitoring.drift import baseline, batches, capture, core, job, launch
from pipelines.model_build import contract as c
from pipelines.model_build import local_run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # evidently's imports

BUCKET = "mlops-dev-artifacts"
PREFIX = "model-build/exec-7/DataQualityBaseline/baseline"
PREFIX_IN_RUN = "DataQualityBaseline/baseline"
ENDPOINT = "mlops-dev-endpoint"


@pytest.fixture(scope="module")
def baseline_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Preprocess -> DataQualityBaseline of the local runner: the baseline output prefix."""
    pipeline = local_run.LocalPipeline(
        tmp_path_factory.mktemp("pipeline-local"),
        local_run.REPO_ROOT / c.BUNDLED_DATASET,
        c.DEFAULT_AUC_THRESHOLD,
        echo=lambda _line: None,
    )
    pipeline.prepare_work_dir()
    pipeline.run_processing(c.PREPROCESS)
    pipeline.run_processing(c.DATA_QUALITY_BASELINE)
    (output,) = c.DATA_QUALITY_BASELINE.outputs
    return pipeline.s3(c.StepOutputRef(c.BASELINE_STEP, output.name))


@pytest.fixture
def served(moto_aws: None, baseline_output: Path) -> Iterator[Any]:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    for path in sorted(baseline_output.iterdir()):
        s3.upload_file(str(path), BUCKET, f"{PREFIX}/{path.name}")
    sm = boto3.client("sagemaker")
    sm.create_model_package_group(ModelPackageGroupName="mlops-dev-models")
    statistics = f"s3://{BUCKET}/{PREFIX}/{c.STATISTICS_FILE}"
    package = sm.create_model_package(
        ModelPackageGroupName="mlops-dev-models",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
                    "ModelDataUrl": f"s3://{BUCKET}/model-build/exec-7/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["text/csv", "application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        DriftCheckBaselines={
            "ModelDataQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": statistics},
                "Constraints": {
                    "ContentType": "application/json",
                    "S3Uri": f"s3://{BUCKET}/{PREFIX}/{c.CONSTRAINTS_FILE}",
                },
            }
        },
    )
    sm.create_model(
        ModelName=f"{ENDPOINT}-model",
        PrimaryContainer={"ModelPackageName": package["ModelPackageArn"]},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/mlops-dev-model",
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"{ENDPOINT}-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{ENDPOINT}-model",
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
            }
        ],
    )
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=f"{ENDPOINT}-config")
    yield sm


def test_the_local_pipeline_writes_the_reference_next_to_the_statistics(
    baseline_output: Path,
) -> None:
    assert baseline.REFERENCE_FILE == c.REFERENCE_FILE
    names = {p.name for p in baseline_output.iterdir()}
    assert {c.STATISTICS_FILE, c.CONSTRAINTS_FILE, c.REFERENCE_FILE} <= names
    reference = pd.read_csv(baseline_output / c.REFERENCE_FILE)
    assert tuple(reference.columns) == c.FEATURES  # contract order, no target
    train = pd.read_csv(baseline_output.parents[1] / "Preprocess" / "train" / c.TRAIN_FILE)
    assert len(train) <= c.REFERENCE_ROWS  # the bundled split is below the cap: all rows
    pd.testing.assert_frame_equal(reference, train[list(c.FEATURES)])


def test_the_drift_job_resolves_and_uses_the_served_packages_reference(
    served: Any, tmp_path: Path
) -> None:
    arn = baseline.served_model_package(served, ENDPOINT)
    uri = baseline.reference_uri(served.describe_model_package(ModelPackageName=arn))
    assert uri == f"s3://{BUCKET}/{PREFIX}/{c.REFERENCE_FILE}"
    bucket, key = uri[len("s3://") :].split("/", 1)
    local = tmp_path / c.REFERENCE_FILE
    boto3.client("s3").download_file(bucket, key, str(local))
    reference, features = job.load_reference(local)
    assert features == list(c.FEATURES)

    # The drift core on the shipped batches (the job's reports and metrics are tested with the
    # bundled dataset as reference in test_drift.py; here the reference is what the pipeline made).
    window = capture.Window.parse(batches.WINDOW_START, batches.WINDOW_END)
    verdicts = {}
    for name in batches.BATCHES:
        files = capture.local_window_files(batches.capture_root(batches.DATA_DIR, name), window)
        data = capture.read_capture(capture.local_sources(files), features)
        assert data.rows > 0 and data.rejected_records < data.records
        result = core.detect_drift(reference, data.frame, features).result
        assert result.reference_rows == len(reference) == 399
        verdicts[name] = result.dataset_drift
    assert verdicts == {"clean": False, "shifted": True}


def _endpoint(sm: Any, endpoint: str, model: str, package_arn: str) -> str:
    """``endpoint`` serving ``package_arn`` as the deployment workflow creates it."""
    sm.create_model(
        ModelName=model,
        PrimaryContainer={"ModelPackageName": package_arn},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/model",
    )
    variant = {"VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1}
    sm.create_endpoint_config(
        EndpointConfigName=model, ProductionVariants=[{**variant, "InstanceType": "ml.m5.large"}]
    )
    return str(sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=model)["EndpointArn"])


def test_prods_drift_run_resolves_the_promoted_versions_copied_reference(
    moto_aws: None, baseline_output: Path, tmp_path: Path
) -> None:
    """Staging version with the pipeline's baseline -> ``mlops promote`` -> prod endpoint ->
    the Prepare step of prod's drift run -> the reference the job downloads is the copy."""
    s3, sm = boto3.client("s3"), boto3.client("sagemaker")
    names = promote.PromotionNames.for_project("mlops", target_bucket="mlops-prod-artifacts")
    for bucket in ("mlops-staging-artifacts", names.target_bucket):
        s3.create_bucket(Bucket=bucket)
    run = "pipelines/mlops-staging-model-build/exec-7"
    for path in sorted(baseline_output.iterdir()):
        s3.upload_file(str(path), "mlops-staging-artifacts", f"{run}/{PREFIX_IN_RUN}/{path.name}")
    s3.put_object(Bucket="mlops-staging-artifacts", Key=f"{run}/model.tar.gz", Body=b"model")
    statistics = f"s3://mlops-staging-artifacts/{run}/{PREFIX_IN_RUN}/{c.STATISTICS_FILE}"
    for group in (names.source_group, names.target_group):
        sm.create_model_package_group(ModelPackageGroupName=group)
    staged = sm.create_model_package(
        ModelPackageGroupName=names.source_group,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
                    "ModelDataUrl": f"s3://mlops-staging-artifacts/{run}/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        DriftCheckBaselines={
            "ModelDataQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": statistics},
                "Constraints": {
                    "ContentType": "application/json",
                    "S3Uri": statistics.replace(c.STATISTICS_FILE, c.CONSTRAINTS_FILE),
                },
            }
        },
    )["ModelPackageArn"]
    endpoint_arn = _endpoint(sm, names.source_endpoint, "mlops-staging-deploy-v1-a", staged)
    sm.add_tags(ResourceArn=endpoint_arn, Tags=[{"Key": "model-package-arn", "Value": staged}])
    session = boto3.Session()
    promoted = promote.promote(staged, source=session, target=session, names=names)
    assert promoted.target_package_arn is not None
    prod_endpoint = "mlops-prod-endpoint"
    _endpoint(sm, prod_endpoint, "mlops-prod-deploy-v1-a", promoted.target_package_arn)
    s3.put_object(  # one captured request in the run's window
        Bucket=names.target_bucket,
        Key=f"data-capture/{prod_endpoint}/AllTraffic/2026/01/15/11/capture.jsonl",
        Body=b"{}",
    )

    prepared = launch.handler(
        {
            "action": "prepare",
            "trigger": {"reason": "schedule", "scheduledTime": "2026-01-15T12:07:31Z"},
            "endpointName": prod_endpoint,
            "variantName": "AllTraffic",
            "bucket": names.target_bucket,
            "capturePrefix": "data-capture/",
            "reportPrefix": "drift-reports/",
            "windowHours": 2,
            "jobNamePrefix": "mlops-prod-drift",
            "executionArn": "arn:aws:states:us-east-1:123456789012:execution:mlops-prod-drift:x",
            "executionStartTime": "2026-01-15T12:08:00Z",
        },
        clients={"s3": s3, "sagemaker": sm},
    )

    assert prepared["run"] is True
    assert prepared["modelPackageArn"] == promoted.target_package_arn
    reference = prepared["referenceUri"]
    assert reference == (
        f"s3://{names.target_bucket}/promoted-models/{names.source_group}/v1/baselines/"
        f"{c.REFERENCE_FILE}"
    )
    # The job's baseline input is the reference's prefix (S3Prefix): what it downloads.
    bucket, key = reference[len("s3://") :].split("/", 1)
    local = tmp_path / c.REFERENCE_FILE
    s3.download_file(bucket, key, str(local))
    frame, features = job.load_reference(local)
    assert features == list(c.FEATURES)
    original, _ = job.load_reference(baseline_output / c.REFERENCE_FILE)
    pd.testing.assert_frame_equal(frame, original)
