"""monitoring/model_monitor.py synthesized for a model_monitor stage: no stage in cdk.json uses
that backend, so a small test-local App (built once for the module) holds the staging config
with ``monitoring.backend = model_monitor`` and a ground-truth location: the real stateful and
operations stacks (which wires the backend). The cdk-nag packs run on the stage
like the app's gate, cfn-lint on the template, and moto's EventBridge matches the rule's pattern
against AWS's documented sample event."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import boto3
import pytest
from aws_cdk.assertions import Template
from moto import mock_aws

from infra.app_builder import load_cdk_json_context
from infra.cfn_hygiene import drop_redundant_role_dependencies
from infra.compliance import Finding, findings
from infra.config import CONTEXT_KEY, MonitoringConfig, StageConfig, load_config
from monitoring.model_monitor import ModelMonitorBackend, analyzer_image_uri
from stacks.model_build_stack import ModelBuildStack
from tests.stage_parts import ACCOUNT, REGION, operations_stack, stateful_stage

GROUND_TRUTH = "s3://mlops-staging-labels/ground-truth/"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "sagemaker_endpoint_state_change.json"


@dataclass(frozen=True)
class Built:
    config: StageConfig
    backend: ModelMonitorBackend
    template: Template
    doc: dict[str, Any]
    findings: list[Finding]
    path: Path
    model_build_path: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    context = load_cdk_json_context()
    app_config = load_config(context[CONTEXT_KEY])
    (staging,) = [s for s in app_config.stages_for_branch("main") if s.env_name == "staging"]
    env = dataclasses.replace(
        staging.environment,
        account=ACCOUNT,
        monitoring=MonitoringConfig(
            backend="model_monitor",
            schedule="cron(0 * ? * * *)",
            window_hours=1,
            ground_truth_s3_uri=GROUND_TRUTH,
        ),
    )
    config = dataclasses.replace(staging, environment=env)
    app = cdk.App(context=context, outdir=str(tmp_path_factory.mktemp("mm-cdk-out")))
    stage, stateful = stateful_stage(app, config.stage_id, config)
    lake = stateful.lake
    model_build = ModelBuildStack(
        stage,
        "ModelBuild",
        config=config,
        key=lake.key,
        raw_bucket=lake.raw_bucket,
        artifacts_bucket=lake.artifacts_bucket,
        model_package_group_name=stateful.registry.group_name,
    )
    stack = operations_stack(
        stage, stateful, config, pipeline_name=model_build.model_build.pipeline_name
    )
    backend = stack.model_monitor
    assert backend is not None and stack.drift_monitoring is None
    drop_redundant_role_dependencies(stage)  # as infra/stages.py does for every stage
    gate = [
        f for f in findings(stage) if "/Operations/" in f.resource or "/ModelBuild/" in f.resource
    ]
    template = Template.from_stack(stack)
    assembly = stage.synth()
    path = Path(assembly.get_stack_artifact(stack.artifact_id).template_full_path)
    model_build_path = Path(assembly.get_stack_artifact(model_build.artifact_id).template_full_path)
    return Built(config, backend, template, dict(template.to_json()), gate, path, model_build_path)


def resources(built: Built, kind: str) -> dict[str, Any]:
    return {k: v for k, v in built.doc["Resources"].items() if v["Type"] == kind}


def backend_resource(built: Built, kind: str) -> dict[str, Any]:
    """The backend's one resource of ``kind`` (logical ids under ModelMonitor...)."""
    (found,) = [v for k, v in resources(built, kind).items() if k.startswith("ModelMonitor")]
    return found  # type: ignore[no-any-return]


def test_no_unacknowledged_nag_findings(built: Built) -> None:
    assert built.findings == [], "\n".join(f"{f.rule} on {f.resource}" for f in built.findings)


