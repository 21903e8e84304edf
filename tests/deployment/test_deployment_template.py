"""Fine-grained assertions on the synthesized deployment stack (one synth per sizing kind)."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Capture, Match
from deployment_stages import SynthesizedStage, unresolved_definition

from deployment.infrastructure import DEFAULT_SMOKE_TEST_ROW, POWERTOOLS_LAYER_ACCOUNT
from stacks.deployment_stack import MODEL_ARTIFACTS_PREFIX, SAMPLE_DATASET, smoke_test_row


def _only(stage: SynthesizedStage, resource_type: str) -> tuple[str, dict[str, Any]]:
    ((logical_id, resource),) = stage.resources(resource_type).items()
    return str(logical_id), dict(resource)


def _logical_id(stage: SynthesizedStage, resource_type: str, contains: str) -> str:
    (logical_id,) = [k for k in stage.resources(resource_type) if contains in k]
    return str(logical_id)


def _statements(stage: SynthesizedStage, policy_contains: str) -> list[dict[str, Any]]:
    policy_id = _logical_id(stage, "AWS::IAM::Policy", policy_contains)
    statements = stage.template_json["Resources"][policy_id]["Properties"]["PolicyDocument"]
    return list(statements["Statement"])


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


# --------------------------------------------------------------------------------------------
# Trigger: rule -> Lambda, retries and dead letters


def test_rule_matches_approvals_of_this_stage_group_only(
    serverless_stage: SynthesizedStage,
) -> None:
    pattern = Capture()
    serverless_stage.template.has_resource_properties(
        "AWS::Events::Rule",
        {"EventPattern": pattern, "Name": "mlops-dev-deploy-on-approval", "State": "ENABLED"},
    )
    assert pattern.as_object() == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {
            "ModelPackageGroupName": ["mlops-dev-models"],
            "ModelApprovalStatus": ["Approved"],
        },
    }


def test_rule_target_retries_then_dead_letters(serverless_stage: SynthesizedStage) -> None:
    trigger = _logical_id(serverless_stage, "AWS::Lambda::Function", "TriggerFunction")
    dlq = _logical_id(serverless_stage, "AWS::SQS::Queue", "DeadLetterQueue")
    serverless_stage.template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "Name": "mlops-dev-deploy-on-approval",
            "Targets": [
                {
                    "Arn": {"Fn::GetAtt": [trigger, "Arn"]},
                    "RetryPolicy": {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 14400},
                    "DeadLetterConfig": {"Arn": {"Fn::GetAtt": [dlq, "Arn"]}},
                    "Id": Match.any_value(),
                }
            ],
        },
    )
    key = _logical_id(serverless_stage, "AWS::KMS::Key", "NotificationsKey")
    serverless_stage.template.has_resource_properties(
        "AWS::SQS::Queue",
        {"KmsMasterKeyId": {"Fn::GetAtt": [key, "Arn"]}, "MessageRetentionPeriod": 1209600},
    )
    # EventBridge may send to the queue (queue policy) and use its key (key policy); alarms may
    # publish to the topic (its policy replaces SNS's default one) and use the key.
    serverless_stage.template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                                "Action": "sns:Publish",
                                "Condition": Match.object_like(
                                    {"StringEquals": {"aws:SourceAccount": "111111111111"}}
                                ),
                            }
                        )
                    ]
                )
            }
        },
    )
    serverless_stage.template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Principal": {"Service": "events.amazonaws.com"}})]
                )
            }
        },
    )
    serverless_stage.template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like({"Principal": {"Service": "cloudwatch.amazonaws.com"}}),
                        Match.object_like(
                            {
                                "Principal": {"Service": "events.amazonaws.com"},
                                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                            }
                        ),
                    ]
                )
            }
        },
    )


def test_timed_out_or_aborted_executions_are_notified(serverless_stage: SynthesizedStage) -> None:
    machine, _ = _only(serverless_stage, "AWS::StepFunctions::StateMachine")
    topic, _ = _only(serverless_stage, "AWS::SNS::Topic")
    serverless_stage.template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.states"],
                "detail-type": ["Step Functions Execution Status Change"],
                "detail": {
                    "stateMachineArn": [{"Ref": machine}],
                    "status": ["TIMED_OUT", "ABORTED"],
                },
            },
            "Targets": [
                Match.object_like({"Arn": {"Ref": topic}, "DeadLetterConfig": Match.any_value()})
            ],
        },
    )


def test_lambdas_are_assets_on_the_latest_runtime_with_powertools_tracing_and_dlq(
    serverless_stage: SynthesizedStage,
) -> None:
    functions = serverless_stage.resources("AWS::Lambda::Function")
    assert len(functions) == 3
    dlq = _logical_id(serverless_stage, "AWS::SQS::Queue", "DeadLetterQueue")
    for function in functions.values():
        props = function["Properties"]
        assert props["Runtime"] == "python3.14"
        assert props["Handler"] == "handler.handler"
        assert "S3Key" in props["Code"] and "ZipFile" not in props["Code"]  # no inline code
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["DeadLetterConfig"] == {"TargetArn": {"Fn::GetAtt": [dlq, "Arn"]}}
        (layer,) = props["Layers"]
        assert f":{POWERTOOLS_LAYER_ACCOUNT}:layer:AWSLambdaPowertoolsPythonV3-python314" in layer
        assert props["MemorySize"] == 256 and props["Timeout"] > 0
    trigger = _logical_id(serverless_stage, "AWS::Lambda::Function", "TriggerFunction")
    # no reservation: new accounts (concurrency limit 10) could not deploy the stack otherwise
    assert "ReservedConcurrentExecutions" not in functions[trigger]["Properties"]


# --------------------------------------------------------------------------------------------
# State machine


def test_state_machine_logs_everything_encrypted_and_traces(
    serverless_stage: SynthesizedStage,
) -> None:
    log_group = _logical_id(serverless_stage, "AWS::Logs::LogGroup", "StateMachineLogs")
    serverless_stage.template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineName": "mlops-dev-deploy-model",
            "StateMachineType": "STANDARD",
            "LoggingConfiguration": {
                "Level": "ALL",
                "IncludeExecutionData": True,
                "Destinations": [
                    {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": [log_group, "Arn"]}}}
                ],
            },
            "TracingConfiguration": {"Enabled": True},
        },
    )
    serverless_stage.template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {
            "LogGroupName": "/aws/vendedlogs/states/mlops-dev-deploy-model",
            "KmsKeyId": Match.any_value(),  # the stage's data key (stateful stack)
            "RetentionInDays": 14,
        },
    )


def test_every_task_retries_throttling_and_every_failure_is_caught(
    instance_stage: SynthesizedStage,
) -> None:
    states = unresolved_definition(instance_stage)["States"]
    tasks = {name: s for name, s in states.items() if s["Type"] == "Task"}
    for name, task in tasks.items():
        retried = [e for r in task.get("Retry", []) for e in r["ErrorEquals"]]
        assert any("Throttl" in e or "TooManyRequests" in e or "Exception" in e for e in retried), (
            name
        )
        assert all(r.get("BackoffRate", 1) >= 2 for r in task["Retry"]), name
        assert task.get("Catch"), f"{name} has no Catch"


def test_serverless_variant_has_no_capture_autoscaling_or_traffic_shifting(
    serverless_stage: SynthesizedStage,
) -> None:
    states = unresolved_definition(serverless_stage)["States"]
    parameters = states["CreateEndpointConfig"]["Parameters"]
    assert parameters["ProductionVariants"] == [
        {
            "VariantName": "AllTraffic",
            "ModelName.$": "$.plan.modelName",
            "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
        }
    ]
    # AWS: serverless endpoints support neither data capture nor a storage KMS key.
    assert "DataCaptureConfig" not in parameters and "KmsKeyId" not in parameters
    assert "DeploymentConfig" not in states["UpdateEndpoint"]["Parameters"]
    assert not any("ScalableTarget" in name or "ScalingPolicy" in name for name in states)


def test_instance_variant_captures_data_and_autoscales_from_config(
    instance_stage: SynthesizedStage,
) -> None:
    states = unresolved_definition(instance_stage)["States"]
    parameters = states["CreateEndpointConfig"]["Parameters"]
    assert parameters["ProductionVariants"] == [
        {
            "VariantName": "AllTraffic",
            "ModelName.$": "$.plan.modelName",
            "InstanceType": "ml.m5.xlarge",
            "InitialInstanceCount.$": "$.plan.initialInstanceCount",
            "InitialVariantWeight": 1,
        }
    ]
    capture = parameters["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["DestinationS3Uri"] == "s3://<token>/data-capture/"
    assert capture["KmsKeyId"] == parameters["KmsKeyId"] == "<token>"
    register = states["RegisterScalableTarget"]
    assert register["Resource"].endswith(
        ":states:::aws-sdk:applicationautoscaling:registerScalableTarget"
    )
    assert register["Parameters"] == {
        "ServiceNamespace": "sagemaker",
        "ResourceId": "endpoint/mlops-prod-endpoint/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "MinCapacity": 2,
        "MaxCapacity": 6,
    }
    tracking = states["PutScalingPolicy"]["Parameters"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 200
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }


def test_instance_updates_use_blue_green_guardrails_with_rollback_alarms(
    instance_stage: SynthesizedStage,
) -> None:
    states = unresolved_definition(instance_stage)["States"]
    deployment = states["UpdateEndpoint"]["Parameters"]["DeploymentConfig"]
    assert deployment["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration.$"] == (
        "$.plan.trafficRouting"
    )
    alarm_names = [a["AlarmName"] for a in deployment["AutoRollbackConfiguration"]["Alarms"]]
    assert alarm_names == ["mlops-prod-endpoint-5xx", "mlops-prod-endpoint-latency"]
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in instance_stage.resources("AWS::CloudWatch::Alarm").values()
    }
    assert alarms["mlops-prod-endpoint-5xx"]["MetricName"] == "Invocation5XXErrors"
    assert alarms["mlops-prod-endpoint-latency"]["MetricName"] == "ModelLatency"
    assert alarms["mlops-prod-endpoint-latency"]["Threshold"] == 1_000_000  # microseconds
    for name in alarm_names:
        alarm = alarms[name]
        assert alarm["Dimensions"][0] == {"Name": "EndpointName", "Value": "mlops-prod-endpoint"}
        assert alarm.get("AlarmActions"), "alarms notify the deployment topic"
    stage = states["Plan"]["Parameters"]["stage"]
    assert stage["trafficShifting"] == {"type": "CANARY", "percent": 25, "waitSeconds": 600}
    assert (stage["minInstances"], stage["maxInstances"]) == (2, 6)


def test_only_prod_requires_promotion(
    serverless_stage: SynthesizedStage, instance_stage: SynthesizedStage
) -> None:
    def stage_settings(stage: SynthesizedStage) -> dict[str, Any]:
        return dict(unresolved_definition(stage)["States"]["Plan"]["Parameters"]["stage"])

    assert stage_settings(serverless_stage)["requirePromotion"] is False
    assert stage_settings(instance_stage)["requirePromotion"] is True
    assert stage_settings(instance_stage)["modelPackageGroupName"] == "mlops-prod-models"


def test_smoke_test_payload_is_the_first_dataset_row_without_target(
    serverless_stage: SynthesizedStage, tmp_path: Any
) -> None:
    row = unresolved_definition(serverless_stage)["States"]["SmokeTest"]["Parameters"]
    assert row["csvRow"] == smoke_test_row()
    assert len(row["csvRow"].split(",")) == row["featureCount"] == 30
    if SAMPLE_DATASET.is_file():
        header, first = SAMPLE_DATASET.read_text().splitlines()[:2]
        assert header.split(",")[-1] == "target"
        assert row["csvRow"] == first.rsplit(",", 1)[0]
    assert smoke_test_row(tmp_path / "missing.csv") == DEFAULT_SMOKE_TEST_ROW


# --------------------------------------------------------------------------------------------
# Roles


def test_model_execution_role_is_for_sagemaker_and_scoped(instance_stage: SynthesizedStage) -> None:
    role = _logical_id(instance_stage, "AWS::IAM::Role", "ModelExecutionRole")
    trust = instance_stage.template_json["Resources"][role]["Properties"][
        "AssumeRolePolicyDocument"
    ]
    assert trust["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
        }
    ]
    statements = _statements(instance_stage, "ModelExecutionRole")
    put = next(s for s in statements if "s3:PutObject" in _actions(s))
    assert json.dumps(put["Resource"]).endswith('"/data-capture/*"]]}')
    reads = json.dumps([s["Resource"] for s in statements if "s3:GetObject*" in _actions(s)])
    assert f"/{MODEL_ARTIFACTS_PREFIX}*" in reads and "/promoted-models/*" in reads


def test_state_machine_role_passes_only_the_execution_role_to_sagemaker(
    instance_stage: SynthesizedStage,
) -> None:
    role = _logical_id(instance_stage, "AWS::IAM::Role", "ModelExecutionRole")
    statements = _statements(instance_stage, "StateMachineRole")
    (pass_role,) = [s for s in statements if "iam:PassRole" in _actions(s)]
    assert pass_role["Resource"] == {"Fn::GetAtt": [role, "Arn"]}
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    for statement in statements:
        if any(a.startswith("sagemaker:") for a in _actions(statement)):
            resources = json.dumps(statement["Resource"])
            assert '"*"' not in resources
            assert "mlops-prod-" in resources
    expected = {
        "sagemaker:CreateModel",
        "sagemaker:CreateEndpointConfig",
        "sagemaker:CreateEndpoint",
        "sagemaker:UpdateEndpoint",
        "sagemaker:DescribeEndpoint",
        "sagemaker:DeleteEndpoint",
        "sagemaker:DeleteEndpointConfig",
        "sagemaker:DeleteModel",
        "sagemaker:AddTags",
        "application-autoscaling:RegisterScalableTarget",
        "application-autoscaling:PutScalingPolicy",
        "lambda:InvokeFunction",
        "sns:Publish",
    }
    assert expected <= {a for s in statements for a in _actions(s)}


def test_trigger_can_only_start_and_list_its_own_state_machine(
    serverless_stage: SynthesizedStage,
) -> None:
    machine, _ = _only(serverless_stage, "AWS::StepFunctions::StateMachine")
    statements = _statements(serverless_stage, "TriggerFunction")
    (states,) = [s for s in statements if any(a.startswith("states:") for a in _actions(s))]
    assert sorted(_actions(states)) == ["states:ListExecutions", "states:StartExecution"]
    assert states["Resource"] == {"Ref": machine}


def test_compute_resources_wait_for_their_policy_without_redundant_dependencies(
    instance_stage: SynthesizedStage,
) -> None:
    """cfn-lint (make lint) rejects a DependsOn on a role already referenced by GetAtt."""
    resources = instance_stage.template_json["Resources"]
    for resource_type in ("AWS::Lambda::Function", "AWS::StepFunctions::StateMachine"):
        for resource in instance_stage.resources(resource_type).values():
            (policy,) = resource["DependsOn"]
            assert resources[policy]["Type"] == "AWS::IAM::Policy"
