"""The audit trail in every stage of the session synth: what it records (management events, S3
object events on exactly the stage's raw, curated and artifacts buckets, reads per config), how
its files are protected (log file validation, its own KMS key and bucket with the policies AWS
documents for CloudTrail, object lock per stage kind), validated against botocore's CloudTrail
model."""

from __future__ import annotations

from typing import Any

import pytest

from tests.botocore_shapes import validate_shape
from tests.conftest import EPHEMERAL_STAGE, SHARED_STAGES, resources_of_type

STAGES = (*SHARED_STAGES, EPHEMERAL_STAGE)
CLOUDTRAIL = {"Service": "cloudtrail.amazonaws.com"}


def env_of(stage: str) -> str:
    return "dev" if stage == EPHEMERAL_STAGE else stage.removeprefix("mlops-")


class Trail:
    """One stage's trail and the resources around it, read from its stateful template."""

    def __init__(self, stage: str, template: dict[str, Any], env: dict[str, Any]) -> None:
        self.stage, self.template, self.env = stage, template, env
        self.resources = template["Resources"]
        ((self.trail_id, trail),) = resources_of_type(template, "AWS::CloudTrail::Trail").items()
        self.trail = trail
        self.props = trail["Properties"]
        self.arn = f"arn:aws:cloudtrail:{env['region']}:{env['account']}:trail/" + str(
            self.props["TrailName"]
        )
        self.bucket_id = self.props["S3BucketName"]["Ref"]
        self.bucket = self.resources[self.bucket_id]
        self.key_id = self.props["KMSKeyId"]["Fn::GetAtt"][0]
        self.key = self.resources[self.key_id]

    def output_ref(self, name: str) -> str:
        """The logical id of the bucket a stack output names (``RawBucketName``...)."""
        return str(self.template["Outputs"][name]["Value"]["Ref"])

    def bucket_policy(self, bucket_id: str) -> dict[str, Any]:
        (policy,) = [
            r for r in resources_of_type(self.template, "AWS::S3::BucketPolicy").values()
            if r["Properties"]["Bucket"] == {"Ref": bucket_id}
        ]  # fmt: skip
        return policy

    def policy_id(self, bucket_id: str) -> str:
        (found,) = [
            k for k, r in resources_of_type(self.template, "AWS::S3::BucketPolicy").items()
            if r["Properties"]["Bucket"] == {"Ref": bucket_id}
        ]  # fmt: skip
        return found


@pytest.fixture(scope="module", params=STAGES)
def trail(
    request: pytest.FixtureRequest, templates: dict[str, Any], cdk_context: dict[str, Any]
) -> Trail:
    stage = str(request.param)
    env = cdk_context["mlops"]["environments"][env_of(stage)]
    return Trail(stage, templates[stage]["Stateful"], env)


def test_every_stage_has_exactly_one_trail_in_its_stateful_stack(
    templates: dict[str, Any],
) -> None:
    assert set(templates) == set(STAGES)
    for stage in STAGES:
        for stack, template in templates[stage].items():
            trails = resources_of_type(template, "AWS::CloudTrail::Trail")
            assert len(trails) == (1 if stack == "Stateful" else 0), (stage, stack)


def test_trail_settings(trail: Trail) -> None:
    assert trail.props["TrailName"] == f"{trail.stage}-audit-trail"
    assert trail.props["IsLogging"] is True
    assert trail.props["EnableLogFileValidation"] is True
    # One region per stage (audit/infrastructure.py says why); global events of that region.
    assert trail.props["IsMultiRegionTrail"] is False
    # Global service events are management events: none in a branch stage's data-event trail.
    assert trail.props["IncludeGlobalServiceEvents"] is (trail.stage != EPHEMERAL_STAGE)
    assert "EventSelectors" not in trail.props  # advanced selectors only (the two conflict)
    assert "CloudWatchLogsLogGroupArn" not in trail.props  # shipped config: S3 only
    # CloudTrail checks the bucket policy when the trail is created.
    assert trail.policy_id(trail.bucket_id) in trail.trail["DependsOn"]


