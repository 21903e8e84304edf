"""Runs the synthesized ingestion state machine in moto, for real.

moto's Step Functions interpreter executes the ASL and calls Glue, Step Functions, SageMaker and
SNS through boto3 against moto itself (``glue:startJobRun.sync`` polls ``GetJobRun`` until the run
ends, as Step Functions does). What moto lacks or does differently is filled in here, explicitly
and nowhere else:

* Rendering: the definition's CloudFormation tokens become the moto resources' values (the
  partition, the operations topic's ARN, the curated bucket's name); the stage account becomes
  moto's account. Nothing else in the definition is changed except:
* Waits and retry intervals: the quiet period is shortened to :data:`QUIET_SECONDS` (a burst's
  executions all start within it), the crawler poll to none (every GetCrawler still runs) and
  the Glue concurrency retry to one second, the least ASL allows (moto really waits).
* AWS SDK integrations: Step Functions takes their parameters in PascalCase and returns their
  results in PascalCase even where the API is camelCase (Step Functions' own ``listExecutions``:
  ``StateMachineArn`` in, ``Executions[].ExecutionArn`` out; AWS's "Learning to use AWS service
  SDK integrations", API naming conventions). moto's interpreter passes names through unchanged;
  :func:`_sdk_casing` maps them as Step Functions does, using botocore's model, and names
  Glue's errors ``Glue.<Error>`` (moto: ``glue.<Error>``).
* ``glue:startJobRun.sync``: moto's generic callback path ends every ``.sync`` task by calling
  ``interrupt_all()`` on a waitForTaskToken endpoint it only creates for waitForTaskToken
  tasks (``'NoneType' object has no attribute 'interrupt_all'``). :func:`_glue_sync` runs
  moto's own Glue sync resolver (``GetJobRun`` until the run ends; a FAILED/STOPPED/TIMEOUT run
  raises ``States.TaskFailed`` with the run as cause, as Step Functions does) without it.
* Execution names: EventBridge names each execution it starts; the harness names them too
  (moto's context object shows ``$$.Execution.Id`` ending in ``None`` for an unnamed one).
* Crawls: moto's crawls stay ``RUNNING``; the harness ends one after it was seen running once.
  moto reports a finished crawl's ``LastCrawl.Status`` as ``COMPLETED``; Glue's API
  (``LastCrawlInfo.Status``) says ``SUCCEEDED`` | ``CANCELLED`` | ``FAILED``: mapped to
  ``SUCCEEDED``.
* ``glue_outcome``: a test may make the ETL run end ``FAILED`` (moto's runs always succeed).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto.glue import models as glue_models
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_aws_sdk as aws_sdk,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_glue as glue_task,
)

from tests.botocore_shapes import service_model
from tests.conftest import resources_of_type

MOTO_ACCOUNT = "123456789012"
STAGE_ACCOUNT = "111111111111"
REGION = "us-east-1"
QUIET_SECONDS = 1
CURATED_BUCKET = "mlops-dev-curated"
RAW_BUCKET = "mlops-dev-raw"


def s3_object_created(key: str, etag: str = "b1946ac92492d2347c6235b4d2611184") -> dict[str, Any]:
    """AWS's documented ``Object Created`` example (Amazon S3 user guide, "EventBridge event
    message structure"), for this stage's raw bucket and ``key``."""
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": MOTO_ACCOUNT,
        "time": "2021-11-12T00:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:s3:::{RAW_BUCKET}"],
        "detail": {
            "version": "0",
            "bucket": {"name": RAW_BUCKET},
            "object": {
                "key": key,
                "size": 5,
                "etag": etag,
                "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
                "sequencer": "617f08299329d189",
            },
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": MOTO_ACCOUNT,
            "source-ip-address": "1.2.3.4",
            "reason": "PutObject",
        },
    }


def _state_machine(template: dict[str, Any]) -> dict[str, Any]:
    """The ingestion state machine (the operations stack holds other workflows too)."""
    (machine,) = (
        resource
        for logical_id, resource in resources_of_type(
            template, "AWS::StepFunctions::StateMachine"
        ).items()
        if logical_id.startswith("Ingestion")
    )
    return machine


