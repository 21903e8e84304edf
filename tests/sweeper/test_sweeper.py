"""The branch sweeper (lambdas/sweeper) against moto's CloudFormation, SageMaker and SNS, and
botocore's Stubber (real CloudFormation model) for what moto cannot produce (DELETE_FAILED, a
stack still deleting, a stack mid-update). Only stacks named <project>-br-* AND carrying both
ephemeral tags are ever deleted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from infra.config import DEPLOYED_BY_BRANCH_TAG, EPHEMERAL_TTL_TAG
from infra.naming import Naming
from lambdas.sweeper import handler as sweeper
from sweeper.teardown import teardown_branch_resources
from tests.conftest import MOTO_REGION
from tests.sweeper.monitoring_fake import MonitoringSchedules

PROJECT = "mlops"
TEMPLATE = json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}})
STAGE_SUFFIXES = ("stateful", "model-build", "deployment", "operations")
LATER = timedelta(days=8)  # past the shipped 7-day TTL


def branch_tags(branch: str, ttl: str = "7") -> dict[str, str]:
    return {
        "project": PROJECT,
        "branch": branch,
        EPHEMERAL_TTL_TAG: ttl,
        DEPLOYED_BY_BRANCH_TAG: branch,
    }


def create_stage(cfn: Any, prefix: str, tags: dict[str, str]) -> list[str]:
    names = [f"{prefix}-{suffix}" for suffix in STAGE_SUFFIXES]
    for name in names:
        cfn.create_stack(
            StackName=name,
            TemplateBody=TEMPLATE,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
    return names


def live(cfn: Any) -> set[str]:
    summaries = cfn.list_stacks()["StackSummaries"]
    return {s["StackName"] for s in summaries if s["StackStatus"] != "DELETE_COMPLETE"}


@pytest.fixture
def clients(moto_aws: None) -> Iterator[dict[str, Any]]:
    # Monitoring schedules (moto has none) for the clients made here and by the handler.
    schedules = MonitoringSchedules(boto3._get_default_session().events, MOTO_REGION)
    cfn = boto3.client("cloudformation", region_name=MOTO_REGION)
    deleted: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        deleted.append(params["StackName"])

    cfn.meta.events.register("provide-client-params.cloudformation.DeleteStack", record)
    yield {
        "cloudformation": cfn,
        "sagemaker": boto3.client("sagemaker", region_name=MOTO_REGION),
        "sns": boto3.client("sns", region_name=MOTO_REGION),
        "sqs": boto3.client("sqs", region_name=MOTO_REGION),
        "deleted": deleted,
        "schedules": schedules,
    }
    schedules.detach()


@pytest.fixture
def landscape(clients: dict[str, Any]) -> dict[str, list[str]]:
    """An expired branch stage, a fresh one, the shared dev stage, and look-alikes."""
    cfn = clients["cloudformation"]
    stages = {
        "old": create_stage(cfn, "mlops-br-feat-old", branch_tags("feat/old")),
        "fresh": create_stage(cfn, "mlops-br-feat-fresh", branch_tags("feat/fresh", ttl="30")),
        # shared stages carry the usual tags, not the ephemeral ones
        "shared": create_stage(cfn, "mlops-dev", {"project": PROJECT, "branch": "main"}),
    }
    # a branch-looking name without the ephemeral tags, one with half of them, one whose
    # tags name another branch, one with a bad TTL, one of another project
    look_alikes = {
        "mlops-br-untagged-stateful": {"project": PROJECT},
        "mlops-br-half-stateful": {EPHEMERAL_TTL_TAG: "7"},
        "mlops-br-feat-old-x-stateful": branch_tags("feat/other"),
        "mlops-br-bad-ttl-stateful": branch_tags("bad/ttl", ttl="forever"),
        "other-br-feat-old-stateful": branch_tags("feat/old"),
    }
    for name, tags in look_alikes.items():
        cfn.create_stack(
            StackName=name,
            TemplateBody=TEMPLATE,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
    stages["look_alikes"] = list(look_alikes)
    # the expired branch's run-time SageMaker resources, and the shared stage's
    sagemaker = clients["sagemaker"]
    for name in ("mlops-br-feat-old-model-1", "mlops-dev-model-1"):
        sagemaker.create_model(
            ModelName=name,
            ExecutionRoleArn="arn:aws:iam::123456789012:role/x",
            PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1"},
        )
    # and the model_monitor backend's schedules (monitor_sync's names) of both
    for qualifier in ("br-feat-old", "dev"):
        prefix = Naming(PROJECT, qualifier).model_monitor_prefix
        clients["schedules"].add(
            f"{prefix}-data-quality", f"mlops-{qualifier}-endpoint", f"{prefix}-dq-v1-0123abcd"
        )
    return stages


def test_removes_the_expired_branch_stage_in_dependency_order_and_nothing_else(
    clients: dict[str, Any], landscape: dict[str, list[str]]
) -> None:
    cfn = clients["cloudformation"]
    report = sweeper.sweep(
        cfn, clients["sagemaker"], project=PROJECT, now=datetime.now(UTC) + LATER
    )
    assert sorted(report.removed) == sorted(landscape["old"])
    # dependents before what they depend on: operations/deployment, model-build, stateful
    order = [name.removeprefix("mlops-br-feat-old-") for name in report.removed]
    assert set(order[:2]) == {"operations", "deployment"}
    assert order[2:] == ["model-build", "stateful"]
    # DeleteStack was called for exactly those four (by stack id), never for anything else
    assert len(clients["deleted"]) == 4
    assert all(":stack/mlops-br-feat-old-" in stack_id for stack_id in clients["deleted"])
    remaining = live(cfn)
    assert remaining == set(landscape["fresh"] + landscape["shared"] + landscape["look_alikes"])
    assert report.kept == ["mlops-br-feat-fresh"]
    skipped = {s["stack"]: s["why"] for s in report.skipped}
    assert set(skipped) == {
        "mlops-br-untagged-stateful",
        "mlops-br-half-stateful",
        "mlops-br-feat-old-x-stateful",
        "mlops-br-bad-ttl-stateful",
    }
    assert "not tagged" in skipped["mlops-br-half-stateful"]
    assert "is not 1-90" in skipped["mlops-br-bad-ttl-stateful"]
    assert "name is not in mlops-br-feat-other" in skipped["mlops-br-feat-old-x-stateful"]
    # the same teardown as make destroy: the branch's model went, the shared one stayed
    models = {m["ModelName"] for m in clients["sagemaker"].list_models()["Models"]}
    assert models == {"mlops-dev-model-1"}
    assert set(clients["schedules"].schedules) == {"mlops-dev-mm-data-quality"}
    assert report.run_time_resources_deleted == 2


def test_nothing_expires_before_the_ttl(
    clients: dict[str, Any], landscape: dict[str, list[str]]
) -> None:
    cfn = clients["cloudformation"]
    before = live(cfn)
    report = sweeper.sweep(
        cfn, clients["sagemaker"], project=PROJECT, now=datetime.now(UTC) + timedelta(days=6)
    )
    assert report.removed == [] and clients["deleted"] == [] and live(cfn) == before
    assert report.kept == ["mlops-br-feat-fresh", "mlops-br-feat-old"]
    assert not report.noteworthy


def test_dry_run_reports_and_changes_nothing(
    clients: dict[str, Any], landscape: dict[str, list[str]]
) -> None:
    cfn = clients["cloudformation"]
    before = live(cfn)
    report = sweeper.sweep(
        cfn, clients["sagemaker"], project=PROJECT, now=datetime.now(UTC) + LATER, dry_run=True
    )
    assert sorted(report.would_remove) == sorted(landscape["old"])
    assert clients["deleted"] == [] and live(cfn) == before
    assert len(clients["sagemaker"].list_models()["Models"]) == 2


def test_handler_reports_what_it_removed_to_the_topic(
    clients: dict[str, Any], landscape: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = clients["sns"].create_topic(Name="mlops-dev-operations")["TopicArn"]
    queue = clients["sqs"].create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = clients["sqs"].get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    clients["sns"].subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    monkeypatch.setenv("PROJECT", PROJECT)
    monkeypatch.setenv("TOPIC_ARN", topic)
    real_now = sweeper.datetime

    class Later(real_now):  # the handler's clock, 8 days on
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return real_now.now(tz) + LATER

    monkeypatch.setattr(sweeper, "datetime", Later)

    class Context:
        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 900_000

    result = sweeper.handler({}, Context())
    assert sorted(result["removed"]) == sorted(landscape["old"])
    messages = clients["sqs"].receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    envelope = json.loads(messages[0]["Body"])
    assert envelope["Subject"] == "mlops sweeper: expired branch stacks: 4 removed"
    body = json.loads(envelope["Message"])
    assert sorted(body["removed"]) == sorted(landscape["old"])
    assert body["failed"] == [] and body["deleting"] == []


@pytest.mark.parametrize(
    "event",
    [None, [], "sweep", {"dryRun": "yes"}, {"dryRun": True, "extra": 1}, {"source": "x"}],
)
def test_malformed_input_is_rejected_before_any_call(
    clients: dict[str, Any], landscape: dict[str, list[str]], event: Any
) -> None:
    before = live(clients["cloudformation"])
    with pytest.raises(sweeper.InvalidEvent):
        sweeper.handler(event, None)
    assert clients["deleted"] == [] and live(clients["cloudformation"]) == before


def test_teardown_refuses_a_shared_stage_naming() -> None:
    with pytest.raises(ValueError, match="not a branch stage"):
        teardown_branch_resources(object(), Naming(PROJECT, "dev"))


# ----------------------------------------------------------------------------------------------
# Stubber: states moto does not produce. Responses follow the real CloudFormation model.

STACK_PREFIX = "mlops-br-feat-stuck"
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def _stack_id(suffix: str) -> str:
    return f"arn:aws:cloudformation:us-east-1:123456789012:stack/{STACK_PREFIX}-{suffix}/1"


def _described(suffix: str, status: str, reason: str = "") -> dict[str, Any]:
    stack: dict[str, Any] = {
        "StackName": f"{STACK_PREFIX}-{suffix}",
        "StackId": _stack_id(suffix),
        "CreationTime": CREATED,
        "StackStatus": status,
        "Tags": [{"Key": k, "Value": v} for k, v in branch_tags("feat/stuck").items()],
    }
    if reason:
        stack["StackStatusReason"] = reason
    return {"Stacks": [stack]}


def _stubbed(suffix_status: dict[str, str]) -> tuple[Any, Stubber]:
    cfn = boto3.client(
        "cloudformation",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    stubber = Stubber(cfn)
    stubber.add_response(
        "list_stacks",
        {
            "StackSummaries": [
                {
                    "StackName": f"{STACK_PREFIX}-{suffix}",
                    "StackId": _stack_id(suffix),
                    "CreationTime": CREATED,
                    "StackStatus": status,
                }
                for suffix, status in suffix_status.items()
            ]
        },
    )
    for suffix, status in sorted(suffix_status.items()):  # described in name order
        name = f"{STACK_PREFIX}-{suffix}"
        stubber.add_response("describe_stacks", _described(suffix, status), {"StackName": name})
    return cfn, stubber


class _NoSageMaker:
    """teardown_branch_resources' calls, answered empty (the stage has no run-time resources)."""

    class exceptions:  # botocore's attribute name
        ClientError = Exception

    def __getattr__(self, name: str) -> Any:
        def call(**_: Any) -> dict[str, Any]:
            if name.startswith("list_"):
                return {}
            raise AssertionError(f"unexpected SageMaker call {name}")

        return call


