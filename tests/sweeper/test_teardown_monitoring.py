"""Teardown of a branch stage with the model_monitor backend: the monitoring schedules and job
definitions lambdas/monitor_sync created outside CloudFormation go first, by the exact names that
Lambda gives them; another stage's (shared or branch, look-alike names included) are untouched.

moto holds the job definitions, endpoints and models; the schedules moto lacks are answered
in-process (monitoring_fake.py, requests and answers shape-validated). The wait for a deleted
schedule to disappear runs against botocore's Stubber (real SageMaker model), with a fake clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from infra.naming import Naming
from lambdas.monitor_sync import handler as monitor_sync
from sweeper import teardown as t
from tests.sweeper.monitoring_fake import MonitoringSchedules

REGION = "us-east-1"
BRANCH = Naming("mlops", "br-feat-drift")
#: The shared dev stage, and a branch whose names all START with the branch's monitoring prefix
#: (``mlops-br-feat-drift-mm-dq-mm-dq-v1-...``, ``mlops-br-feat-drift-mm-dq-mm-data-quality``).
OTHERS = (Naming("mlops", "dev"), Naming("mlops", "br-feat-drift-mm-dq"))


def settings(naming: Naming) -> monitor_sync.Settings:
    """monitor_sync's settings for a stage (what monitoring/model_monitor.py sets)."""
    return monitor_sync.Settings(
        endpoint_name=naming.endpoint,
        model_package_group_name=naming.model_package_group,
        resource_prefix=naming.model_monitor_prefix,
        role_arn=f"arn:aws:iam::123456789012:role/{naming.prefix}-model-monitor",
        kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        output_s3_uri=f"s3://{naming.prefix}-artifacts/monitoring/model-monitor",
        image_uri="156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer",
        schedule_expression="cron(0 * ? * * *)",
        window_hours=1,
        instance_type="ml.m5.xlarge",
        ground_truth_s3_uri=f"s3://{naming.prefix}-labels/ground-truth",
    )


def monitor(client: Any, schedules: MonitoringSchedules, naming: Naming, versions: int) -> set[str]:
    """What monitor_sync leaves for ``naming``'s endpoint: a data-quality and a model-quality
    definition per served version (the older ones superseded but still there, as when a delete
    failed), and the two schedules on the newest."""
    stage = settings(naming)
    names = set()
    for version in range(1, versions + 1):
        package = monitor_sync.ServedPackage(
            f"arn:aws:sagemaker:{REGION}:123456789012:model-package/"
            f"{naming.model_package_group}/{version}",
            version,
            f"s3://{naming.prefix}-artifacts/pipelines/p/e{version}/statistics.json",
            f"s3://{naming.prefix}-artifacts/pipelines/p/e{version}/constraints.json",
        )
        for kind, build, create in (
            (
                monitor_sync.DATA_QUALITY,
                monitor_sync.data_quality_request,
                client.create_data_quality_job_definition,
            ),
            (
                monitor_sync.MODEL_QUALITY,
                monitor_sync.model_quality_request,
                client.create_model_quality_job_definition,
            ),
        ):
            request = build(stage, package)
            name = monitor_sync.definition_name(stage, kind, version, request)
            create(JobDefinitionName=name, **request)
            names.add(name)
            if version == versions:
                schedules.add(stage.schedule_name(kind), naming.endpoint, name, kind)
    return names


def definitions(client: Any) -> set[str]:
    return {
        d["MonitoringJobDefinitionName"]
        for call in (
            client.list_data_quality_job_definitions,
            client.list_model_quality_job_definitions,
        )
        for d in call()["JobDefinitionSummaries"]
    }


@pytest.fixture
def stage(moto_aws: None) -> Iterator[dict[str, Any]]:
    client = boto3.client("sagemaker", region_name=REGION)
    schedules = MonitoringSchedules(client.meta.events)
    monitor(client, schedules, BRANCH, versions=2)
    others = set().union(*(monitor(client, schedules, other, versions=1) for other in OTHERS))
    client.create_model(
        ModelName=f"{BRANCH.prefix}-deploy-v2-a",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/x",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1"},
    )
    client.create_endpoint_config(
        EndpointConfigName=f"{BRANCH.prefix}-deploy-v2-a",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{BRANCH.prefix}-deploy-v2-a",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    client.create_endpoint(
        EndpointName=BRANCH.endpoint, EndpointConfigName=f"{BRANCH.prefix}-deploy-v2-a"
    )
    yield {"client": client, "schedules": schedules, "others": others}


def test_the_stages_schedules_and_definitions_go_first_and_only_its_own(
    stage: dict[str, Any],
) -> None:
    client, schedules = stage["client"], stage["schedules"]
    others_before = stage["others"]
    assert len(others_before) == 4 and len(definitions(client)) == 8

    messages: list[str] = []
    deleted = t.teardown_branch_resources(client, BRANCH, messages.append, sleep=pytest.fail)

    assert deleted == 2 + 4 + 3  # schedules, definitions (2 versions x 2), endpoint/config/model
    assert definitions(client) == others_before
    assert set(schedules.schedules) == {
        f"{other.model_monitor_prefix}-{suffix}"
        for other in OTHERS
        for suffix in ("data-quality", "model-quality")
    }
    assert client.list_endpoints()["Endpoints"] == []
    calls = schedules.calls
    last_schedule = max(i for i, c in enumerate(calls) if c == "DeleteMonitoringSchedule")
    first_definition = calls.index("DeleteDataQualityJobDefinition")
    assert last_schedule < first_definition < calls.index("DeleteEndpoint")
    assert "deleted monitoring schedule mlops-br-feat-drift-mm-data-quality" in messages

    # A rerun finds nothing of the monitoring left and deletes nothing.
    assert t.delete_monitoring(client, BRANCH, messages.append, sleep=pytest.fail) == 0


