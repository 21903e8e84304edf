"""Runs the synthesized drift workflow (``mlops-dev``'s operations stack, from the session synth)
in moto's Step Functions, for real:

* ``Prepare``/``Publish``: the launcher Lambda (``monitoring.drift.launch``) runs in-process
  (moto runs Lambdas only in Docker): same event in, same JSON out, an exception becomes a Lambda
  ``FunctionError`` with the exception's type, like the Lambda service. Its boto3 clients talk to
  moto (SageMaker, S3, CloudWatch).
* ``RunDriftJob`` (``sagemaker:createProcessingJob.sync``): moto forwards CreateProcessingJob to
  its SageMaker but has no ``.sync`` for SageMaker; the harness supplies it the way SageMaker
  runs the job: it downloads the job's ``ProcessingInputs`` from moto S3 into a local
  ``/opt/ml/processing`` (an ``S3Prefix`` keeps keys relative to the prefix, a ``ManifestFile``
  downloads the manifest's entries), runs ``monitoring.drift.job`` with the request's
  ``ContainerArguments`` (container paths mapped to that directory), uploads the
  ``ProcessingOutputs`` at the end, and sets the job ``Completed`` or ``Failed`` (the job's
  failure file as ``FailureReason``). A failed job fails the task with ``States.TaskFailed`` and
  the DescribeProcessingJob answer as the cause, like Step Functions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.sagemaker.models import sagemaker_backends
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
    StatesErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_unsupported as unsupported,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
    ResourceCondition,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (  # noqa: E501
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

from monitoring.drift import job as drift_job
from monitoring.drift import launch
from monitoring.infrastructure import PROCESSING_ROOT
from tests.moto_lambda import in_process_lambda

MOTO_ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = "mlops-dev-artifacts"
KEY_ARN = f"arn:aws:kms:{REGION}:{MOTO_ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
JOB_ROLE_ARN = f"arn:aws:iam::{MOTO_ACCOUNT}:role/drift-job"


def resources_of(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def drift_state_machine(template: dict[str, Any], prefix: str) -> dict[str, Any]:
    (machine,) = [
        r
        for r in resources_of(template, "AWS::StepFunctions::StateMachine").values()
        if r["Properties"]["StateMachineName"] == f"{prefix}-drift"
    ]
    return machine


def definition(machine: dict[str, Any], resolve: Callable[[dict[str, Any]], str]) -> Any:
    body = machine["Properties"]["DefinitionString"]
    separator, parts = body["Fn::Join"]
    assert separator == ""
    return json.loads("".join(p if isinstance(p, str) else resolve(p) for p in parts))


@dataclass
class Harness:
    state_machine_arn: str
    queue_url: str
    root: Path
    lambda_events: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)

    def run(self, payload: Any, name: str, timeout: float = 120) -> dict[str, Any]:
        """One execution, to its end (the deadline is a hang guard, not a timing check)."""
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = sfn.start_execution(
            stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload)
        )["executionArn"]
        deadline = time.monotonic() + timeout
        while True:
            description = sfn.describe_execution(executionArn=arn)
            if description["status"] != "RUNNING":
                return dict(description)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{arn} still running after {timeout}s")
            time.sleep(0.02)

    def visited(self, execution_arn: str) -> list[str]:
        sfn = boto3.client("stepfunctions", region_name=REGION)
        events = sfn.get_execution_history(executionArn=execution_arn)["events"]
        return [
            e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
        ]

    def notifications(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=REGION)
        found = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                return found
            for message in batch:
                body = json.loads(message["Body"])
                found.append({"subject": body.get("Subject"), **json.loads(body["Message"])})
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def in_process_launcher(monkeypatch: pytest.MonkeyPatch, events: list[dict[str, Any]]) -> None:
    in_process_lambda(monkeypatch, launch.handler, "drift-launcher", events)


def _download(s3: Any, uri: str, target: Path) -> None:
    bucket, key = uri[len("s3://") :].split("/", 1)
    target.parent.mkdir(parents=True, exist_ok=True)
    s3.download_file(bucket, key, str(target))


def run_processing_job(request: dict[str, Any], root: Path) -> tuple[str, str | None]:
    """SageMaker's part of a processing job, for the drift image: inputs in, the job, outputs
    out. Returns the job status and failure reason."""
    s3 = boto3.client("s3", region_name=REGION)
    local = root / request["ProcessingJobName"]

    def mapped(path: str) -> Path:
        assert path.startswith(PROCESSING_ROOT + "/"), path
        return local / path.lstrip("/")

    for channel in request["ProcessingInputs"]:
        spec = channel["S3Input"]
        target = mapped(spec["LocalPath"])
        bucket, prefix = spec["S3Uri"][len("s3://") :].split("/", 1)
        if spec["S3DataType"] == "S3Prefix":
            listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
            for entry in listed:
                relative = entry["Key"][len(prefix) :].lstrip("/") or Path(entry["Key"]).name
                _download(s3, f"s3://{bucket}/{entry['Key']}", target / relative)
        else:
            assert spec["S3DataType"] == "ManifestFile"
            manifest = json.loads(s3.get_object(Bucket=bucket, Key=prefix)["Body"].read())
            base = manifest[0]["prefix"]
            for relative in manifest[1:]:
                _download(s3, base + relative, target / relative)
    arguments = [
        str(mapped(a)) if a.startswith(PROCESSING_ROOT + "/") else a
        for a in request["AppSpecification"]["ContainerArguments"]
    ]
    failure = local / "opt/ml/output/message"
    code = drift_job.main([*arguments, "--failure-file", str(failure)])
    if code != 0:
        return "Failed", f"AlgorithmError: {failure.read_text(encoding='utf-8').strip()}"
    for output in request["ProcessingOutputConfig"]["Outputs"]:
        spec = output["S3Output"]
        source = mapped(spec["LocalPath"])
        bucket, prefix = spec["S3Uri"][len("s3://") :].split("/", 1)
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            s3.upload_file(str(path), bucket, f"{prefix.rstrip('/')}/{path.relative_to(source)}")
    return "Completed", None


def sagemaker_sync(monkeypatch: pytest.MonkeyPatch, root: Path, jobs: list[dict[str, Any]]) -> None:
    """``createProcessingJob.sync`` for moto's interpreter (see the module docstring)."""

    def init(self: Any) -> None:
        StateTaskServiceCallback.__init__(
            self, supported_integration_patterns={ResourceCondition.Sync}
        )

    def build_sync_resolver(
        self: Any,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: dict[str, Any],
        state_credentials: Any,
    ) -> Callable[[], Any]:
        assert self._get_boto_service_name() == "sagemaker"
        assert self._get_boto_service_action() == "create_processing_job"
        env.stack.pop()  # CreateProcessingJob's answer
        name = normalised_parameters["ProcessingJobName"]

        def resolve() -> Any:
            try:
                status, reason = run_processing_job(normalised_parameters, root)
            except Exception:
                import traceback

                traceback.print_exc()
                raise
            backend = sagemaker_backends[MOTO_ACCOUNT][REGION]
            fake = backend.processing_jobs[name]
            fake.processing_job_status = status
            fake.failure_reason = reason
            sagemaker = boto3.client("sagemaker", region_name=REGION)
            described = sagemaker.describe_processing_job(ProcessingJobName=name)
            described.pop("ResponseMetadata", None)
            described["FailureReason"] = reason
            jobs.append({"request": normalised_parameters, "status": status, "reason": reason})
            if status == "Completed":
                return json.loads(json.dumps(described, default=str))
            raise FailureEventException(
                FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                    event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(
                        taskFailedEventDetails=TaskFailedEventDetails(
                            resource=self._get_sfn_resource(),
                            resourceType=self._get_sfn_resource_type(),
                            error=StatesErrorNameType.StatesTaskFailed.to_name(),
                            cause=to_json_str(json.loads(json.dumps(described, default=str))),
                        )
                    ),
                )
            )

        return resolve

    def eval_integration_pattern(
        self: Any,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: dict[str, Any],
        state_credentials: Any,
    ) -> None:
        # moto's generic callback path ends every .sync task with interrupt_all() on a
        # waitForTaskToken endpoint it never created (the ingestion harness does the same).
        resolve = self._build_sync_resolver(
            env=env,
            resource_runtime_part=resource_runtime_part,
            normalised_parameters=normalised_parameters,
            state_credentials=state_credentials,
        )
        env.stack.append(resolve())

    monkeypatch.setattr(unsupported.StateTaskServiceUnsupported, "__init__", init)
    monkeypatch.setattr(
        unsupported.StateTaskServiceUnsupported,
        "_eval_integration_pattern",
        eval_integration_pattern,
    )
    monkeypatch.setattr(
        unsupported.StateTaskServiceUnsupported, "_build_sync_resolver", build_sync_resolver
    )