ALL_COMPLETE = dict.fromkeys(STAGE_SUFFIXES, "UPDATE_COMPLETE")


def test_delete_failed_is_reported_and_what_depends_on_it_is_not_attempted() -> None:
    cfn, stubber = _stubbed(ALL_COMPLETE)
    reason = "The following resource(s) failed to delete: [Queue]. "
    for suffix in ("deployment", "operations"):  # the wave, in name order
        stubber.add_response("delete_stack", {}, {"StackName": _stack_id(suffix)})
    stubber.add_response(
        "describe_stacks", _described("deployment", "DELETE_FAILED", reason),
        {"StackName": _stack_id("deployment")},
    )  # fmt: skip
    stubber.add_response(
        "describe_stacks", _described("operations", "DELETE_COMPLETE"),
        {"StackName": _stack_id("operations")},
    )  # fmt: skip
    with stubber:
        report = sweeper.sweep(
            cfn, _NoSageMaker(), project=PROJECT, now=CREATED + LATER, sleep=lambda _: None
        )
        stubber.assert_no_pending_responses()  # and no DeleteStack for model-build or stateful
    assert report.removed == [f"{STACK_PREFIX}-operations"]
    assert report.failed == [{"stack": f"{STACK_PREFIX}-deployment", "reason": reason}]
    assert "1 failed" in report.subject(PROJECT) and report.noteworthy


