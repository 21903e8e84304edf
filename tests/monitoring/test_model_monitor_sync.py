"""lambdas/monitor_sync: the Model Monitor backend's Lambda, against botocore's Stubber (moto has
no monitoring-schedule or job-definition APIs). The Stubber checks every request against the
real botocore SageMaker model as the client sends it, and every stubbed response against the
output shape; each request this function sends is also validated against the whole input shape
(tests/botocore_shapes.py: patterns, enums, lengths). The calls expected are the exact sequence:
an extra or missing call fails the test."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from lambdas.monitor_sync import handler as h
from tests.botocore_shapes import validate

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REGION = "us-east-1"
ACCOUNT = "111111111111"
ENDPOINT = "mlops-staging-endpoint"
GROUP = "mlops-staging-models"
NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
SETTINGS = h.Settings(
    endpoint_name=ENDPOINT,
    model_package_group_name=GROUP,
    resource_prefix="mlops-staging-mm",
    role_arn=f"arn:aws:iam::{ACCOUNT}:role/mlops-staging-model-monitor",
    kms_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    output_s3_uri="s3://mlops-staging-artifacts/monitoring/model-monitor",
    image_uri="156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer",
    schedule_expression="cron(0 * ? * * *)",
    window_hours=1,
    instance_type="ml.m5.xlarge",
)
WITH_GROUND_TRUTH = replace(SETTINGS, ground_truth_s3_uri="s3://mlops-staging-labels/ground-truth")
BASELINE = "s3://mlops-staging-artifacts/pipelines/p/exec1/DataQualityBaseline/baseline"


def documented_event() -> dict[str, Any]:
    """AWS's sample "SageMaker Endpoint State Change" event (see the fixture's _source)."""
    doc = json.loads((FIXTURES / "sagemaker_endpoint_state_change.json").read_text())
    doc.pop("_source")
    return doc  # type: ignore[no-any-return]


def stage_event() -> dict[str, Any]:
    """The documented event, about this stage's endpoint."""
    event = documented_event()
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"
    event.update(account=ACCOUNT, region=REGION, resources=[arn])
    event["detail"].update(EndpointName=ENDPOINT, EndpointArn=arn)
    return event


# ---- stubbed responses (valid output shapes) ------------------------------------------------


def package_arn(version: int) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/{version}"


def endpoint(*, capture: bool = True, status: str = "InService") -> dict[str, Any]:
    response: dict[str, Any] = {
        "EndpointName": ENDPOINT,
        "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}",
        "EndpointConfigName": "mlops-staging-deploy-v3-abc",
        "EndpointStatus": status,
        "CreationTime": NOW,
        "LastModifiedTime": NOW,
    }
    if capture:
        response["DataCaptureConfig"] = {
            "EnableCapture": True,
            "CaptureStatus": "Started",
            "CurrentSamplingPercentage": 100,
            "DestinationS3Uri": "s3://mlops-staging-artifacts/data-capture/",
            "KmsKeyId": SETTINGS.kms_key_arn,
        }
    return response


def endpoint_config() -> dict[str, Any]:
    return {
        "EndpointConfigName": "mlops-staging-deploy-v3-abc",
        "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/x",
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "mlops-staging-v3"}],
        "CreationTime": NOW,
    }


def model(version: int) -> dict[str, Any]:
    return {
        "ModelName": "mlops-staging-v3",
        "ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/mlops-staging-v3",
        "CreationTime": NOW,
        "PrimaryContainer": {"ModelPackageName": package_arn(version)},
    }


def package(
    version: int, *, baseline: bool = True, group: str = GROUP, model_monitor_format: bool = True
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "ModelPackageName": group,
        "ModelPackageGroupName": group,
        "ModelPackageVersion": version,
        "ModelPackageArn": package_arn(version),
        "CreationTime": NOW,
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
    }
    if model_monitor_format:
        response["CustomerMetadataProperties"] = {
            h.BASELINE_FORMAT_METADATA: h.BASELINE_FORMAT_MODEL_MONITOR,
            "InputDataVersion": "2026-11-30.1",
        }
    if baseline:
        response["DriftCheckBaselines"] = {
            "ModelDataQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": f"{BASELINE}/v{version}/statistics.json",
                },
                "Constraints": {
                    "ContentType": "application/json",
                    "S3Uri": f"{BASELINE}/v{version}/constraints.json",
                },
            }
        }
    return response


