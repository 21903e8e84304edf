"""The ``model_monitor`` monitoring backend of one stage (README "Monitoring").

::

    deployment workflow creates/updates the endpoint (after an approval)
      -> SageMaker "SageMaker Endpoint State Change", this endpoint, IN_SERVICE
      -> EventBridge rule -> Lambda lambdas/monitor_sync (DLQ: the operations queue)
           served package (endpoint config -> model -> ModelPackageName)
           -> its DriftCheckBaselines.ModelDataQuality (the pipeline's QualityCheckStep output)
           -> data-quality job definition "<prefix>-dq-v<version>-<hash>" (+ model quality
              with ground truth) -> monitoring schedule(s) on the configured cron
           -> superseded job definitions deleted

Why not ``AWS::SageMaker::DataQualityJobDefinition`` / ``MonitoringSchedule`` in the template:
the endpoint does not exist when CloudFormation deploys (the deployment workflow creates it
after the first approval), a job definition's ``EndpointInput`` must name "an endpoint ... which
has DataCaptureConfig enabled" (SageMaker API reference), and the baseline belongs to the
version the endpoint serves, known only at run time. Job definitions are immutable, so each
served version gets its own, and the schedule is pointed at it.

The jobs run Model Monitor's analyzer image (resolved at synth time from the SageMaker SDK's
image table, without importing the SDK) with the monitoring role: read captured data and
baselines, write reports under ``monitoring/model-monitor/``, all with the stage's key, network
isolated. Exposes ``role`` (the jobs'), ``function``, ``rule``, ``image_uri``.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.compliance import acknowledge, acknowledge_all, acknowledge_grant_actions, skip_checkov
from infra.lambda_runtime import LAMBDA_RUNTIME
from infra.log_retention import encrypted_log_group
from infra.naming import EVENT_RULE_MAX, Naming

LAMBDA_DIR = Path(__file__).resolve().parent.parent / "lambdas" / "monitor_sync"
ENDPOINT_STATE_DETAIL_TYPE = "SageMaker Endpoint State Change"
#: AWS's documented sample event carries ``IN_SERVICE``; the API's status is ``InService``.
IN_SERVICE_STATUSES = ("IN_SERVICE", "InService")
OUTPUT_PREFIX = "monitoring/model-monitor"
DATA_CAPTURE_PREFIX = "data-capture/"  # == deployment.infrastructure.DATA_CAPTURE_PREFIX
#: CloudWatch namespaces Model Monitor's analyzer publishes to (publish_cloudwatch_metrics).
METRIC_NAMESPACES = (
    "aws/sagemaker/Endpoints/data-metrics",
    "aws/sagemaker/Endpoints/model-metrics",
)
_IMAGE_TABLE = ("core", "image_uri_config", "model-monitor.json")


def analyzer_image_uri(region: str) -> str:
    """Model Monitor's analyzer image in ``region``, read from the SageMaker SDK's image table
    (what ``sagemaker.core.image_uris.retrieve("model-monitor", region)`` returns) without
    importing the SDK (seconds of synth time). Raises ``ValueError`` for an unknown region."""
    spec = importlib.util.find_spec("sagemaker")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the SageMaker SDK is not installed: no Model Monitor image table")
    table = json.loads(
        Path(next(iter(spec.submodule_search_locations)), *_IMAGE_TABLE).read_text(encoding="utf-8")
    )
    config = table["versions"][""]
    account = config["registries"].get(region)
    if account is None:
        raise ValueError(f"Model Monitor has no analyzer image in region {region}")
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{domain}/{config['repository']}"


def nag_resource(stack: cdk.Stack, value: str) -> str:
    """``value`` (an ARN, possibly with tokens) as cdk-nag writes it in a finding id: literals
    kept, ``{"Ref": "AWS::Region"}`` as ``<AWS::Region>``, ``Fn::GetAtt`` as ``<Id.Attr>``."""

    def render(node: object) -> str:
        if isinstance(node, str):
            return node
        if isinstance(node, dict) and "Ref" in node:
            return f"<{node['Ref']}>"
        if isinstance(node, dict) and "Fn::GetAtt" in node:
            return "<{}.{}>".format(*node["Fn::GetAtt"])
        if isinstance(node, dict) and "Fn::Join" in node:
            separator, parts = node["Fn::Join"]
            return str(separator).join(render(part) for part in parts)
        raise ValueError(f"cannot render {node!r}")

    return render(stack.resolve(value))


def _s3_location(uri: str) -> tuple[str, str]:
    match = re.fullmatch(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?", uri)
    if match is None:
        raise ValueError(f"ground_truth_s3_uri {uri!r} is not an s3://bucket/prefix URI")
    return match.group(1), (match.group(2) or "")


class ModelMonitorBackend(Construct):
    """Model Monitor schedules that follow the served model version (see the module doc)."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        naming: Naming,
        endpoint_name: str,
        deployment_resource_prefix: str,
        model_package_group_name: str,
        pipeline_name: str,
        key: kms.IKey,
        artifacts_bucket: s3.IBucket,
        schedule_expression: str,
        window_hours: int,
        instance_type: str,
        log_retention_days: int,
        removal_policy: cdk.RemovalPolicy,
        ground_truth_s3_uri: str | None = None,
        dead_letter_queue: sqs.IQueue | None = None,
        subnet_ids: tuple[str, ...] = (),
        security_group_ids: tuple[str, ...] = (),
        baseline_prefix: str | None = None,
    ) -> None:
        """``baseline_prefix``: the keys holding the served versions' baselines (default the
        pipeline's outputs, ``pipelines/<pipeline>/``; prod: the promoted copies)."""
        super().__init__(scope, id_)
        stack = cdk.Stack.of(self)
        self._endpoint_name = endpoint_name
        self._baseline_prefix = baseline_prefix or f"pipelines/{pipeline_name}/"
        if not 1 <= window_hours <= 24:
            raise ValueError(f"window_hours {window_hours}: Model Monitor analyses 1-24 hours")
        self.image_uri = analyzer_image_uri(stack.region)
        prefix = naming.model_monitor_prefix  # job definitions: <prefix>-dq-v<n>-<hash8> <= 63

        def arn(resource: str, name: str) -> str:
            return stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

        # --- The monitoring jobs' role (SageMaker assumes it to run the analyzer).
        self.role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"{naming.prefix}: Model Monitor jobs on {endpoint_name}",
        )
        artifacts_bucket.grant_read(self.role, f"{DATA_CAPTURE_PREFIX}{endpoint_name}/*")
        artifacts_bucket.grant_read(self.role, f"{self._baseline_prefix}*")
        artifacts_bucket.grant_read_write(self.role, f"{OUTPUT_PREFIX}/*")
        key.grant_encrypt_decrypt(self.role)
        # The schedule's processing jobs run as this role: SageMaker creates grants on the key to
        # encrypt their volumes (as for the pipeline's jobs).
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["kms:CreateGrant"],
                resources=[key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
        ground_truth_resource = None
        if ground_truth_s3_uri:
            bucket_name, key_prefix = _s3_location(ground_truth_s3_uri)
            ground_truth = s3.Bucket.from_bucket_name(self, "GroundTruth", bucket_name)
            objects = f"{key_prefix.rstrip('/')}/*".lstrip("/")
            ground_truth.grant_read(self.role, objects)
            ground_truth_resource = nag_resource(stack, ground_truth.arn_for_objects(objects))
        image_account, image_region = self.image_uri.split(".")[0], stack.region
        repository = self.image_uri.split("/", 1)[1]
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchGetImage",
                ],
                resources=[
                    f"arn:{stack.partition}:ecr:{image_region}:{image_account}:"
                    f"repository/{repository}"
                ],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"])
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": list(METRIC_NAMESPACES)}},
            )
        )
        self._job_logs = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws/sagemaker/ProcessingJobs:*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self._job_logs],
            )
        )

        # --- The Lambda that creates/updates the job definitions and schedules.
        function_name = naming.resource("model-monitor-sync", 64)
        group = encrypted_log_group(
            self,
            "Logs",
            name=f"/aws/lambda/{function_name}",
            key=key,
            retention_days=log_retention_days,
            removal_policy=removal_policy,
        )
        environment = {
            "ENDPOINT_NAME": endpoint_name,
            "MODEL_PACKAGE_GROUP_NAME": model_package_group_name,
            "RESOURCE_PREFIX": prefix,
            "ROLE_ARN": self.role.role_arn,
            "KMS_KEY_ARN": key.key_arn,
            "OUTPUT_S3_URI": artifacts_bucket.s3_url_for_object(OUTPUT_PREFIX),
            "IMAGE_URI": self.image_uri,
            "SCHEDULE_EXPRESSION": schedule_expression,
            "WINDOW_HOURS": str(window_hours),
            "INSTANCE_TYPE": instance_type,
            "GROUND_TRUTH_S3_URI": ground_truth_s3_uri or "",
            "SUBNET_IDS": ",".join(subnet_ids),
            "SECURITY_GROUP_IDS": ",".join(security_group_ids),
        }
        self.function = lambda_.Function(
            self,
            "SyncFunction",
            function_name=function_name,
            description=(
                f"{naming.prefix}: points Model Monitor at the model version {endpoint_name} "
                "serves (job definitions, schedules)"
            ),
            runtime=LAMBDA_RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler="handler.handler",
            code=lambda_.Code.from_asset(
                str(LAMBDA_DIR), exclude=["__pycache__", "*.pyc", "requirements.txt"]
            ),
            memory_size=256,
            timeout=cdk.Duration.seconds(120),
            tracing=lambda_.Tracing.ACTIVE,
            environment=environment,
            environment_encryption=key,
            log_group=group,
        )
        kinds = ["data-quality"] + (["model-quality"] if ground_truth_s3_uri else [])
        dq_mq = {"data-quality": "dq", "model-quality": "mq"}
        definitions = [
            arn(f"{kind}-job-definition", f"{prefix}-{dq_mq[kind]}-v*") for kind in kinds
        ]
        schedules = [arn("monitoring-schedule", f"{prefix}-{kind}") for kind in kinds]
        statements = [
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpoint"],
                resources=[arn("endpoint", endpoint_name)],
            ),
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpointConfig"],
                resources=[arn("endpoint-config", f"{deployment_resource_prefix}-*")],
            ),
            iam.PolicyStatement(
                actions=["sagemaker:DescribeModel"],
                resources=[arn("model", f"{deployment_resource_prefix}-*")],
            ),
            iam.PolicyStatement(
                actions=["sagemaker:DescribeModelPackage"],
                resources=[arn("model-package", f"{model_package_group_name}/*")],
            ),
            iam.PolicyStatement(
                actions=[
                    f"sagemaker:{verb}{kind}JobDefinition"
                    for kind in ("DataQuality", "ModelQuality")[: len(kinds)]
                    for verb in ("Create", "Describe", "Delete")
                ],
                resources=definitions,
            ),
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateMonitoringSchedule",
                    "sagemaker:DescribeMonitoringSchedule",
                    "sagemaker:UpdateMonitoringSchedule",
                ],
                resources=schedules,
            ),
            # List* has no resource-level permission (Service Authorization Reference).
            iam.PolicyStatement(
                actions=[
                    f"sagemaker:List{kind}JobDefinitions"
                    for kind in ("DataQuality", "ModelQuality")[: len(kinds)]
                ],
                resources=["*"],
            ),
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
        ]
        for statement in statements:
            self.function.add_to_role_policy(statement)

        # --- The rule: this endpoint reached IN_SERVICE (created, updated, rolled back).
        self.rule = events.Rule(
            self,
            "EndpointInService",
            rule_name=naming.resource("model-monitor-sync", EVENT_RULE_MAX),
            description=f"{naming.prefix}: {endpoint_name} in service -> sync Model Monitor",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=[ENDPOINT_STATE_DETAIL_TYPE],
                detail={
                    "EndpointName": [endpoint_name],
                    "EndpointStatus": list(IN_SERVICE_STATUSES),
                },
            ),
        )
        self.rule.add_target(
            targets.LambdaFunction(
                self.function,
                dead_letter_queue=dead_letter_queue,
                retry_attempts=2,
                max_event_age=cdk.Duration.hours(2),
            )
        )
        self._acknowledge(
            stack,
            artifacts_bucket,
            ground_truth_resource,
            [*definitions, *(s.resources[0] for s in statements[1:4])],
        )

    def _acknowledge(
        self,
        stack: cdk.Stack,
        bucket: s3.IBucket,
        ground_truth: str | None,
        function_wildcards: list[str],
    ) -> None:
        role = self.role
        findings = [
            "AwsSolutions-IAM5[Resource::*]",
            f"AwsSolutions-IAM5[Resource::{nag_resource(stack, self._job_logs)}]",
        ]
        acknowledge_all(
            role,
            findings,
            "ecr:GetAuthorizationToken and cloudwatch:PutMetricData (conditioned on Model "
            "Monitor's two namespaces) have no resource-level permission; processing jobs write "
            "their log streams (named at run time) in SageMaker's ProcessingJobs group only.",
        )
        acknowledge_all(
            role,
            [
                f"AwsSolutions-IAM5[Resource::{nag_resource(stack, bucket.arn_for_objects(path))}]"
                for path in (
                    f"{DATA_CAPTURE_PREFIX}{self._endpoint_name}/*",
                    f"{self._baseline_prefix}*",
                    f"{OUTPUT_PREFIX}/*",
                )
            ],
            "Data capture, the served versions' baselines (the pipeline's outputs; in prod the "
            "copies promotion made) and Model Monitor's reports live under "
            "run-time keys (date, execution id, schedule) below these prefixes of this "
            "stage's artifacts bucket only.",
        )
        if ground_truth is not None:
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::{ground_truth}]",
                "Ground-truth labels are uploaded under run-time keys below the configured "
                "prefix; the model-quality job reads only that prefix.",
            )
        acknowledge_grant_actions(
            role,
            applies_to="the capture, baseline and monitoring prefixes of this stage's "
            "artifacts bucket (and the ground-truth prefix) and this stage's data key",
        )
        acknowledge(
            role,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "CDK writes the role's statements (its prefixes, key, image, metrics, logs) into its "
            "own policy; a managed policy would be attached to this one role only.",
        )
        function_role = self.function.role
        assert function_role is not None
        acknowledge(
            function_role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaBasicExecutionRole]",
            "The AWS-managed basic execution policy only lets the function write its own logs.",
        )
        acknowledge(
            function_role,
            "AwsSolutions-IAM5[Resource::*]",
            "List{DataQuality,ModelQuality}JobDefinitions and X-Ray PutTraceSegments/"
            "PutTelemetryRecords have no resource-level permission.",
        )
        acknowledge_all(
            function_role,
            [
                f"AwsSolutions-IAM5[Resource::{nag_resource(stack, arn)}]"
                for arn in function_wildcards
            ],
            "Names made at run time: job definitions per served version (<prefix>-dq-v<version>"
            "-<hash>, immutable), the deployment workflow's models and endpoint configs "
            "(<deploy prefix>-v<version>-<id>) and this stage's package versions; only this "
            "stage's prefixes and group.",
        )
        acknowledge(
            function_role,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "CDK writes the function's statements (this endpoint, its deployment's models and "
            "configs, this group's packages, this stage's monitoring names) into its own policy.",
        )
        acknowledge(
            self.function,
            "NIST.800.53.R5-LambdaInsideVPC",
            "The function only calls SageMaker's API over TLS with IAM auth; it reaches no "
            "resource in a VPC.",
        )
        acknowledge(
            self.function,
            "NIST.800.53.R5-LambdaConcurrency",
            "Invoked once per endpoint deployment or rollback; new accounts (limit 10) cannot "
            "reserve capacity.",
        )
        for finding in ("NIST.800.53.R5-LambdaDLQ", "Serverless-LambdaDLQ"):
            acknowledge(
                self.function,
                finding,
                "EventBridge invokes it and keeps failed events in the rule target's dead-letter "
                "queue (the operations DLQ), after two retries.",
            )
        skip_checkov(
            self.function,
            "CKV_AWS_116",
            "EventBridge invokes it; failed events go to the rule target's dead-letter queue.",
        )
