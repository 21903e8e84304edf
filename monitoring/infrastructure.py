"""The ``drift_job`` monitoring backend of one stage (README "Monitoring").

::

    EventBridge Scheduler (monitoring.schedule, UTC)
      | input {"reason": "schedule", "scheduledTime": <aws.scheduler.scheduled-time>}
      v
    Step Functions "<stage>-drift":
      Prepare (Lambda monitoring.drift.launch, action prepare):
        window = monitoring.window_hours ending at the scheduled hour;
        served model package -> reference.csv next to its drift-check statistics.json
        (DescribeEndpoint/EndpointConfig/Model/ModelPackage);
        the window's capture files -> manifest.json; a job name unique to the execution
      -> nothing to compare (no endpoint yet, no captured request)? -> NothingToCompare (end)
      -> RunDriftJob: CreateProcessingJob .sync, EnableNetworkIsolation, the drift image
         (monitoring/image, a CDK DockerImageAsset), inputs = the baseline + the manifest's
         capture files, output = drift_report.json/.html + metric_data.json under
         s3://<artifacts>/drift-reports/<endpoint>/<job>/report/, volume and output under the
         stage's KMS key
      -> Publish (Lambda, action publish): PutMetricData of metric_data.json (namespace
         MLOps/ModelDrift only) -> drift found? -> SNS "drift detected" with the report's place
      any failure -> SNS (the operations topic) -> Failed

Why the Lambda steps: a network-isolated container cannot call any AWS API (SageMaker, S3
listing, CloudWatch); SageMaker moves only its declared S3 inputs and outputs. The drift
alarm (``retraining/``) turns ShareOfDriftedFeatures into a retraining start.
"""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct, IConstruct

from infra.compliance import acknowledge, acknowledge_all, skip_checkov
from infra.lambda_runtime import LAMBDA_RUNTIME
from infra.log_retention import encrypted_log_group
from infra.naming import STATE_MACHINE_MAX, Naming
from infra.service_roles import role_for_source
from monitoring.drift.metrics import DEFAULT_NAMESPACE

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = "monitoring/image/Dockerfile"
#: The image's build context: the repository with everything excluded but what the Dockerfile
#: copies (gitignore syntax: a directory excluded with ``/*`` is never walked, so .venv,
#: node_modules, cdk.out, .work and tests cost nothing).
IMAGE_CONTEXT_EXCLUDE = (
    "/*",
    "!/monitoring/",
    "/monitoring/*",
    "!/monitoring/__init__.py",
    "!/monitoring/image/",
    "/monitoring/image/*",
    "!/monitoring/image/Dockerfile",
    "!/monitoring/image/requirements.txt",
    "!/monitoring/drift/",
    "/monitoring/drift/*",
    "!/monitoring/drift/*.py",
    "!/pipelines/",
    "/pipelines/*",
    "!/pipelines/__init__.py",
    "!/pipelines/model_build/",
    "/pipelines/model_build/*",
    "!/pipelines/model_build/__init__.py",
    "!/pipelines/model_build/contract.py",
    "!/pipelines/model_build/model_code/",
    "/pipelines/model_build/model_code/*",
    "!/pipelines/model_build/model_code/*.py",
)
#: The launcher Lambda's code: ``monitoring.drift.launch`` and the stdlib-only modules it uses.
LAUNCHER_MODULES = ("__init__.py", "launch.py", "window.py", "baseline.py", "metrics.py")
LAUNCHER_EXCLUDE = (
    "/*",
    "!/monitoring/",
    "/monitoring/*",
    "!/monitoring/__init__.py",
    "!/monitoring/drift/",
    "/monitoring/drift/*",
    *(f"!/monitoring/drift/{name}" for name in LAUNCHER_MODULES),
)
LAUNCHER_HANDLER = "monitoring.drift.launch.handler"