def summary(name: str) -> dict[str, Any]:
    return {
        "MonitoringJobDefinitionName": name,
        "MonitoringJobDefinitionArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:"
        f"data-quality-job-definition/{name}",
        "CreationTime": NOW,
        "EndpointName": ENDPOINT,
    }


def schedule(config: dict[str, Any]) -> dict[str, Any]:
    name = SETTINGS.schedule_name(h.DATA_QUALITY)
    return {
        "MonitoringScheduleArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:monitoring-schedule/{name}",
        "MonitoringScheduleName": name,
        "MonitoringScheduleStatus": "Scheduled",
        "CreationTime": NOW,
        "LastModifiedTime": NOW,
        "MonitoringScheduleConfig": config,
    }


def schedule_config(definition: str, settings: h.Settings = SETTINGS) -> dict[str, Any]:
    return {
        "ScheduleConfig": {"ScheduleExpression": settings.schedule_expression},
        "MonitoringJobDefinitionName": definition,
        "MonitoringType": "DataQuality",
    }


# ---- the harness -----------------------------------------------------------------------------


class Calls:
    """The Stubber with helpers; every request this function sends is shape-validated."""

    def __init__(self, stubber: Stubber) -> None:
        self.stubber = stubber
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def ok(self, operation: str, response: dict[str, Any], params: Any = None) -> None:
        self.stubber.add_response(operation, response, params)

    def missing(self, operation: str, params: Any = None) -> None:
        self.stubber.add_client_error(
            operation, "ResourceNotFound", "not found", 400, expected_params=params
        )

    def served(self, version: int, **package_options: Any) -> None:
        self.ok("describe_endpoint", endpoint(), {"EndpointName": ENDPOINT})
        self.ok("describe_endpoint_config", endpoint_config())
        self.ok("describe_model", model(version), {"ModelName": "mlops-staging-v3"})
        self.ok(
            "describe_model_package",
            package(version, **package_options),
            {"ModelPackageName": package_arn(version)},
        )


