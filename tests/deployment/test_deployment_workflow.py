"""The synthesized deployment state machine, executed by moto's Step Functions interpreter.

SageMaker, SNS and Application Auto Scaling calls go to moto; the Lambda tasks run the real
handlers in-process; moto's missing UpdateEndpoint is a recorded fake (see deployment_moto).
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
from deployment_moto import (
    REGION,
    DeploymentHarness,
    FakeUpdateEndpoint,
    queue_endpoint_answers,
    register_model,
)
from deployment_stages import SynthesizedStage, unresolved_definition
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.responses import SageMakerResponse

from lambdas.deploy_trigger import handler as trigger
from pipelines.model_build.model_code.data_capture import CaptureConfig

GOOD = {"predictions": [{"score": 0.97, "label": 1}]}
PROMOTED = {"promoted-to-prod": "true", "promoted-from": "arn:aws:sagemaker:staging/1"}


def _sagemaker() -> Any:
    return boto3.client("sagemaker", region_name=REGION)


def _endpoint_tags(name: str) -> dict[str, str]:
    arn = _sagemaker().describe_endpoint(EndpointName=name)["EndpointArn"]
    return {t["Key"]: t["Value"] for t in _sagemaker().list_tags(ResourceArn=arn)["Tags"]}


def _names(kind: str) -> list[str]:
    sm = _sagemaker()
    if kind == "models":
        return sorted(m["ModelName"] for m in sm.list_models()["Models"])
    return sorted(c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"])


def _approval_event(package_arn: str, group: str, event_id: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": REGION,
        "resources": [package_arn],
        "detail": {
            "ModelPackageGroupName": group,
            "ModelPackageVersion": int(package_arn.rsplit("/", 1)[-1]),
            "ModelPackageArn": package_arn,
            "ModelApprovalStatus": "Approved",
            "ModelPackageStatus": "Completed",
        },
    }


def _deploy(h: DeploymentHarness, arn: str, name: str) -> dict[str, Any]:
    queue_endpoint_answers(GOOD, GOOD)
    execution = h.run({"packageArn": arn}, name=name)
    assert execution["status"] == "SUCCEEDED", execution
    return dict(execution)


# --------------------------------------------------------------------------------------------
# Serverless stage (dev)


def test_happy_path_creates_the_endpoint_tags_it_and_notifies(
    serverless_harness: DeploymentHarness,
) -> None:
    h = serverless_harness
    endpoint = h.config.naming.endpoint
    arn = register_model(h.config.naming.model_package_group)

    execution = _deploy(h, arn, "first")

    assert h.visited_states(execution["executionArn"]) == [
        "Plan", "Route", "CreateModel", "CreateEndpointConfig", "EndpointExists",
        "CreateEndpoint", "DescribeEndpoint", "EndpointStatus", "ServesNewConfig", "SmokeTest",
        "TagEndpoint", "NotifySuccess", "Deployed",
    ]  # fmt: skip
    output = json.loads(execution["output"])
    config_name = output["endpointConfigName"]
    assert config_name.startswith("mlops-dev-deploy-v1-")
    described = _sagemaker().describe_endpoint(EndpointName=endpoint)
    assert described["EndpointConfigName"] == config_name
    config = _sagemaker().describe_endpoint_config(EndpointConfigName=config_name)
    (variant,) = config["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert not config.get("DataCaptureConfig")  # serverless: SageMaker captures nothing
    model = _sagemaker().describe_model(ModelName=variant["ModelName"])
    # ... so the inference handler does (data_capture.py), configured by the model's environment
    assert model["PrimaryContainer"] == {
        "ModelPackageName": arn,
        "Environment": {
            "MLOPS_CAPTURE_S3_URI": f"s3://{h.bucket}/data-capture/",
            "MLOPS_CAPTURE_ENDPOINT_NAME": endpoint,
            "MLOPS_CAPTURE_VARIANT_NAME": "AllTraffic",
            "MLOPS_CAPTURE_SAMPLING_PERCENT": "100",
            "MLOPS_CAPTURE_KMS_KEY_ID": h.key_arn,
            "MLOPS_CAPTURE_REGION": REGION,
        },
    }
    capture = CaptureConfig.from_environment(model["PrimaryContainer"]["Environment"])
    assert capture is not None  # the handler accepts it: same layout as SageMaker's capture
    assert (capture.bucket, capture.key_prefix()) == (
        h.bucket,
        f"data-capture/{endpoint}/AllTraffic",
    )
    assert _endpoint_tags(endpoint)["model-package-arn"] == arn
    (notice,) = h.notifications()
    assert notice["status"] == "SUCCEEDED"
    assert notice["packageArn"] == arn
    assert notice["smokeTest"]["score"] == pytest.approx(0.97)
    smoke_calls = [event for name, event in h.lambda_calls if name.endswith("smoke-test")]
    assert smoke_calls[0]["featureCount"] == 30
    assert len(smoke_calls[0]["csvRow"].split(",")) == 30


def test_the_same_approval_twice_deploys_once(serverless_harness: DeploymentHarness) -> None:
    h = serverless_harness
    group = h.config.naming.model_package_group
    arn = register_model(group)
    sfn = boto3.client("stepfunctions", region_name=REGION)
    event = trigger.ModelPackageStateChangeEvent.model_validate(
        _approval_event(arn, group, "event-1")
    )
    queue_endpoint_answers(GOOD, GOOD)

    def start(e: trigger.ModelPackageStateChangeEvent) -> trigger.TriggerResult:
        return trigger.start_deployment(
            e, sfn=sfn, state_machine_arn=h.state_machine_arn, group_name=group
        )

    first = start(event)
    while_running = start(event)  # redelivery while the first deployment runs
    assert first.action == "started"
    assert while_running.action == "duplicate"
    assert first.execution_arn is not None
    assert h.wait(first.execution_arn)["status"] == "SUCCEEDED"
    assert start(event).action == "duplicate"  # redelivery afterwards: same execution name

    # SageMaker emits another event for the same approval: it runs, and changes nothing.
    second = start(
        trigger.ModelPackageStateChangeEvent.model_validate(_approval_event(arn, group, "event-2"))
    )
    assert second.action == "started"
    assert second.execution_arn is not None
    again = h.wait(second.execution_arn)
    assert again["status"] == "SUCCEEDED"
    assert h.visited_states(second.execution_arn) == ["Plan", "Route", "NothingToDo"]
    assert json.loads(again["output"])["plan"]["code"] == "AlreadyServing"
    assert len(_names("models")) == 1
    assert len(_names("configs")) == 1
    assert [n["status"] for n in h.notifications()] == ["SUCCEEDED"]


def test_trigger_handler_starts_the_workflow(
    serverless_harness: DeploymentHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = serverless_harness
    group = h.config.naming.model_package_group
    arn = register_model(group)
    monkeypatch.setenv("STATE_MACHINE_ARN", h.state_machine_arn)
    monkeypatch.setenv("MODEL_PACKAGE_GROUP_NAME", group)
    queue_endpoint_answers(GOOD, GOOD)

    result = trigger.handler(_approval_event(arn, group, "event-9"), _lambda_context())

    assert result["action"] == "started"
    assert h.wait(result["execution_arn"])["status"] == "SUCCEEDED"


def test_failed_smoke_test_deletes_what_it_created_and_fails_visibly(
    serverless_harness: DeploymentHarness,
) -> None:
    h = serverless_harness
    arn = register_model(h.config.naming.model_package_group)
    queue_endpoint_answers({"error": "model not loaded"}, GOOD)

    execution = h.run({"packageArn": arn}, name="bad-model")

    assert execution["status"] == "FAILED"
    assert execution["error"] == "DeploymentFailed"
    assert "expected one prediction" in execution["cause"]
    states = h.visited_states(execution["executionArn"])
    assert states[states.index("SmokeTest") :] == [
        "SmokeTest", "RecordSmokeTestFailure", "CleanupDescribeEndpoint", "CleanupEndpointState",
        "CleanupDeleteEndpoint", "CleanupDeleteEndpointConfig", "CleanupDeleteModel",
        "NotifyFailure", "DeploymentFailed",
    ]  # fmt: skip
    assert _sagemaker().list_endpoints()["Endpoints"] == []
    assert _names("models") == []
    assert _names("configs") == []
    (notice,) = h.notifications()
    assert notice["status"] == "FAILED"
    assert notice["failedStep"] == "SmokeTest"
    assert notice["error"] == "SmokeTestFailed"
    assert notice["packageArn"] == arn


def test_failed_smoke_test_after_an_update_rolls_back(
    serverless_harness: DeploymentHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = serverless_harness
    group = h.config.naming.model_package_group
    endpoint = h.config.naming.endpoint
    first = json.loads(_deploy(h, register_model(group), "v1")["output"])
    update = FakeUpdateEndpoint()
    update.install(monkeypatch)
    h.notifications()
    queue_endpoint_answers("not json", GOOD)

    execution = h.run({"packageArn": register_model(group)}, name="v2")

    assert execution["status"] == "FAILED"
    states = h.visited_states(execution["executionArn"])
    assert "UpdateEndpoint" in states
    assert "RollbackEndpoint" in states
    new_config, rolled_back_to = (c["EndpointConfigName"] for c in update.calls)
    assert new_config != first["endpointConfigName"]
    assert rolled_back_to == first["endpointConfigName"]
    assert update.calls[0]["DeploymentConfig"] is None  # serverless: no traffic shifting
    assert (
        _sagemaker().describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
        == (first["endpointConfigName"])
    )
    assert _names("configs") == [first["endpointConfigName"]]
    assert _endpoint_tags(endpoint)["model-package-arn"] == first["packageArn"]
    (notice,) = h.notifications()
    assert notice["rollback"] == "endpoint rolled back to its previous config"


def test_no_approved_model_yet_is_a_quiet_success(serverless_harness: DeploymentHarness) -> None:
    execution = serverless_harness.run({}, name="manual")

    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"])["plan"]["code"] == "NoApprovedModel"
    assert _sagemaker().list_endpoints()["Endpoints"] == []


def test_a_version_rejected_since_the_event_is_skipped(
    serverless_harness: DeploymentHarness,
) -> None:
    h = serverless_harness
    arn = register_model(h.config.naming.model_package_group, status="Rejected")

    execution = h.run({"packageArn": arn}, name="stale")

    assert execution["status"] == "FAILED"
    assert execution["error"] == "DeploymentSkipped"
    (notice,) = h.notifications()
    assert (notice["status"], notice["reason"]) == ("SKIPPED", "NotApproved")
    assert _names("models") == []


# --------------------------------------------------------------------------------------------
# Instance stage (prod): promotion guard, autoscaling, deployment guardrails


def test_prod_refuses_a_version_not_promoted(instance_harness: DeploymentHarness) -> None:
    h = instance_harness
    arn = register_model(h.config.naming.model_package_group)

    execution = h.run({"packageArn": arn}, name="unpromoted")

    assert execution["status"] == "FAILED"
    assert execution["error"] == "DeploymentSkipped"
    assert "not promoted" in execution["cause"]
    (notice,) = h.notifications()
    assert notice["reason"] == "NotPromoted"
    assert _names("models") == []


def test_prod_first_deploy_captures_data_and_autoscales(
    instance_harness: DeploymentHarness,
) -> None:
    h = instance_harness
    arn = register_model(h.config.naming.model_package_group, metadata=PROMOTED)

    output = json.loads(_deploy(h, arn, "prod-v1")["output"])

    config = _sagemaker().describe_endpoint_config(EndpointConfigName=output["endpointConfigName"])
    (variant,) = config["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.m5.xlarge", 2)
    assert config["KmsKeyId"] == h.key_arn
    capture = config["DataCaptureConfig"]
    assert capture["DestinationS3Uri"] == f"s3://{h.bucket}/data-capture/"
    assert capture["KmsKeyId"] == h.key_arn
    # SageMaker captures here: the model gets no handler-capture environment.
    model = _sagemaker().describe_model(ModelName=variant["ModelName"])
    assert model["PrimaryContainer"] == {"ModelPackageName": arn}
    autoscaling = boto3.client("application-autoscaling", region_name=REGION)
    (target,) = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")[
        "ScalableTargets"
    ]
    assert target["ResourceId"] == f"endpoint/{h.config.naming.endpoint}/variant/AllTraffic"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 6)
    (policy,) = autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")[
        "ScalingPolicies"
    ]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 200
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
        "SageMakerVariantInvocationsPerInstance"
    )


def test_prod_update_shifts_traffic_with_guardrails(
    instance_harness: DeploymentHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = instance_harness
    group = h.config.naming.model_package_group
    _deploy(h, register_model(group, metadata=PROMOTED), "prod-v1")
    update = FakeUpdateEndpoint()
    update.install(monkeypatch)
    v2 = register_model(group, metadata=PROMOTED)

    output = json.loads(_deploy(h, v2, "prod-v2")["output"])

    (call,) = update.calls
    assert call["EndpointConfigName"] == output["endpointConfigName"]
    policy = call["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {
        "Type": "CANARY",
        "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
        "WaitIntervalInSeconds": 600,
    }
    alarms = call["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    assert [a["AlarmName"] for a in alarms] == [
        "mlops-prod-endpoint-5xx",
        "mlops-prod-endpoint-latency",
    ]
    assert _endpoint_tags(h.config.naming.endpoint)["model-package-arn"] == v2


def test_prod_update_rolled_back_by_sagemaker_is_detected(
    instance_harness: DeploymentHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = instance_harness
    group = h.config.naming.model_package_group
    v1 = json.loads(_deploy(h, register_model(group, metadata=PROMOTED), "prod-v1")["output"])
    FakeUpdateEndpoint(roll_back=True).install(monkeypatch)  # an alarm fired during the canary
    h.notifications()

    execution = h.run({"packageArn": register_model(group, metadata=PROMOTED)}, name="prod-v2")

    assert execution["status"] == "FAILED"
    assert "rolled the update back" in execution["cause"]
    assert _names("configs") == [v1["endpointConfigName"]]
    assert _endpoint_tags(h.config.naming.endpoint)["model-package-arn"] == v1["packageArn"]
    (notice,) = h.notifications()
    assert (notice["failedStep"], notice["error"]) == (
        "VerifyEndpointConfig",
        "DeploymentRolledBack",
    )


def _lambda_context() -> Any:
    import types

    return types.SimpleNamespace(
        function_name="mlops-dev-deploy-trigger",
        function_version="$LATEST",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:mlops-dev-deploy-trigger",
        memory_limit_in_mb=256,
        aws_request_id="test",
    )


# --------------------------------------------------------------------------------------------
# Ordering (issue 7.1), serialization (7.2), rollback order after an instance-type change (7.5)

T1, T2, T3 = "2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z", "2026-01-01T00:20:00Z"


def _plan_outputs(h: DeploymentHarness, execution_arn: str) -> list[dict[str, Any]]:
    """The plan of every pass through the Plan state, in order."""
    sfn = h.client("stepfunctions")
    events = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    return [
        json.loads(e["stateExitedEventDetails"]["output"])["plan"]
        for e in events
        if e.get("stateExitedEventDetails", {}).get("name") == "Plan"
    ]


def test_stale_or_older_approvals_never_roll_back_but_a_manual_rollback_does(
    serverless_harness: DeploymentHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = serverless_harness
    group = h.config.naming.model_package_group
    endpoint = h.config.naming.endpoint
    v1, v2 = register_model(group), register_model(group)
    sfn = boto3.client("stepfunctions", region_name=REGION)

    def deliver(arn: str, event_id: str, time: str) -> dict[str, Any]:
        event = _approval_event(arn, group, event_id)
        event["time"] = time
        started = trigger.start_deployment(
            trigger.ModelPackageStateChangeEvent.model_validate(event),
            sfn=sfn,
            state_machine_arn=h.state_machine_arn,
            group_name=group,
        )
        assert started.action == "started" and started.execution_arn is not None
        return h.wait(started.execution_arn)

    queue_endpoint_answers(GOOD, GOOD)
    assert deliver(v2, "approve-v2", T2)["status"] == "SUCCEEDED"
    tags = _endpoint_tags(endpoint)
    assert (tags["model-package-arn"], tags["model-package-version"]) == (v2, "2")
    assert tags["deployment-event-time"] == T2
    deployed_at = datetime.fromisoformat(tags["deployed-at"])
    assert deployed_at.tzinfo is not None
    served = _sagemaker().describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    h.notifications()

    # EventBridge redelivers v1's approval, made before v2's: a no-op.
    stale = deliver(v1, "approve-v1", T1)
    assert stale["status"] == "SUCCEEDED"
    assert h.visited_states(stale["executionArn"]) == ["Plan", "Route", "NothingToDo"]
    assert json.loads(stale["output"])["plan"]["code"] == "StaleEvent"

    # v1 approved again after v2 (a fresh event): older than what is served -> skipped, told.
    again = deliver(v1, "reapprove-v1", T3)
    assert (again["status"], again["error"]) == ("FAILED", "DeploymentSkipped")
    (notice,) = h.notifications()
    assert (notice["status"], notice["reason"]) == ("SKIPPED", "OlderThanServing")
    assert '"rollback": true' in notice["message"]
    assert _sagemaker().describe_endpoint(EndpointName=endpoint)["EndpointConfigName"] == served
    assert len(_names("models")) == len(_names("configs")) == 1

    # A human asks for the rollback explicitly: deployed, and recorded on the endpoint.
    FakeUpdateEndpoint().install(monkeypatch)
    queue_endpoint_answers(GOOD, GOOD)
    rollback = h.run({"packageArn": v1, "rollback": True}, name="manual-rollback")
    assert rollback["status"] == "SUCCEEDED", rollback
    tags = _endpoint_tags(endpoint)
    assert (tags["model-package-arn"], tags["model-package-version"]) == (v1, "1")
    # a manual run is ordered by its own start time (the same instant, as stored by the API)
    started = rollback["startDate"]
    assert datetime.fromisoformat(tags["deployment-event-time"]) == pytest.approx(
        started, abs=timedelta(milliseconds=1)
    )
    assert datetime.fromisoformat(tags["deployed-at"]) >= deployed_at


@pytest.mark.parametrize(
    ("first", "second", "serves"),
    [
        pytest.param((1, T1), (2, T2), 2, id="later-approval-deploys-after-the-earlier-one"),
        pytest.param((2, T2), (1, T1), 2, id="earlier-approval-delivered-late-is-a-no-op"),
    ],
)
def test_approvals_close_together_deploy_one_at_a_time_and_the_later_wins(
    serverless_harness: DeploymentHarness,
    monkeypatch: pytest.MonkeyPatch,
    first: tuple[int, str],
    second: tuple[int, str],
    serves: int,
) -> None:
    h = serverless_harness
    group = h.config.naming.model_package_group
    packages = {1: register_model(group), 2: register_model(group)}
    FakeUpdateEndpoint().install(monkeypatch)
    queue_endpoint_answers(GOOD, GOOD, GOOD, GOOD)

    # Hold the first deployment in its smoke test (endpoint created and InService, not yet
    # tagged) until the second execution has planned twice: it must wait for the first.
    in_smoke_test = threading.Event()

    def hold_first_smoke_test(event: dict[str, Any]) -> None:
        if in_smoke_test.is_set():
            return
        in_smoke_test.set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(_plans_of(h, "second")) < 2:
            time.sleep(0.05)

    h.hooks["deploy-smoke-test"] = hold_first_smoke_test
    version, event_time = first
    a = h.start({"packageArn": packages[version], "eventTime": event_time}, name="first")
    assert in_smoke_test.wait(20)
    version, event_time = second
    b = h.start({"packageArn": packages[version], "eventTime": event_time}, name="second")

    assert h.wait(a, timeout=60)["status"] == "SUCCEEDED"
    assert h.wait(b, timeout=60)["status"] == "SUCCEEDED"

    b_plans = _plan_outputs(h, b)
    assert b_plans[0]["code"] == "QueuedBehindEarlierDeployment"
    assert b_plans[-1]["code"] in ("Deploy", "StaleEvent")
    assert all(p["action"] == "wait" for p in b_plans[:-1])
    assert "CreateEndpoint" not in h.visited_states(b)  # only the first one created it
    tags = _endpoint_tags(h.config.naming.endpoint)
    assert tags["model-package-arn"] == packages[serves]
    assert {n["status"] for n in h.notifications()} == {"SUCCEEDED"}


def _plans_of(h: DeploymentHarness, execution_name: str) -> list[dict[str, Any]]:
    return [
        e
        for name, e in h.lambda_calls
        if name.endswith("deploy-plan") and e["executionName"] == execution_name
    ]


def test_sagemaker_in_progress_error_goes_back_to_wait_and_replan(
    serverless_harness: DeploymentHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another change of the endpoint we could not see (a console update, a plan that read
    ListExecutions before the other execution showed up): SageMaker refuses UpdateEndpoint with
    "Cannot update in-progress endpoint". The run cleans up its unused config and model, waits,
    plans again and deploys; nothing fails, nothing is notified as FAILED."""
    h = serverless_harness
    group = h.config.naming.model_package_group
    v1 = json.loads(_deploy(h, register_model(group), "v1")["output"])
    update = FakeUpdateEndpoint(conflicts=1)
    update.install(monkeypatch)
    h.notifications()

    execution = _deploy(h, register_model(group), "v2")

    states = h.visited_states(execution["executionArn"])
    conflict = states.index("UpdateEndpointConflict")
    assert states[conflict - 1 : conflict + 7] == [
        "UpdateEndpoint", "UpdateEndpointConflict", "ConflictDeleteEndpointConfig",
        "ConflictDeleteModel", "WaitForEndpointIdle", "Plan", "Route", "CreateModel",
    ]  # fmt: skip
    assert "DeploymentFailed" not in states and "CleanupDescribeEndpoint" not in states
    output = json.loads(execution["output"])
    assert [c["EndpointConfigName"] for c in update.calls] == [output["endpointConfigName"]] * 2
    assert _names("configs") == sorted([v1["endpointConfigName"], output["endpointConfigName"]])
    assert [n["status"] for n in h.notifications()] == ["SUCCEEDED"]


