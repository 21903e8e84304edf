"""cost_controls: the config (per environment, branch defaults) and what a branch stage keeps
standing with the shipped defaults (one key, no alarm, no dashboard, a data-event trail)."""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import BRANCH_COST_CONTROLS, ConfigError, CostControls, load_config
from tests.conftest import EPHEMERAL_STAGE, SHARED_STAGES, TEST_BRANCH, resources_of_type

SINGLE = CostControls(
    kms_keys="single", dashboard=False, alarms=False, trail_management_events=False
)


def controls_by_stage(config: dict[str, Any]) -> dict[str, CostControls]:
    return {
        s.stage_id: s.environment.cost_controls
        for s in load_config(config).stages_for_branch(TEST_BRANCH)
    }


def test_shipped_config_keeps_shared_stages_whole_and_branch_stages_lean(
    mlops_config: dict[str, Any],
) -> None:
    controls = controls_by_stage(mlops_config)
    assert {s: controls[s] for s in SHARED_STAGES} == {s: CostControls() for s in SHARED_STAGES}
    assert controls[EPHEMERAL_STAGE] == BRANCH_COST_CONTROLS == SINGLE


def test_branch_keys_override_the_branch_defaults_not_the_dev_environment(
    mlops_config: dict[str, Any],
) -> None:
    mlops_config["branch_environments"]["cost_controls"] = {"dashboard": True}
    mlops_config["environments"]["dev"]["cost_controls"] = {"kms_keys": "single"}
    controls = controls_by_stage(mlops_config)
    assert controls[EPHEMERAL_STAGE] == CostControls(
        kms_keys="single", dashboard=True, alarms=False, trail_management_events=False
    )
    assert controls["mlops-dev"] == CostControls(kms_keys="single")
    del mlops_config["branch_environments"]["cost_controls"]
    assert controls_by_stage(mlops_config)[EPHEMERAL_STAGE] == BRANCH_COST_CONTROLS


@pytest.mark.parametrize(
    ("where", "raw", "key", "allowed"),
    [
        (("environments", "staging"), {"kms_keys": "one"}, "kms_keys", "per_purpose, single"),
        (("branch_environments",), {"dashboard": "no"}, "dashboard", "true or false"),
        (("branch_environments",), {"alarm": False}, "alarm", "did you mean 'alarms'"),
    ],
)
def test_bad_values_name_the_key_the_value_and_what_is_allowed(
    mlops_config: dict[str, Any], where: tuple[str, ...], raw: dict[str, Any], key: str,
    allowed: str,
) -> None:  # fmt: skip
    block = mlops_config
    for part in where:
        block = block[part]
    block["cost_controls"] = raw
    with pytest.raises(ConfigError) as error:
        load_config(mlops_config)
    message = str(error.value)
    assert f"{'.'.join(where)}.cost_controls.{key}" in message
    assert f"= {raw[key]!r}" in message
    assert allowed in message
    assert "\n" not in message


def test_alarms_off_is_refused_for_an_instance_endpoint(mlops_config: dict[str, Any]) -> None:
    prod_endpoint = mlops_config["environments"]["prod"]["sizing"]["endpoint"]
    mlops_config["environments"]["prod"]["cost_controls"] = {"alarms": False}
    with pytest.raises(ConfigError, match=r"environments\.prod\.cost_controls\.alarms.*roll back"):
        load_config(mlops_config)
    # A branch stage copies dev's endpoint: with instances there, its alarms must stay.
    del mlops_config["environments"]["prod"]["cost_controls"]
    mlops_config["environments"]["dev"]["sizing"]["endpoint"] = prod_endpoint
    with pytest.raises(ConfigError, match=r"branch_environments\.cost_controls\.alarms"):
        load_config(mlops_config)
    mlops_config["branch_environments"]["cost_controls"]["alarms"] = True
    assert controls_by_stage(mlops_config)[EPHEMERAL_STAGE].alarms is True


# --- The branch stage of the session synth (shipped defaults).


