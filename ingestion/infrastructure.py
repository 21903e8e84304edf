"""Ingestion: a new raw object -> Glue ETL -> crawler -> (optionally) the model-build pipeline.

``Object Created`` under ``datasets/<dataset>/`` of the raw bucket (the bucket sends EventBridge
notifications) --EventBridge rule--> the ingestion state machine:

1. ``QuietPeriod`` (Wait) then ``ListRunningIngestions`` + ``IsNewestUpload``: the debounce.
   Every upload starts an execution; after the quiet period only the NEWEST running execution
   goes on, every other one ends ``Superseded`` (a later upload's execution will process its
   data: the Glue job reads every raw file it has not processed yet, by job bookmark). A burst of
   uploads, or EventBridge delivering one event twice, therefore gives ONE ETL run and ONE
   pipeline execution. ``ListExecutions`` returns the most recent execution first.
2. ``RunEtl``: ``glue:startJobRun.sync`` (run to completion). The job allows one concurrent run:
   if an earlier ingestion's run is still going, ``ConcurrentRunsExceededException`` is retried
   with back-off, and this run then picks up what that one did not.
3. ``StartCrawler`` + ``WaitForCrawler``/``GetCrawler`` until the crawler is ``READY`` again
   (``CrawlerRunningException`` -- the data lake's conditional trigger may have started it --
   joins the same wait); a last crawl that did not succeed is a failure.
4. ``StartPipeline`` (only when ``ingestion.start_pipeline``): ``StartPipelineExecution`` with
   ``InputDataUrl`` = the curated dataset (all its ``ingest_date=`` partitions),
   ``InputDataVersion`` = ``glue:<JobRunId>`` (the ETL run that produced the data: a new run,
   a new version, so Preprocess's cache never stands in for new data), ``TriggerReason`` =
   ``ingestion:<JobRunId>``, a display name/description with the reason and the triggering
   object, and ``ClientRequestToken`` = the JobRunId (a retried call never starts twice).

Any failure publishes the state's error to the operations topic and ends ``Failed``.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from data_lake.infrastructure import CURATED_DATASETS_PREFIX, DEFAULT_DATASET, RAW_DATASETS_PREFIX
from infra.compliance import acknowledge
from infra.naming import EVENT_RULE_MAX, STATE_MACHINE_MAX, Naming
from infra.service_roles import role_for_source
from infra.state_machines import acknowledge_log_delivery, logged_state_machine
from pipelines.model_build.contract import PARAM_INPUT_DATA_VERSION
from pipelines.model_build.definition import PARAM_INPUT_DATA, PARAM_TRIGGER_REASON

#: Raw objects under this prefix start an ingestion (the ETL job reads this dataset only).
RAW_PREFIX = f"{RAW_DATASETS_PREFIX}{DEFAULT_DATASET}/"
#: Where the ETL job writes the dataset (``ingest_date=YYYY-MM-DD/part-*.parquet`` below it).
CURATED_PREFIX = f"{CURATED_DATASETS_PREFIX}{DEFAULT_DATASET}/"
CRAWLER_POLL = cdk.Duration.seconds(30)
WORKFLOW_TIMEOUT = cdk.Duration.hours(6)


class Ingestion(Construct):
    """Exposes ``rule``, ``state_machine``, ``state_machine_name`` and ``event_role``."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        naming: Naming,
        key: kms.IKey,
        raw_bucket: s3.IBucket,
        curated_bucket: s3.IBucket,
        etl_job_name: str,
        crawler_name: str,
        pipeline_name: str,
        topic: sns.ITopic,
        dead_letter_queue: sqs.IQueue,
        quiet_period: cdk.Duration,
        start_pipeline: bool,
        log_retention_days: int,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, id_)
        stack = cdk.Stack.of(self)
        self.state_machine_name = naming.resource("ingestion", STATE_MACHINE_MAX)
        state_machine_arn = stack.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=self.state_machine_name,
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        crawler_arn = stack.format_arn(
            service="glue", resource="crawler", resource_name=crawler_name
        )
        pipeline_arn = stack.format_arn(
            service="sagemaker", resource="pipeline", resource_name=pipeline_name
        )
        curated_url = curated_bucket.s3_url_for_object(CURATED_PREFIX)

        # ---- failure path -----------------------------------------------------------------
        notify_failure = tasks.SnsPublish(
            self,
            "NotifyFailure",
            topic=topic,
            subject=f"{naming.prefix}: ingestion failed",
            message=sfn.TaskInput.from_object(
                {
                    "stage": naming.prefix,
                    "workflow": "ingestion",
                    "execution": sfn.JsonPath.execution_id,
                    "object": sfn.JsonPath.string_at("$.object"),
                    "error": sfn.JsonPath.string_at("$.failure.Error"),
                    "cause": sfn.JsonPath.string_at("$.failure.Cause"),
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        failed = sfn.Fail(self, "IngestionFailed", error="IngestionFailed")
        failure_chain = notify_failure.next(failed)
        crawl_failed = sfn.Pass(
            self,
            "CrawlDidNotSucceed",
            parameters={
                "Error": "CrawlDidNotSucceed",
                "Cause": sfn.JsonPath.format(
                    "crawler {} last crawl: {}",
                    crawler_name,
                    sfn.JsonPath.string_at("$.crawler.status"),
                ),
            },
            result_path="$.failure",
        ).next(failure_chain)

        def on_error(task: sfn.TaskStateBase) -> sfn.TaskStateBase:
            return task.add_catch(failure_chain, errors=["States.ALL"], result_path="$.failure")

        # ---- the workflow -----------------------------------------------------------------
        record = sfn.Pass(
            self,
            "Record",
            comment="The triggering S3 object (EventBridge 'Object Created' event)",
            parameters={
                "object": {
                    "bucket": sfn.JsonPath.string_at("$.detail.bucket.name"),
                    "key": sfn.JsonPath.string_at("$.detail.object.key"),
                    "etag": sfn.JsonPath.string_at("$.detail.object.etag"),
                    "eventTime": sfn.JsonPath.string_at("$.time"),
                },
                "self": sfn.JsonPath.execution_id,
            },
        )
        quiet = sfn.Wait(
            self,
            "QuietPeriod",
            comment="Debounce: uploads arriving meanwhile supersede this execution",
            time=sfn.WaitTime.duration(quiet_period),
        )
        list_running = tasks.CallAwsService(
            self,
            "ListRunningIngestions",
            service="sfn",
            action="listExecutions",
            iam_action="states:ListExecutions",
            iam_resources=[state_machine_arn],
            parameters={
                "StateMachineArn": sfn.JsonPath.string_at("$$.StateMachine.Id"),
                "StatusFilter": "RUNNING",
                "MaxResults": 1,
            },
            # The newest running execution's ARN (results are most recent first).
            result_selector={
                "newest": sfn.JsonPath.array_get_item(
                    sfn.JsonPath.list_at("$.Executions[*].ExecutionArn"), 0
                )
            },
            result_path="$.debounce",
        )
        superseded = sfn.Succeed(
            self, "Superseded", comment="A newer upload's execution ingests this data too"
        )
        run_etl = tasks.GlueStartJobRun(
            self,
            "RunEtl",
            glue_job_name=etl_job_name,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            result_selector={
                "runId": sfn.JsonPath.string_at("$.Id"),
                "state": sfn.JsonPath.string_at("$.JobRunState"),
            },
            result_path="$.etl",
        )
        run_etl.add_retry(
            errors=["Glue.ConcurrentRunsExceededException"],
            interval=cdk.Duration.seconds(60),
            backoff_rate=1.5,
            max_attempts=10,
        )
        start_crawler = tasks.CallAwsService(
            self,
            "StartCrawler",
            service="glue",
            action="startCrawler",
            iam_action="glue:StartCrawler",
            iam_resources=[crawler_arn],
            parameters={"Name": crawler_name},
            result_path=sfn.JsonPath.DISCARD,
        )
        wait_crawler = sfn.Wait(self, "WaitForCrawler", time=sfn.WaitTime.duration(CRAWLER_POLL))

        def get_crawler_into(id_: str, field: str, path: str) -> tasks.CallAwsService:
            """GetCrawler, keeping only ``path`` of the response as ``$.crawler.<field>``."""
            return tasks.CallAwsService(
                self,
                id_,
                service="glue",
                action="getCrawler",
                iam_action="glue:GetCrawler",
                iam_resources=[crawler_arn],
                parameters={"Name": crawler_name},
                result_selector={field: sfn.JsonPath.string_at(path)},
                result_path="$.crawler",
            )

        get_crawler = get_crawler_into("GetCrawler", "state", "$.Crawler.State")
        get_last_crawl = get_crawler_into("GetLastCrawl", "status", "$.Crawler.LastCrawl.Status")
        start_crawler.add_catch(
            wait_crawler, errors=["Glue.CrawlerRunningException"], result_path=sfn.JsonPath.DISCARD
        )
        for task in (list_running, run_etl, start_crawler, get_crawler, get_last_crawl):
            on_error(task)

        if start_pipeline:
            start = tasks.CallAwsService(
                self,
                "StartPipeline",
                service="sagemaker",
                action="startPipelineExecution",
                iam_action="sagemaker:StartPipelineExecution",
                iam_resources=[pipeline_arn],
                parameters={
                    "PipelineName": pipeline_name,
                    "PipelineExecutionDisplayName": sfn.JsonPath.format(
                        "ingestion-{}", sfn.JsonPath.uuid()
                    ),
                    "PipelineExecutionDescription": sfn.JsonPath.format(
                        "Ingestion: new raw data s3://{}/{} (ETag {}) curated by Glue run {}",
                        sfn.JsonPath.string_at("$.object.bucket"),
                        sfn.JsonPath.string_at("$.object.key"),
                        sfn.JsonPath.string_at("$.object.etag"),
                        sfn.JsonPath.string_at("$.etl.runId"),
                    ),
                    "ClientRequestToken": sfn.JsonPath.string_at("$.etl.runId"),
                    "PipelineParameters": [
                        {"Name": PARAM_INPUT_DATA, "Value": curated_url},
                        {
                            "Name": PARAM_INPUT_DATA_VERSION,
                            "Value": sfn.JsonPath.format(
                                "glue:{}", sfn.JsonPath.string_at("$.etl.runId")
                            ),
                        },
                        {
                            "Name": PARAM_TRIGGER_REASON,
                            "Value": sfn.JsonPath.format(
                                "ingestion:{}", sfn.JsonPath.string_at("$.etl.runId")
                            ),
                        },
                    ],
                },
                result_selector={"executionArn": sfn.JsonPath.string_at("$.PipelineExecutionArn")},
                result_path="$.pipeline",
            )
            on_error(start)
            done: sfn.IChainable = start.next(sfn.Succeed(self, "PipelineStarted"))
        else:
            done = sfn.Succeed(
                self, "Curated", comment="ingestion.start_pipeline is false for this stage"
            )

        crawl_outcome = (
            sfn.Choice(self, "LastCrawlSucceeded")
            .when(sfn.Condition.string_equals("$.crawler.status", "SUCCEEDED"), done)
            .otherwise(crawl_failed)
        )
        crawler_ready = (
            sfn.Choice(self, "CrawlerReady")
            .when(
                sfn.Condition.string_equals("$.crawler.state", "READY"),
                get_last_crawl.next(crawl_outcome),
            )
            .otherwise(wait_crawler)
        )
        wait_crawler.next(get_crawler).next(crawler_ready)
        is_newest = (
            sfn.Choice(self, "IsNewestUpload")
            .when(
                sfn.Condition.string_equals_json_path("$.debounce.newest", "$.self"),
                run_etl.next(start_crawler).next(wait_crawler),
            )
            .otherwise(superseded)
        )
        definition = record.next(quiet).next(list_running).next(is_newest)

        self.state_machine = logged_state_machine(
            self,
            name=self.state_machine_name,
            comment=f"{naming.prefix}: new raw data -> Glue ETL -> crawler -> model build",
            definition=definition,
            timeout=WORKFLOW_TIMEOUT,
            key=key,
            log_retention_days=log_retention_days,
            removal_policy=removal_policy,
        )
        # Publishing to the SSE-KMS topic needs its key (SnsPublish grants sns:Publish only).
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn]
            )
        )
        role = self.state_machine.role
        acknowledge_log_delivery(role)
        acknowledge(
            role,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "CDK writes the state machine's per-task least-privilege statements into its own "
            "role's policy; a managed policy would be attached to this one role only.",
        )

        # ---- the trigger ------------------------------------------------------------------
        rule_name = naming.resource("ingest-raw-object", EVENT_RULE_MAX)
        rule_arn = stack.format_arn(service="events", resource="rule", resource_name=rule_name)
        self.rule = events.Rule(
            self,
            "RawObjectCreated",
            rule_name=rule_name,
            description=f"{naming.prefix}: a new object under raw {RAW_PREFIX} starts ingestion",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [raw_bucket.bucket_name]},
                    "object": {"key": [{"prefix": RAW_PREFIX}]},
                },
            ),
        )
        self.event_role = role_for_source(
            self,
            "EventRole",
            service="events.amazonaws.com",
            source_arn=rule_arn,
            description=f"{naming.prefix}: EventBridge starts the ingestion workflow",
        )
        acknowledge(
            self.event_role,
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "CDK writes the role's single statement (states:StartExecution on this state "
            "machine) into its own policy; a managed policy would be attached to this role only.",
        )
        self.rule.add_target(
            targets.SfnStateMachine(
                self.state_machine,
                role=self.event_role,
                dead_letter_queue=dead_letter_queue,
                retry_attempts=8,
                max_event_age=cdk.Duration.hours(4),
            )
        )