def test_cfn_lint_reports_nothing(built: Built) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--non-zero-exit-code", "informational",
         "--", str(built.path), str(built.model_build_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_monitoring_resource_is_in_the_template(built: Built) -> None:
    # The endpoint does not exist at deploy time: the Lambda creates these at run time. And
    # the drift_job backend's workflow is not built for this stage.
    kinds = {r["Type"] for r in built.doc["Resources"].values()}
    assert not {k for k in kinds if "Monitoring" in k or "JobDefinition" in k}
    assert not [k for k in built.doc["Resources"] if k.startswith("DriftMonitoring")]


def test_the_function_is_configured_for_this_stage(built: Built) -> None:
    naming = built.config.naming
    function = backend_resource(built, "AWS::Lambda::Function")["Properties"]
    assert function["Handler"] == "handler.handler" and "KmsKeyArn" in function
    variables = function["Environment"]["Variables"]
    assert variables["ENDPOINT_NAME"] == naming.endpoint
    assert variables["MODEL_PACKAGE_GROUP_NAME"] == naming.model_package_group
    assert variables["SCHEDULE_EXPRESSION"] == "cron(0 * ? * * *)"
    assert variables["WINDOW_HOURS"] == "1"
    assert variables["GROUND_TRUTH_S3_URI"] == GROUND_TRUTH
    assert variables["IMAGE_URI"] == built.backend.image_uri


def test_the_image_is_the_sdks_model_monitor_image() -> None:
    from sagemaker.core import image_uris

    for region in ("us-east-1", "eu-west-1", "ap-southeast-2"):
        assert analyzer_image_uri(region) == image_uris.retrieve("model-monitor", region)
    with pytest.raises(ValueError, match="no analyzer image in region xx-nowhere-1"):
        analyzer_image_uri("xx-nowhere-1")


def _statements(built: Built, role_prefix: str) -> list[dict[str, Any]]:
    found = []
    for _logical_id, policy in resources(built, "AWS::IAM::Policy").items():
        roles = json.dumps(policy["Properties"]["Roles"])
        if role_prefix in roles:
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def test_pass_role_only_for_the_job_role_to_sagemaker(built: Built) -> None:
    statements = _statements(built, "ModelMonitorSyncFunctionServiceRole")
    passes = [s for s in statements if s["Action"] == "iam:PassRole"]
    assert len(passes) == 1
    assert passes[0]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    assert "ModelMonitorJobRole" in json.dumps(passes[0]["Resource"])
    # Nothing else on "*" but the list calls and X-Ray.
    star = sorted(
        a for s in statements if s["Resource"] == "*"
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    )  # fmt: skip
    assert star == [
        "sagemaker:ListDataQualityJobDefinitions",
        "sagemaker:ListModelQualityJobDefinitions",
        "xray:PutTelemetryRecords",
        "xray:PutTraceSegments",
    ]


def test_the_job_role_is_trusted_by_sagemaker_and_scoped(built: Built) -> None:
    roles = resources(built, "AWS::IAM::Role")
    (job_role,) = [r for k, r in roles.items() if k.startswith("ModelMonitorJobRole")]
    (trust,) = job_role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    statements = _statements(built, "ModelMonitorJobRole")
    text = json.dumps(statements)
    assert "/data-capture/" + built.config.naming.endpoint + "/*" in text
    assert "/monitoring/model-monitor/*" in text
    assert "mlops-staging-labels" in text and "ground-truth/*" in text
    grants = [s for s in statements if s["Action"] == "kms:CreateGrant"]
    assert grants[0]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    metrics = [s for s in statements if s["Action"] == "cloudwatch:PutMetricData"]
    assert metrics[0]["Condition"]["StringEquals"]["cloudwatch:namespace"] == [
        "aws/sagemaker/Endpoints/data-metrics",
        "aws/sagemaker/Endpoints/model-metrics",
    ]


def test_the_rule_targets_the_function_with_a_dead_letter_queue(built: Built) -> None:
    rule = backend_resource(built, "AWS::Events::Rule")
    (target,) = rule["Properties"]["Targets"]
    assert "DeadLetterConfig" in target and target["RetryPolicy"]["MaximumRetryAttempts"] == 2


# ---- the event pattern, matched by moto's EventBridge ---------------------------------------


@pytest.fixture(scope="module")
def deliver(built: Built) -> Any:
    pattern = backend_resource(built, "AWS::Events::Rule")["Properties"]["EventPattern"]
    with mock_aws():
        events = boto3.client("events", region_name=REGION)
        sqs_client = boto3.client("sqs", region_name=REGION)
        url = sqs_client.create_queue(QueueName="matched")["QueueUrl"]
        arn = sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_rule(Name="mm", EventPattern=json.dumps(pattern))
        events.put_targets(Rule="mm", Targets=[{"Id": "q", "Arn": arn}])

        def send(event: dict[str, Any]) -> bool:
            entry = {
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Resources": event["resources"],
                "Detail": json.dumps(event["detail"]),
            }
            assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
            messages = sqs_client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
            for message in messages.get("Messages", []):
                sqs_client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            return bool(messages.get("Messages"))

        yield send


def _event(built: Built, **detail: Any) -> dict[str, Any]:
    event = json.loads(FIXTURE.read_text())
    event["detail"]["EndpointName"] = built.config.naming.endpoint
    event["detail"].update(detail)
    return event  # type: ignore[no-any-return]


def test_the_documented_event_for_this_endpoint_matches(built: Built, deliver: Any) -> None:
    assert deliver(_event(built)) is True
    assert deliver(_event(built, EndpointStatus="InService")) is True


@pytest.mark.parametrize(
    "detail",
    [
        {"EndpointStatus": "UPDATING"},
        {"EndpointStatus": "DELETING"},
        {"EndpointName": "mlops-prod-endpoint"},
    ],
)
def test_other_states_and_endpoints_do_not_match(
    built: Built, deliver: Any, detail: dict[str, Any]
) -> None:
    assert deliver(_event(built, **detail)) is False


def test_the_documented_event_as_is_does_not_match(built: Built, deliver: Any) -> None:
    assert deliver(json.loads(FIXTURE.read_text())) is False  # endpoint "MyEndpoint"


# ---- the model-build stack of a model_monitor stage --------------------------------------------


def test_the_stage_pipeline_computes_the_model_monitor_baseline(built: Built) -> None:
    template = json.loads(built.model_build_path.read_text())
    (pipeline,) = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::SageMaker::Pipeline"
    ]
    body = json.dumps(pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"])
    assert '\\"Type\\": \\"QualityCheck\\"' in body and "CalculatedBaselineStatistics" in body
    # The pipeline role may pull the analyzer image the check step runs.
    pulls = [
        statement
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy"
        for statement in r["Properties"]["PolicyDocument"]["Statement"]
        if statement.get("Sid") == "PullJobImages"
    ]
    assert any("sagemaker-model-monitor-analyzer" in json.dumps(s) for s in pulls)