def _topic(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The operations topic: (logical id, resource)."""
    (topic,) = (
        (logical_id, resource)
        for logical_id, resource in resources_of_type(template, "AWS::SNS::Topic").items()
        if logical_id.startswith("Topic")
    )
    return topic


def render_definition(template: dict[str, Any], topic_arn: str) -> dict[str, Any]:
    """The ingestion state machine's ASL with its tokens replaced (see the module doc)."""
    topic_id, _ = _topic(template)
    join = _state_machine(template)["Properties"]["DefinitionString"]["Fn::Join"]
    assert join[0] == ""
    parts: list[str] = []
    for part in join[1]:
        if isinstance(part, str):
            parts.append(part)
        elif part == {"Ref": "AWS::Partition"}:
            parts.append("aws")
        elif part == {"Ref": topic_id}:
            parts.append(topic_arn)
        elif "Fn::GetStackOutput" in part or "Fn::ImportValue" in part:
            # The one cross-stack value in the definition: the curated bucket's name.
            assert "CuratedBucket" in json.dumps(part), part
            parts.append(CURATED_BUCKET)
        else:
            raise AssertionError(f"unexpected token in the definition: {part}")
    definition: dict[str, Any] = json.loads("".join(parts).replace(STAGE_ACCOUNT, MOTO_ACCOUNT))
    states = definition["States"]
    states["QuietPeriod"]["Seconds"] = QUIET_SECONDS
    states["WaitForCrawler"]["Seconds"] = 0  # every poll still runs; moto really waits
    for retry in states["RunEtl"]["Retry"]:
        retry["IntervalSeconds"] = 1
    return definition


def _sdk_casing(monkeypatch: pytest.MonkeyPatch) -> None:
    task = aws_sdk.StateTaskServiceAwsSdk

    def operation(self: Any) -> Any:
        service = self._get_boto_service_name()
        action = self.resource.api_action
        model = service_model(service)
        return model.operation_model(action[:1].upper() + action[1:])

    def normalise_parameters(self: Any, parameters: dict[str, Any], *_: Any) -> None:
        members = operation(self).input_shape.members
        for key in list(parameters):
            camel = key[:1].lower() + key[1:]
            if key not in members and camel in members:
                parameters[camel] = parameters.pop(key)

    def normalise_response(self: Any, response: Any, *_: Any) -> None:
        shape = operation(self).output_shape
        if shape is not None:
            self._from_boto_response(response, shape)

    # Error names: "<Service>.<Error>", both PascalCase (Glue.CrawlerRunningException); moto
    # knows the spelling of a few services only.
    monkeypatch.setitem(aws_sdk._SERVICE_ERROR_NAMES, "glue", "Glue")
    monkeypatch.setattr(task, "_normalise_parameters", normalise_parameters)
    monkeypatch.setattr(task, "_normalise_response", normalise_response)


def _glue_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    def eval_integration_pattern(
        self: Any,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: dict[str, Any],
        state_credentials: Any,
    ) -> None:
        resolve = self._build_sync_resolver(
            env=env,
            resource_runtime_part=resource_runtime_part,
            normalised_parameters=normalised_parameters,
            state_credentials=state_credentials,
        )
        while (result := resolve()) is None:
            time.sleep(0.1)
        env.stack.append(result)

    monkeypatch.setattr(
        glue_task.StateTaskServiceGlue, "_eval_integration_pattern", eval_integration_pattern
    )


@dataclass
class IngestionHarness:
    state_machine_arn: str
    queue_url: str
    pipeline_name: str
    job_name: str
    crawler_name: str
    glue_outcome: list[str]

    def start(self, event: dict[str, Any]) -> str:
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn: str = sfn.start_execution(
            stateMachineArn=self.state_machine_arn, name=str(uuid.uuid4()), input=json.dumps(event)
        )["executionArn"]
        return arn

    def wait_all(self, deadline_seconds: float = 300) -> dict[str, dict[str, Any]]:
        """Every execution, once none is RUNNING: arn -> DescribeExecution. The deadline only
        guards against a hang (a workflow stuck in a loop); it is not a speed check."""
        sfn = boto3.client("stepfunctions", region_name=REGION)
        end = time.monotonic() + deadline_seconds
        while True:
            listed = sfn.list_executions(stateMachineArn=self.state_machine_arn)["executions"]
            if all(e["status"] != "RUNNING" for e in listed):
                return {
                    e["executionArn"]: sfn.describe_execution(executionArn=e["executionArn"])
                    for e in listed
                }
            if time.monotonic() > end:
                raise TimeoutError(f"executions still running after {deadline_seconds}s: a hang")
            time.sleep(0.2)

    def pipeline_executions(self) -> list[dict[str, Any]]:
        sm = boto3.client("sagemaker", region_name=REGION)
        summaries = sm.list_pipeline_executions(PipelineName=self.pipeline_name)[
            "PipelineExecutionSummaries"
        ]
        out = []
        for summary in summaries:
            arn = summary["PipelineExecutionArn"]
            described = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
            params = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)
            described["Parameters"] = {p["Name"]: p["Value"] for p in params["PipelineParameters"]}
            out.append(described)
        return out

    def job_runs(self) -> list[dict[str, Any]]:
        glue = boto3.client("glue", region_name=REGION)
        runs: list[dict[str, Any]] = glue.get_job_runs(JobName=self.job_name)["JobRuns"]
        return runs

    def notices(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=REGION)
        messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        return [json.loads(m["Body"]) for m in messages]


