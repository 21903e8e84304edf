"""The drift workflow of the ``mlops-dev`` stage (session synth) EXECUTED in moto's Step
Functions: launcher Lambda in-process, the processing job run by the harness on the shipped
batches (tests/monitoring/drift_moto.py), SageMaker/S3/CloudWatch/SNS in moto."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.app_builder import load_cdk_json_context
from infra.config import CONTEXT_KEY, load_config
from monitoring.drift import batches, job, metrics
from pipelines.model_build.contract import BUNDLED_DATASET
from tests.monitoring.drift_memo import shared_drift_runs
from tests.monitoring.drift_moto import (
    BUCKET,
    JOB_ROLE_ARN,
    KEY_ARN,
    MOTO_ACCOUNT,
    REGION,
    Harness,
    definition,
    drift_state_machine,
    in_process_launcher,
    sagemaker_sync,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # evidently's imports

STAGE = "mlops-dev"
SCHEDULED = "2026-01-15T12:00:00Z"  # the shipped batches' capture hours are 10 and 11 UTC
BASELINE_PREFIX = "pipelines/mlops-dev-model-build/exec-1/DataQualityBaseline/baseline"
JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


@pytest.fixture(scope="module")
def naming() -> Any:
    config = load_config(load_cdk_json_context()[CONTEXT_KEY])
    (stage,) = [s for s in config.stages_for_branch("main") if s.stage_id == STAGE]
    return stage.naming


@pytest.fixture
def harness(
    moto_aws: None,
    templates: dict[str, dict[str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Harness]:
    template = templates[STAGE]["Operations"]
    sns = boto3.client("sns", region_name=REGION)
    topic_arn = sns.create_topic(Name="operations")["TopicArn"]
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="operations-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    resources = template["Resources"]

    def resolve(token: dict[str, Any]) -> str:
        if token.get("Ref") == "AWS::Partition":
            return "aws"
        if "Ref" in token and resources[token["Ref"]]["Type"] == "AWS::SNS::Topic":
            return str(topic_arn)
        if "Fn::GetAtt" in token:
            logical_id, attribute = token["Fn::GetAtt"]
            resource = resources[logical_id]
            if resource["Type"] == "AWS::Lambda::Function" and attribute == "Arn":
                name = resource["Properties"]["FunctionName"]
                return f"arn:aws:lambda:{REGION}:{MOTO_ACCOUNT}:function:{name}"
            if resource["Type"] == "AWS::IAM::Role" and "JobRole" in logical_id:
                return JOB_ROLE_ARN
        if "Fn::Sub" in token and ".dkr.ecr." in token["Fn::Sub"]:
            return str(token["Fn::Sub"]).replace("${AWS::URLSuffix}", "amazonaws.com")
        if "Fn::GetStackOutput" in token:
            output = token["Fn::GetStackOutput"]["OutputName"]
            if "ArtifactsBucket" in output:
                return BUCKET
            if "DataLakeKey" in output:
                return KEY_ARN
        raise KeyError(f"no test value for token {token}")

    machine = drift_state_machine(template, STAGE)
    arn = boto3.client("stepfunctions", region_name=REGION).create_state_machine(
        name=machine["Properties"]["StateMachineName"],
        definition=json.dumps(definition(machine, resolve)),
        roleArn=f"arn:aws:iam::{MOTO_ACCOUNT}:role/drift-workflow",
    )["stateMachineArn"]
    harness = Harness(arn, queue_url, tmp_path)
    in_process_launcher(monkeypatch, harness.lambda_events)
    sagemaker_sync(monkeypatch, tmp_path, harness.jobs)
    with shared_drift_runs():  # drift_local compares the same batches at the same hour
        yield harness


def serve(naming: Any, *, with_baseline: bool = True) -> str:
    """A model version like the pipeline registers (reference.csv next to statistics.json),
    served by the stage's endpoint like the deployment workflow creates it."""
    s3 = boto3.client("s3", region_name=REGION)
    sm = boto3.client("sagemaker", region_name=REGION)
    # The reference sample: the bundled dataset's feature columns (like the Baseline step's).
    s3.upload_file(
        str(batches.REPO_ROOT / BUNDLED_DATASET), BUCKET, f"{BASELINE_PREFIX}/reference.csv"
    )
    s3.put_object(Bucket=BUCKET, Key=f"{BASELINE_PREFIX}/statistics.json", Body=b"{}")
    group = naming.model_package_group
    sm.create_model_package_group(ModelPackageGroupName=group)
    kwargs: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "ModelApprovalStatus": "Approved",
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
                    "ModelDataUrl": f"s3://{BUCKET}/pipelines/run-1/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["text/csv", "application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    }
    if with_baseline:
        kwargs["DriftCheckBaselines"] = {
            "ModelDataQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": f"s3://{BUCKET}/{BASELINE_PREFIX}/statistics.json",
                }
            }
        }
    package = str(sm.create_model_package(**kwargs)["ModelPackageArn"])
    model = f"{naming.prefix}-deploy-v1-abc123"
    sm.create_model(
        ModelName=model,
        PrimaryContainer={"ModelPackageName": package},
        ExecutionRoleArn=f"arn:aws:iam::{MOTO_ACCOUNT}:role/model",
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"{model}-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": model,
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
            }
        ],
    )
    sm.create_endpoint(EndpointName=naming.endpoint, EndpointConfigName=f"{model}-config")
    return package