def test_selectors_record_management_events_and_the_three_buckets_object_events(
    trail: Trail,
) -> None:
    *management, data = trail.props["AdvancedEventSelectors"]
    if trail.stage == EPHEMERAL_STAGE:
        # cost_controls.trail_management_events false: the dev stage's trail (same account and
        # region) records the management events; a second copy would be billed (README "Cost").
        assert management == []
    else:
        # No readOnly field: read and write management events.
        assert [m["FieldSelectors"] for m in management] == [
            [{"Field": "eventCategory", "Equals": ["Management"]}]
        ]
    buckets = [trail.output_ref(f"{zone}BucketName") for zone in ("Raw", "Curated", "Artifacts")]
    assert all(trail.resources[b]["Type"] == "AWS::S3::Bucket" for b in buckets)
    fields = {f["Field"]: f for f in data["FieldSelectors"]}
    assert fields["eventCategory"] == {"Field": "eventCategory", "Equals": ["Data"]}
    assert fields["resources.type"] == {"Field": "resources.type", "Equals": ["AWS::S3::Object"]}
    # Exactly the objects of the stage's three data buckets: "<bucket ARN>/" prefixes.
    assert fields["resources.ARN"]["StartsWith"] == [
        {"Fn::Join": ["", [{"Fn::GetAtt": [b, "Arn"]}, "/"]]} for b in buckets
    ]
    # Reads per config (dev and its branch stages: writes only).
    reads = trail.env["audit"]["read_data_events"]
    assert reads is (trail.stage in ("mlops-staging", "mlops-prod"))
    if reads:
        assert set(fields) == {"eventCategory", "resources.type", "resources.ARN"}
    else:
        assert fields["readOnly"] == {"Field": "readOnly", "Equals": ["false"]}
        assert len(fields) == 4


def _resolved(value: Any) -> Any:
    """CloudFormation bucket ARNs -> the literal ARNs CloudTrail receives."""
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_resolved(p) for p in parts)
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return f"arn:aws:s3:::mlops-stateful-{value['Fn::GetAtt'][0].lower()[:30]}-1a2b3c4d"
    if isinstance(value, dict):
        return {k: _resolved(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(v) for v in value]
    return value


def test_selectors_are_valid_cloudtrail_advanced_event_selectors(trail: Trail) -> None:
    selectors = _resolved(trail.props["AdvancedEventSelectors"])
    assert validate_shape("cloudtrail", "AdvancedEventSelectors", selectors) == []
    # The check is real: a field name CloudTrail's pattern refuses is reported.
    broken = [{"Name": "x", "FieldSelectors": [{"Field": "event category", "Equals": ["Data"]}]}]
    (error,) = validate_shape("cloudtrail", "AdvancedEventSelectors", broken)
    assert error.startswith("[0].FieldSelectors[0].Field: 'event category' does not match")


def _statements_for(policy: dict[str, Any], principal: dict[str, str]) -> list[dict[str, Any]]:
    return [s for s in policy["Statement"] if s.get("Principal") == principal]


def test_key_policy_lets_only_this_trail_encrypt(trail: Trail) -> None:
    props = trail.key["Properties"]
    assert props["EnableKeyRotation"] is True
    account = trail.env["account"]
    statements = _statements_for(props["KeyPolicy"], CLOUDTRAIL)
    by_action = {s["Action"]: s for s in statements}
    assert set(by_action) == {"kms:GenerateDataKey*", "kms:DescribeKey"}
    assert by_action["kms:GenerateDataKey*"]["Condition"] == {
        "StringEquals": {"aws:SourceArn": trail.arn},
        "StringLike": {
            "kms:EncryptionContext:aws:cloudtrail:arn": f"arn:aws:cloudtrail:*:{account}:trail/*"
        },
    }
    assert by_action["kms:DescribeKey"]["Condition"] == {
        "StringEquals": {"aws:SourceArn": trail.arn}
    }
    assert all(s["Effect"] == "Allow" and s["Resource"] == "*" for s in statements)
    if trail.stage == EPHEMERAL_STAGE:
        # cost_controls.kms_keys single: the stage's data key, with the same two statements.
        assert trail.key_id.startswith("DataLakeKey")
        return
    # Its own key, not the stage's data key (which every role of the stage may use).
    assert trail.key_id.startswith("AuditKey")
    assert not any("DataLake" in str(s) for s in props["KeyPolicy"]["Statement"])


def test_bucket_policy_lets_only_this_trail_check_the_acl_and_write(trail: Trail) -> None:
    policy = trail.bucket_policy(trail.bucket_id)["Properties"]["PolicyDocument"]
    statements = {s["Action"]: s for s in _statements_for(policy, CLOUDTRAIL)}
    assert set(statements) == {"s3:GetBucketAcl", "s3:PutObject"}
    bucket_arn = {"Fn::GetAtt": [trail.bucket_id, "Arn"]}
    acl = statements["s3:GetBucketAcl"]
    assert (acl["Effect"], acl["Resource"]) == ("Allow", bucket_arn)
    assert acl["Condition"] == {"StringEquals": {"aws:SourceArn": trail.arn}}
    write = statements["s3:PutObject"]
    assert write["Effect"] == "Allow"
    assert write["Resource"] == {
        "Fn::Join": ["", [bucket_arn, f"/AWSLogs/{trail.env['account']}/*"]]
    }
    assert write["Condition"] == {
        "StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceArn": trail.arn}
    }
    # TLS only, as every bucket of the project.
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy["Statement"]
    )