# Container paths of the job (monitoring/drift/job.py arguments).
PROCESSING_ROOT = "/opt/ml/processing"
BASELINE_DIR = f"{PROCESSING_ROOT}/input/baseline"
CAPTURE_DIR = f"{PROCESSING_ROOT}/input/capture"
REPORT_DIR = f"{PROCESSING_ROOT}/output/report"
#: SageMaker's own namespace for processing-instance metrics (CPU, memory, disk).
PROCESSING_METRICS_NAMESPACE = "/aws/sagemaker/ProcessingJobs"
#: The rule Step Functions manages for ``createProcessingJob.sync`` (Step Functions docs, "IAM
#: policies for Amazon SageMaker AI").
SYNC_RULE = "StepFunctionsGetEventsForSageMakerProcessingJobsRule"


class DriftJobMonitoring(Construct):
    """Schedule -> drift workflow -> network-isolated Processing job -> metrics and notices.

    Exposes ``image``, ``job_role``, ``launcher``, ``state_machine``, ``schedule`` and
    ``job_name_prefix``.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        naming: Naming,
        endpoint_name: str,
        variant_name: str,
        artifacts_bucket: s3.IBucket,
        key: kms.IKey,
        capture_prefix: str,
        report_prefix: str,
        baseline_prefix: str,
        model_package_group_name: str,
        model_name_prefix: str,
        schedule_expression: str,
        window_hours: int,
        instance_type: str,
        topic: sns.ITopic,
        log_retention_days: int,
        removal_policy: cdk.RemovalPolicy,
        namespace: str = DEFAULT_NAMESPACE,
        max_runtime_hours: int = 2,
        volume_size_gb: int = 30,
        subnet_ids: tuple[str, ...] = (),
        security_group_ids: tuple[str, ...] = (),
    ) -> None:
        super().__init__(scope, id_)
        if bool(subnet_ids) != bool(security_group_ids):
            raise ValueError("subnet_ids and security_group_ids: both or neither")
        stack = cdk.Stack.of(self)
        max_runtime = cdk.Duration.hours(max_runtime_hours)
        self._key = key
        self._log_retention_days = log_retention_days
        self._removal_policy = removal_policy
        prefixes = {"capture": capture_prefix, "report": report_prefix, "base": baseline_prefix}
        for what, value in prefixes.items():
            if not value.endswith("/") or value.startswith("/"):
                raise ValueError(f"{what} prefix {value!r}: expected 'name/' (no leading /)")
        capture_keys = f"{capture_prefix}{endpoint_name}/{variant_name}/"
        report_keys = f"{report_prefix}{endpoint_name}/"
        self.job_name_prefix = naming.resource("drift", 40)
        state_machine_name = naming.resource("drift", STATE_MACHINE_MAX)

        def sagemaker_arn(resource: str, name: str) -> str:
            return stack.format_arn(service="sagemaker", resource=resource, resource_name=name)

        # The wildcard resources (run-time names under fixed prefixes), acknowledged by name.
        self._arns = {
            "logs": stack.format_arn(
                service="logs",
                resource="log-group",
                resource_name="/aws/sagemaker/ProcessingJobs:*",
                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
            ),
            "endpoint-config": sagemaker_arn("endpoint-config", f"{model_name_prefix}-*"),
            "model": sagemaker_arn("model", f"{model_name_prefix}-*"),
            "model-package": sagemaker_arn("model-package", f"{model_package_group_name}/*"),
            "processing-job": sagemaker_arn("processing-job", f"{self.job_name_prefix}-*"),
        }

        # --- The image (built and pushed by `cdk deploy`; synth only stages its context).
        self.image = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(REPO_ROOT),
            file=DOCKERFILE,
            ignore_mode=cdk.IgnoreMode.GIT,
            exclude=list(IMAGE_CONTEXT_EXCLUDE),
            platform=ecr_assets.Platform.LINUX_AMD64,
        )

        # --- The job's role: read its inputs, write its report, pull its image, log.
        self.job_role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"{naming.prefix}: the network-isolated drift processing job",
        )
        self.image.repository.grant_pull(self.job_role)
        self.job_role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[
                    artifacts_bucket.arn_for_objects(f"{capture_keys}*"),
                    artifacts_bucket.arn_for_objects(f"{report_keys}*"),
                    artifacts_bucket.arn_for_objects(f"{baseline_prefix}*"),
                ],
            )
        )
        # The baseline input is an S3Prefix (SageMaker lists it); the manifest's files are not.
        self.job_role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[artifacts_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{baseline_prefix}*"]}},
            )
        )
        artifacts_bucket.grant_put(self.job_role, f"{report_keys}*")
        key.grant_encrypt_decrypt(self.job_role)
        self.job_role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                resources=[self._arns["logs"]],
            )
        )
        self.job_role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": PROCESSING_METRICS_NAMESPACE}},
            )
        )
        if subnet_ids:
            # In the configured VPC, SageMaker moves the job's inputs and outputs through it (the
            # container itself still has no network): the role manages the job's ENIs.
            self.job_role.add_to_policy(
                iam.PolicyStatement(
                    actions=[
                        "ec2:CreateNetworkInterface",
                        "ec2:CreateNetworkInterfacePermission",
                        "ec2:DeleteNetworkInterface",
                        "ec2:DeleteNetworkInterfacePermission",
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:DescribeVpcs",
                        "ec2:DescribeDhcpOptions",
                        "ec2:DescribeSubnets",
                        "ec2:DescribeSecurityGroups",
                    ],
                    resources=["*"],  # ENIs are created by SageMaker with generated ids
                )
            )

        # --- The launcher Lambda: the AWS calls the isolated job cannot make.
        function_name = naming.resource("drift-launcher", 64)
        self.launcher = lambda_.Function(
            self,
            "Launcher",
            function_name=function_name,
            description=(
                f"{naming.prefix}: drift runs: resolves the served baseline and the window's "
                "capture files before the job, publishes its metrics after"
            ),
            runtime=LAMBDA_RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler=LAUNCHER_HANDLER,
            code=lambda_.Code.from_asset(
                str(REPO_ROOT), ignore_mode=cdk.IgnoreMode.GIT, exclude=list(LAUNCHER_EXCLUDE)
            ),
            memory_size=256,
            timeout=cdk.Duration.minutes(2),
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self._log_group("LauncherLogs", f"/aws/lambda/{function_name}"),
        )
        launcher_role = self.launcher.role
        assert launcher_role is not None

        for actions, arn in (
            (["sagemaker:DescribeEndpoint"], sagemaker_arn("endpoint", endpoint_name)),
            (["sagemaker:DescribeEndpointConfig"], self._arns["endpoint-config"]),
            (["sagemaker:DescribeModel"], self._arns["model"]),
            (["sagemaker:DescribeModelPackage"], self._arns["model-package"]),
        ):
            self.launcher.add_to_role_policy(iam.PolicyStatement(actions=actions, resources=[arn]))
        self.launcher.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[artifacts_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{capture_keys}*"]}},
            )
        )
        self.launcher.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[artifacts_bucket.arn_for_objects(f"{report_keys}*")],
            )
        )
        artifacts_bucket.grant_put(launcher_role, f"{report_keys}*")
        self.launcher.add_to_role_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": namespace}},
            )
        )

        # --- The workflow.
        failed = sfn.Fail(
            self, "DriftRunFailed", error="DriftRunFailed", cause="see the operations topic"
        )
        notify_failure = tasks.SnsPublish(
            self,
            "NotifyFailure",
            topic=topic,
            subject=f"{naming.prefix} drift run failed",
            message=sfn.TaskInput.from_object(
                {
                    "stage": naming.prefix,
                    "endpoint": endpoint_name,
                    "execution": sfn.JsonPath.string_at("$$.Execution.Id"),
                    "error": sfn.JsonPath.string_at("$.error.Error"),
                    "cause": sfn.JsonPath.string_at("$.error.Cause"),
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        ).next(failed)
        prepare = tasks.LambdaInvoke(
            self,
            "Prepare",
            comment="Window, served baseline, capture manifest, job name (or nothing to do)",
            lambda_function=self.launcher,
            payload=sfn.TaskInput.from_object(
                {
                    "action": "prepare",
                    "trigger": sfn.JsonPath.entire_payload,
                    "endpointName": endpoint_name,
                    "variantName": variant_name,
                    "bucket": artifacts_bucket.bucket_name,
                    "capturePrefix": capture_prefix,
                    "reportPrefix": report_prefix,
                    "windowHours": window_hours,
                    "jobNamePrefix": self.job_name_prefix,
                    "executionArn": sfn.JsonPath.string_at("$$.Execution.Id"),
                    "executionStartTime": sfn.JsonPath.string_at("$$.Execution.StartTime"),
                }
            ),
            payload_response_only=True,
            result_path="$.prepare",
            retry_on_service_exceptions=True,
        )
        prepare.add_catch(notify_failure, errors=["States.ALL"], result_path="$.error")
        job_arn_pattern = self._arns["processing-job"]
        partition = stack.partition
        run_job = sfn.CustomState(
            self,
            "RunDriftJob",
            state_json={
                "Type": "Task",
                "Comment": "The drift job, network-isolated, until it completes",
                "Resource": f"arn:{partition}:states:::sagemaker:createProcessingJob.sync",
                "Parameters": {
                    "ProcessingJobName.$": "$.prepare.jobName",
                    "RoleArn": self.job_role.role_arn,
                    "AppSpecification": {
                        "ImageUri": self.image.image_uri,
                        "ContainerArguments.$": _container_arguments(namespace),
                    },
                    "ProcessingResources": {
                        "ClusterConfig": {
                            "InstanceCount": 1,
                            "InstanceType": instance_type,
                            "VolumeSizeInGB": volume_size_gb,
                            "VolumeKmsKeyId": key.key_arn,
                        }
                    },
                    "ProcessingInputs": [
                        {
                            "InputName": "baseline",
                            "S3Input": {
                                "S3Uri.$": "$.prepare.referenceUri",
                                "LocalPath": BASELINE_DIR,
                                "S3DataType": "S3Prefix",
                                "S3InputMode": "File",
                                "S3DataDistributionType": "FullyReplicated",
                            },
                        },
                        {
                            "InputName": "capture",
                            "S3Input": {
                                "S3Uri.$": "$.prepare.manifestUri",
                                "LocalPath": CAPTURE_DIR,
                                "S3DataType": "ManifestFile",
                                "S3InputMode": "File",
                                "S3DataDistributionType": "FullyReplicated",
                            },
                        },
                    ],
                    "ProcessingOutputConfig": {
                        "KmsKeyId": key.key_arn,
                        "Outputs": [
                            {
                                "OutputName": "report",
                                "S3Output": {
                                    "S3Uri.$": "$.prepare.reportUri",
                                    "LocalPath": REPORT_DIR,
                                    "S3UploadMode": "EndOfJob",
                                },
                            }
                        ],
                    },
                    "NetworkConfig": {
                        "EnableNetworkIsolation": True,
                        "EnableInterContainerTrafficEncryption": True,
                        **(
                            {
                                "VpcConfig": {
                                    "Subnets": list(subnet_ids),
                                    "SecurityGroupIds": list(security_group_ids),
                                }
                            }
                            if subnet_ids
                            else {}
                        ),
                    },
                    "StoppingCondition": {"MaxRuntimeInSeconds": int(max_runtime.to_seconds())},
                },
                "ResultSelector": {
                    "processingJobArn.$": "$.ProcessingJobArn",
                    "status.$": "$.ProcessingJobStatus",
                },
                "ResultPath": "$.job",
            },
        )
        run_job.add_catch(notify_failure, errors=["States.ALL"], result_path="$.error")
        publish = tasks.LambdaInvoke(
            self,
            "Publish",
            comment="PutMetricData of the job's metric_data.json; the report's summary",
            lambda_function=self.launcher,
            payload=sfn.TaskInput.from_object(
                {
                    "action": "publish",
                    "endpointName": endpoint_name,
                    "namespace": namespace,
                    "reportUri": sfn.JsonPath.string_at("$.prepare.reportUri"),
                }
            ),
            payload_response_only=True,
            result_path="$.metrics",
            retry_on_service_exceptions=True,
        )
        publish.add_catch(notify_failure, errors=["States.ALL"], result_path="$.error")
        done = sfn.Succeed(self, "Done")
        notify_drift = tasks.SnsPublish(
            self,
            "NotifyDrift",
            topic=topic,
            subject=f"{naming.prefix} data drift detected",
            message=sfn.TaskInput.from_object(
                {
                    "stage": naming.prefix,
                    "endpoint": endpoint_name,
                    "window": {
                        "start": sfn.JsonPath.string_at("$.prepare.windowStart"),
                        "end": sfn.JsonPath.string_at("$.prepare.windowEnd"),
                    },
                    "shareOfDriftedFeatures": sfn.JsonPath.number_at(
                        "$.metrics.shareOfDriftedFeatures"
                    ),
                    "driftedFeatures": sfn.JsonPath.list_at("$.metrics.driftedFeatures"),
                    "report": sfn.JsonPath.string_at("$.metrics.report"),
                    "modelPackageArn": sfn.JsonPath.string_at("$.prepare.modelPackageArn"),
                    "processingJob": sfn.JsonPath.string_at("$.job.processingJobArn"),
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        ).next(done)
        nothing = sfn.Pass(
            self,
            "NothingToCompare",
            comment="No endpoint yet, or no captured request in the window: no job",
        ).next(done)
        definition = prepare.next(
            sfn.Choice(self, "HasCapture")
            .when(
                sfn.Condition.boolean_equals("$.prepare.run", True),
                run_job.next(publish).next(
                    sfn.Choice(self, "DriftFound")
                    .when(
                        sfn.Condition.boolean_equals("$.metrics.datasetDrift", True), notify_drift
                    )
                    .otherwise(done)
                ),
            )
            .otherwise(nothing)
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=state_machine_name,
            comment=f"{naming.prefix}: scheduled drift run of {endpoint_name}",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=max_runtime.plus(cdk.Duration.minutes(30)),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self._log_group(
                    "StateMachineLogs", f"/aws/vendedlogs/states/{state_machine_name}"
                ),
                level=sfn.LogLevel.ALL,
                include_execution_data=True,
            ),
        )
        machine_role = self.state_machine.role
        # CreateProcessingJob only for this workflow's job names, only network-isolated and
        # only with the stage key on the volume and the output (SageMaker's condition keys).
        machine_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:CreateProcessingJob"],
                resources=[job_arn_pattern],
                conditions={
                    "Bool": {
                        "sagemaker:NetworkIsolation": "true",
                        "sagemaker:InterContainerTrafficEncryption": "true",
                    },
                    "StringEquals": {
                        "sagemaker:VolumeKmsKey": key.key_arn,
                        "sagemaker:OutputKmsKey": key.key_arn,
                    },
                },
            )
        )
        machine_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:AddTags",
                    "sagemaker:ListTags",
                ],
                resources=[job_arn_pattern],
            )
        )
        machine_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    stack.format_arn(service="events", resource="rule", resource_name=SYNC_RULE)
                ],
            )
        )
        self.job_role.grant_pass_role(machine_role)
        # VolumeKmsKeyId/KmsKeyId: SageMaker encrypts the job's volume and output with the key
        # on behalf of the caller and the job's role (grants for AWS resources only, as for the
        # pipeline's jobs).
        create_grant = iam.PolicyStatement(
            actions=["kms:CreateGrant"],
            resources=[key.key_arn],
            conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
        )
        machine_role.add_to_principal_policy(create_grant)
        self.job_role.add_to_policy(create_grant)
        key.grant(machine_role, "kms:DescribeKey")
        topic.grant_publish(self.state_machine)
        # Keep only the role's policy as DependsOn (the role is implied by GetAtt; W3005).
        policy = machine_role.node.try_find_child("DefaultPolicy")
        cfn_machine = self.state_machine.node.default_child
        assert isinstance(policy, iam.Policy) and isinstance(cfn_machine, cdk.CfnResource)
        cfn_machine.add_override("DependsOn", [_logical_id(policy)])

        # --- The schedule.
        schedule_name = naming.resource("drift-schedule", 64)
        schedule_role = role_for_source(
            self,
            "ScheduleRole",
            service="scheduler.amazonaws.com",
            source_arn=stack.format_arn(
                service="scheduler", resource="schedule", resource_name=f"default/{schedule_name}"
            ),
            description=f"{naming.prefix}: EventBridge Scheduler starts the drift workflow",
        )
        self.state_machine.grant_start_execution(schedule_role)
        self.schedule = scheduler.CfnSchedule(
            self,
            "Schedule",
            name=schedule_name,
            description=(
                f"{naming.prefix}: drift run over the last {window_hours} h "
                f"({schedule_expression} UTC)"
            ),
            schedule_expression=schedule_expression,
            schedule_expression_timezone="UTC",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=self.state_machine.state_machine_arn,
                role_arn=schedule_role.role_arn,
                input=json.dumps(
                    {"reason": "schedule", "scheduledTime": "<aws.scheduler.scheduled-time>"}
                ),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_event_age_in_seconds=3600, maximum_retry_attempts=8
                ),
            ),
        )
        self._acknowledge(
            machine_role,
            schedule_role,
            capture_keys,
            report_keys,
            baseline_prefix,
            artifacts_bucket,
        )

    # ----------------------------------------------------------------------------------------

    def _log_group(self, id_: str, name: str) -> logs.LogGroup:
        return encrypted_log_group(
            self,
            id_,
            name=name,
            key=self._key,
            retention_days=self._log_retention_days,
            removal_policy=self._removal_policy,
        )

    def _acknowledge(
        self,
        machine_role: iam.IRole,
        schedule_role: iam.IRole,
        capture_keys: str,
        report_keys: str,
        baseline_prefix: str,
        bucket: s3.IBucket,
    ) -> None:
        inline = "NIST.800.53.R5-IAMNoInlinePolicy"
        acknowledge(
            schedule_role,
            inline,
            "CDK writes the role's single statement (states:StartExecution on the drift "
            "workflow) into its own policy; a managed policy would be attached to this role only.",
        )
        bucket_id = _bucket_reference(bucket)
        job_role = self.job_role
        acknowledge_all(
            job_role,
            [
                "AwsSolutions-IAM5[Resource::*]",
                f"AwsSolutions-IAM5[Resource::{bucket_id}/{capture_keys}*]",
                f"AwsSolutions-IAM5[Resource::{bucket_id}/{report_keys}*]",
                f"AwsSolutions-IAM5[Resource::{bucket_id}/{baseline_prefix}*]",
                _nag_resource(self, self._arns["logs"]),
                "AwsSolutions-IAM5[Action::s3:Abort*]",
                "AwsSolutions-IAM5[Action::kms:ReEncrypt*]",
                "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
                inline,
            ],
            "The drift job's role: ecr:GetAuthorizationToken, cloudwatch:PutMetricData (only "
            "namespace /aws/sagemaker/ProcessingJobs) and, in a configured VPC, the ec2 network "
            "interface actions for the ENIs SageMaker creates with generated ids have no "
            "resource-level permissions; it reads "
            "only this endpoint's capture keys, its drift-run keys and the pipeline outputs "
            "holding the baselines (run-time keys), writes only its drift-run keys; the s3/kms "
            "action groups are CDK's grant_put/grant_encrypt_decrypt on this bucket and key; "
            "CDK writes the statements into this role's own policy.",
        )
        launcher_role = self.launcher.role
        assert launcher_role is not None
        acknowledge_all(
            launcher_role,
            [
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole]",
                "AwsSolutions-IAM5[Resource::*]",
                f"AwsSolutions-IAM5[Resource::{bucket_id}/{report_keys}*]",
                _nag_resource(self, self._arns["endpoint-config"]),
                _nag_resource(self, self._arns["model"]),
                _nag_resource(self, self._arns["model-package"]),
                "AwsSolutions-IAM5[Action::s3:Abort*]",
                "AwsSolutions-IAM5[Action::kms:ReEncrypt*]",
                "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
                inline,
            ],
            "The drift launcher: the AWS-managed basic execution policy writes only its logs; "
            "X-Ray writes and cloudwatch:PutMetricData (only namespace MLOps/ModelDrift) have no "
            "resource-level permissions; it describes only the endpoint configs and models the "
            "deployment workflow names <stage>-deploy-*, the packages of this stage's group, "
            "and writes/reads only this endpoint's drift-run keys (run-time names); the s3/kms "
            "action groups are CDK's grant_put on this bucket and key.",
        )
        acknowledge_all(
            machine_role,
            [
                "AwsSolutions-IAM5[Resource::*]",
                _nag_resource(self, self._arns["processing-job"]),
                f"AwsSolutions-IAM5[Resource::<{_logical_id(self.launcher)}.Arn>:*]",
                "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
                inline,
            ],
            "The drift workflow: Step Functions log delivery and X-Ray have no resource-level "
            "permissions; it creates (network-isolated only), describes and stops only this "
            "workflow's processing jobs (run-time names under its prefix); CDK's LambdaInvoke "
            "grants the launcher and its versions; kms:GenerateDataKey* is CDK's "
            "Topic.grant_publish for the topic's key.",
        )
        acknowledge_all(
            self.launcher,
            ["NIST.800.53.R5-LambdaInsideVPC"],
            "The launcher only calls AWS APIs (SageMaker, S3, CloudWatch) over TLS with IAM auth; "
            "it reaches no resource in a VPC.",
        )
        acknowledge(
            self.launcher,
            "NIST.800.53.R5-LambdaConcurrency",
            "Invoked synchronously by the drift workflow twice per scheduled run; new accounts "
            "(limit 10) cannot reserve capacity.",
        )
        acknowledge_all(
            self.launcher,
            ["NIST.800.53.R5-LambdaDLQ", "Serverless-LambdaDLQ"],
            "Invoked synchronously by Step Functions, which gets the error back and reports it "
            "to the operations topic; a dead-letter queue only receives failed asynchronous "
            "invocations.",
        )
        skip_checkov(
            self.launcher,
            "CKV_AWS_116",
            "Invoked synchronously by Step Functions, which gets the error back; a dead-letter "
            "queue only receives failed asynchronous invocations.",
        )


def _container_arguments(namespace: str) -> str:
    """The job's command line (``python -m monitoring.drift.job`` arguments) as a States.Array
    intrinsic over the Prepare step's answer."""
    parts = [
        "'--reference'",
        f"'{BASELINE_DIR}'",
        "'--capture-dir'",
        f"'{CAPTURE_DIR}'",
        "'--preselected'",
        "'--window-start'",
        "$.prepare.windowStart",
        "'--window-end'",
        "$.prepare.windowEnd",
        "'--endpoint-name'",
        "$.prepare.endpointName",
        "'--output-dir'",
        f"'{REPORT_DIR}'",
        "'--namespace'",
        f"'{namespace}'",
        "'--model-package-arn'",
        "$.prepare.modelPackageArn",
        "'--reference-uri'",
        "$.prepare.referenceUri",
    ]
    return f"States.Array({', '.join(parts)})"