def test_the_names_are_monitor_syncs() -> None:
    stage = settings(BRANCH)
    schedules, patterns = t.monitoring_names(BRANCH)
    assert schedules == {
        stage.schedule_name(monitor_sync.DATA_QUALITY),
        stage.schedule_name(monitor_sync.MODEL_QUALITY),
    }
    for kind, infix in ((monitor_sync.DATA_QUALITY, "dq"), (monitor_sync.MODEL_QUALITY, "mq")):
        assert stage.definition_prefix(kind) == f"{BRANCH.model_monitor_prefix}-{infix}-v"
        name = monitor_sync.definition_name(stage, kind, 12, {"any": "request"})
        assert patterns[infix].fullmatch(name)
    # A long branch name: the prefix is shortened with a hash, names still match exactly.
    long = Naming("mlops", "br-" + "a-very-long-feature-branch-name-indeed" * 2)
    assert len(long.model_monitor_prefix) == 40
    long_schedules, _ = t.monitoring_names(long)
    assert long_schedules == {
        settings(long).schedule_name(k) for k in (monitor_sync.DATA_QUALITY, "ModelQuality")
    }


# ---- the wait for deleted schedules (Stubber) -----------------------------------------------


def _summary(name: str) -> dict[str, Any]:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    return {
        "MonitoringScheduleName": name,
        "MonitoringScheduleArn": (
            f"arn:aws:sagemaker:{REGION}:123456789012:monitoring-schedule/{name}"
        ),
        "CreationTime": now,
        "LastModifiedTime": now,
        "MonitoringScheduleStatus": "Stopped",
    }


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        yield client, stubber


def test_definitions_wait_until_the_deleted_schedules_are_gone(
    stubbed: tuple[Any, Stubber],
) -> None:
    client, stubber = stubbed
    prefix = BRANCH.model_monitor_prefix
    schedule = f"{prefix}-data-quality"
    listing = {"NameContains": prefix}
    stubber.add_response(
        "list_monitoring_schedules", {"MonitoringScheduleSummaries": [_summary(schedule)]}, listing
    )
    stubber.add_response("delete_monitoring_schedule", {}, {"MonitoringScheduleName": schedule})
    stubber.add_response(  # still listed once after the delete
        "list_monitoring_schedules", {"MonitoringScheduleSummaries": [_summary(schedule)]}, listing
    )
    stubber.add_response("list_monitoring_schedules", {"MonitoringScheduleSummaries": []}, listing)
    for operation, infix in (
        ("list_data_quality_job_definitions", "dq"),
        ("list_model_quality_job_definitions", "mq"),
    ):
        stubber.add_response(
            operation, {"JobDefinitionSummaries": []}, {"NameContains": f"{prefix}-{infix}-v"}
        )
    slept: list[float] = []

    assert t.delete_monitoring(client, BRANCH, lambda _: None, sleep=slept.append) == 1

    assert slept == [t.SCHEDULE_POLL_S]
    stubber.assert_no_pending_responses()


def test_a_schedule_that_never_goes_stops_the_teardown_in_one_line(
    stubbed: tuple[Any, Stubber],
) -> None:
    """Nothing after it is attempted (its definition, the endpoint): rerun later."""
    client, stubber = stubbed
    prefix = BRANCH.model_monitor_prefix
    schedule = f"{prefix}-model-quality"
    still = {"MonitoringScheduleSummaries": [_summary(schedule)]}
    stubber.add_response("list_monitoring_schedules", still)
    stubber.add_client_error(
        "delete_monitoring_schedule", "ResourceNotFound", "gone", 400
    )  # deleted meanwhile by someone else: not an error
    polls = t.SCHEDULE_WAIT_S // t.SCHEDULE_POLL_S + 1
    for _ in range(polls):
        stubber.add_response("list_monitoring_schedules", still)

    with pytest.raises(t.TeardownError, match=f"{schedule} still being deleted") as raised:
        t.teardown_branch_resources(client, BRANCH, lambda _: None, sleep=lambda _: None)
    assert "\n" not in str(raised.value)
    stubber.assert_no_pending_responses()


def test_another_error_of_a_delete_is_raised(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    schedule = f"{BRANCH.model_monitor_prefix}-data-quality"
    stubber.add_response(
        "list_monitoring_schedules", {"MonitoringScheduleSummaries": [_summary(schedule)]}
    )
    stubber.add_client_error("delete_monitoring_schedule", "AccessDeniedException", "no", 400)
    with pytest.raises(client.exceptions.ClientError, match="AccessDenied"):
        t.delete_monitoring(client, BRANCH, lambda _: None, sleep=pytest.fail)