def test_bucket_is_encrypted_versioned_private_and_logged_like_the_lake(trail: Trail) -> None:
    props = trail.bucket["Properties"]
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": [trail.key_id, "Arn"]},
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    # Server access logs go where the data lake's buckets send theirs, under audit/.
    raw = trail.resources[trail.output_ref("RawBucketName")]["Properties"]
    target = raw["LoggingConfiguration"]["DestinationBucketName"]
    assert props["LoggingConfiguration"] == {
        "DestinationBucketName": target,
        "LogFilePrefix": "audit/",
    }
    # ... and the access-log bucket's policy lets S3 log delivery write for this bucket.
    logs_policy = trail.bucket_policy(target["Ref"])["Properties"]["PolicyDocument"]
    (delivery,) = [
        s for s in logs_policy["Statement"]
        if s.get("Principal") == {"Service": "logging.s3.amazonaws.com"}
        and s["Condition"]["ArnLike"] == {"aws:SourceArn": {"Fn::GetAtt": [trail.bucket_id, "Arn"]}}
    ]  # fmt: skip
    assert (delivery["Effect"], delivery["Action"]) == ("Allow", "s3:PutObject")
    assert delivery["Resource"] == {
        "Fn::Join": ["", [{"Fn::GetAtt": [target["Ref"], "Arn"]}, "/audit/*"]]
    }


def test_retention_and_object_lock_per_stage_kind(trail: Trail) -> None:
    props = trail.bucket["Properties"]
    days = trail.env["audit"]["retention_days"]
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert (rule["Status"], rule["ExpirationInDays"]) == ("Enabled", days)
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    locked = trail.stage in ("mlops-staging", "mlops-prod")
    assert locked is (trail.env["audit"]["object_lock"] and trail.stage != EPHEMERAL_STAGE)
    if locked:
        assert props["ObjectLockEnabled"] is True
        assert props["ObjectLockConfiguration"] == {
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": days}},
        }
    else:
        assert "ObjectLockEnabled" not in props
        assert "ObjectLockConfiguration" not in props
    auto_delete = [
        k for k, r in resources_of_type(trail.template, "Custom::S3AutoDeleteObjects").items()
        if r["Properties"]["BucketName"] == {"Ref": trail.bucket_id}
    ]  # fmt: skip
    if trail.stage == EPHEMERAL_STAGE:
        # Destroyable: no lock, everything deleted, and the trail goes before the objects.
        for resource in (trail.bucket, trail.key, trail.trail):
            assert resource.get("DeletionPolicy", "Delete") == "Delete"
        (emptier,) = auto_delete
        assert emptier in trail.trail["DependsOn"]
        assert trail.key["Properties"]["PendingWindowInDays"] == 7
    else:
        assert auto_delete == []
        assert trail.bucket["DeletionPolicy"] == "Retain"
        assert trail.key["DeletionPolicy"] == "Retain"


def test_stack_outputs_name_the_trail_and_its_bucket(trail: Trail) -> None:
    outputs = trail.template["Outputs"]
    assert outputs["AuditTrailName"]["Value"] == trail.props["TrailName"]
    assert outputs["AuditBucketName"]["Value"] == {"Ref": trail.bucket_id}
