"""Fine-grained assertions on the synthesized deployment stack (one synth per sizing kind)."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest
from aws_cdk.assertions import Capture, Match
from deployment_stages import SynthesizedStage, unresolved_definition

from deployment.infrastructure import DEFAULT_SMOKE_TEST_ROW, POWERTOOLS_LAYER_ACCOUNT
from stacks.deployment_stack import SAMPLE_DATASET, smoke_test_row


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
            "ModelPackageStatus": ["Completed"],
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


def test_model_execution_role_is_for_sagemaker(instance_stage: SynthesizedStage) -> None:
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


def _object_patterns(statement: dict[str, Any]) -> list[str]:
    """Key patterns of ``<bucket ARN>/<pattern>`` resources (Fn::Join of the bucket ARN)."""
    resources = statement["Resource"]
    resources = resources if isinstance(resources, list) else [resources]
    patterns = []
    for resource in resources:
        separator, (bucket_arn, suffix) = resource["Fn::Join"]
        assert separator == "" and "ArtifactsBucket" in json.dumps(bucket_arn)
        assert suffix.startswith("/")
        patterns.append(suffix[1:])
    return patterns


def _s3_reads(stage: SynthesizedStage) -> list[dict[str, Any]]:
    return [
        s
        for s in _statements(stage, "ModelExecutionRole")
        if any(a.startswith(("s3:Get", "s3:List")) for a in _actions(s))
    ]


def _iam_match(pattern: str, key: str) -> bool:
    """IAM resource matching: ``*`` spans any characters (``/`` included), ``?`` one."""
    return fnmatch.fnmatchcase(key, pattern)


@pytest.mark.parametrize(
    ("kind", "served", "refused"),
    [
        pytest.param(
            "serverless",
            [
                # <S3OutputPath>/<training job>/output/model.tar.gz of a pipeline execution
                "pipelines/mlops-dev-model-build/k2x9v1tz8r3q/Train/model/"
                "pipelines-k2x9v1tz8r3q-Train-Ab12Cd34Ef/output/model.tar.gz",
                # the best training job of a tuning step: same layout
                "pipelines/mlops-dev-model-build/k2x9v1tz8r3q/Train/model/"
                "k2x9v1tz8r3q-Train-a1b2c3-003-5f1e2d3c/output/model.tar.gz",
            ],
            [
                "pipelines/mlops-dev-model-build/k2x9v1tz8r3q/Preprocess/train/train.csv",
                "pipelines/mlops-dev-model-build/k2x9v1tz8r3q/Evaluate/evaluation/evaluation.json",
                "pipelines/mlops-dev-model-build/k2x9v1tz8r3q/Train/model/job/output/output.tar.gz",
                "pipelines/mlops-staging-model-build/k2x9/Train/model/job/output/model.tar.gz",
                "promoted-models/mlops-staging-models/v3/model.tar.gz",
                "data-capture/mlops-dev-endpoint/AllTraffic/2026/01/01/00/capture.jsonl",
                "code/model_build/bundle.tar.gz",
            ],
            id="dev-serves-its-pipeline-models",
        ),
        pytest.param(
            "instance",
            ["promoted-models/mlops-staging-models/v3/model.tar.gz"],
            [
                "pipelines/mlops-prod-model-build/k2x9/Train/model/job/output/model.tar.gz",
                "promoted-models/mlops-staging-models/v3/evaluation.json",
                "data-capture/mlops-prod-endpoint/AllTraffic/2026/01/01/00/capture.jsonl",
            ],
            id="prod-serves-promoted-models-only",
        ),
    ],
)
def test_model_execution_role_reads_only_the_model_artifacts_it_serves(
    kind: str, served: list[str], refused: list[str], request: pytest.FixtureRequest
) -> None:
    stage: SynthesizedStage = request.getfixturevalue(f"{kind}_stage")
    (read,) = _s3_reads(stage)
    assert _actions(read) == ["s3:GetObject"]  # no bucket listing, no other object APIs
    patterns = _object_patterns(read)
    for key in served:
        assert any(_iam_match(p, key) for p in patterns), key
    for key in refused:
        assert not any(_iam_match(p, key) for p in patterns), key


def test_model_execution_role_matches_where_each_stage_pipeline_writes_the_model(
    templates: dict[str, dict[str, dict[str, Any]]],
) -> None:
    """The key SageMaker gives the model (``<S3OutputPath>/<job>/output/model.tar.gz``, with
    S3OutputPath from the synthesized pipeline definition of the same stage) is readable by
    the execution role of every stage that deploys the pipeline's own versions."""
    checked = 0
    for stage_name, stacks in templates.items():
        output_path = _train_output_path(stacks["ModelBuild"], execution_id="k2x9v1tz8r3q")
        prefix = output_path.removeprefix("s3://").partition("/")[2]
        key = f"{prefix}/pipelines-k2x9v1tz8r3q-Train-Ab12Cd34Ef/output/model.tar.gz"
        (policy,) = [
            r
            for logical_id, r in stacks["Deployment"]["Resources"].items()
            if r["Type"] == "AWS::IAM::Policy" and "ModelExecutionRole" in logical_id
        ]
        (read,) = [
            s
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
            if "s3:GetObject" in _actions(s)
        ]
        readable = any(_iam_match(p, key) for p in _object_patterns(read))
        assert readable is (not stage_name.endswith("-prod")), (stage_name, key)
        checked += 1
    assert checked >= 3


