"""The stage's SageMaker Feature Store feature group (``feature_store.enabled``).

* Schema: :func:`feature_store.schema.feature_definitions`, i.e. the model-build contract's
  feature list (plus ``record_id`` and ``event_time``).
* Offline store: the curated bucket under ``feature-store/`` (its own prefix), encrypted with the
  stage's data key; Feature Store creates its Glue table in the lake's database
  (``DataCatalogConfig``), so Athena reads it through the stage's workgroup.
* Online store (``feature_store.online``): encrypted with the same key (no new $1/month key).
* One role, assumed by SageMaker, writes the offline store: put on that prefix only, the data
  key, and the Glue table of this group only.
* Ingestion: the ETL job gets ``--feature_group_name`` and the ingestion module
  (``feature_store/runtime``, zipped) as ``--extra-py-files``; its role may describe the group
  and put records into it, nothing else.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from feature_store import schema
from infra.compliance import acknowledge, acknowledge_grant_actions
from infra.naming import Naming

RUNTIME_DIR = Path(__file__).parent / "runtime"
#: The ETL job's argument naming the group (== raw_to_curated.FEATURE_GROUP_ARGUMENT).
ETL_ARGUMENT = "--feature_group_name"
_GLUE_TABLE_ACTIONS = [
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:CreateTable",
    "glue:UpdateTable",
    "glue:GetPartition",
    "glue:GetPartitions",
    "glue:BatchCreatePartition",
]
_QUERY_GLUE_ACTIONS = [
    "glue:GetDatabase",
    "glue:GetTable",
    "glue:GetPartition",
    "glue:GetPartitions",
]
_ATHENA_ACTIONS = [
    "athena:StartQueryExecution",
    "athena:GetQueryExecution",
    "athena:GetQueryResults",
    "athena:StopQueryExecution",
    "athena:GetWorkGroup",
]


class FeatureStore(Construct):
    """Exposes ``feature_group`` (CfnFeatureGroup), ``feature_group_name``,
    ``feature_group_arn``, ``table_name``, ``database_name`` and ``role`` (the offline store's)."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        naming: Naming,
        online: bool,
        key: kms.IKey,
        bucket: s3.IBucket,
        database: glue.CfnDatabase,
        database_name: str,
        etl_job: glue.CfnJob,
        etl_role: iam.IRole,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, id_)
        stack = cdk.Stack.of(self)
        self.feature_group_name = schema.feature_group_name(naming)
        self.table_name = schema.offline_table_name(naming)
        self.database_name = database_name
        self.bucket, self.key = bucket, key
        self.feature_group_arn = stack.format_arn(
            service="sagemaker", resource="feature-group", resource_name=self.feature_group_name
        )
        self.catalog_arns = [
            stack.format_arn(service="glue", resource="catalog"),
            stack.format_arn(service="glue", resource="database", resource_name=database_name),
            stack.format_arn(
                service="glue", resource="table", resource_name=f"{database_name}/{self.table_name}"
            ),
        ]

        self.role = iam.Role(
            self,
            "OfflineStoreRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"{self.feature_group_name}: writes the offline store and its Glue table",
        )
        bucket.grant_put(self.role, f"{schema.OFFLINE_STORE_PREFIX}*")  # + kms encrypt
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="OfflineStoreObjectAcl",  # Feature Store puts with bucket-owner-full-control
                actions=["s3:PutObjectAcl"],
                resources=[bucket.arn_for_objects(f"{schema.OFFLINE_STORE_PREFIX}*")],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="OfflineStoreBucket",
                actions=["s3:GetBucketAcl", "s3:GetBucketLocation"],
                resources=[bucket.bucket_arn],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="OfflineStoreGlueTable",
                actions=_GLUE_TABLE_ACTIONS,
                resources=self.catalog_arns,
            )
        )

        definitions = [
            sagemaker.CfnFeatureGroup.FeatureDefinitionProperty(
                feature_name=name, feature_type=kind
            )
            for name, kind in schema.feature_definitions()
        ]
        self.feature_group = sagemaker.CfnFeatureGroup(
            self,
            "FeatureGroup",
            feature_group_name=self.feature_group_name,
            description=f"{naming.prefix}: the model's input rows (contract features + target)",
            record_identifier_feature_name=schema.RECORD_ID,
            event_time_feature_name=schema.EVENT_TIME,
            feature_definitions=definitions,
            role_arn=self.role.role_arn,
            # Both properties are untyped JSON in aws-cdk-lib (typed Any): a jsii struct would be
            # rendered with camelCase keys, which CloudFormation does not read. Plain objects
            # with the resource schema's keys, then.
            offline_store_config={
                "S3StorageConfig": {
                    "S3Uri": bucket.s3_url_for_object(schema.OFFLINE_STORE_PREFIX.rstrip("/")),
                    "KmsKeyId": key.key_arn,
                },
                "DataCatalogConfig": {
                    "Catalog": schema.DATA_CATALOG,
                    "Database": database_name,
                    "TableName": self.table_name,
                },
                "DisableGlueTableCreation": False,
                "TableFormat": "Glue",
            },
            online_store_config=(
                {
                    "EnableOnlineStore": True,
                    "SecurityConfig": {"KmsKeyId": key.key_arn},
                    "StorageType": "Standard",
                }
                if online
                else None
            ),
        )
        self.feature_group.apply_removal_policy(removal_policy)
        # CreateFeatureGroup checks the role can write the offline store: its policy first (the
        # role itself is a dependency already, through RoleArn).
        policy = self.role.node.find_child("DefaultPolicy")
        self.feature_group.node.add_dependency(policy)
        # ... and Feature Store creates its Glue table in the lake database: that one first.
        self.feature_group.node.add_dependency(database)
        self._wire_etl(etl_job, etl_role)
        self._acknowledge(stack)

    # ---- grants ----------------------------------------------------------------------------

    def grant_ingest(self, grantee: iam.IGrantable) -> iam.Grant:
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sagemaker:DescribeFeatureGroup", "sagemaker:PutRecord"],
            resource_arns=[self.feature_group_arn],
        )

    def grant_online_read(self, grantee: iam.IGrantable) -> iam.Grant:
        """GetRecord on the online store (and decrypt with the stage key)."""
        self.key.grant_decrypt(grantee)
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sagemaker:GetRecord"],
            resource_arns=[self.feature_group_arn],
        )

    def grant_offline_query(
        self, grantee: iam.Role, *, workgroup_name: str, results: s3.IBucket, prefix: str
    ) -> None:
        """Run Athena queries of the offline store's table in the stage's workgroup: read the
        table and its files, write the workgroup's results under ``prefix`` of ``results``."""
        stack = cdk.Stack.of(self)
        workgroup_arn = stack.format_arn(
            service="athena", resource="workgroup", resource_name=workgroup_name
        )
        iam.Grant.add_to_principal(
            grantee=grantee, actions=_ATHENA_ACTIONS, resource_arns=[workgroup_arn]
        )
        iam.Grant.add_to_principal(
            grantee=grantee, actions=_QUERY_GLUE_ACTIONS, resource_arns=self.catalog_arns
        )
        self.bucket.grant_read(grantee, f"{schema.OFFLINE_STORE_PREFIX}*")
        results.grant_read_write(grantee, f"{prefix}*")
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:GetBucketLocation"],
            resource_arns=[self.bucket.bucket_arn, results.bucket_arn],
        )
        for bucket, key_prefix, why in (
            (self.bucket, schema.OFFLINE_STORE_PREFIX, "the offline store's files"),
            (results, prefix, "the stage workgroup's Athena query results"),
        ):
            acknowledge(
                grantee,
                f"AwsSolutions-IAM5[Resource::<{_logical_id(bucket)}.Arn>/{key_prefix}*]",
                f"Reads or writes {why}, named by the service at run time; the grant is limited "
                f"to the {key_prefix} prefix of this one bucket.",
            )

    # ---- the ETL job -----------------------------------------------------------------------

    def _wire_etl(self, job: glue.CfnJob, role: iam.IRole) -> None:
        module = s3_assets.Asset(
            self, "IngestModule", path=str(RUNTIME_DIR), exclude=["__pycache__", "*.pyc"]
        )
        role.add_to_principal_policy(  # this one object, as the job's script
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[module.bucket.arn_for_objects(module.s3_object_key)],
            )
        )
        job.add_property_override(f"DefaultArguments.{ETL_ARGUMENT}", self.feature_group_name)
        job.add_property_override("DefaultArguments.--extra-py-files", module.s3_object_url)
        self.grant_ingest(role)

    def _acknowledge(self, stack: cdk.Stack) -> None:
        bucket_id = _logical_id(self.bucket)
        acknowledge(
            self.role,
            f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{schema.OFFLINE_STORE_PREFIX}*]",
            "Feature Store writes offline-store files under generated account/region/group/date "
            "keys; the role may write only the feature-store/ prefix of the curated bucket.",
        )
        acknowledge_grant_actions(
            self.role, applies_to="the offline store's prefix and this stage's data key", s3=True
        )
        acknowledge(
            self.role,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "CDK grant_* writes this role's least-privilege statements into its own policy; a "
            "managed policy would be attached to this one role only, adding nothing.",
        )


def _logical_id(bucket: s3.IBucket) -> str:
    """The bucket's logical id in its own stack (what cdk-nag names in a finding)."""
    return cdk.Stack.of(bucket).get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