def upload_capture(naming: Any, batch: str) -> list[str]:
    """A shipped batch's capture files under the endpoint's data-capture prefix."""
    s3 = boto3.client("s3", region_name=REGION)
    root = batches.capture_root(batches.DATA_DIR, batch)
    keys = []
    for path in sorted(root.rglob("*.jsonl")):
        key = f"data-capture/{naming.endpoint}/AllTraffic/{path.relative_to(root).as_posix()}"
        s3.upload_file(str(path), BUCKET, key)
        keys.append(key)
    return keys


def drift_datums() -> dict[tuple[str, str | None], list[float]]:
    """What moto's CloudWatch holds in the drift namespace: (metric, feature) -> values."""
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    found: dict[tuple[str, str | None], list[float]] = {}
    for metric in cloudwatch.list_metrics(Namespace=metrics.DEFAULT_NAMESPACE)["Metrics"]:
        dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
        stats = cloudwatch.get_metric_statistics(
            Namespace=metrics.DEFAULT_NAMESPACE,
            MetricName=metric["MetricName"],
            Dimensions=metric["Dimensions"],
            StartTime="2026-01-15T00:00:00Z",
            EndTime="2026-01-16T00:00:00Z",
            Period=3600,
            Statistics=["Maximum"],
        )["Datapoints"]
        found[(metric["MetricName"], dims.get("Feature"))] = [p["Maximum"] for p in stats]
    return found


def feature_names() -> list[str]:
    with (batches.REPO_ROOT / BUNDLED_DATASET).open(newline="") as handle:
        return [c for c in next(csv.reader(handle)) if c != "target"]