def _train_output_path(template: dict[str, Any], execution_id: str) -> str:
    (pipeline,) = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::SageMaker::Pipeline"
    ]
    body = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]
    if not isinstance(body, str):  # Fn::Join with the bucket name as a token
        body = "".join(p if isinstance(p, str) else "bucket" for p in body["Fn::Join"][1])
    (train,) = [step for step in json.loads(body)["Steps"] if step["Name"] == "Train"]
    arguments = train["Arguments"]
    if train["Type"] == "Tuning":
        arguments = arguments["TrainingJobDefinition"]
    join = arguments["OutputDataConfig"]["S3OutputPath"]["Std:Join"]
    values = [
        execution_id if v == {"Get": "Execution.PipelineExecutionId"} else v for v in join["Values"]
    ]
    assert all(isinstance(v, str) for v in values), values
    return str(join["On"].join(values))


def test_model_execution_role_may_read_the_rollback_alarms(
    instance_stage: SynthesizedStage,
) -> None:
    """SageMaker's blue/green auto-rollback reads the alarms with the model's execution role."""
    (describe,) = [
        s
        for s in _statements(instance_stage, "ModelExecutionRole")
        if "cloudwatch:DescribeAlarms" in _actions(s)
    ]
    alarms = {
        a["Properties"]["AlarmName"]: logical_id
        for logical_id, a in instance_stage.resources("AWS::CloudWatch::Alarm").items()
    }
    assert describe["Resource"] == [
        {"Fn::GetAtt": [alarms["mlops-prod-endpoint-5xx"], "Arn"]},
        {"Fn::GetAtt": [alarms["mlops-prod-endpoint-latency"], "Arn"]},
    ]
    assert "Condition" not in describe


def test_state_machine_may_describe_the_key_outside_the_grant_condition(
    instance_stage: SynthesizedStage,
) -> None:
    """kms:GrantIsForAWSResource exists only on grant operations: DescribeKey under it would
    never be allowed."""
    statements = _statements(instance_stage, "StateMachineRole")
    kms = [s for s in statements if any(a.startswith("kms:") for a in _actions(s))]
    (create_grant,) = [s for s in kms if "kms:CreateGrant" in _actions(s)]
    assert _actions(create_grant) == ["kms:CreateGrant"]
    assert create_grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    (describe,) = [s for s in kms if "kms:DescribeKey" in _actions(s)]
    assert _actions(describe) == ["kms:DescribeKey"] and "Condition" not in describe
    assert describe["Resource"] == create_grant["Resource"]


