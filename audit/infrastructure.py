"""The audit trail of one stage: who changed what, and who read or wrote which data object.

One CloudTrail trail (``AWS::CloudTrail::Trail``, L1: the L2 adds policies without the
``aws:SourceArn`` conditions AWS recommends) with advanced event selectors:

* every management event of the stage's account and region, read and write (model package
  approvals, endpoint updates, IAM and KMS changes...);
* S3 data events (object level) on the stage's raw, curated and artifacts buckets: writes always,
  reads when ``audit.read_data_events`` (billed per event, and reads are most of them).

Log files and digest files (log file validation on) are encrypted by CloudTrail with a key of the
trail's own (key rotation on): the stage's data key is usable by every role of the stage, this one
only by CloudTrail (to encrypt, per AWS's key-policy statements with the trail's ARN as
``aws:SourceArn`` and the ``aws:cloudtrail:arn`` encryption context) and by principals an
administrator grants ``kms:Decrypt`` through IAM. They go to a bucket of the trail's own: SSE-KMS
with that key, versioned, TLS only, no public access, ACLs disabled, server access logs to the
data lake's access-log bucket, a lifecycle expiring log files after ``audit.retention_days``, and
(``audit.object_lock``, never in an ephemeral stage) S3 Object Lock in governance mode for as
long. Its policy lets only this trail (``aws:SourceArn``) check the ACL and write under
``AWSLogs/<account>/``.

Single-region on purpose: a stage lives in one region, its buckets, registry and endpoint are
regional, and several stages share an account (dev and every branch stage), so a multi-region
trail per stage would record every other region once per stage, each copy billed.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudtrail as cloudtrail
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from data_lake.infrastructure import StatePolicy
from infra.compliance import acknowledge, acknowledge_all, skip_checkov
from infra.config import AuditConfig, StageConfig
from infra.log_retention import retention_days
from infra.naming import Naming

CLOUDTRAIL = "cloudtrail.amazonaws.com"
#: Trail names: 3-128 characters (letters, digits, ``.``, ``_``, ``-``).
TRAIL_NAME_MAX = 128
ACCESS_LOG_PREFIX = "audit/"


def s3_data_selector(bucket_arns: Sequence[str], *, reads: bool) -> dict[str, object]:
    """The advanced event selector of S3 object-level events on ``bucket_arns`` (CloudTrail's
    ``AdvancedEventSelector`` shape): ``resources.ARN`` starts with ``<bucket ARN>/``."""
    fields: list[dict[str, object]] = [
        {"Field": "eventCategory", "Equals": ["Data"]},
        {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
        {"Field": "resources.ARN", "StartsWith": [f"{arn}/" for arn in bucket_arns]},
    ]
    if not reads:
        fields.append({"Field": "readOnly", "Equals": ["false"]})
    name = "S3 object reads and writes" if reads else "S3 object writes"
    return {"Name": f"{name} on the stage's data buckets", "FieldSelectors": fields}


MANAGEMENT_SELECTOR: dict[str, object] = {
    "Name": "All management events (read and write)",
    "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}],
}


def object_lock_for(config: StageConfig) -> bool:
    """``audit.object_lock`` as configured, but never in an ephemeral (branch) stage: a locked
    object cannot be deleted before its retention ends, and a branch stage must be destroyable."""
    return config.environment.audit.object_lock and not config.is_ephemeral


class AuditTrail(Construct):
    """Exposes ``trail`` (the CfnTrail), ``trail_name``, ``trail_arn``, ``bucket``, ``key`` and
    ``log_group`` (None unless ``audit.cloudwatch_logs``)."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        naming: Naming,
        audit: AuditConfig,
        data_buckets: Sequence[s3.IBucket],
        access_logs_bucket: s3.IBucket,
        state: StatePolicy,
        object_lock: bool,
        log_days: int,
        key: kms.IKey | None = None,
        management_events: bool = True,
    ) -> None:
        """``key``: encrypt the trail's files with this key (the stage's data key, with
        ``cost_controls.kms_keys: single``) instead of a key of the trail's own; its policy gets
        the same CloudTrail statements. ``management_events``: False records the S3 data events
        only (``cost_controls.trail_management_events``, README "Cost")."""
        super().__init__(scope, id_)
        stack = cdk.Stack.of(self)
        self.trail_name = naming.resource("audit-trail", TRAIL_NAME_MAX)
        self.trail_arn = stack.format_arn(
            service="cloudtrail", resource="trail", resource_name=self.trail_name
        )
        source_arn = {"aws:SourceArn": self.trail_arn}

        self.key: kms.IKey = key or kms.Key(
            self,
            "Key",
            description=f"{naming.prefix}: CloudTrail log and digest files of the audit trail",
            enable_key_rotation=True,
            pending_window=cdk.Duration.days(7 if state.auto_delete_objects else 30),
            removal_policy=state.removal_policy,
        )
        cloudtrail_principal = iam.ServicePrincipal(CLOUDTRAIL)
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudTrailToEncryptLogs",
                principals=[cloudtrail_principal],
                actions=["kms:GenerateDataKey*"],
                resources=["*"],
                conditions={
                    "StringEquals": source_arn,
                    "StringLike": {
                        "kms:EncryptionContext:aws:cloudtrail:arn": (
                            f"arn:{stack.partition}:cloudtrail:*:{stack.account}:trail/*"
                        )
                    },
                },
            )
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudTrailToDescribeKey",
                principals=[cloudtrail_principal],
                actions=["kms:DescribeKey"],
                resources=["*"],
                conditions={"StringEquals": source_arn},
            )
        )

        lock = (
            s3.ObjectLockRetention.governance(cdk.Duration.days(audit.retention_days))
            if object_lock
            else None
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=False,  # CloudTrail encrypts each file with its own context
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            object_lock_enabled=object_lock or None,
            object_lock_default_retention=lock,
            server_access_logs_bucket=access_logs_bucket,
            server_access_logs_prefix=ACCESS_LOG_PREFIX,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-trail-logs",
                    expiration=cdk.Duration.days(audit.retention_days),
                    noncurrent_version_expiration=cdk.Duration.days(1),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                )
            ],
            removal_policy=state.removal_policy,
            auto_delete_objects=state.auto_delete_objects,
        )
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AWSCloudTrailAclCheck",
                principals=[cloudtrail_principal],
                actions=["s3:GetBucketAcl"],
                resources=[self.bucket.bucket_arn],
                conditions={"StringEquals": source_arn},
            )
        )
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AWSCloudTrailWrite",
                principals=[cloudtrail_principal],
                actions=["s3:PutObject"],
                resources=[self.bucket.arn_for_objects(f"AWSLogs/{stack.account}/*")],
                conditions={
                    "StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control", **source_arn}
                },
            )
        )

        selectors = [
            *([MANAGEMENT_SELECTOR] if management_events else []),
            s3_data_selector([b.bucket_arn for b in data_buckets], reads=audit.read_data_events),
        ]
        self.log_group: logs.LogGroup | None = None
        role: iam.Role | None = None
        if audit.cloudwatch_logs:
            self.log_group, role = self._cloudwatch_logs(naming, stack, log_days, state)

        self.trail = cloudtrail.CfnTrail(
            self,
            "Trail",
            trail_name=self.trail_name,
            is_logging=True,
            s3_bucket_name=self.bucket.bucket_name,
            kms_key_id=self.key.key_arn,
            enable_log_file_validation=True,
            is_multi_region_trail=False,  # see the module docstring
            # Global service events (IAM, STS...) are management events.
            include_global_service_events=management_events,
            advanced_event_selectors=[_selector_property(s) for s in selectors],
            cloud_watch_logs_log_group_arn=self.log_group.log_group_arn if self.log_group else None,
            cloud_watch_logs_role_arn=role.role_arn if role else None,
        )
        # CloudTrail checks the bucket policy when the trail is created (the key: KMSKeyId's
        # GetAtt); on deletion the trail goes first, then the objects are emptied (branch stages).
        policy = self.bucket.policy
        assert policy is not None  # enforce_ssl and the statements above made it
        self.trail.node.add_dependency(policy)
        auto_delete = self.bucket.node.try_find_child("AutoDeleteObjectsCustomResource")
        if auto_delete is not None:
            self.trail.node.add_dependency(auto_delete)
        if role is not None:
            self.trail.node.add_dependency(role)

        acknowledge(
            self.bucket,
            "NIST.800.53.R5-S3BucketReplicationEnabled",
            "The trail covers one region and its files are versioned, validated by signed "
            "digests and (shared stages) object-locked; a replica needs a second region chosen "
            "per organisation (or an organization trail in a log-archive account).",
        )
        if not audit.cloudwatch_logs:
            acknowledge(
                self,
                "NIST.800.53.R5-CloudTrailCloudWatchLogsEnabled",
                "CloudWatch Logs delivery is optional (audit.cloudwatch_logs): the trail's S3 "
                "files with signed digests are the record; Athena or CloudTrail Lake query them.",
            )
        skip_checkov(
            self.trail,
            "CKV_AWS_67",
            "Single-region on purpose: the stage lives in one region and several stages share "
            "an account; one multi-region trail per stage would bill every other region per stage.",
        )

    def _cloudwatch_logs(
        self, naming: Naming, stack: cdk.Stack, log_days: int, state: StatePolicy
    ) -> tuple[logs.LogGroup, iam.Role]:
        """The optional CloudWatch Logs copy: a log group encrypted with the trail key and the
        role CloudTrail assumes to write its streams (AWS's documented two actions)."""
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsForTheTrailLogGroup",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:*"
                        )
                    }
                },
            )
        )
        log_group = logs.LogGroup(
            self,
            "LogGroup",
            log_group_name=f"/aws/cloudtrail/{naming.resource('audit-trail', 256)}",
            encryption_key=self.key,
            retention=retention_days(log_days),
            removal_policy=state.removal_policy,
        )
        role = iam.Role(
            self,
            "LogsRole",
            assumed_by=iam.ServicePrincipal(CLOUDTRAIL),
            description=f"{naming.prefix}: CloudTrail delivers the audit trail to its log group",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        acknowledge_all(
            role,
            ["NIST.800.53.R5-IAMNoInlinePolicy"],
            "CloudTrail's delivery role holds only its two log actions on this one log group; a "
            "managed policy attached to this one role would add nothing.",
        )
        return log_group, role


def _selector_property(
    selector: dict[str, object],
) -> cloudtrail.CfnTrail.AdvancedEventSelectorProperty:
    fields = selector["FieldSelectors"]
    assert isinstance(fields, list)
    return cloudtrail.CfnTrail.AdvancedEventSelectorProperty(
        name=str(selector["Name"]),
        field_selectors=[
            cloudtrail.CfnTrail.AdvancedFieldSelectorProperty(
                field=f["Field"], equal_to=f.get("Equals"), starts_with=f.get("StartsWith")
            )
            for f in fields
        ],
    )
