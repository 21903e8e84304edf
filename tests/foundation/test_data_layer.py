"""Security and lifecycle properties of the data layer, resource by resource, in every stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Capture, Match, Template

from data_lake.infrastructure import ETL_SCRIPT
from tests.conftest import EPHEMERAL_STAGE, SHARED_STAGES, resources_of_type

ALL_STAGES = (*SHARED_STAGES, EPHEMERAL_STAGE)
REPO = Path(__file__).resolve().parents[2]
DATA_BUCKETS = ("RawBucket", "CuratedBucket", "ArtifactsBucket")


def data_template(templates: dict[str, Any], stage: str) -> dict[str, Any]:
    return templates[stage]["Stateful"]


def bucket(template: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    matches = [
        (lid, res)
        for lid, res in resources_of_type(template, "AWS::S3::Bucket").items()
        if lid.startswith(f"DataLake{name}")
    ]
    assert len(matches) == 1, f"expected one {name}, found {[m[0] for m in matches]}"
    return matches[0]


def key_logical_id(template: dict[str, Any]) -> str:
    """The data lake's key (the stack also holds the audit trail's own key: tests/audit)."""
    (lid,) = [k for k in resources_of_type(template, "AWS::KMS::Key") if k.startswith("DataLake")]
    return lid


@pytest.fixture(scope="module", params=ALL_STAGES)
def stage_template(request: pytest.FixtureRequest, templates: dict[str, Any]) -> dict[str, Any]:
    return data_template(templates, request.param)


def test_key_rotates(stage_template: dict[str, Any]) -> None:
    Template.from_json(stage_template).has_resource_properties(
        "AWS::KMS::Key", {"EnableKeyRotation": True}
    )


@pytest.mark.parametrize("name", DATA_BUCKETS)
def test_data_bucket_is_kms_encrypted_private_versioned_and_logged(
    stage_template: dict[str, Any], name: str
) -> None:
    _, res = bucket(stage_template, name)
    props = res["Properties"]
    key_id = key_logical_id(stage_template)
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]},
    }
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    logs_id, _ = bucket(stage_template, "AccessLogsBucket")
    assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs_id}
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


@pytest.mark.parametrize("name", (*DATA_BUCKETS, "AccessLogsBucket"))
def test_bucket_policy_refuses_plain_http_and_old_tls(
    stage_template: dict[str, Any], name: str
) -> None:
    bucket_id, _ = bucket(stage_template, name)
    policies = [
        p
        for p in resources_of_type(stage_template, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    assert len(policies) == 1
    statements = policies[0]["Properties"]["PolicyDocument"]["Statement"]
    denies = [s for s in statements if s["Effect"] == "Deny"]
    assert {"Bool": {"aws:SecureTransport": "false"}} in [s.get("Condition") for s in denies]
    assert {"NumericLessThan": {"s3:TlsVersion": 1.2}} in [s.get("Condition") for s in denies]


def test_access_log_bucket_uses_sse_s3_and_expires_logs(
    stage_template: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    _, res = bucket(stage_template, "AccessLogsBucket")
    props = res["Properties"]
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert "LoggingConfiguration" not in props
    expirations = [r.get("ExpirationInDays") for r in props["LifecycleConfiguration"]["Rules"]]
    assert any(isinstance(days, int) and days > 0 for days in expirations)


def test_only_the_raw_bucket_emits_eventbridge_notifications(
    stage_template: dict[str, Any],
) -> None:
    _, raw = bucket(stage_template, "RawBucket")
    assert raw["Properties"]["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}
    }
    for name in ("CuratedBucket", "ArtifactsBucket", "AccessLogsBucket"):
        assert "NotificationConfiguration" not in bucket(stage_template, name)[1]["Properties"]
    # native configuration: no custom-resource Lambda for notifications
    assert not resources_of_type(stage_template, "Custom::S3BucketNotifications")


@pytest.mark.parametrize("stage", SHARED_STAGES)
def test_lifecycle_rules_come_from_config(
    templates: dict[str, Any], cdk_context: dict[str, Any], stage: str
) -> None:
    retention = cdk_context["mlops"]["environments"][stage.removeprefix("mlops-")]["retention"]
    template = data_template(templates, stage)
    raw_rules = bucket(template, "RawBucket")[1]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert raw_rules == [
        {
            "Id": "raw-tiering",
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
            "NoncurrentVersionExpiration": {"NoncurrentDays": retention["noncurrent_version_days"]},
            "Transitions": [
                {
                    "StorageClass": "STANDARD_IA",
                    "TransitionInDays": retention["raw_infrequent_access_days"],
                }
            ],
        }
    ]
    logs = bucket(template, "AccessLogsBucket")[1]["Properties"]["LifecycleConfiguration"]
    assert logs["Rules"][0]["ExpirationInDays"] == retention["access_log_days"]


def test_glue_security_configuration_encrypts_logs_bookmarks_and_s3(
    stage_template: dict[str, Any],
) -> None:
    key_arn = {"Fn::GetAtt": [key_logical_id(stage_template), "Arn"]}
    Template.from_json(stage_template).has_resource_properties(
        "AWS::Glue::SecurityConfiguration",
        {
            "EncryptionConfiguration": {
                "CloudWatchEncryption": {
                    "CloudWatchEncryptionMode": "SSE-KMS",
                    "KmsKeyArn": key_arn,
                },
                "JobBookmarksEncryption": {
                    "JobBookmarksEncryptionMode": "CSE-KMS",
                    "KmsKeyArn": key_arn,
                },
                "S3Encryptions": [{"S3EncryptionMode": "SSE-KMS", "KmsKeyArn": key_arn}],
            }
        },
    )


def test_etl_job_runs_the_repo_script_with_bookmarks_and_security_configuration(
    stage_template: dict[str, Any],
) -> None:
    (security_id,) = resources_of_type(stage_template, "AWS::Glue::SecurityConfiguration")
    script = Capture()
    Template.from_json(stage_template).has_resource_properties(
        "AWS::Glue::Job",
        {
            "GlueVersion": "5.0",
            "SecurityConfiguration": {"Ref": security_id},
            "Command": {"Name": "glueetl", "PythonVersion": "3", "ScriptLocation": script},
            "DefaultArguments": Match.object_like(
                {"--job-bookmark-option": "job-bookmark-enable", "--dataset": "breast_cancer"}
            ),
        },
    )
    assert script.as_string().endswith(".py")


def test_crawler_targets_the_curated_zone_with_security_configuration(
    stage_template: dict[str, Any],
) -> None:
    (security_id,) = resources_of_type(stage_template, "AWS::Glue::SecurityConfiguration")
    curated_id, _ = bucket(stage_template, "CuratedBucket")
    (crawler,) = resources_of_type(stage_template, "AWS::Glue::Crawler").values()
    props = crawler["Properties"]
    assert props["CrawlerSecurityConfiguration"] == {"Ref": security_id}
    (target,) = props["Targets"]["S3Targets"]
    assert target["Path"] == {"Fn::Join": ["", ["s3://", {"Ref": curated_id}, "/datasets/"]]}
    (trigger,) = resources_of_type(stage_template, "AWS::Glue::Trigger").values()
    assert trigger["Properties"]["Type"] == "CONDITIONAL"


def test_glue_roles_are_not_given_managed_or_star_s3_access(stage_template: dict[str, Any]) -> None:
    for role in resources_of_type(stage_template, "AWS::IAM::Role").values():
        if "glue.amazonaws.com" not in str(role["Properties"]["AssumeRolePolicyDocument"]):
            continue
        assert "ManagedPolicyArns" not in role["Properties"]
    for policy in resources_of_type(stage_template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = (
                statement["Action"]
                if isinstance(statement["Action"], list)
                else [statement["Action"]]
            )
            assert "s3:*" not in actions and "kms:*" not in actions and "*" not in actions


def test_athena_workgroup_enforces_encrypted_results(stage_template: dict[str, Any]) -> None:
    artifacts_id, _ = bucket(stage_template, "ArtifactsBucket")
    Template.from_json(stage_template).has_resource_properties(
        "AWS::Athena::WorkGroup",
        {
            "WorkGroupConfiguration": Match.object_like(
                {
                    "EnforceWorkGroupConfiguration": True,
                    "ResultConfiguration": {
                        "OutputLocation": {
                            "Fn::Join": ["", ["s3://", {"Ref": artifacts_id}, "/athena-results/"]]
                        },
                        "EncryptionConfiguration": {
                            "EncryptionOption": "SSE_KMS",
                            "KmsKey": {"Fn::GetAtt": [key_logical_id(stage_template), "Arn"]},
                        },
                    },
                }
            )
        },
    )


STATEFUL_TYPES = ("AWS::KMS::Key", "AWS::S3::Bucket", "AWS::SageMaker::ModelPackageGroup")


def test_prod_retains_stateful_resources_on_delete_and_replace(templates: dict[str, Any]) -> None:
    template = data_template(templates, "mlops-prod")
    for type_ in STATEFUL_TYPES:
        for lid, res in resources_of_type(template, type_).items():
            assert res["DeletionPolicy"] == "Retain", lid
            assert res["UpdateReplacePolicy"] == "Retain", lid
    assert not resources_of_type(template, "Custom::S3AutoDeleteObjects")


def test_prod_stacks_have_termination_protection(synthesized: Any) -> None:
    prod = synthesized.stage("mlops-prod")
    stacks = [c for c in prod.node.children if hasattr(c, "termination_protection")]
    assert stacks and all(s.termination_protection for s in stacks)
    dev = synthesized.stage("mlops-dev")
    assert not any(c.termination_protection for c in dev.node.children if hasattr(c, "artifact_id"))


def test_ephemeral_stage_destroys_everything_and_empties_buckets(templates: dict[str, Any]) -> None:
    template = data_template(templates, EPHEMERAL_STAGE)
    for type_ in STATEFUL_TYPES:
        for lid, res in resources_of_type(template, type_).items():
            assert res["DeletionPolicy"] == "Delete", lid
    auto_delete = resources_of_type(template, "Custom::S3AutoDeleteObjects")
    assert len(auto_delete) == 5  # the lake's four buckets and the audit trail's
    workgroup = next(iter(resources_of_type(template, "AWS::Athena::WorkGroup").values()))
    assert workgroup["Properties"]["RecursiveDeleteOption"] is True


REQUIRED_TAGS = {"project", "environment", "branch", "owner", "cost-center"}


@pytest.mark.parametrize("stage", ALL_STAGES)
def test_every_taggable_resource_carries_the_required_tags(
    templates: dict[str, Any], stage: str
) -> None:
    expected_branch = "feat/Some_Branch" if stage == EPHEMERAL_STAGE else "main"
    checked = 0
    for stack_template in templates[stage].values():
        for lid, res in stack_template["Resources"].items():
            tags = res.get("Properties", {}).get("Tags")
            if tags is None:
                continue
            as_dict = tags if isinstance(tags, dict) else {t["Key"]: t["Value"] for t in tags}
            assert set(as_dict) >= REQUIRED_TAGS, (
                f"{stage}/{lid} misses {REQUIRED_TAGS - set(as_dict)}"
            )
            assert as_dict["branch"] == expected_branch
            checked += 1
    assert checked >= 10


def test_stateful_logical_ids_never_change_silently(
    templates: dict[str, Any], snapshot: Any
) -> None:
    ids = {
        stage: sorted(
            f"{res['Type']} {lid}"
            for stack in templates[stage].values()
            for lid, res in stack["Resources"].items()
            if res["Type"]
            in (*STATEFUL_TYPES, "AWS::Glue::Database", "AWS::SageMaker::ModelPackageGroup")
        )
        for stage in ALL_STAGES
    }
    assert ids == snapshot


@pytest.mark.parametrize("stage_id", ALL_STAGES)
def test_etl_job_script_is_the_repository_file_byte_for_byte(
    synthesized: Any, templates: dict[str, Any], stage_id: str
) -> None:
    # ScriptLocation -> the asset object key -> the asset manifest's source file in the assembly,
    # which must hold exactly data_lake/etl/raw_to_curated.py (another .py file fails here).
    (job,) = resources_of_type(data_template(templates, stage_id), "AWS::Glue::Job").values()
    location = job["Properties"]["Command"]["ScriptLocation"]
    assert isinstance(location, str), location
    bucket_name, _, object_key = location.removeprefix("s3://").partition("/")
    stage = synthesized.stage(stage_id)
    assembly_dir = Path(stage.synth().directory)
    stack = stage.stateful
    manifest = json.loads((assembly_dir / f"{stack.artifact_id}.assets.json").read_text())
    sources = [
        asset["source"]
        for asset in manifest["files"].values()
        for destination in asset["destinations"].values()
        if destination["objectKey"] == object_key
        and destination["bucketName"]
        .replace("${AWS::AccountId}", stack.account)
        .replace("${AWS::Region}", stack.region)
        == bucket_name
    ]
    assert len(sources) == 1, f"no single asset is uploaded to {location}"
    (source,) = sources
    assert source["packaging"] == "file"
    staged = (assembly_dir / source["path"]).resolve()
    assert staged.read_bytes() == ETL_SCRIPT.read_bytes()
    assert ETL_SCRIPT == REPO / "data_lake" / "etl" / "raw_to_curated.py"