@contextmanager
def ingestion_harness(
    template: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[IngestionHarness]:
    """moto resources named as the stage's, and the rendered state machine (inside mock_aws)."""
    definition_text = json.dumps(_state_machine(template)["Properties"]["DefinitionString"])
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    glue = boto3.client("glue", region_name=REGION)
    sm = boto3.client("sagemaker", region_name=REGION)
    sfn = boto3.client("stepfunctions", region_name=REGION)

    _, topic = _topic(template)
    topic_arn = sns.create_topic(Name=topic["Properties"]["TopicName"])["TopicArn"]
    queue_url = sqs.create_queue(QueueName="operations-notices")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
    )

    definition = render_definition(template, topic_arn)
    states = definition["States"]
    job_name = states["RunEtl"]["Parameters"]["JobName"]
    crawler_name = states["StartCrawler"]["Parameters"]["Name"]
    role = f"arn:aws:iam::{MOTO_ACCOUNT}:role/test"
    glue.create_job(Name=job_name, Role=role, Command={"Name": "glueetl"})
    glue.create_crawler(
        Name=crawler_name,
        Role=role,
        DatabaseName="lake",
        Targets={"S3Targets": [{"Path": f"s3://{CURATED_BUCKET}/datasets/"}]},
    )
    pipeline_name = states["StartPipeline"]["Parameters"]["PipelineName"]
    sm.create_pipeline(
        PipelineName=pipeline_name,
        RoleArn=role,
        PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
    )
    assert "glue:startJobRun.sync" in definition_text
    state_machine_arn = sfn.create_state_machine(
        name=_state_machine(template)["Properties"]["StateMachineName"],
        definition=json.dumps(definition),
        roleArn=role,
    )["stateMachineArn"]

    outcome: list[str] = ["SUCCEEDED"]
    original_init = glue_models.FakeJobRun.__init__

    def job_run_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._transitions = [("STARTING", "RUNNING"), ("RUNNING", outcome[0])]

    monkeypatch.setattr(glue_models.FakeJobRun, "__init__", job_run_init)
    original_as_dict = glue_models.FakeCrawler.as_dict

    def crawler_as_dict(self: Any) -> dict[str, Any]:
        if self.crawls and self.crawls[-1].status == "RUNNING":
            crawl = self.crawls[-1]
            crawl.reads = getattr(crawl, "reads", 0) + 1
            if crawl.reads > 1:  # seen RUNNING once: the crawl ends
                crawl.status = "COMPLETED"
        data: dict[str, Any] = original_as_dict(self)
        last = data.get("LastCrawl")
        if last is not None and last["Status"] == "COMPLETED":
            last["Status"] = "SUCCEEDED"
        return data

    monkeypatch.setattr(glue_models.FakeCrawler, "as_dict", crawler_as_dict)
    _sdk_casing(monkeypatch)
    _glue_sync(monkeypatch)
    yield IngestionHarness(
        state_machine_arn=state_machine_arn,
        queue_url=queue_url,
        pipeline_name=pipeline_name,
        job_name=job_name,
        crawler_name=crawler_name,
        glue_outcome=outcome,
    )