def test_a_scheduled_run_on_the_shifted_batch_reports_publishes_and_notifies(
    harness: Harness, naming: Any
) -> None:
    package = serve(naming)
    keys = upload_capture(naming, "shifted")
    result = harness.run({"reason": "schedule", "scheduledTime": SCHEDULED}, "sched-1")
    visited = harness.visited(result["executionArn"])
    assert result["status"] == "SUCCEEDED", (visited, json.dumps(harness.notifications()))
    assert visited == [
        "Prepare",
        "HasCapture",
        "RunDriftJob",
        "Publish",
        "DriftFound",
        "NotifyDrift",
        "Done",
    ]
    (run,) = harness.jobs
    request = run["request"]
    name = request["ProcessingJobName"]
    assert JOB_NAME.match(name) and name.startswith(f"{naming.prefix}-drift-2026011512-")
    # Network-isolated, encrypted with the stage key, the drift image, the job's own role.
    assert request["NetworkConfig"]["EnableNetworkIsolation"] is True
    assert request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KEY_ARN
    assert request["ProcessingOutputConfig"]["KmsKeyId"] == KEY_ARN
    assert request["RoleArn"] == JOB_ROLE_ARN
    assert ".dkr.ecr.us-east-1.amazonaws.com/cdk-" in request["AppSpecification"]["ImageUri"]
    # Exactly the job's command line: the window of the 24 h before the scheduled hour.
    run_prefix = f"drift-reports/{naming.endpoint}/{name}"
    reference_uri = f"s3://{BUCKET}/{BASELINE_PREFIX}/reference.csv"
    arguments = request["AppSpecification"]["ContainerArguments"]
    assert arguments == [
        "--reference",
        "/opt/ml/processing/input/baseline",
        "--capture-dir",
        "/opt/ml/processing/input/capture",
        "--preselected",
        "--window-start",
        "2026-01-14T12:00:00Z",
        "--window-end",
        SCHEDULED,
        "--endpoint-name",
        naming.endpoint,
        "--output-dir",
        "/opt/ml/processing/output/report",
        "--namespace",
        metrics.DEFAULT_NAMESPACE,
        "--model-package-arn",
        package,
        "--reference-uri",
        reference_uri,
    ]
    parsed = job.build_parser().parse_args(arguments)
    assert parsed.preselected and not parsed.publish_metrics  # isolated: the Lambda publishes
    # Inputs: the served package's reference and a manifest of exactly the window's files.
    inputs = {i["InputName"]: i["S3Input"] for i in request["ProcessingInputs"]}
    assert inputs["baseline"]["S3Uri"] == reference_uri
    assert inputs["capture"]["S3DataType"] == "ManifestFile"
    s3 = boto3.client("s3", region_name=REGION)
    manifest = json.loads(
        s3.get_object(Bucket=BUCKET, Key=f"{run_prefix}/input/manifest.json")["Body"].read()
    )
    base = f"data-capture/{naming.endpoint}/AllTraffic/"
    assert manifest[0] == {"prefix": f"s3://{BUCKET}/{base}"}
    assert sorted(base + k for k in manifest[1:]) == keys
    # The report in S3, the metrics in CloudWatch, the notice with the report's place.
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{run_prefix}/report/")["Contents"]
    assert {o["Key"].rsplit("/", 1)[1] for o in listed} == {
        "drift_report.json",
        "drift_report.html",
        "metric_data.json",
    }
    report = json.loads(
        s3.get_object(Bucket=BUCKET, Key=f"{run_prefix}/report/drift_report.json")["Body"].read()
    )
    drifted = batches.shifted_features(feature_names())
    assert report["summary"]["drifted_features"] == drifted
    datums = drift_datums()
    assert datums[(metrics.SHARE_OF_DRIFTED_FEATURES, None)] == [pytest.approx(20 / 30)]
    assert datums[(metrics.DATASET_DRIFT, None)] == [1.0]
    assert datums[(metrics.FEATURE_DRIFT, drifted[0])] == [1.0]
    steady = next(f for f in feature_names() if f not in drifted)
    assert datums[(metrics.FEATURE_DRIFT, steady)] == [0.0]
    (notice,) = harness.notifications()
    assert notice["subject"] == f"{naming.prefix} data drift detected"
    assert notice["report"] == f"s3://{BUCKET}/{run_prefix}/report/drift_report.html"
    assert notice["driftedFeatures"] == drifted
    assert notice["shareOfDriftedFeatures"] == pytest.approx(20 / 30)
    assert notice["modelPackageArn"] == package
    assert notice["window"] == {"start": "2026-01-14T12:00:00Z", "end": SCHEDULED}


def test_a_clean_batch_publishes_metrics_without_a_drift_notice(
    harness: Harness, naming: Any
) -> None:
    serve(naming)
    upload_capture(naming, "clean")
    result = harness.run({"reason": "schedule", "scheduledTime": SCHEDULED}, "sched-1")
    assert result["status"] == "SUCCEEDED", json.dumps(harness.notifications())
    assert harness.visited(result["executionArn"])[-2:] == ["DriftFound", "Done"]
    datums = drift_datums()
    assert datums[(metrics.SHARE_OF_DRIFTED_FEATURES, None)] == [0.0]
    assert datums[(metrics.DATASET_DRIFT, None)] == [0.0]
    assert harness.notifications() == []


@pytest.mark.parametrize("case", ["no endpoint", "no capture in the window"])
def test_nothing_to_compare_ends_without_a_job_or_notice(
    harness: Harness, naming: Any, case: str
) -> None:
    if case != "no endpoint":
        serve(naming)
        upload_capture(naming, "shifted")
    later = "2026-02-01T00:00:00Z" if case != "no endpoint" else SCHEDULED
    result = harness.run({"reason": "schedule", "scheduledTime": later}, "sched-1")
    assert result["status"] == "SUCCEEDED", json.dumps(harness.notifications())
    assert harness.visited(result["executionArn"]) == [
        "Prepare",
        "HasCapture",
        "NothingToCompare",
        "Done",
    ]
    output = json.loads(result["output"])
    assert output["prepare"]["run"] is False
    assert ("does not exist" if case == "no endpoint" else "no captured requests") in (
        output["prepare"]["why"]
    )
    assert harness.jobs == [] and harness.notifications() == []
    assert drift_datums() == {}