def test_failed_update_that_changed_the_instance_type_rolls_back_in_an_order_sagemaker_accepts(
    instance_harness: DeploymentHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SageMaker refuses an update that changes the instance type of a variant registered with
    Application Auto Scaling (the harness's FakeUpdateEndpoint too). The rollback after a
    failure late in the deployment (autoscaling already registered on the new fleet) must
    deregister first, roll back, then register again, and delete the new config and model."""
    h = instance_harness
    group = h.config.naming.model_package_group
    endpoint = h.config.naming.endpoint
    sm = _sagemaker()
    autoscaling = boto3.client("application-autoscaling", region_name=REGION)
    target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": f"endpoint/{endpoint}/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
    }
    # The endpoint serves v1 on another instance type (before a config change), autoscaled.
    v1 = register_model(group, metadata=PROMOTED)
    sm.create_model(
        ModelName="legacy-v1",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/model",
        PrimaryContainer={"ModelPackageName": v1},
    )
    sm.create_endpoint_config(
        EndpointConfigName="legacy-v1",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "legacy-v1",
                "InstanceType": "ml.c5.large",
                "InitialInstanceCount": 2,
            }
        ],
    )
    arn = sm.create_endpoint(EndpointName=endpoint, EndpointConfigName="legacy-v1")["EndpointArn"]
    assert arn.endswith(f":endpoint/{endpoint}")
    sm.add_tags(
        ResourceArn=arn,
        Tags=[
            {"Key": "model-package-arn", "Value": v1},
            {"Key": "model-package-version", "Value": "1"},
        ],
    )
    autoscaling.register_scalable_target(**target, MinCapacity=2, MaxCapacity=6)
    update = FakeUpdateEndpoint()
    update.install(monkeypatch)
    fail_endpoint_tagging_once(monkeypatch, endpoint)
    queue_endpoint_answers(GOOD, GOOD)

    execution = h.run({"packageArn": register_model(group, metadata=PROMOTED)}, name="prod-v2")

    assert execution["status"] == "FAILED"
    states = h.visited_states(execution["executionArn"])
    assert states.index("DeregisterScalableTarget") < states.index("UpdateEndpoint")
    cleanup = states[states.index("RecordTagEndpointFailure") :]
    assert cleanup == [
        "RecordTagEndpointFailure", "CleanupDescribeEndpoint", "CleanupEndpointState",
        "CleanupInstanceTypeChanged", "CleanupDeregisterScalableTarget", "RollbackEndpoint",
        "RecordRollback", "CleanupDescribeEndpoint", "CleanupEndpointState",
        "CleanupDeleteEndpointConfig", "CleanupDeleteModel", "CleanupEndpointRemains",
        "CleanupRegisterScalableTarget", "CleanupPutScalingPolicy", "NotifyFailure",
        "DeploymentFailed",
    ]  # fmt: skip
    new_config, rolled_back_to = (c["EndpointConfigName"] for c in update.calls)
    assert new_config.startswith("mlops-prod-deploy-v2-") and rolled_back_to == "legacy-v1"
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"] == "legacy-v1"
    assert _names("configs") == ["legacy-v1"]
    assert _names("models") == ["legacy-v1"]
    (registered,) = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")[
        "ScalableTargets"
    ]
    assert (registered["MinCapacity"], registered["MaxCapacity"]) == (2, 6)
    (notice,) = h.notifications()
    assert (notice["failedStep"], notice["rollback"]) == (
        "TagEndpoint",
        "endpoint rolled back to its previous config",
    )


def fail_endpoint_tagging_once(monkeypatch: pytest.MonkeyPatch, endpoint_name: str) -> None:
    """AddTags on the endpoint fails once (a late failure: autoscaling is registered by then)."""
    add_tags = SageMakerResponse.add_tags
    failed: list[str] = []

    def fail_once(response: SageMakerResponse) -> Any:
        if response._get_param("ResourceArn").endswith(f":endpoint/{endpoint_name}") and not failed:
            failed.append(endpoint_name)
            raise ValidationError(message="simulated AddTags failure")
        return add_tags(response)

    monkeypatch.setattr(SageMakerResponse, "add_tags", fail_once)


# --------------------------------------------------------------------------------------------
# The plan's output and the state machine agree (issue 7.16)

PLAN_PATH = re.compile(r"\$\.plan\.([A-Za-z0-9_]+)")


def _choice_conditions(rule: dict[str, Any]) -> list[dict[str, Any]]:
    nested = [*rule.get("And", []), *rule.get("Or", []), *([rule["Not"]] if "Not" in rule else [])]
    return [rule] + [c for n in nested for c in _choice_conditions(n)]


def test_plan_output_keys_are_exactly_what_the_state_machine_reads(
    serverless_harness: DeploymentHarness,
    serverless_stage: SynthesizedStage,
    instance_stage: SynthesizedStage,
) -> None:
    """The real handler's output, as Step Functions stored it, against every ``$.plan.<key>``
    of both synthesized definitions: no key read that the plan lacks, no key the plan emits
    that nothing reads, and the Choice rules compare each key with a value of its type."""
    execution = serverless_harness.run({}, name="manual")
    output = json.loads(execution["output"])["plan"]

    read: set[str] = set()
    typed: dict[str, type] = {}
    for stage in (serverless_stage, instance_stage):
        definition = unresolved_definition(stage)
        read |= set(PLAN_PATH.findall(json.dumps(definition)))
        for state in definition["States"].values():
            for rule in state.get("Choices", []):
                for condition in _choice_conditions(rule):
                    key = PLAN_PATH.fullmatch(condition.get("Variable", ""))
                    if key and "BooleanEquals" in condition:
                        typed[key.group(1)] = bool
                    elif key and "StringEquals" in condition:
                        typed[key.group(1)] = str

    assert set(output) == read
    assert typed == {"action": str, "endpointExists": bool, "instanceTypeChanged": bool}
    for key, kind in typed.items():
        assert isinstance(output[key], kind), (key, output[key])