def test_branch_stage_has_one_key_which_also_serves_the_trail_and_the_deployment(
    templates: dict[str, dict[str, dict[str, Any]]], cdk_context: dict[str, Any]
) -> None:
    stage = templates[EPHEMERAL_STAGE]
    keys = {
        (name, lid)
        for name, template in stage.items()
        for lid in resources_of_type(template, "AWS::KMS::Key")
    }
    ((stack, key_id),) = keys
    assert stack == "Stateful" and key_id.startswith("DataLakeKey")
    (trail,) = resources_of_type(stage["Stateful"], "AWS::CloudTrail::Trail").values()
    assert trail["Properties"]["KMSKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    deployment = stage["Deployment"]
    (topic,) = resources_of_type(deployment, "AWS::SNS::Topic").values()
    (queue,) = resources_of_type(deployment, "AWS::SQS::Queue").values()
    data_key = topic["Properties"]["KmsMasterKeyId"]
    assert key_id in str(data_key)  # the data key's ARN, exported by the stateful stack
    assert queue["Properties"]["KmsMasterKeyId"] == data_key

    env = cdk_context["mlops"]["environments"]["dev"]
    arn = f"arn:aws:{{}}:{env['region']}:{env['account']}:{{}}"
    policy = stage["Stateful"]["Resources"][key_id]["Properties"]["KeyPolicy"]["Statement"]
    by_sid = {s.get("Sid"): s for s in policy}
    trail_arn = arn.format("cloudtrail", f"trail/{EPHEMERAL_STAGE}-audit-trail")
    assert by_sid["AllowCloudTrailToEncryptLogs"]["Condition"]["StringEquals"] == {
        "aws:SourceArn": trail_arn
    }
    events = by_sid["AllowEventBridgeToUseTheKey"]
    assert events["Principal"] == {"Service": "events.amazonaws.com"}
    assert events["Condition"]["ArnEquals"]["aws:SourceArn"] == [
        arn.format("events", f"rule/{EPHEMERAL_STAGE}-deploy-on-approval"),
        arn.format("events", f"rule/{EPHEMERAL_STAGE}-deploy-ended-abnormally"),
    ]
    # No alarms: CloudWatch is named neither in the key policy nor in the topic policy.
    (topic_policy,) = resources_of_type(deployment, "AWS::SNS::TopicPolicy").values()
    assert "cloudwatch.amazonaws.com" not in str(policy) + str(topic_policy)


def test_branch_stage_has_no_alarm_no_dashboard_and_a_data_event_trail(
    templates: dict[str, dict[str, dict[str, Any]]],
) -> None:
    def count(stage: str, type_: str) -> int:
        return sum(len(resources_of_type(t, type_)) for t in templates[stage].values())

    for type_ in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard"):
        assert count(EPHEMERAL_STAGE, type_) == 0
        assert all(count(stage, type_) >= 1 for stage in SHARED_STAGES)
    assert all(count(stage, "AWS::KMS::Key") == 3 for stage in SHARED_STAGES)
    trails = resources_of_type(templates[EPHEMERAL_STAGE]["Stateful"], "AWS::CloudTrail::Trail")
    ((_, trail),) = trails.items()
    props = trail["Properties"]
    categories = [
        f["Equals"]
        for selector in props["AdvancedEventSelectors"]
        for f in selector["FieldSelectors"]
        if f["Field"] == "eventCategory"
    ]
    assert categories == [["Data"]]
    assert props["IsLogging"] is True


# --- The constructs refuse what the config refuses (for callers that bypass the config).


def test_constructs_refuse_no_alarms_with_instances_and_an_imported_notifications_key() -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_s3 as s3

    from deployment.infrastructure import ModelDeployment
    from deployment.notifications import DeploymentNotifications
    from infra.config import InstanceEndpoint
    from infra.naming import Naming

    stack = cdk.Stack(
        cdk.App(), "S", env=cdk.Environment(account="111111111111", region="us-east-1")
    )
    naming = Naming("mlops", "br-x")
    imported = kms.Key.from_key_arn(
        stack,
        "Imported",
        "arn:aws:kms:us-east-1:111111111111:key/00000000-0000-0000-0000-000000000000",
    )
    with pytest.raises(ValueError, match="alarms=False needs a serverless endpoint"):
        ModelDeployment(
            stack,
            "D",
            naming=naming,
            endpoint_sizing=InstanceEndpoint("ml.m5.large", 1, 2, 100),
            key=imported,
            artifacts_bucket=s3.Bucket.from_bucket_name(stack, "B", "bucket"),
            model_package_group_name="group",
            require_promotion=False,
            log_retention_days=7,
            removal_policy=cdk.RemovalPolicy.DESTROY,
            model_artifact_keys=["m/model.tar.gz"],
            alarms=False,
        )
    # A key whose policy this app does not own cannot take EventBridge's statement: the queue
    # would refuse EventBridge's dead letters at run time, so synth refuses it now.
    with pytest.raises(ValueError, match="an imported key's policy cannot be extended"):
        DeploymentNotifications(
            stack,
            naming=naming,
            removal_policy=cdk.RemovalPolicy.DESTROY,
            event_rule_names=["r"],
            alarms=False,
            key=imported,
        )