def test_a_package_without_a_baseline_fails_the_run_and_tells_the_topic(
    harness: Harness, naming: Any
) -> None:
    package = serve(naming, with_baseline=False)
    upload_capture(naming, "shifted")
    result = harness.run({"reason": "schedule", "scheduledTime": SCHEDULED}, "sched-1")
    assert result["status"] == "FAILED"
    assert harness.visited(result["executionArn"])[-2:] == ["NotifyFailure", "DriftRunFailed"]
    assert harness.jobs == []
    (notice,) = harness.notifications()
    assert notice["subject"] == f"{naming.prefix} drift run failed"
    assert notice["error"] == "BaselineError"
    assert package in notice["cause"] and "DriftCheckBaselines" in notice["cause"]


def test_a_failed_job_fails_the_run_publishes_nothing_and_tells_the_topic(
    harness: Harness, naming: Any
) -> None:
    """Two executions for the same scheduled hour (a Scheduler retry starts a second one): each
    gets its own valid job name; a job that fails fails its run, publishes nothing and tells
    the operations topic."""
    serve(naming)
    # Records the endpoint would have refused: the job finds no usable row and exits 1.
    s3 = boto3.client("s3", region_name=REGION)
    bad = "\n".join(json.dumps({"captureData": {}, "eventMetadata": {}}) for _ in range(3))
    s3.put_object(
        Bucket=BUCKET,
        Key=f"data-capture/{naming.endpoint}/AllTraffic/2026/01/15/11/bad.jsonl",
        Body=bad.encode(),
    )
    for execution in ("first", "retry"):
        result = harness.run({"reason": "schedule", "scheduledTime": SCHEDULED}, execution)
        assert result["status"] == "FAILED"
        assert harness.visited(result["executionArn"])[-3:] == [
            "RunDriftJob",
            "NotifyFailure",
            "DriftRunFailed",
        ]
    names = [j["request"]["ProcessingJobName"] for j in harness.jobs]
    assert len(set(names)) == 2 and all(JOB_NAME.match(n) for n in names)
    listed = boto3.client("sagemaker", region_name=REGION).list_processing_jobs()
    assert sorted(s["ProcessingJobName"] for s in listed["ProcessingJobSummaries"]) == sorted(names)
    for run in harness.jobs:
        assert run["status"] == "Failed" and "no usable captured rows" in run["reason"]
    notices = harness.notifications()
    assert len(notices) == 2
    for notice in notices:
        assert notice["subject"] == f"{naming.prefix} drift run failed"
        assert notice["error"] == "States.TaskFailed"
        cause = json.loads(notice["cause"])
        assert cause["ProcessingJobStatus"] == "Failed"
        assert "no usable captured rows" in cause["FailureReason"]
    assert drift_datums() == {}


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ({"reason": "schedule", "scheduledTime": "yesterday"}, "not an ISO 8601 time"),
        ({"reason": "schedule", "scheduledTime": "2026-01-15T12:00:00"}, "has no time zone"),
    ],
)
def test_a_malformed_trigger_is_rejected_before_any_call(
    harness: Harness, naming: Any, trigger: dict[str, Any], expected: str
) -> None:
    serve(naming)
    upload_capture(naming, "shifted")
    result = harness.run(trigger, "bad-1")
    assert result["status"] == "FAILED"
    assert harness.jobs == []
    (notice,) = harness.notifications()
    assert notice["error"] == "LaunchError" and expected in notice["cause"]
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(
        Bucket=BUCKET, Prefix="drift-reports/"
    )
    assert listed.get("KeyCount", 0) == 0


def test_a_manual_start_without_a_scheduled_time_uses_the_execution_start(
    harness: Harness, naming: Any
) -> None:
    serve(naming)
    result = harness.run({"reason": "manual"}, "manual-1")
    assert result["status"] == "SUCCEEDED", json.dumps(harness.notifications())
    (prepare,) = [e for e in harness.lambda_events if e["action"] == "prepare"]
    assert prepare["trigger"] == {"reason": "manual"}
    output = json.loads(result["output"])["prepare"]
    start = result["startDate"].astimezone(UTC)
    assert output["windowEnd"] == f"{start:%Y-%m-%dT%H}:00:00Z"
    assert output["why"].startswith("no captured requests")
