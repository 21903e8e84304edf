"""The data layer: KMS key, S3 lake (raw, curated, artifacts, access logs), Glue, Athena."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from infra.compliance import acknowledge, acknowledge_grant_actions, skip_checkov
from infra.config import Retention
from infra.naming import ATHENA_WORKGROUP_MAX, Naming

ETL_SCRIPT = Path(__file__).parent / "etl" / "raw_to_curated.py"
RAW_DATASETS_PREFIX = "datasets/"
CURATED_DATASETS_PREFIX = "datasets/"
ATHENA_RESULTS_PREFIX = "athena-results/"
GLUE_TEMP_PREFIX = "glue-temp/"
DEFAULT_DATASET = "breast_cancer"


@dataclass(frozen=True)
class StatePolicy:
    """How stateful resources of a stage behave on delete/replace."""

    removal_policy: cdk.RemovalPolicy
    auto_delete_objects: bool


class DataLake(Construct):
    """One architectural task: store, catalogue and query the stage's data, encrypted with one
    customer-managed key.

    Exposes ``key``, ``raw_bucket``, ``curated_bucket``, ``artifacts_bucket``,
    ``access_logs_bucket``, ``database_name``, ``etl_job_name``, ``workgroup_name``.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        naming: Naming,
        retention: Retention,
        state: StatePolicy,
    ) -> None:
        super().__init__(scope, id_)
        stack = cdk.Stack.of(self)

        self.key = kms.Key(
            self,
            "Key",
            description=f"{naming.prefix}: data lake, pipeline artifacts and logs",
            enable_key_rotation=True,
            alias=f"alias/{naming.prefix}-data",
            pending_window=cdk.Duration.days(7 if state.auto_delete_objects else 30),
            removal_policy=state.removal_policy,
        )
        # Glue's security configuration encrypts its CloudWatch log groups with this key.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsForThisAccount",
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

        # Server access logs can only be delivered to a bucket encrypted with SSE-S3.
        self.access_logs_bucket = s3.Bucket(
            self,
            "AccessLogsBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=cdk.Duration.days(retention.access_log_days),
                    noncurrent_version_expiration=cdk.Duration.days(1),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                )
            ],
            removal_policy=state.removal_policy,
            auto_delete_objects=state.auto_delete_objects,
        )
        for rule, reason in (
            (
                "AwsSolutions-S1",
                "This is the access-log target bucket; logging it into itself would loop.",
            ),
            (
                "NIST.800.53.R5-S3BucketLoggingEnabled",
                "This is the access-log target bucket; logging it into itself would loop.",
            ),
            (
                "NIST.800.53.R5-S3DefaultEncryptionKMS",
                "S3 server access log delivery supports only SSE-S3 on the target bucket.",
            ),
        ):
            acknowledge(self.access_logs_bucket, rule, reason)
        acknowledge(
            self.access_logs_bucket,
            "NIST.800.53.R5-S3BucketReplicationEnabled",
            "Access logs are an audit trail kept for the configured retention in this region; "
            "replicating them doubles cost without protecting the data itself.",
        )
        skip_checkov(
            self.access_logs_bucket,
            "CKV_AWS_18",
            "This is the access-log target bucket; logging it into itself would loop.",
        )

        noncurrent = cdk.Duration.days(retention.noncurrent_version_days)
        self.raw_bucket = self._data_bucket(
            "RawBucket",
            state,
            [
                s3.LifecycleRule(
                    id="raw-tiering",
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=cdk.Duration.days(
                                retention.raw_infrequent_access_days
                            ),
                        )
                    ],
                    noncurrent_version_expiration=noncurrent,
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(7),
                )
            ],
        )
        # Native EventBridge notifications (no custom-resource Lambda): new raw files become events.
        raw_cfn = self.raw_bucket.node.default_child
        assert isinstance(raw_cfn, s3.CfnBucket)
        raw_cfn.add_property_override(
            "NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True
        )
        self.curated_bucket = self._data_bucket(
            "CuratedBucket", state, [self._noncurrent_rule("curated-versions", noncurrent)]
        )
        self.artifacts_bucket = self._data_bucket(
            "ArtifactsBucket", state, [self._noncurrent_rule("artifact-versions", noncurrent)]
        )

        self._build_glue(naming, stack)
        self._build_athena(naming, state)

    # ----------------------------------------------------------------------------------------

    @staticmethod
    def _noncurrent_rule(rule_id: str, after: cdk.Duration) -> s3.LifecycleRule:
        return s3.LifecycleRule(
            id=rule_id,
            noncurrent_version_expiration=after,
            abort_incomplete_multipart_upload_after=cdk.Duration.days(7),
        )

    def _data_bucket(
        self, id_: str, state: StatePolicy, lifecycle_rules: list[s3.LifecycleRule]
    ) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            id_,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix=f"{id_.removesuffix('Bucket').lower()}/",
            lifecycle_rules=lifecycle_rules,
            removal_policy=state.removal_policy,
            auto_delete_objects=state.auto_delete_objects,
        )
        acknowledge(
            bucket,
            "NIST.800.53.R5-S3BucketReplicationEnabled",
            "Single-region lake: versioning plus RETAIN in prod protect the data; cross-region "
            "replication needs a second region chosen per organisation.",
        )
        return bucket

    def _build_glue(self, naming: Naming, stack: cdk.Stack) -> None:
        self.database_name = naming.glue("lake")
        security_configuration = glue.CfnSecurityConfiguration(
            self,
            "GlueSecurityConfiguration",
            name=naming.resource("glue-security", 128),
            encryption_configuration=glue.CfnSecurityConfiguration.EncryptionConfigurationProperty(
                s3_encryptions=[
                    glue.CfnSecurityConfiguration.S3EncryptionProperty(
                        s3_encryption_mode="SSE-KMS", kms_key_arn=self.key.key_arn
                    )
                ],
                cloud_watch_encryption=glue.CfnSecurityConfiguration.CloudWatchEncryptionProperty(
                    cloud_watch_encryption_mode="SSE-KMS", kms_key_arn=self.key.key_arn
                ),
                job_bookmarks_encryption=glue.CfnSecurityConfiguration.JobBookmarksEncryptionProperty(
                    job_bookmarks_encryption_mode="CSE-KMS", kms_key_arn=self.key.key_arn
                ),
            ),
        )
        database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=stack.account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name,
                description=f"{naming.prefix}: curated datasets (Parquet), crawled",
            ),
        )

        catalog_arns = [
            stack.format_arn(service="glue", resource="catalog"),
            stack.format_arn(service="glue", resource="database", resource_name=self.database_name),
            stack.format_arn(
                service="glue", resource="table", resource_name=f"{self.database_name}/*"
            ),
        ]
        glue_logs_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws-glue/*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        # Stage environments are concrete, so these ARNs are plain strings: the exact findings.
        glue_logs_ack = f"Resource::{glue_logs_arn}"
        catalog_table_ack = f"Resource::{catalog_arns[2]}"

        def glue_role(id_: str, description: str, catalog_actions: list[str]) -> iam.Role:
            role = iam.Role(
                self,
                id_,
                assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
                description=description,
            )
            role.add_to_policy(iam.PolicyStatement(actions=catalog_actions, resources=catalog_arns))
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=[
                        "logs:CreateLogGroup",
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:AssociateKmsKey",
                    ],
                    resources=[glue_logs_arn],
                )
            )
            acknowledge(
                role,
                f"AwsSolutions-IAM5[{glue_logs_ack}]",
                "Glue names its log groups and streams at run time under /aws-glue/; the grant is "
                "limited to that prefix in this account and region.",
            )
            acknowledge(
                role,
                "NIST.800.53.R5-IAMNoInlinePolicy",
                "CDK grant_* writes each role's least-privilege statements into that role's own "
                "policy; a managed policy would be attached to this one role only, adding nothing.",
            )
            acknowledge(
                role,
                f"AwsSolutions-IAM5[{catalog_table_ack}]",
                "Tables are created by the crawler/job at run time; access is limited to the "
                "tables of this stage's own database.",
            )
            return role

        partition_actions = [
            "glue:GetDatabase",
            "glue:GetTable",
            "glue:GetTables",
            "glue:CreateTable",
            "glue:UpdateTable",
            "glue:GetPartition",
            "glue:GetPartitions",
            "glue:CreatePartition",
            "glue:BatchCreatePartition",
            "glue:BatchGetPartition",
            "glue:UpdatePartition",
            "glue:BatchUpdatePartition",
        ]

        # Crawler: reads curated data, maintains the tables.
        crawler_role = glue_role(
            "CrawlerRole", "Glue crawler over the curated zone", partition_actions
        )
        self.curated_bucket.grant_read(crawler_role, f"{CURATED_DATASETS_PREFIX}*")
        crawler_role.add_to_policy(
            iam.PolicyStatement(
                actions=["glue:GetSecurityConfiguration"],
                resources=["*"],  # the action supports no resource-level permission
            )
        )
        self.crawler = glue.CfnCrawler(
            self,
            "CuratedCrawler",
            name=naming.resource("curated-crawler", 255),
            description="Catalogues each curated dataset as one partitioned table",
            role=crawler_role.role_arn,
            database_name=self.database_name,
            targets=glue.CfnCrawler.TargetsProperty(
                s3_targets=[
                    glue.CfnCrawler.S3TargetProperty(
                        path=self.curated_bucket.s3_url_for_object(CURATED_DATASETS_PREFIX)
                    )
                ]
            ),
            crawler_security_configuration=security_configuration.ref,
            schema_change_policy=glue.CfnCrawler.SchemaChangePolicyProperty(
                update_behavior="UPDATE_IN_DATABASE", delete_behavior="LOG"
            ),
            configuration=(
                '{"Version":1.0,"Grouping":{"TableLevelConfiguration":3},'
                '"CrawlerOutput":{"Partitions":{"AddOrUpdateBehavior":"InheritFromTable"}}}'
            ),
        )
        self.crawler.node.add_dependency(database)

        # ETL job: raw CSV -> curated Parquet. The script is the repo's own file, as an asset.
        script = s3_assets.Asset(self, "EtlScript", path=str(ETL_SCRIPT))
        job_role = glue_role("EtlJobRole", "Glue ETL job raw -> curated", partition_actions)
        job_role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[script.bucket.arn_for_objects(script.s3_object_key)],
            )
        )
        self.raw_bucket.grant_read(job_role, f"{RAW_DATASETS_PREFIX}*")
        self.curated_bucket.grant_read_write(job_role, f"{CURATED_DATASETS_PREFIX}*")
        self.artifacts_bucket.grant_read_write(job_role, f"{GLUE_TEMP_PREFIX}*")
        self.key.grant_encrypt_decrypt(job_role)
        self.key.grant_encrypt_decrypt(crawler_role)
        self.etl_job_name = naming.resource("raw-to-curated", 255)
        job = glue.CfnJob(
            self,
            "EtlJob",
            name=self.etl_job_name,
            description="Raw CSV to curated Parquet, partitioned by ingest_date (job bookmarks on)",
            role=job_role.role_arn,
            glue_version="5.0",
            worker_type="G.1X",
            number_of_workers=2,
            timeout=60,
            max_retries=1,
            execution_property=glue.CfnJob.ExecutionPropertyProperty(max_concurrent_runs=1),
            security_configuration=security_configuration.ref,
            command=glue.CfnJob.JobCommandProperty(
                name="glueetl", python_version="3", script_location=script.s3_object_url
            ),
            default_arguments={
                "--job-bookmark-option": "job-bookmark-enable",
                "--job-language": "python",
                "--enable-metrics": "true",
                "--enable-continuous-cloudwatch-log": "true",
                "--enable-glue-datacatalog": "true",
                "--TempDir": self.artifacts_bucket.s3_url_for_object(GLUE_TEMP_PREFIX),
                "--raw_path": self.raw_bucket.s3_url_for_object(RAW_DATASETS_PREFIX),
                "--curated_path": self.curated_bucket.s3_url_for_object(CURATED_DATASETS_PREFIX),
                "--dataset": DEFAULT_DATASET,
            },
        )
        job.node.add_dependency(database)
        self.etl_job, self.etl_job_role = job, job_role  # feature_store/ adds its arguments
        self.database = database
        # A successful ETL run re-crawls the curated zone so Athena sees new partitions.
        glue.CfnTrigger(
            self,
            "CrawlAfterEtl",
            name=naming.resource("crawl-after-etl", 255),
            description="Starts the curated crawler after each successful ETL run",
            type="CONDITIONAL",
            start_on_creation=True,
            predicate=glue.CfnTrigger.PredicateProperty(
                conditions=[
                    glue.CfnTrigger.ConditionProperty(
                        job_name=job.ref, logical_operator="EQUALS", state="SUCCEEDED"
                    )
                ]
            ),
            actions=[glue.CfnTrigger.ActionProperty(crawler_name=self.crawler.ref)],
        )
        for role, bucket_grants in (
            (crawler_role, [(self.curated_bucket, CURATED_DATASETS_PREFIX)]),
            (
                job_role,
                [
                    (self.raw_bucket, RAW_DATASETS_PREFIX),
                    (self.curated_bucket, CURATED_DATASETS_PREFIX),
                    (self.artifacts_bucket, GLUE_TEMP_PREFIX),
                ],
            ),
        ):
            self._acknowledge_grant_wildcards(role, bucket_grants)
        acknowledge(
            crawler_role,
            "AwsSolutions-IAM5[Resource::*]",
            "glue:GetSecurityConfiguration does not support resource-level permissions.",
        )

    def _acknowledge_grant_wildcards(
        self, role: iam.Role, grants: list[tuple[s3.Bucket, str]]
    ) -> None:
        """``grant_*`` on a prefix and on a KMS key yields action/resource wildcards scoped to
        exactly that prefix and key; acknowledge those exact findings, nothing broader."""
        stack = cdk.Stack.of(self)
        for bucket, prefix in grants:
            logical_id = stack.get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/{prefix}*]",
                f"Objects are written under the {prefix} prefix at run time with generated keys; "
                "the grant is limited to that prefix of this one bucket.",
            )
        acknowledge_grant_actions(
            role, applies_to="the bucket prefixes this role needs and this stage's data key"
        )

    def _build_athena(self, naming: Naming, state: StatePolicy) -> None:
        self.workgroup_name = naming.resource("analytics", ATHENA_WORKGROUP_MAX)
        athena.CfnWorkGroup(
            self,
            "Workgroup",
            name=self.workgroup_name,
            description=f"{naming.prefix}: queries over the curated lake",
            state="ENABLED",
            recursive_delete_option=state.auto_delete_objects,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=100 * 1024**3,
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=self.artifacts_bucket.s3_url_for_object(ATHENA_RESULTS_PREFIX),
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=self.key.key_arn
                    ),
                ),
            ),
        )