@pytest.fixture
def calls() -> Iterator[tuple[Any, Calls]]:
    client = boto3.client(
        "sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    sent: list[tuple[str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        sent.append((model.name, copy.deepcopy(params)))

    client.meta.events.register("provide-client-params.sagemaker.*", record)
    with Stubber(client) as stubber:
        harness = Calls(stubber)
        harness.requests = sent
        yield client, harness
        stubber.assert_no_pending_responses()
    for operation, params in sent:  # the whole input shape, not only what botocore checks
        assert validate("sagemaker", operation, params) == [], operation


def served(version: int) -> h.ServedPackage:
    return h.ServedPackage(
        package_arn(version),
        version,
        f"{BASELINE}/v{version}/statistics.json",
        f"{BASELINE}/v{version}/constraints.json",
    )


def dq_request(version: int, settings: h.Settings = SETTINGS) -> dict[str, Any]:
    return h.data_quality_request(settings, served(version))


def dq_name(version: int, settings: h.Settings = SETTINGS) -> str:
    return h.definition_name(settings, h.DATA_QUALITY, version, dq_request(version, settings))


def expect_first_sync(harness: Calls, version: int, existing: list[str]) -> None:
    harness.served(version)
    harness.missing("describe_data_quality_job_definition")
    harness.ok("create_data_quality_job_definition", {"JobDefinitionArn": "arn:x"})
    harness.missing("describe_monitoring_schedule")
    harness.ok("create_monitoring_schedule", {"MonitoringScheduleArn": "arn:x"})
    harness.ok(
        "list_data_quality_job_definitions",
        {"JobDefinitionSummaries": [summary(n) for n in existing]},
        {"NameContains": "mlops-staging-mm-dq-v", "MaxResults": 100},
    )


def sent(harness: Calls, operation: str) -> list[dict[str, Any]]:
    return [params for name, params in harness.requests if name == operation]


# ---- events ------------------------------------------------------------------------------------


def test_the_documented_sample_event_is_accepted_for_its_endpoint_only() -> None:
    assert h.parse_event(documented_event(), "MyEndpoint") is None  # raises InvalidEvent if not
    assert h.parse_event(stage_event(), ENDPOINT) is None
    # The same documented event names another endpoint than this stage's: refused.
    with pytest.raises(h.InvalidEvent, match="MyEndpoint"):
        h.parse_event(documented_event(), ENDPOINT)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e.update(source="aws.s3"), "expected source 'aws.sagemaker'"),
        (lambda e: e.update({"detail-type": "SageMaker Model State Change"}), "detail-type"),
        (lambda e: e.pop("detail"), "no detail object"),
        (lambda e: e["detail"].update(EndpointName="other-endpoint"), "endpoint 'other-endpoint'"),
        (lambda e: e["detail"].pop("EndpointName"), "endpoint None"),
        (lambda e: e["detail"].update(EndpointStatus="UPDATING"), "'UPDATING' is not IN_SERVICE"),
    ],
)
def test_a_malformed_event_is_rejected_without_any_call(
    calls: tuple[Any, Calls], change: Any, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = calls
    event = stage_event()
    change(event)
    result = h.sync(client, SETTINGS, event)
    assert result["action"] == "rejected" and message in result["reason"]
    assert "rejected event" in caplog.text  # logged; the Stubber saw no call at all


def test_a_non_object_event_is_rejected(calls: tuple[Any, Calls]) -> None:
    client, _ = calls
    assert h.sync(client, SETTINGS, ["not", "an", "event"])["action"] == "rejected"


# ---- syncing -----------------------------------------------------------------------------------


def test_first_event_creates_definition_and_schedule_and_deletes_the_superseded(
    calls: tuple[Any, Calls],
) -> None:
    client, harness = calls
    old = "mlops-staging-mm-dq-v2-0a1b2c3d"
    expect_first_sync(harness, 3, [old, dq_name(3)])
    harness.ok("delete_data_quality_job_definition", {}, {"JobDefinitionName": old})
    result = h.sync(client, SETTINGS, stage_event())
    (created,) = sent(harness, "CreateDataQualityJobDefinition")
    name = created["JobDefinitionName"]
    assert name == dq_name(3) and name.startswith("mlops-staging-mm-dq-v3-") and len(name) <= 63
    assert created == {"JobDefinitionName": name, **dq_request(3)}
    assert result["DataQuality"]["deleted"] == [old]
    assert result["DataQuality"]["created"] is True
    assert result["DataQuality"]["schedule"] == "created"
    # The served version's baseline, KMS everywhere, isolated, the monitoring role.
    baseline = created["DataQualityBaselineConfig"]
    assert baseline["StatisticsResource"]["S3Uri"] == f"{BASELINE}/v3/statistics.json"
    assert baseline["ConstraintsResource"]["S3Uri"] == f"{BASELINE}/v3/constraints.json"
    assert created["JobResources"]["ClusterConfig"]["VolumeKmsKeyId"] == SETTINGS.kms_key_arn
    assert created["DataQualityJobOutputConfig"]["KmsKeyId"] == SETTINGS.kms_key_arn
    assert created["NetworkConfig"]["EnableNetworkIsolation"] is True
    assert created["RoleArn"] == SETTINGS.role_arn
    assert created["DataQualityJobInput"]["EndpointInput"]["EndpointName"] == ENDPOINT
    (schedule_request,) = sent(harness, "CreateMonitoringSchedule")
    assert schedule_request == {
        "MonitoringScheduleName": "mlops-staging-mm-data-quality",
        "MonitoringScheduleConfig": schedule_config(name),
    }


def test_a_repeated_event_changes_nothing(calls: tuple[Any, Calls]) -> None:
    client, harness = calls
    request, name = dq_request(3), dq_name(3)
    harness.served(3)
    harness.ok(
        "describe_data_quality_job_definition",
        {
            "JobDefinitionArn": "arn:x",
            "JobDefinitionName": name,
            "CreationTime": NOW,
            "DataQualityAppSpecification": request["DataQualityAppSpecification"],
            "DataQualityJobInput": request["DataQualityJobInput"],
            "DataQualityJobOutputConfig": request["DataQualityJobOutputConfig"],
            "JobResources": request["JobResources"],
            "RoleArn": SETTINGS.role_arn,
        },
        {"JobDefinitionName": name},
    )
    harness.ok("describe_monitoring_schedule", schedule(schedule_config(name)))
    harness.ok("list_data_quality_job_definitions", {"JobDefinitionSummaries": [summary(name)]})
    result = h.sync(client, SETTINGS, stage_event())
    assert result["DataQuality"] == {
        "jobDefinition": name,
        "created": False,
        "schedule": "unchanged",
        "deleted": [],
    }
    assert not [op for op, _ in harness.requests if op.startswith(("Create", "Update", "Delete"))]


def test_a_new_version_updates_the_schedule_to_its_definition(calls: tuple[Any, Calls]) -> None:
    client, harness = calls
    old = "mlops-staging-mm-dq-v3-0a1b2c3d"
    harness.served(4)
    harness.missing("describe_data_quality_job_definition")
    harness.ok("create_data_quality_job_definition", {"JobDefinitionArn": "arn:x"})
    harness.ok("describe_monitoring_schedule", schedule(schedule_config(old)))
    harness.ok("update_monitoring_schedule", {"MonitoringScheduleArn": "arn:x"})
    harness.ok("list_data_quality_job_definitions", {"JobDefinitionSummaries": [summary(old)]})
    harness.ok("delete_data_quality_job_definition", {}, {"JobDefinitionName": old})
    result = h.sync(client, SETTINGS, stage_event())
    (update,) = sent(harness, "UpdateMonitoringSchedule")
    new = result["DataQuality"]["jobDefinition"]
    assert new.startswith("mlops-staging-mm-dq-v4-")
    assert update["MonitoringScheduleConfig"]["MonitoringJobDefinitionName"] == new
    assert result["DataQuality"]["deleted"] == [old]


def test_a_definition_in_use_is_left_for_later(
    calls: tuple[Any, Calls], caplog: pytest.LogCaptureFixture
) -> None:
    client, harness = calls
    old = "mlops-staging-mm-dq-v2-0a1b2c3d"
    expect_first_sync(harness, 3, [old])
    harness.stubber.add_client_error(
        "delete_data_quality_job_definition", "ResourceInUse", "in use", 400
    )
    result = h.sync(client, SETTINGS, stage_event())
    assert result["DataQuality"]["deleted"] == []
    assert f"could not delete {old}" in caplog.text


def test_ground_truth_adds_a_model_quality_definition_and_schedule(
    calls: tuple[Any, Calls],
) -> None:
    client, harness = calls
    expect_first_sync(harness, 3, [])
    harness.missing("describe_model_quality_job_definition")
    harness.ok("create_model_quality_job_definition", {"JobDefinitionArn": "arn:x"})
    harness.missing("describe_monitoring_schedule")
    harness.ok("create_monitoring_schedule", {"MonitoringScheduleArn": "arn:x"})
    harness.ok(
        "list_model_quality_job_definitions",
        {"JobDefinitionSummaries": []},
        {"NameContains": "mlops-staging-mm-mq-v", "MaxResults": 100},
    )
    h.sync(client, WITH_GROUND_TRUTH, stage_event())
    (created,) = sent(harness, "CreateModelQualityJobDefinition")
    assert created["ModelQualityAppSpecification"]["ProblemType"] == "BinaryClassification"
    job_input = created["ModelQualityJobInput"]
    assert job_input["GroundTruthS3Input"] == {"S3Uri": WITH_GROUND_TRUTH.ground_truth_s3_uri}
    assert job_input["EndpointInput"]["ProbabilityAttribute"] == "predictions[0].score"
    assert job_input["EndpointInput"]["ProbabilityThresholdAttribute"] == 0.5
    window = f"-PT{WITH_GROUND_TRUTH.window_hours}H"
    assert (
        job_input["EndpointInput"]["StartTimeOffset"],
        job_input["EndpointInput"]["EndTimeOffset"],
    ) == (window, "-PT0H")
    assert created["StoppingCondition"]["MaxRuntimeInSeconds"] <= 1800
    schedules = sent(harness, "CreateMonitoringSchedule")
    assert [s["MonitoringScheduleConfig"]["MonitoringType"] for s in schedules] == [
        "DataQuality",
        "ModelQuality",
    ]


def test_the_probability_attribute_matches_the_inference_response() -> None:
    from pipelines.model_build.model_code import inference

    body, _ = inference.encode_response([0.73], "application/json")  # type: ignore[arg-type]
    response = json.loads(body)
    assert response["predictions"][0]["score"] == pytest.approx(0.73)  # predictions[0].score
    assert inference.THRESHOLD == h.PROBABILITY_THRESHOLD


@pytest.mark.parametrize(
    ("responses", "reason"),
    [
        ({"capture": False}, "no data capture"),
        ({"status": "Updating"}, "endpoint is Updating"),
    ],
)
def test_no_schedule_without_capture_or_before_in_service(
    calls: tuple[Any, Calls], responses: dict[str, Any], reason: str
) -> None:
    client, harness = calls
    harness.ok("describe_endpoint", endpoint(**responses))
    result = h.sync(client, SETTINGS, stage_event())
    assert result["action"] == "skipped" and reason in result["reason"]


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"baseline": False}, "has no drift-check baseline"),
        # Built with drift_job: a drift-check baseline, but the repository's own format.
        ({"model_monitor_format": False}, "has no Model Monitor data-quality baseline"),
        ({"group": "another-group"}, "is not a package of mlops-staging-models"),
    ],
)
def test_no_schedule_for_a_package_without_baseline_or_of_another_group(
    calls: tuple[Any, Calls], options: dict[str, Any], reason: str
) -> None:
    client, harness = calls
    harness.served(3, **options)
    result = h.sync(client, SETTINGS, stage_event())
    assert result["action"] == "skipped" and reason in result["reason"]