def test_a_stage_already_in_delete_failed_is_reported_not_retried() -> None:
    cfn, stubber = _stubbed({**ALL_COMPLETE, "deployment": "DELETE_FAILED"})
    with stubber:  # no DeleteStack is stubbed: any call would fail the test
        report = sweeper.sweep(cfn, _NoSageMaker(), project=PROJECT, now=CREATED + LATER)
        stubber.assert_no_pending_responses()
    assert [f["stack"] for f in report.failed] == [f"{STACK_PREFIX}-deployment"]
    assert report.removed == []


def test_a_stage_being_updated_is_left_alone() -> None:
    cfn, stubber = _stubbed({**ALL_COMPLETE, "operations": "UPDATE_IN_PROGRESS"})
    with stubber:
        report = sweeper.sweep(cfn, _NoSageMaker(), project=PROJECT, now=CREATED + LATER)
        stubber.assert_no_pending_responses()
    assert report.busy == [STACK_PREFIX] and report.removed == []


def test_deletion_still_running_at_the_deadline_is_left_to_the_next_run() -> None:
    cfn, stubber = _stubbed(ALL_COMPLETE)
    for suffix in ("deployment", "operations"):
        stubber.add_response("delete_stack", {}, {"StackName": _stack_id(suffix)})
    for suffix in ("deployment", "operations"):
        stubber.add_response(
            "describe_stacks", _described(suffix, "DELETE_IN_PROGRESS"),
            {"StackName": _stack_id(suffix)},
        )  # fmt: skip
    with stubber:
        report = sweeper.sweep(
            cfn,
            _NoSageMaker(),
            project=PROJECT,
            now=CREATED + LATER,
            deadline=50.0,
            clock=lambda: 45.0,  # one poll left no time for another
            sleep=lambda _: None,
        )
        stubber.assert_no_pending_responses()
    assert sorted(report.deleting) == [f"{STACK_PREFIX}-deployment", f"{STACK_PREFIX}-operations"]
    assert report.removed == [] and "2 still deleting" in report.subject(PROJECT)
