"""The deployment Lambdas' business logic, called directly.

moto answers what it models; ``botocore.stub.Stubber`` plays the endpoint states moto never
produces (Updating, Failed, a scaled-out fleet) and service errors.
"""

from __future__ import annotations

import io
import json
import types
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from lambdas.deploy_plan import handler as plan
from lambdas.deploy_trigger import handler as trigger
from lambdas.smoke_test import handler as smoke

REGION = "us-east-1"
GROUP = "mlops-staging-models"
ENDPOINT = "mlops-staging-endpoint"
PACKAGE = f"arn:aws:sagemaker:{REGION}:111111111111:model-package/{GROUP}/4"
ENDPOINT_ARN = f"arn:aws:sagemaker:{REGION}:111111111111:endpoint/{ENDPOINT}"
ROW = ",".join(str(i) for i in range(30))


def _stage(**changes: Any) -> dict[str, Any]:
    stage = {
        "modelPackageGroupName": GROUP,
        "endpointName": ENDPOINT,
        "resourcePrefix": "mlops-staging-deploy",
        "requirePromotion": False,
        "endpointMode": "instances",
        "instanceType": "ml.m5.large",
        "minInstances": 1,
        "maxInstances": 4,
        "trafficShifting": {"type": "CANARY", "percent": 25, "waitSeconds": 300},
    }
    stage.update(changes)
    return stage


STATE_MACHINE = f"arn:aws:states:{REGION}:111111111111:stateMachine:mlops-staging-deploy-model"
EXECUTION = f"arn:aws:states:{REGION}:111111111111:execution:mlops-staging-deploy-model:v4-abc-def"
STARTED = "2026-01-01T00:10:00.000Z"


def _plan_event(request: dict[str, Any] | None = None, **stage: Any) -> plan.PlanEvent:
    return plan.PlanEvent.model_validate(
        {
            "request": {"packageArn": PACKAGE} if request is None else request,
            "executionName": "v4-abc-def",
            "executionArn": EXECUTION,
            "executionStartTime": STARTED,
            "stateMachineArn": STATE_MACHINE,
            "stage": _stage(**stage),
        }
    )


class _Executions:
    """A Step Functions stand-in for ListExecutions (RUNNING) with a paginator."""

    def __init__(self, *running: dict[str, Any]) -> None:
        self.running = [
            {"executionArn": EXECUTION, "name": "v4-abc-def", "startDate": _time(STARTED)},
            *running,
        ]
        self.requests: list[dict[str, Any]] = []

    def get_paginator(self, operation: str) -> Any:
        assert operation == "list_executions"
        return self

    def paginate(self, **request: Any) -> Any:
        self.requests.append(request)
        return [{"executions": list(self.running)}]


def _time(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text)


def _plan(event: plan.PlanEvent, client: Any, sfn: Any = None) -> plan.Plan:
    return plan.plan_deployment(event, sagemaker=client, sfn=sfn or _Executions())


def _package(**changes: Any) -> dict[str, Any]:
    package = {
        "ModelPackageName": GROUP,
        "ModelPackageGroupName": GROUP,
        "ModelPackageVersion": 4,
        "ModelPackageArn": PACKAGE,
        "CreationTime": "2026-01-01T00:00:00Z",
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
        "ModelApprovalStatus": "Approved",
    }
    package.update(changes)
    return package


def _endpoint(status: str, **changes: Any) -> dict[str, Any]:
    endpoint = {
        "EndpointName": ENDPOINT,
        "EndpointArn": ENDPOINT_ARN,
        "EndpointConfigName": "mlops-staging-deploy-v3-1234abcd",
        "EndpointStatus": status,
        "CreationTime": "2026-01-01T00:00:00Z",
        "LastModifiedTime": "2026-01-01T00:00:00Z",
    }
    endpoint.update(changes)
    return endpoint


@pytest.fixture
def stubbed_sagemaker(aws_env: None) -> Any:
    client = boto3.client("sagemaker", region_name=REGION)
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


# --------------------------------------------------------------------------------------------
# Plan


def test_plan_waits_while_another_deployment_updates_the_endpoint(stubbed_sagemaker: Any) -> None:
    client, stubber = stubbed_sagemaker
    stubber.add_response("describe_model_package", _package())
    stubber.add_response("describe_endpoint", _endpoint("Updating"))

    result = _plan(_plan_event(), client)

    assert (result.action, result.code) == ("wait", "EndpointBusy")


