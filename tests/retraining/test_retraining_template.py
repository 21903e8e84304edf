"""The synthesized retraining resources: alarms (metric, namespace, dimensions, comparison,
threshold from config), the alarm rule's target, the schedule, least-privilege IAM and the
security gate. Alarm semantics are checked by evaluating each alarm's comparison on values around
its threshold, so a wrong operator or threshold fails."""

from __future__ import annotations

import dataclasses
import json
import operator
from collections.abc import Callable
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Template

from infra.config import RetrainingConfig
from infra.naming import Naming
from monitoring.drift import metrics
from retraining.infrastructure import Retraining
from tests.retraining.retraining_stages import (
    ACCOUNT,
    REGION,
    SynthesizedRetraining,
    state_machine_definition,
)

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": operator.ge,
    "GreaterThanThreshold": operator.gt,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}


def alarms(stage: SynthesizedRetraining) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["AlarmName"]: r["Properties"]
        for r in stage.resources("AWS::CloudWatch::Alarm").values()
    }


def breaches(alarm: dict[str, Any], value: float) -> bool:
    """Whether one datapoint ``value`` breaches the alarm (CloudWatch: value OP threshold)."""
    return COMPARISONS[alarm["ComparisonOperator"]](value, alarm["Threshold"])


def render(value: Any) -> str:
    """A template value as text, CloudFormation references shown as <Ref> / <Logical.Attr>."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(render(p) for p in parts)
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    return json.dumps(value, sort_keys=True)


def test_three_alarms_on_this_stage_endpoint_and_drift_metric(
    staging: SynthesizedRetraining,
) -> None:
    settings = staging.config.environment.retraining
    endpoint = staging.config.naming.endpoint
    found = alarms(staging)
    assert set(found) == {
        "mlops-staging-retrain-drift",
        "mlops-staging-retrain-endpoint-5xx",
        "mlops-staging-retrain-endpoint-p99",
    }
    drift = found["mlops-staging-retrain-drift"]
    assert (drift["Namespace"], drift["MetricName"]) == (
        metrics.DEFAULT_NAMESPACE,
        metrics.SHARE_OF_DRIFTED_FEATURES,
    )
    assert drift["Dimensions"] == [{"Name": metrics.ENDPOINT_DIMENSION, "Value": endpoint}]
    assert drift["Statistic"] == "Maximum" and drift["Threshold"] == settings.drift_share_threshold
    variant = [
        {"Name": "EndpointName", "Value": endpoint},
        {"Name": "VariantName", "Value": "AllTraffic"},
    ]
    errors = found["mlops-staging-retrain-endpoint-5xx"]
    assert (errors["Namespace"], errors["MetricName"], errors["Statistic"]) == (
        "AWS/SageMaker",
        "Invocation5XXErrors",
        "Sum",
    )
    assert errors["Dimensions"] == variant and errors["Threshold"] == settings.errors_5xx_threshold
    latency = found["mlops-staging-retrain-endpoint-p99"]
    assert (latency["Namespace"], latency["MetricName"], latency["ExtendedStatistic"]) == (
        "AWS/SageMaker",
        "ModelLatency",
        "p99",
    )
    assert latency["Dimensions"] == variant
    for alarm in found.values():
        assert alarm["TreatMissingData"] == "notBreaching"
        assert "AlarmActions" not in alarm  # state changes go through EventBridge


def test_alarm_comparisons_fire_at_the_configured_thresholds(
    staging: SynthesizedRetraining,
) -> None:
    settings = staging.config.environment.retraining
    found = alarms(staging)
    drift = found["mlops-staging-retrain-drift"]
    share = settings.drift_share_threshold
    assert breaches(drift, share) and breaches(drift, 1.0)  # ">= threshold"
    assert not breaches(drift, share - 0.01) and not breaches(drift, 0.0)
    errors = found["mlops-staging-retrain-endpoint-5xx"]
    assert breaches(errors, settings.errors_5xx_threshold)
    assert not breaches(errors, settings.errors_5xx_threshold - 1)
    latency = found["mlops-staging-retrain-endpoint-p99"]  # ModelLatency is in microseconds
    limit_us = settings.latency_p99_ms * 1000
    assert breaches(latency, limit_us + 1) and not breaches(latency, limit_us)
    assert not breaches(latency, limit_us / 1000 + 1)  # a millisecond reading would never fire
    assert (latency["EvaluationPeriods"], latency["DatapointsToAlarm"], latency["Period"]) == (
        3,
        3,
        300,
    )


def test_thresholds_come_from_config() -> None:
    stack = cdk.Stack(cdk.App(), "T", env=cdk.Environment(account=ACCOUNT, region=REGION))
    settings = RetrainingConfig(
        enabled=True,
        schedule="rate(12 hours)",
        cooldown_minutes=90,
        drift_share_threshold=0.3,
        latency_p99_ms=250,
        errors_5xx_threshold=2,
    )
    Retraining(
        stack,
        "R",
        naming=Naming("mlops", "dev"),
        settings=settings,
        pipeline_name="mlops-dev-model-build",
        input_data_url="s3://curated/datasets/breast_cancer/",
        key=kms.Key(stack, "K"),
        log_retention_days=14,
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    template = Template.from_stack(stack).to_json()
    by_name = {
        r["Properties"]["AlarmName"]: r["Properties"]["Threshold"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert by_name == {
        "mlops-dev-retrain-drift": 0.3,
        "mlops-dev-retrain-endpoint-5xx": 2,
        "mlops-dev-retrain-endpoint-p99": 250000,
    }
    (schedule,) = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::Scheduler::Schedule"
    ]
    assert schedule["Properties"]["ScheduleExpression"] == "rate(12 hours)"
    (machine,) = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    assert '\\"cooldownMinutes\\":90' in json.dumps(machine["Properties"]["DefinitionString"])


def test_the_rule_starts_the_workflow_with_a_role_only_this_rule_may_assume(
    staging: SynthesizedRetraining,
) -> None:
    rule = staging.one("AWS::Events::Rule")["Properties"]
    (target,) = rule["Targets"]
    machine_id = next(iter(staging.resources("AWS::StepFunctions::StateMachine")))
    assert target["Arn"] == {"Ref": machine_id}
    (queue_id,) = staging.resources("AWS::SQS::Queue")
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 7200, "MaximumRetryAttempts": 8}
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    role = staging.template_json["Resources"][role_id]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    assert render(trust["Condition"]["ArnEquals"]["aws:SourceArn"]).endswith(
        f":events:{REGION}:{ACCOUNT}:rule/{rule['Name']}"
    )
    assert _statements(staging, role_id) == [(["states:StartExecution"], [f"<{machine_id}>"])]


def test_the_schedule_starts_the_workflow_with_its_own_role_and_input(
    staging: SynthesizedRetraining,
) -> None:
    schedule = staging.one("AWS::Scheduler::Schedule")["Properties"]
    machine_id = next(iter(staging.resources("AWS::StepFunctions::StateMachine")))
    assert schedule["ScheduleExpression"] == staging.config.environment.retraining.schedule
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["State"] == "ENABLED"
    target = schedule["Target"]
    assert target["Arn"] == {"Ref": machine_id}
    assert json.loads(target["Input"]) == {"reason": "schedule"}
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    role = staging.template_json["Resources"][role_id]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert render(trust["Condition"]["ArnEquals"]["aws:SourceArn"]).endswith(
        f":scheduler:{REGION}:{ACCOUNT}:schedule/default/{schedule['Name']}"
    )
    assert _statements(staging, role_id) == [(["states:StartExecution"], [f"<{machine_id}>"])]


def test_no_schedule_configured_means_no_schedule(dev: SynthesizedRetraining) -> None:
    assert dev.config.environment.retraining.schedule is None
    assert dev.resources("AWS::Scheduler::Schedule") == {}
    assert len(dev.resources("AWS::StepFunctions::StateMachine")) == 1


def _statements(stage: SynthesizedRetraining, role_id: str) -> list[tuple[list[str], list[str]]]:
    found = []
    for policy in stage.resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            resources = statement["Resource"]
            found.append(
                (
                    sorted(actions if isinstance(actions, list) else [actions]),
                    sorted(
                        render(r)
                        for r in (resources if isinstance(resources, list) else [resources])
                    ),
                )
            )
    return found


def test_sagemaker_and_step_functions_permissions_are_this_pipeline_and_workflow_only(
    staging: SynthesizedRetraining,
) -> None:
    pipeline_arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/mlops-staging-model-build"
    machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:mlops-staging-retrain"
    grants: dict[str, set[str]] = {}
    for policy in staging.resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"]
            for action in actions if isinstance(actions, list) else [actions]:
                resources = statement["Resource"]
                grants.setdefault(action, set()).update(
                    render(r) for r in (resources if isinstance(resources, list) else [resources])
                )
    sagemaker = {a: r for a, r in grants.items() if a.startswith("sagemaker:")}
    assert sagemaker == {
        "sagemaker:StartPipelineExecution": {pipeline_arn},
        "sagemaker:ListPipelineExecutions": {pipeline_arn},
    }
    assert grants["states:ListExecutions"] == {machine}
    assert not any(a.endswith("*") and a.split(":")[0] in ("sagemaker", "states") for a in grants)


def test_the_state_machine_is_logged_traced_and_bounded(staging: SynthesizedRetraining) -> None:
    machine = staging.one("AWS::StepFunctions::StateMachine")["Properties"]
    assert machine["StateMachineName"] == "mlops-staging-retrain"
    assert machine["LoggingConfiguration"]["Level"] == "ALL"
    assert machine["TracingConfiguration"] == {"Enabled": True}
    definition = state_machine_definition(staging, lambda token: "<token>")
    assert definition["TimeoutSeconds"] == 900
    start = definition["States"]["StartPipelineExecution"]
    assert start["Resource"] == "arn:<token>:states:::aws-sdk:sagemaker:startPipelineExecution"
    assert {p["Name"] for p in start["Parameters"]["PipelineParameters"]} == {
        "InputDataUrl",
        "InputDataVersion",
        "TriggerReason",
    }


@pytest.mark.parametrize("env", ["staging", "dev"])
def test_security_gate_has_no_findings(
    env: str, staging: SynthesizedRetraining, dev: SynthesizedRetraining
) -> None:
    stage = {"staging": staging, "dev": dev}[env]
    assert [str(f) for f in stage.findings] == []


def test_retraining_disabled_in_config_builds_none_of_it() -> None:
    from infra.app_builder import load_cdk_json_context
    from infra.config import CONTEXT_KEY, load_config
    from tests.stage_parts import operations_stack, stateful_stage

    context = load_cdk_json_context()
    config = load_config(context[CONTEXT_KEY]).stages_for_branch("main")[0]
    environment = dataclasses.replace(
        config.environment,
        account=ACCOUNT,
        retraining=dataclasses.replace(config.environment.retraining, enabled=False),
        # The drift job has its own schedule (tests/monitoring): off, to count retraining's.
        monitoring=dataclasses.replace(config.environment.monitoring, backend="off"),
    )
    config = dataclasses.replace(config, environment=environment)
    stage, stateful = stateful_stage(cdk.App(context=context), "S", config)
    operations = operations_stack(stage, stateful, config, pipeline_name=config.naming.pipeline)
    assert operations.retraining is None
    template = Template.from_stack(operations).to_json()
    names = json.dumps(template)
    assert "retrain" not in names.lower()
    assert not [
        r for r in template["Resources"].values() if r["Type"] == "AWS::Scheduler::Schedule"
    ]
