"""The ingestion resources as synthesized: the S3 rule matched by moto's EventBridge against
AWS's documented ``Object Created`` event, the state machine's shape per stage config, IAM least
privilege, and the typed ``ingestion`` config section."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.config import ConfigError, load_config
from tests.conftest import EPHEMERAL_STAGE, SHARED_STAGES, resources_of_type
from tests.ingestion.ingestion_moto import s3_object_created

REGION = "us-east-1"
ACCOUNT = "111111111111"


def operations(templates: dict[str, Any], stage: str) -> dict[str, Any]:
    return templates[stage]["Operations"]


def ingestion_resources(template: dict[str, Any], type_: str) -> dict[str, Any]:
    return {
        lid: res
        for lid, res in resources_of_type(template, type_).items()
        if lid.startswith("Ingestion")
    }


def raw_rule(template: dict[str, Any]) -> dict[str, Any]:
    (rule,) = ingestion_resources(template, "AWS::Events::Rule").values()
    return rule["Properties"]


def definition_states(template: dict[str, Any]) -> dict[str, Any]:
    (machine,) = ingestion_resources(template, "AWS::StepFunctions::StateMachine").values()
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else "TOKEN" for p in parts)
    states: dict[str, Any] = json.loads(text)["States"]
    return states


@pytest.fixture
def matches(aws_env: None, templates: dict[str, Any]) -> Any:
    """put_events -> the synthesized pattern (raw bucket name resolved) -> SQS: matched?"""
    pattern = json.loads(json.dumps(raw_rule(operations(templates, "mlops-dev"))["EventPattern"]))
    assert isinstance(pattern["detail"]["bucket"]["name"][0], dict)  # cross-stack bucket name
    pattern["detail"]["bucket"]["name"] = ["mlops-dev-raw"]
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="matched")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(Name="ingest", EventPattern=json.dumps(pattern))
        events.put_targets(Rule="ingest", Targets=[{"Id": "q", "Arn": arn}])

        def send(event: dict[str, Any]) -> bool:
            entry = {
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Resources": event["resources"],
                "Detail": json.dumps(event["detail"]),
            }
            assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            for message in got:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            return len(got) == 1

        yield send


def test_a_new_object_under_the_datasets_prefix_matches(matches: Any) -> None:
    assert matches(s3_object_created("datasets/breast_cancer/2026-11-30.csv"))
    assert matches(s3_object_created("datasets/breast_cancer/nested/part.csv"))


@pytest.mark.parametrize(
    "change",
    ["other-prefix", "other-dataset", "other-bucket", "deleted", "other-source"],
)
def test_other_objects_and_events_do_not_match(matches: Any, change: str) -> None:
    event = s3_object_created("datasets/breast_cancer/x.csv")
    if change == "other-prefix":
        event["detail"]["object"]["key"] = "landing/breast_cancer/x.csv"
    elif change == "other-dataset":
        event["detail"]["object"]["key"] = "datasets/other/x.csv"
    elif change == "other-bucket":
        event["detail"]["bucket"]["name"] = "mlops-staging-raw"
    elif change == "deleted":
        event["detail-type"] = "Object Deleted"
    else:
        event["source"] = "custom.s3"
    assert not matches(event)


@pytest.mark.parametrize("stage", [*SHARED_STAGES, EPHEMERAL_STAGE])
def test_the_rule_watches_this_stages_raw_bucket(templates: dict[str, Any], stage: str) -> None:
    pattern = raw_rule(operations(templates, stage))["EventPattern"]
    assert pattern["source"] == ["aws.s3"]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"] == {"key": [{"prefix": "datasets/breast_cancer/"}]}
    assert "RawBucket" in json.dumps(pattern["detail"]["bucket"]["name"])
    stateful = templates[stage]["Stateful"]
    (raw,) = (
        r for lid, r in resources_of_type(stateful, "AWS::S3::Bucket").items() if "RawBucket" in lid
    )
    config = raw["Properties"]["NotificationConfiguration"]["EventBridgeConfiguration"]
    assert config == {"EventBridgeEnabled": True}


@pytest.mark.parametrize(
    ("stage", "starts_pipeline"),
    [("mlops-dev", True), ("mlops-staging", True), ("mlops-prod", False), (EPHEMERAL_STAGE, True)],
)
def test_the_workflow_starts_the_pipeline_only_where_config_says(
    templates: dict[str, Any], stage: str, starts_pipeline: bool
) -> None:
    states = definition_states(operations(templates, stage))
    assert states["RunEtl"]["Resource"].endswith(":states:::glue:startJobRun.sync")
    assert states["RunEtl"]["Next"] == "StartCrawler"
    assert states["IsNewestUpload"]["Choices"][0]["Next"] == "RunEtl"
    assert states["IsNewestUpload"]["Default"] == "Superseded"
    assert ("StartPipeline" in states) is starts_pipeline
    done = states["LastCrawlSucceeded"]["Choices"][0]["Next"]
    assert done == ("StartPipeline" if starts_pipeline else "Curated")
    for name in ("ListRunningIngestions", "RunEtl", "StartCrawler", "GetCrawler"):
        assert states[name]["Catch"][-1] == {
            "ErrorEquals": ["States.ALL"],
            "ResultPath": "$.failure",
            "Next": "NotifyFailure",
        }
    assert states["NotifyFailure"]["Next"] == "IngestionFailed"


def _statements(template: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    (policy,) = (
        p
        for lid, p in resources_of_type(template, "AWS::IAM::Policy").items()
        if lid.startswith(role_prefix)
    )
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def test_the_workflow_role_is_least_privilege(templates: dict[str, Any]) -> None:
    statements = _statements(operations(templates, "mlops-dev"), "IngestionStateMachineRole")
    by_resource = {json.dumps(s["Resource"], sort_keys=True): s["Action"] for s in statements}
    arn = f"arn:aws:{{}}:{REGION}:{ACCOUNT}:{{}}"
    expected = {
        arn.format("glue", "job/mlops-dev-raw-to-curated"): [
            "glue:BatchStopJobRun",
            "glue:GetJobRun",
            "glue:GetJobRuns",
            "glue:StartJobRun",
        ],
        arn.format("glue", "crawler/mlops-dev-curated-crawler"): [
            "glue:GetCrawler",
            "glue:StartCrawler",
        ],
        arn.format("sagemaker", "pipeline/mlops-dev-model-build"): (
            "sagemaker:StartPipelineExecution"
        ),
        arn.format("states", "stateMachine:mlops-dev-ingestion"): "states:ListExecutions",
    }
    for resource, actions in expected.items():
        assert by_resource.pop(json.dumps(resource)) == actions
    # What remains: publish to the operations topic, its key, and log delivery/X-Ray ("*").
    remaining = sorted(json.dumps(s["Action"]) for s in statements)
    assert len(by_resource) == 3, remaining
    star = by_resource.pop('"*"')
    assert all(a.startswith(("logs:", "xray:")) for a in star)
    assert sorted(map(json.dumps, by_resource.values())) == [
        '"sns:Publish"',
        '["kms:Decrypt", "kms:GenerateDataKey"]',
    ]


def test_eventbridge_starts_the_workflow_through_a_conditioned_role(
    templates: dict[str, Any],
) -> None:
    template = operations(templates, "mlops-dev")
    rule = raw_rule(template)
    (target,) = rule["Targets"]
    assert "DeadLetterConfig" in target
    role = template["Resources"][target["RoleArn"]["Fn::GetAtt"][0]]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnEquals": {"aws:SourceArn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule['Name']}"},
    }
    (statement,) = _statements(template, "IngestionEventRole")
    assert statement["Action"] == "states:StartExecution"


def test_the_pipeline_role_reads_the_curated_prefix(templates: dict[str, Any]) -> None:
    policies = resources_of_type(templates["mlops-dev"]["ModelBuild"], "AWS::IAM::Policy")
    text = json.dumps(policies)
    assert "CuratedBucket" in text and "/datasets/*" in text


def _env(mlops_config: dict[str, Any], env: str, ingestion: Any) -> dict[str, Any]:
    config = json.loads(json.dumps(mlops_config))
    config["environments"][env]["ingestion"] = ingestion
    return config


def test_ingestion_defaults(mlops_config: dict[str, Any]) -> None:
    config = json.loads(json.dumps(mlops_config))
    for env in config["environments"].values():
        env.pop("ingestion", None)
    loaded = load_config(config)
    settings = {name: env.ingestion for name, env in loaded.environments.items()}
    assert {
        n: (s.enabled, s.start_pipeline, s.quiet_period_seconds) for n, s in settings.items()
    } == {
        "dev": (True, True, 120),
        "staging": (True, True, 120),
        "prod": (True, False, 120),
    }


@pytest.mark.parametrize(
    ("ingestion", "key", "allowed"),
    [
        ({"enable": True}, "ingestion.enable", "unknown key (did you mean 'enabled'?)"),
        ({"enabled": "yes"}, "ingestion.enabled", "expected true or false"),
        ({"start_pipeline": 1}, "ingestion.start_pipeline", "expected true or false"),
        ({"quiet_period_seconds": 0}, "ingestion.quiet_period_seconds", "positive whole"),
        ({"quiet_period_seconds": 3601}, "ingestion.quiet_period_seconds", "up to 3600"),
        ({"quiet_period_seconds": 1.5}, "ingestion.quiet_period_seconds", "positive whole"),
        ("on", "ingestion", "expected an object"),
    ],
)
def test_bad_ingestion_config_is_one_line(
    mlops_config: dict[str, Any], ingestion: Any, key: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(_env(mlops_config, "staging", ingestion))
    message = str(error.value)
    assert "\n" not in message
    assert f"environments.staging.{key}" in message
    assert allowed in message


def test_disabled_ingestion_builds_no_workflow(mlops_config: dict[str, Any]) -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_s3 as s3
    from aws_cdk.assertions import Template

    from stacks.operations_stack import OperationsStack

    loaded = load_config(_env(mlops_config, "dev", {"enabled": False, "quiet_period_seconds": 5}))
    assert loaded.environments["dev"].ingestion.quiet_period_seconds == 5
    (stage_config,) = (s for s in loaded.stages_for_branch("main") if s.env_name == "dev")
    app = cdk.App()
    env = cdk.Environment(account=ACCOUNT, region=REGION)
    lake = cdk.Stack(app, "Lake", env=env)
    bucket = s3.Bucket.from_bucket_name(lake, "Bucket", "bucket")
    stack = OperationsStack(
        app,
        "Ops",
        env=env,
        config=stage_config,
        key=kms.Key.from_key_arn(lake, "Key", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k"),
        raw_bucket=bucket,
        curated_bucket=bucket,
        artifacts_bucket=bucket,
        etl_job_name="job",
        crawler_name="crawler",
        database_name="db",
        pipeline_name="pipeline",
    )
    assert stack.ingestion is None
    resources = Template.from_stack(stack).to_json()["Resources"]
    assert not [lid for lid in resources if lid.startswith("Ingestion")]
    assert any(lid.startswith("PipelineStatus") for lid in resources)  # the rest is there