def test_plan_skips_a_failed_endpoint_with_instructions(stubbed_sagemaker: Any) -> None:
    client, stubber = stubbed_sagemaker
    stubber.add_response("describe_model_package", _package())
    stubber.add_response("describe_endpoint", _endpoint("Failed", FailureReason="bad image"))

    result = _plan(_plan_event(), client)

    assert (result.action, result.code) == ("skip", "EndpointNotUpdatable")
    assert "bad image" in result.message and "delete-endpoint" in result.message


def test_plan_keeps_a_scaled_out_fleet_and_deregisters_on_instance_type_change(
    stubbed_sagemaker: Any,
) -> None:
    client, stubber = stubbed_sagemaker
    stubber.add_response("describe_model_package", _package())
    variants = [{"VariantName": "AllTraffic", "CurrentInstanceCount": 3, "DesiredInstanceCount": 3}]
    stubber.add_response("describe_endpoint", _endpoint("InService", ProductionVariants=variants))
    stubber.add_response("list_tags", {"Tags": [{"Key": "model-package-arn", "Value": "other"}]})
    stubber.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": "mlops-staging-deploy-v3-1234abcd",
            "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:111111111111:endpoint-config/x",
            "ProductionVariants": [
                {"VariantName": "AllTraffic", "ModelName": "m", "InstanceType": "ml.m5.xlarge"}
            ],
            "CreationTime": "2026-01-01T00:00:00Z",
        },
    )

    result = _plan(_plan_event(), client)

    assert result.action == "deploy"
    assert result.endpointExists is True
    assert result.previousEndpointConfigName == "mlops-staging-deploy-v3-1234abcd"
    assert result.initialInstanceCount == 3  # never shrink the fleet below its current size
    assert result.instanceTypeChanged is True
    assert result.trafficRouting["Type"] == "CANARY"
    assert result.modelName == result.endpointConfigName
    assert result.modelName.startswith("mlops-staging-deploy-v4-")


def test_plan_skips_an_unknown_package(stubbed_sagemaker: Any) -> None:
    client, stubber = stubbed_sagemaker
    stubber.add_client_error(
        "describe_model_package",
        service_error_code="ValidationException",
        service_message="Model Package does not exist",
    )

    result = _plan(_plan_event(), client)

    assert (result.action, result.code) == ("skip", "PackageNotFound")


@pytest.mark.parametrize(
    ("package", "code"),
    [
        ({"ModelPackageGroupName": "mlops-dev-models"}, "WrongGroup"),
        ({"ModelApprovalStatus": "PendingManualApproval"}, "NotApproved"),
        ({"ModelPackageStatus": "InProgress"}, "PackageNotReady"),
    ],
)
def test_plan_guards(stubbed_sagemaker: Any, package: dict[str, Any], code: str) -> None:
    client, stubber = stubbed_sagemaker
    stubber.add_response("describe_model_package", _package(**package))

    result = _plan(_plan_event(), client)

    assert (result.action, result.code) == ("skip", code)


def test_plan_promotion_guard_needs_both_metadata_keys(stubbed_sagemaker: Any) -> None:
    client, stubber = stubbed_sagemaker
    stubber.add_response(
        "describe_model_package", _package(CustomerMetadataProperties={"promoted-to-prod": "true"})
    )

    result = _plan(_plan_event(requirePromotion=True), client)

    assert (result.action, result.code) == ("skip", "NotPromoted")


