"""The synthesized deployment state machine, executed by moto's Step Functions interpreter.

SageMaker, SNS and Application Auto Scaling calls go to moto; the Lambda tasks run the real
handlers in-process; moto's missing UpdateEndpoint is a recorded fake (see deployment_moto).
"""

from __future__ import annotations

import json
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

from lambdas.deploy_trigger import handler as trigger

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
    model = _sagemaker().describe_model(ModelName=variant["ModelName"])
    assert model["PrimaryContainer"] == {"ModelPackageName": arn}
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
