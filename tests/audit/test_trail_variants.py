"""A trail variant the shipped config does not exercise: CloudWatch Logs delivery on (and no
object lock), in a test-local app holding only the construct under test, built once."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3

from audit.infrastructure import AuditTrail, object_lock_for
from data_lake.infrastructure import StatePolicy
from infra.compliance import findings
from infra.config import AuditConfig, load_config
from infra.naming import Naming
from tests.conftest import resources_of_type

ACCOUNT, REGION = "123456789012", "eu-west-1"
AUDIT = AuditConfig(
    read_data_events=False, retention_days=30, object_lock=True, cloudwatch_logs=True
)


@pytest.fixture(scope="module")
def built(cdk_context: dict[str, Any]) -> tuple[cdk.Stack, dict[str, Any]]:
    flags = {k: v for k, v in cdk_context.items() if k.startswith("@aws-cdk")}  # as the app's
    app = cdk.App(context=flags)
    stack = cdk.Stack(app, "AuditVariant", env=cdk.Environment(account=ACCOUNT, region=REGION))
    logs_bucket = s3.Bucket(stack, "AccessLogs")
    data = [s3.Bucket(stack, name) for name in ("Raw", "Curated", "Artifacts")]
    AuditTrail(
        stack,
        "Audit",
        naming=Naming("mlops", "qa"),
        audit=AUDIT,
        data_buckets=data,
        access_logs_bucket=logs_bucket,
        state=StatePolicy(removal_policy=cdk.RemovalPolicy.RETAIN, auto_delete_objects=False),
        object_lock=False,  # what the stateful stack passes for an ephemeral stage
        log_days=14,
    )
    template = app.synth().get_stack_by_name(stack.stack_name).template
    return stack, template


def test_cloudwatch_logs_delivery(built: tuple[cdk.Stack, dict[str, Any]]) -> None:
    _, template = built
    (trail,) = resources_of_type(template, "AWS::CloudTrail::Trail").values()
    props = trail["Properties"]
    ((group_id, group),) = resources_of_type(template, "AWS::Logs::LogGroup").items()
    ((role_id, role),) = resources_of_type(template, "AWS::IAM::Role").items()
    assert props["CloudWatchLogsLogGroupArn"] == {"Fn::GetAtt": [group_id, "Arn"]}
    assert props["CloudWatchLogsRoleArn"] == {"Fn::GetAtt": [role_id, "Arn"]}
    key_id = props["KMSKeyId"]["Fn::GetAtt"][0]
    assert group["Properties"] == {
        "KmsKeyId": {"Fn::GetAtt": [key_id, "Arn"]},
        "LogGroupName": "/aws/cloudtrail/mlops-qa-audit-trail",
        "RetentionInDays": 14,
    }
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
    # The role writes this one log group's streams, nothing else (the role's only policy).
    (policy,) = resources_of_type(template, "AWS::IAM::Policy").values()
    assert policy["Properties"]["Roles"] == [{"Ref": role_id}]
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [group_id, "Arn"]},
        }
    ]
    # The trail waits for its role's policy: CloudTrail checks it can deliver on creation.
    assert any(d.startswith(role_id) for d in trail["DependsOn"])
    # CloudWatch Logs may use the trail key for log groups of this account and region only.
    key_policy = template["Resources"][key_id]["Properties"]["KeyPolicy"]
    (logs_statement,) = [
        s for s in key_policy["Statement"]
        if s.get("Principal") == {"Service": f"logs.{REGION}.amazonaws.com"}
    ]  # fmt: skip
    assert logs_statement["Condition"] == {
        "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:*"}
    }


def test_no_object_lock_when_the_stage_must_be_destroyable(
    built: tuple[cdk.Stack, dict[str, Any]],
) -> None:
    _, template = built
    buckets = resources_of_type(template, "AWS::S3::Bucket")
    (audit_bucket,) = [b for k, b in buckets.items() if k.startswith("AuditBucket")]
    assert "ObjectLockEnabled" not in audit_bucket["Properties"]
    assert "ObjectLockConfiguration" not in audit_bucket["Properties"]
    (rule,) = audit_bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == 30


def test_write_only_data_events(built: tuple[cdk.Stack, dict[str, Any]]) -> None:
    _, template = built
    (trail,) = resources_of_type(template, "AWS::CloudTrail::Trail").values()
    _, data = trail["Properties"]["AdvancedEventSelectors"]
    assert {"Field": "readOnly", "Equals": ["false"]} in data["FieldSelectors"]


def test_no_unacknowledged_finding_in_the_trail(built: tuple[cdk.Stack, dict[str, Any]]) -> None:
    """Every rule pack over the construct (the test stack's plain buckets are not under test);
    with CloudWatch Logs on, the CloudWatch acknowledgment is not made (the rule passes)."""
    stack, _ = built
    found = [f for f in findings(stack) if "/Audit/" in f.resource]
    assert found == []
    acknowledged = [
        str(entry.data)
        for construct in stack.node.find_child("Audit").node.find_all()
        for entry in construct.node.metadata
        if entry.type == "aws:cdk:acknowledged-rules"
    ]
    assert any("NIST.800.53.R5-S3BucketReplicationEnabled" in a for a in acknowledged)
    assert not any("CloudTrailCloudWatchLogsEnabled" in a for a in acknowledged)


def test_object_lock_is_never_applied_to_a_branch_stage(mlops_config: dict[str, Any]) -> None:
    """Even with object lock configured for dev, the branch stage (dev's config) gets none."""
    mlops_config["environments"]["dev"]["audit"]["object_lock"] = True
    stages = {s.stage_id: s for s in load_config(mlops_config).stages_for_branch("feat/x")}
    assert {name: object_lock_for(s) for name, s in stages.items()} == {
        "mlops-dev": True,
        "mlops-staging": True,
        "mlops-prod": True,
        "mlops-br-feat-x": False,
    }
    assert stages["mlops-br-feat-x"].environment.audit.object_lock is True
