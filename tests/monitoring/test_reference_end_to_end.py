"""The pipeline's reference sample, found the way the drift job finds it, drives the drift core.

The local pipeline runner (``make pipeline-local``'s ``LocalPipeline``) runs Preprocess and
DataQualityBaseline on the bundled dataset with the contract's arguments; their output prefix is
uploaded to (moto) S3 as the SageMaker pipeline would, registered as the package's drift-check
``statistics.json`` and served by an endpoint. ``monitoring.drift.baseline`` then resolves the
endpoint -> model -> package -> ``reference.csv``; the file read back from S3 is the reference of
the drift job on the shipped clean and shifted capture batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest

from monitoring.drift import baseline, batches, capture, core, job
from pipelines.model_build import contract as c
from pipelines.model_build import local_run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # evidently's imports

BUCKET = "mlops-dev-artifacts"
PREFIX = "model-build/exec-7/DataQualityBaseline/baseline"
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