def _logical_id(construct: IConstruct) -> str:
    child = construct.node.default_child if not isinstance(construct, cdk.CfnElement) else construct
    assert isinstance(child, cdk.CfnElement)
    return cdk.Stack.of(child).get_logical_id(child)


def _nag_resource(scope: IConstruct, arn: str) -> str:
    """The cdk-nag finding id of a wildcard ``arn`` built with ``Stack.format_arn``: literal in
    a stack with an explicit environment, with ``<AWS::...>`` placeholders in an agnostic one."""
    resolved = cdk.Stack.of(scope).resolve(arn)
    if isinstance(resolved, str):
        return f"AwsSolutions-IAM5[Resource::{resolved}]"
    parts = resolved["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else f"<{p['Ref']}>" for p in parts)
    return f"AwsSolutions-IAM5[Resource::{text}]"


def _bucket_reference(bucket: s3.IBucket) -> str:
    """How cdk-nag names ``bucket``'s ARN in a finding: ``<LogicalId.Arn>`` for a bucket of
    this app (also across stacks), the literal ARN for an imported one."""
    child = bucket.node.default_child
    if isinstance(child, cdk.CfnElement):
        return f"<{cdk.Stack.of(child).get_logical_id(child)}.Arn>"
    return f"arn:<AWS::Partition>:s3:::{bucket.bucket_name}"