@pytest.mark.parametrize("kind", ["serverless", "instance"])
def test_service_principals_on_topic_and_key_are_confined_to_this_stage(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """Confused-deputy protection: every statement letting an AWS service use the topic or the
    notifications key names this account and this stage's alarms/rules as the source."""
    stage: SynthesizedStage = request.getfixturevalue(f"{kind}_stage")
    prefix = stage.config.naming.prefix
    documents = [
        r["Properties"]["PolicyDocument"] for r in stage.resources("AWS::SNS::TopicPolicy").values()
    ] + [r["Properties"]["KeyPolicy"] for r in stage.resources("AWS::KMS::Key").values()]
    services = []
    for document in documents:
        for statement in document["Statement"]:
            service = (
                statement.get("Principal", {}).get("Service")
                if isinstance(statement.get("Principal"), dict)
                else None
            )
            if statement["Effect"] != "Allow" or service is None:
                continue
            services.append(service)
            condition = statement["Condition"]
            assert condition["StringEquals"]["aws:SourceAccount"] == "111111111111", statement
            (operator,) = [k for k in condition if "aws:SourceArn" in condition[k]]
            assert operator in ("ArnEquals", "ArnLike"), statement
            arns = condition[operator]["aws:SourceArn"]
            arns = arns if isinstance(arns, list) else [arns]
            kind_of_source = {
                "cloudwatch.amazonaws.com": ":alarm:",
                "events.amazonaws.com": ":rule/",
            }[service]
            for arn in arns:
                assert arn.startswith("arn:aws:"), arn
                assert f":111111111111{kind_of_source}{prefix}-" in arn, arn
    assert sorted(services) == [
        "cloudwatch.amazonaws.com",  # alarms publish to the topic
        "cloudwatch.amazonaws.com",  # ... with the key
        "events.amazonaws.com",  # dead letters into the SSE-KMS queue
    ]
    # EventBridge publishes aborted/timed-out executions with a role only that rule may assume.
    (publisher,) = [
        r["Properties"]
        for logical_id, r in stage.resources("AWS::IAM::Role").items()
        if "ExecutionEndedPublisher" in logical_id
    ]
    (trust,) = publisher["AssumeRolePolicyDocument"]["Statement"]
    rule_arns = "arn:aws:events:us-east-1:111111111111:rule"
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "111111111111"},
        "ArnEquals": {"aws:SourceArn": f"{rule_arns}/{prefix}-deploy-ended-abnormally"},
    }


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


# --------------------------------------------------------------------------------------------
# Rollback alarms: they fire when they must (issue 7.16)

_COMPARE = {
    "GreaterThanOrEqualToThreshold": lambda value, threshold: value >= threshold,
    "GreaterThanThreshold": lambda value, threshold: value > threshold,
    "LessThanThreshold": lambda value, threshold: value < threshold,
    "LessThanOrEqualToThreshold": lambda value, threshold: value <= threshold,
}


def _alarm_state(alarm: dict[str, Any], datapoints: list[float | None]) -> str:
    """CloudWatch's evaluation of a static-threshold alarm over the latest datapoints (one per
    period, newest last; None = missing): ALARM when at least DatapointsToAlarm of the last
    EvaluationPeriods breach (missing data treated as configured), else OK."""
    window = datapoints[-alarm["EvaluationPeriods"] :]
    missing = alarm.get("TreatMissingData", "missing")
    assert missing in ("notBreaching", "breaching"), "rollback alarms must decide on missing data"
    breaching = [
        missing == "breaching"
        if value is None
        else _COMPARE[alarm["ComparisonOperator"]](value, alarm["Threshold"])
        for value in window
    ]
    needed = alarm.get("DatapointsToAlarm", alarm["EvaluationPeriods"])
    return "ALARM" if sum(breaching) >= needed else "OK"