def test_settings_come_from_the_environment() -> None:
    env = {
        "ENDPOINT_NAME": ENDPOINT,
        "MODEL_PACKAGE_GROUP_NAME": GROUP,
        "RESOURCE_PREFIX": "mlops-staging-mm",
        "ROLE_ARN": SETTINGS.role_arn,
        "KMS_KEY_ARN": SETTINGS.kms_key_arn,
        "OUTPUT_S3_URI": SETTINGS.output_s3_uri + "/",
        "IMAGE_URI": SETTINGS.image_uri,
        "SCHEDULE_EXPRESSION": SETTINGS.schedule_expression,
        "WINDOW_HOURS": "1",
        "INSTANCE_TYPE": "ml.m5.xlarge",
        "GROUND_TRUTH_S3_URI": "",
        "SUBNET_IDS": "",
        "SECURITY_GROUP_IDS": "",
    }
    assert h.Settings.from_environment(env) == SETTINGS
    vpc = h.Settings.from_environment(
        {**env, "SUBNET_IDS": "subnet-1,subnet-2", "SECURITY_GROUP_IDS": "sg-1"}
    )
    request = h.data_quality_request(vpc, h.ServedPackage("a", 1, "s3://b/s", "s3://b/c"))
    assert request["NetworkConfig"]["VpcConfig"] == {
        "SecurityGroupIds": ["sg-1"],
        "Subnets": ["subnet-1", "subnet-2"],
    }