@pytest.mark.parametrize(
    ("count", "mode", "percent", "expected"),
    [
        (1, "CANARY", 25, {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300}),
        (2, "CANARY", 25, {"Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}),
        (6, "CANARY", 25, {"Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 2}}),
        (4, "CANARY", 50, {"Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 2}}),
        (
            6,
            "LINEAR",
            25,
            {"Type": "LINEAR", "LinearStepSize": {"Type": "INSTANCE_COUNT", "Value": 2}},
        ),
        (
            20,
            "LINEAR",
            5,
            {"Type": "LINEAR", "LinearStepSize": {"Type": "INSTANCE_COUNT", "Value": 2}},
        ),
    ],
)
def test_traffic_routing_respects_sagemaker_limits(
    count: int, mode: str, percent: int, expected: dict[str, Any]
) -> None:
    shifting = plan.TrafficShifting(type=mode, percent=percent, waitSeconds=300)  # type: ignore[arg-type]

    routing = plan.traffic_routing(count, shifting)

    assert routing == {"WaitIntervalInSeconds": 300, **expected}


def test_resource_names_fit_sagemaker_limits() -> None:
    name = plan.resource_names("x" * 60, 123456, "execution")
    assert len(name) <= 63 and name.endswith("-v123456-" + name.rsplit("-", 1)[-1])
    assert plan.resource_names("p", 1, "a") != plan.resource_names("p", 1, "b")


# --------------------------------------------------------------------------------------------
# Smoke test


class _Runtime:
    """A sagemaker-runtime stand-in answering queued bodies (or raising)."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []

    def invoke_endpoint(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        return {"Body": io.BytesIO(body)}


def _smoke_event() -> smoke.SmokeTestEvent:
    return smoke.SmokeTestEvent.model_validate(
        {"endpointName": ENDPOINT, "csvRow": ROW, "featureCount": 30}
    )


def test_smoke_test_sends_csv_and_json_and_compares_them() -> None:
    runtime = _Runtime(
        {"predictions": [{"score": 0.25, "label": 0}]},
        {"predictions": [{"score": 0.25, "label": 0}]},
    )

    result = smoke.run_smoke_test(_smoke_event(), runtime=runtime)

    assert (result.score, result.label) == (0.25, 0)
    csv_request, json_request = runtime.requests
    assert (csv_request["ContentType"], csv_request["Body"]) == ("text/csv", ROW)
    assert json_request["ContentType"] == "application/json"
    assert json.loads(json_request["Body"]) == {"instances": [[float(i) for i in range(30)]]}


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"<html>oops</html>", "not JSON"),
        ({"predictions": []}, "expected one prediction"),
        ({"predictions": [{"score": 1.5, "label": 1}]}, "score must be"),
        ({"predictions": [{"score": True, "label": 1}]}, "score must be"),
        ({"predictions": [{"score": 0.4, "label": "yes"}]}, "label must be"),
        ({"error": "boom"}, "expected one prediction"),
    ],
)
def test_smoke_test_rejects_answers_off_contract(answer: object, message: str) -> None:
    with pytest.raises(smoke.SmokeTestFailed, match=message):
        smoke.run_smoke_test(_smoke_event(), runtime=_Runtime(answer))


def test_smoke_test_fails_when_encodings_disagree() -> None:
    runtime = _Runtime(
        {"predictions": [{"score": 0.2, "label": 0}]}, {"predictions": [{"score": 0.9, "label": 1}]}
    )
    with pytest.raises(smoke.SmokeTestFailed, match="disagree"):
        smoke.run_smoke_test(_smoke_event(), runtime=runtime)


def test_smoke_test_turns_a_model_error_into_a_failure(aws_env: None) -> None:
    client = boto3.client("sagemaker-runtime", region_name=REGION)
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "invoke_endpoint", service_error_code="ModelError", http_status_code=424
        )
        with pytest.raises(smoke.SmokeTestFailed, match="invocation failed"):
            smoke.run_smoke_test(_smoke_event(), runtime=client)


def test_smoke_test_rejects_a_misconfigured_sample() -> None:
    event = smoke.SmokeTestEvent.model_validate(
        {"endpointName": ENDPOINT, "csvRow": "1,2,3", "featureCount": 30}
    )
    with pytest.raises(ValueError, match="expected 30"):
        smoke.run_smoke_test(event, runtime=_Runtime())


# --------------------------------------------------------------------------------------------
# Trigger


def _event(**detail: Any) -> trigger.ModelPackageStateChangeEvent:
    body = {
        "ModelPackageGroupName": GROUP,
        "ModelPackageArn": PACKAGE,
        "ModelApprovalStatus": "Approved",
    }
    body.update(detail)
    return trigger.ModelPackageStateChangeEvent.model_validate(
        {
            "version": "0",
            "id": "event-1",
            "detail-type": "SageMaker Model Package State Change",
            "source": "aws.sagemaker",
            "account": "111111111111",
            "time": "2026-01-01T00:00:00Z",
            "region": REGION,
            "resources": [PACKAGE],
            "detail": body,
        }
    )


@pytest.mark.parametrize(
    "detail",
    [
        {"ModelPackageGroupName": "mlops-prod-models"},
        {"ModelApprovalStatus": "Rejected"},
        {"ModelApprovalStatus": "PendingManualApproval"},
    ],
)
def test_trigger_ignores_what_the_rule_should_have_filtered(detail: dict[str, Any]) -> None:
    class NoCalls:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"unexpected Step Functions call {name}")

    result = trigger.start_deployment(
        _event(**detail), sfn=NoCalls(), state_machine_arn="arn", group_name=GROUP
    )

    assert result.action == "ignored"


def test_trigger_rejects_a_package_arn_without_version() -> None:
    class NoCalls:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"unexpected Step Functions call {name}")

    event = _event(ModelPackageArn=PACKAGE.rsplit("/", 1)[0] + "/latest")
    result = trigger.start_deployment(
        event, sfn=NoCalls(), state_machine_arn="arn", group_name=GROUP
    )
    assert result.action == "rejected" and "no version" in result.reason


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"detail-type": "SageMaker Model Package State Change", "source": "aws.sagemaker"},
        {
            "version": "0",
            "id": "e",
            "detail-type": "x",
            "source": "y",
            "account": "1",
            "time": "2026-01-01T00:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {"ModelPackageArn": 7},
        },
    ],
)
def test_trigger_handler_logs_and_rejects_a_malformed_event(
    event: dict[str, Any], aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_MACHINE_ARN", "arn:aws:states:us-east-1:111111111111:stateMachine:x")
    monkeypatch.setenv("MODEL_PACKAGE_GROUP_NAME", GROUP)
    calls: list[str] = []
    monkeypatch.setattr("boto3.client", lambda *a, **k: calls.append("client"))

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "trigger", 256, "req-1"
        invoked_function_arn = "arn:aws:lambda:us-east-1:111111111111:function:trigger"

    result = trigger.handler(event, Context())
    assert result["action"] == "rejected" and result["reason"].startswith("malformed event")
    assert calls == []  # no client, no side effect


def test_execution_names_are_deterministic_valid_and_per_package() -> None:
    name = trigger.execution_name(PACKAGE, 4, "event-1")
    assert name == trigger.execution_name(PACKAGE, 4, "event-1")
    assert name != trigger.execution_name(PACKAGE, 4, "event-2")
    assert name.startswith(trigger.execution_name_prefix(PACKAGE, 4) + "-")
    assert len(name) <= 80 and name.replace("-", "").isalnum()
    assert trigger.package_version(PACKAGE, None) == 4


def test_trigger_treats_a_closed_execution_with_that_name_as_a_duplicate(aws_env: None) -> None:
    client = boto3.client("stepfunctions", region_name=REGION)
    machine = f"arn:aws:states:{REGION}:111111111111:stateMachine:deploy"
    with Stubber(client) as stubber:
        stubber.add_response(
            "list_executions",
            {"executions": []},
            {"stateMachineArn": machine, "statusFilter": "RUNNING"},
        )
        stubber.add_client_error("start_execution", service_error_code="ExecutionAlreadyExists")

        result = trigger.start_deployment(
            _event(), sfn=client, state_machine_arn=machine, group_name=GROUP
        )

    assert result.action == "duplicate"


# --------------------------------------------------------------------------------------------
# Plan: ordering and serialization (issue 7.1, 7.2)


def _serving(stubber: Stubber, **tags: str) -> None:
    stubber.add_response("describe_model_package", _package())
    stubber.add_response("describe_endpoint", _endpoint("InService"))
    stubber.add_response("list_tags", {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]})


SERVING_V5 = {
    "model_package_arn": f"arn:aws:sagemaker:{REGION}:111111111111:model-package/{GROUP}/5",
    "model_package_version": "5",
    "deployment_event_time": "2026-01-01T00:05:00Z",
}


def _tags(**tags: str) -> dict[str, str]:
    return {k.replace("_", "-"): v for k, v in tags.items()}


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        ({"packageArn": PACKAGE, "eventTime": "2026-01-01T00:04:59Z"}, "StaleEvent"),
        ({"packageArn": PACKAGE, "eventTime": "2026-01-01T00:06:00Z"}, "OlderThanServing"),
        ({"packageArn": PACKAGE}, "OlderThanServing"),  # a manual run, not a rollback
    ],
)
def test_plan_never_deploys_an_older_version_by_approval(
    stubbed_sagemaker: Any, request_: dict[str, Any], code: str
) -> None:
    client, stubber = stubbed_sagemaker
    _serving(stubber, **_tags(**SERVING_V5))

    result = _plan(_plan_event(request_), client)

    assert result.code == code
    assert result.action == ("noop" if code == "StaleEvent" else "skip")


def test_plan_deploys_an_older_version_on_an_explicit_rollback(stubbed_sagemaker: Any) -> None:
    client, stubber = stubbed_sagemaker
    _serving(stubber, **_tags(**SERVING_V5))
    stubber.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": "mlops-staging-deploy-v3-1234abcd",
            "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:111111111111:endpoint-config/x",
            "ProductionVariants": [
                {"VariantName": "AllTraffic", "ModelName": "m", "InstanceType": "ml.m5.large"}
            ],
            "CreationTime": "2026-01-01T00:00:00Z",
        },
    )

    result = _plan(_plan_event({"packageArn": PACKAGE, "rollback": True}), client)

    assert (result.action, result.packageVersion) == ("deploy", 4)
    assert result.eventTime == STARTED.replace(".000", "")  # a manual run: its start time


def test_plan_deploys_a_newer_approval_and_records_the_event_time(stubbed_sagemaker: Any) -> None:
    client, stubber = stubbed_sagemaker
    tags = _tags(**{**SERVING_V5, "model_package_version": "3"})
    _serving(stubber, **tags)
    stubber.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": "c",
            "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:111111111111:endpoint-config/c",
            "ProductionVariants": [
                {"VariantName": "AllTraffic", "ModelName": "m", "InstanceType": "ml.m5.large"}
            ],
            "CreationTime": "2026-01-01T00:00:00Z",
        },
    )

    result = _plan(
        _plan_event({"packageArn": PACKAGE, "eventTime": "2026-01-01T02:00:00+01:00"}), client
    )

    assert result.action == "deploy"
    assert result.eventTime == "2026-01-01T01:00:00Z"  # normalized to UTC
    assert result.instanceTypeChanged is False


def test_plan_ignores_unreadable_ordering_tags(stubbed_sagemaker: Any) -> None:
    """Tags an operator edited by hand order nothing: the deployment goes ahead."""
    client, stubber = stubbed_sagemaker
    _serving(stubber, **_tags(model_package_version="v-five", deployment_event_time="yesterday"))
    stubber.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": "c",
            "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:111111111111:endpoint-config/c",
            "ProductionVariants": [
                {"VariantName": "AllTraffic", "ModelName": "m", "InstanceType": "ml.m5.large"}
            ],
            "CreationTime": "2026-01-01T00:00:00Z",
        },
    )

    result = _plan(
        _plan_event({"packageArn": PACKAGE, "eventTime": "2026-01-01T00:00:00Z"}), client
    )

    assert result.action == "deploy"


def test_plan_queues_behind_an_earlier_running_execution(stubbed_sagemaker: Any) -> None:
    client, stubber = stubbed_sagemaker
    stubber.add_response("describe_model_package", _package())
    earlier = {
        "executionArn": EXECUTION.replace("v4-abc-def", "v3-aaa"),
        "name": "v3-aaa",
        "startDate": _time("2026-01-01T00:09:59.999Z"),
    }
    later = {
        "executionArn": EXECUTION.replace("v4-abc-def", "v5-bbb"),
        "name": "v5-bbb",
        "startDate": _time("2026-01-01T00:10:00.001Z"),
    }
    executions = _Executions(later, earlier)

    result = _plan(_plan_event(), client, executions)

    assert (result.action, result.code) == ("wait", "QueuedBehindEarlierDeployment")
    assert "v3-aaa" in result.message
    assert executions.requests == [{"stateMachineArn": STATE_MACHINE, "statusFilter": "RUNNING"}]


def test_plan_is_not_blocked_by_later_executions(stubbed_sagemaker: Any) -> None:
    client, stubber = stubbed_sagemaker
    stubber.add_response("describe_model_package", _package())
    stubber.add_response("describe_endpoint", _endpoint("Updating"))
    later = {
        "executionArn": EXECUTION.replace("v4-abc-def", "v5-bbb"),
        "name": "v5-bbb",
        "startDate": _time("2026-01-01T00:10:00.001Z"),
    }

    result = _plan(_plan_event(), client, _Executions(later))

    assert result.code == "EndpointBusy"  # went past the queue check, to the endpoint


@pytest.mark.parametrize("rollback", ["yes", 1, "true"])
def test_plan_rejects_a_rollback_flag_that_is_not_a_json_boolean(rollback: object) -> None:
    with pytest.raises(ValueError, match="rollback"):
        _plan_event({"packageArn": PACKAGE, "rollback": rollback})


def test_trigger_passes_the_event_time_for_ordering() -> None:
    class Sfn:
        exceptions = types.SimpleNamespace(ExecutionAlreadyExists=RuntimeError)
        inputs: list[dict[str, Any]] = []

        def get_paginator(self, operation: str) -> Any:
            return types.SimpleNamespace(paginate=lambda **_: [{"executions": []}])

        def start_execution(self, **request: Any) -> dict[str, Any]:
            self.inputs.append(json.loads(request["input"]))
            return {"executionArn": "arn:execution"}

    sfn = Sfn()
    result = trigger.start_deployment(_event(), sfn=sfn, state_machine_arn="arn", group_name=GROUP)

    assert result.action == "started"
    (payload,) = sfn.inputs
    assert payload["eventTime"] == "2026-01-01T00:00:00Z"
    assert payload["packageArn"] == PACKAGE