def test_5xx_rollback_alarm_fires_on_the_first_error_minute(
    instance_stage: SynthesizedStage,
) -> None:
    (alarm,) = [
        a["Properties"]
        for a in instance_stage.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["AlarmName"] == "mlops-prod-endpoint-5xx"
    ]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SageMaker", "Invocation5XXErrors")
    assert (alarm["Statistic"], alarm["Period"]) == ("Sum", 60)
    assert _alarm_state(alarm, [0, 0, 0]) == "OK"
    assert _alarm_state(alarm, [None, None]) == "OK"  # no traffic is no error
    assert _alarm_state(alarm, [0, 0, 1]) == "ALARM"  # a single 5xx during the canary
    assert _alarm_state(alarm, [0, 0, 25]) == "ALARM"
    assert _alarm_state(alarm, [3, 0]) == "OK"  # recovered: the baking period goes on


def test_latency_rollback_alarm_fires_above_one_second_p90(
    instance_stage: SynthesizedStage,
) -> None:
    (alarm,) = [
        a["Properties"]
        for a in instance_stage.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["AlarmName"] == "mlops-prod-endpoint-latency"
    ]
    assert (alarm["MetricName"], alarm["ExtendedStatistic"], alarm["Period"]) == (
        "ModelLatency",
        "p90",
        60,
    )
    second = 1_000_000  # ModelLatency is in microseconds
    assert _alarm_state(alarm, [second, second, second]) == "OK"
    assert _alarm_state(alarm, [second + 1, 10, second + 1]) == "ALARM"  # 2 of 3 minutes
    assert _alarm_state(alarm, [10, 10, 5 * second]) == "OK"  # one slow minute only


def test_plan_may_list_the_executions_of_its_own_state_machine_only(
    serverless_stage: SynthesizedStage,
) -> None:
    """Serialization: the plan step waits for earlier RUNNING executions (ListExecutions)."""
    (machine,) = serverless_stage.resources("AWS::StepFunctions::StateMachine").values()
    name = machine["Properties"]["StateMachineName"]
    (states,) = [
        s
        for s in _statements(serverless_stage, "PlanFunction")
        if any(a.startswith("states:") for a in _actions(s))
    ]
    assert _actions(states) == ["states:ListExecutions"]
    assert states["Resource"] == f"arn:aws:states:us-east-1:111111111111:stateMachine:{name}"


@pytest.mark.parametrize("kind", ["serverless", "instance"])
def test_endpoint_calls_refused_for_a_change_in_progress_go_back_to_wait_and_plan(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """Both CreateEndpoint and UpdateEndpoint: SageMaker's "in progress" refusals lead to the
    conflict path (delete the unused config and model, wait, plan again), any other error to
    the cleanup."""
    stage: SynthesizedStage = request.getfixturevalue(f"{kind}_stage")
    states = unresolved_definition(stage)["States"]
    for task in ("CreateEndpoint", "UpdateEndpoint"):
        (catch,) = states[task]["Catch"]
        assert catch["ErrorEquals"] == ["States.ALL"]
        choice = states[catch["Next"]]
        (rule,) = choice["Choices"]
        assert sorted((c["Variable"], c["StringMatches"]) for c in rule["Or"]) == [
            ("$.caught.Cause", "*Cannot create already existing endpoint*"),
            ("$.caught.Cause", "*Cannot update in-progress endpoint*"),
        ]
        assert rule["Next"] == "ConflictDeleteEndpointConfig"
        assert choice["Default"] == f"Record{task}Failure"
    assert states["ConflictDeleteEndpointConfig"]["Next"] == "ConflictDeleteModel"
    after = states["ConflictDeleteModel"]["Next"]
    if kind == "instance":  # autoscaling deregistered for this update is registered again
        choice = states[after]
        assert choice["Choices"][0]["Variable"] == "$.plan.instanceTypeChanged"
        assert choice["Choices"][0]["Next"] == "ConflictRegisterScalableTarget"
        after = choice["Default"]
    assert after == "WaitForEndpointIdle" and states[after]["Next"] == "Plan"