def test_new_settings_are_a_new_definition_name() -> None:
    served = h.ServedPackage(package_arn(3), 3, "s3://b/s", "s3://b/c")
    names = {
        h.definition_name(s, h.DATA_QUALITY, 3, h.data_quality_request(s, served))
        for s in (SETTINGS, replace(SETTINGS, instance_type="ml.m5.large"))
    }
    assert len(names) == 2


def test_the_handler_reads_its_settings_and_rejects_a_malformed_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in {
        "ENDPOINT_NAME": ENDPOINT,
        "MODEL_PACKAGE_GROUP_NAME": GROUP,
        "RESOURCE_PREFIX": "p",
        "ROLE_ARN": "r",
        "KMS_KEY_ARN": "k",
        "OUTPUT_S3_URI": "s3://b/p",
        "IMAGE_URI": "i",
        "SCHEDULE_EXPRESSION": "cron(0 * ? * * *)",
        "WINDOW_HOURS": "1",
        "INSTANCE_TYPE": "ml.m5.xlarge",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    assert h.handler({"source": "aws.ec2"}, None)["action"] == "rejected"


def test_the_baseline_format_marker_is_the_pipelines() -> None:
    from pipelines.model_build import definition

    assert (h.BASELINE_FORMAT_METADATA, h.BASELINE_FORMAT_MODEL_MONITOR) == (
        definition.BASELINE_FORMAT_METADATA,
        definition.BASELINE_FORMAT_MODEL_MONITOR,
    )


# ---- a promoted version (prod) --------------------------------------------------------------


def test_a_promoted_version_is_scheduled_on_its_promoted_baseline(
    moto_aws: None, calls: tuple[Any, Calls]
) -> None:
    """Prod serves what ``mlops promote`` registered: the description moto gives of that
    version (the Stubber checks it against DescribeModelPackage's output shape) is synced, and the
    job definition reads the baseline copies in prod's bucket."""
    from deployment import promote

    names = promote.PromotionNames.for_project("mlops", target_bucket="mlops-prod-artifacts")
    s3, sm = boto3.client("s3"), boto3.client("sagemaker")
    for bucket in ("mlops-staging-artifacts", names.target_bucket):
        s3.create_bucket(Bucket=bucket)
    for name in ("model.tar.gz", "statistics.json", "constraints.json"):
        s3.put_object(Bucket="mlops-staging-artifacts", Key=f"run/{name}", Body=b"{}")
    staging_baseline = {
        kind: {"ContentType": "application/json", "S3Uri": f"s3://mlops-staging-artifacts/run/{f}"}
        for kind, f in (("Statistics", "statistics.json"), ("Constraints", "constraints.json"))
    }
    for group in (names.source_group, names.target_group):
        sm.create_model_package_group(ModelPackageGroupName=group)
    staged = sm.create_model_package(
        ModelPackageGroupName=names.source_group,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
                    "ModelDataUrl": "s3://mlops-staging-artifacts/run/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        DriftCheckBaselines={"ModelDataQuality": staging_baseline},
        CustomerMetadataProperties={h.BASELINE_FORMAT_METADATA: h.BASELINE_FORMAT_MODEL_MONITOR},
    )["ModelPackageArn"]
    sm.create_model(
        ModelName="mlops-staging-deploy-v1-a",
        PrimaryContainer={"ModelPackageName": staged},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/model",
    )
    sm.create_endpoint_config(
        EndpointConfigName="mlops-staging-deploy-v1-a",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "mlops-staging-deploy-v1-a",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    arn = sm.create_endpoint(
        EndpointName=names.source_endpoint, EndpointConfigName="mlops-staging-deploy-v1-a"
    )["EndpointArn"]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": promote.PACKAGE_TAG, "Value": staged}])
    session = boto3.Session()
    result = promote.promote(staged, source=session, target=session, names=names)
    assert result.target_package_arn is not None
    described = sm.describe_model_package(ModelPackageName=result.target_package_arn)
    described.pop("ResponseMetadata")
    # moto omits this required output member; SageMaker names a version by its group
    described.setdefault("ModelPackageName", names.target_group)

    prod = replace(
        SETTINGS,
        endpoint_name="mlops-prod-endpoint",
        model_package_group_name=names.target_group,
        resource_prefix="mlops-prod-mm",
    )
    client, harness = calls
    prod_endpoint = dict(endpoint(), EndpointName=prod.endpoint_name)
    harness.ok("describe_endpoint", prod_endpoint, {"EndpointName": prod.endpoint_name})
    harness.ok("describe_endpoint_config", endpoint_config())
    harness.ok(
        "describe_model",
        dict(model(1), PrimaryContainer={"ModelPackageName": result.target_package_arn}),
    )
    harness.ok("describe_model_package", described, {"ModelPackageName": result.target_package_arn})
    harness.missing("describe_data_quality_job_definition")
    harness.ok("create_data_quality_job_definition", {"JobDefinitionArn": "arn:x"})
    harness.missing("describe_monitoring_schedule")
    harness.ok("create_monitoring_schedule", {"MonitoringScheduleArn": "arn:x"})
    harness.ok("list_data_quality_job_definitions", {"JobDefinitionSummaries": []})
    event = stage_event()
    event["detail"].update(EndpointName=prod.endpoint_name)

    synced = h.sync(client, replace(prod, ground_truth_s3_uri=None), event)

    assert synced["action"] == "synced" and synced["package"] == result.target_package_arn
    (created,) = sent(harness, "CreateDataQualityJobDefinition")
    promoted = "s3://mlops-prod-artifacts/promoted-models/mlops-staging-models/v1/baselines"
    assert created["DataQualityBaselineConfig"] == {
        "ConstraintsResource": {"S3Uri": f"{promoted}/constraints.json"},
        "StatisticsResource": {"S3Uri": f"{promoted}/statistics.json"},
    }
