"""Runs the synthesized deployment state machine in moto, for real.

moto executes the ASL with its Step Functions interpreter (``execute_state_machine``), which
calls SageMaker, SNS and Application Auto Scaling through boto3 against moto itself. What moto
cannot do is filled in here, explicitly and nowhere else:

* Lambda tasks: moto runs Lambdas only in Docker. :func:`in_process_lambdas` makes moto's Lambda
  ``invoke`` call the real handlers of ``lambdas/`` in-process (same event in, same JSON out,
  exceptions as ``FunctionError`` with ``errorType`` like the Lambda service), so the handlers run
  against moto's SageMaker.
* Service names: real Step Functions maps the SDK-integration name ``applicationautoscaling`` to
  the API; moto's interpreter does not, so the mapping is added.
* ``UpdateEndpoint``: not implemented by moto. :class:`FakeUpdateEndpoint` records the request
  (deployment guardrails included) and switches the endpoint to the new config, or keeps the old
  one to play a SageMaker auto-rollback. Like SageMaker, it refuses to change the instance type of
  a variant registered with Application Auto Scaling, and it can play "another update is in
  progress" (``conflicts``).
* ``CreateEndpoint``: moto overwrites an existing endpoint; SageMaker refuses ("Cannot create
  already existing endpoint"), and so does the harness.
* Wait states: the definition's poll intervals (30 s) become :data:`POLL_SECONDS` = 0 (moto
  really waits; every poll still runs, the loop only stops sleeping: about 4 s of the suite's
  wall time); nothing else in the definition is changed.
* ``hooks``: a test may run code before a Lambda handler (e.g. hold a deployment in its smoke
  test while another execution starts).
"""

from __future__ import annotations

import json
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import requests
from deployment_stages import SynthesizedStage, state_machine_definition
from moto.applicationautoscaling.models import applicationautoscaling_backends
from moto.awslambda.models import LambdaBackend
from moto.core.responses import ActionResult
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import FakeEndpoint, sagemaker_backends
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemakerruntime.models import sagemakerruntime_backends
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (  # noqa: E501
    StateTaskService,
)

from lambdas.deploy_plan import handler as plan_handler
from lambdas.smoke_test import handler as smoke_handler

MOTO_ACCOUNT = "123456789012"  # moto's default account: its SFN interpreter calls AWS as it
REGION = "us-east-1"
POLL_SECONDS = 0
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
Hook = Callable[[dict[str, Any]], None]
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
SERVING_ENV = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
}

HANDLERS: dict[str, Handler] = {
    "deploy-plan": plan_handler.handler,
    "deploy-smoke-test": smoke_handler.handler,
}


def _context(function_name: str) -> Any:
    return types.SimpleNamespace(
        function_name=function_name,
        function_version="$LATEST",
        invoked_function_arn=f"arn:aws:lambda:{REGION}:{MOTO_ACCOUNT}:function:{function_name}",
        memory_limit_in_mb=256,
        aws_request_id="test-request",
        log_group_name=f"/aws/lambda/{function_name}",
        log_stream_name="test",
    )


def in_process_lambdas(
    monkeypatch: pytest.MonkeyPatch, hooks: dict[str, Hook]
) -> list[tuple[str, dict[str, Any]]]:
    """Route moto Lambda invocations to the in-repo handlers (after ``hooks[suffix](event)``);
    returns the invocation log."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def invoke(
        self: LambdaBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> bytes:
        name = function_name.rsplit(":", 1)[-1]
        handler = next(h for suffix, h in HANDLERS.items() if name.endswith(suffix))
        event = json.loads(body) if body else {}
        calls.append((name, event))
        for suffix, hook in list(hooks.items()):
            if name.endswith(suffix):
                hook(event)
        try:
            result: Any = handler(event, _context(name))
        except Exception as error:  # the Lambda service reports any exception this way
            response_headers["x-amz-function-error"] = "Unhandled"
            result = {"errorType": type(error).__name__, "errorMessage": str(error)}
        return json.dumps(result).encode()

    monkeypatch.setattr(LambdaBackend, "invoke", invoke)
    monkeypatch.setitem(
        StateTaskService._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES,
        "applicationautoscaling",
        "application-autoscaling",
    )
    return calls


def _variant_instance_types(config: dict[str, Any]) -> dict[str, str]:
    return {v["VariantName"]: v.get("InstanceType", "") for v in config["ProductionVariants"]}


def registered_variants(account: str, region: str, endpoint_name: str) -> set[str]:
    """Variants of the endpoint registered as scalable targets (moto's autoscaling backend)."""
    targets = applicationautoscaling_backends[account][region].targets.get(SCALABLE_DIMENSION, {})
    prefix = f"endpoint/{endpoint_name}/variant/"
    return {rid[len(prefix) :] for rid in targets if rid.startswith(prefix)}


@dataclass
class FakeUpdateEndpoint:
    """moto has no ``UpdateEndpoint``: record calls; switch config unless ``roll_back``.

    ``conflicts``: how many calls fail first with SageMaker's "another change is in progress"
    error (a concurrent update). Every call that would change the instance type of a variant
    still registered with Application Auto Scaling fails, as in SageMaker."""

    roll_back: bool = False
    conflicts: int = 0
    calls: list[dict[str, Any]] = field(default_factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        fake = self

        def update_endpoint(response: SageMakerResponse) -> ActionResult:
            request = {
                key: response._get_param(key)
                for key in ("EndpointName", "EndpointConfigName", "DeploymentConfig")
            }
            fake.calls.append(request)
            backend = sagemaker_backends[response.current_account][response.region]
            endpoint: FakeEndpoint = backend.endpoints[request["EndpointName"]]
            if fake.conflicts > 0:
                fake.conflicts -= 1
                message = f'Cannot update in-progress endpoint "{endpoint.arn}".'
                raise ValidationError(message=message)
            old = _variant_instance_types(
                backend.describe_endpoint_config(endpoint.endpoint_config_name)
            )
            new = _variant_instance_types(
                backend.describe_endpoint_config(request["EndpointConfigName"])
            )
            registered = registered_variants(
                response.current_account, response.region, request["EndpointName"]
            )
            changed = sorted(v for v in registered if v in old and old[v] != new.get(v, old[v]))
            if changed:
                raise ValidationError(
                    message=f"The variant(s) {changed} must be deregistered as scalable targets "
                    "with AWS Application Auto Scaling before their instance type can be updated."
                )
            if not fake.roll_back:
                config = backend.describe_endpoint_config(request["EndpointConfigName"])
                endpoint.endpoint_config_name = request["EndpointConfigName"]
                endpoint.production_variants = endpoint._process_production_variants(
                    config["ProductionVariants"]
                )
            fake.roll_back = False  # a rollback of the rollback is a real update
            return ActionResult({"EndpointArn": endpoint.arn})

        monkeypatch.setattr(SageMakerResponse, "update_endpoint", update_endpoint, raising=False)


def refuse_existing_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """SageMaker's CreateEndpoint refuses an existing name (moto's overwrites the endpoint)."""
    create = SageMakerResponse.create_endpoint

    def create_endpoint(response: SageMakerResponse) -> Any:
        backend = sagemaker_backends[response.current_account][response.region]
        name = response._get_param("EndpointName")
        if name in backend.endpoints:
            arn = backend.endpoints[name].arn
            raise ValidationError(message=f'Cannot create already existing endpoint "{arn}".')
        return create(response)

    monkeypatch.setattr(SageMakerResponse, "create_endpoint", create_endpoint)


@dataclass
class DeploymentHarness:
    """One stage's state machine created in moto from the synthesized definition."""

    stage: SynthesizedStage
    state_machine_arn: str
    topic_arn: str
    notifications_queue_url: str
    bucket: str
    key_arn: str
    lambda_calls: list[tuple[str, dict[str, Any]]]
    hooks: dict[str, Hook]

    @property
    def config(self) -> Any:
        return self.stage.config

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)

    def start(self, payload: dict[str, Any], name: str) -> str:
        response = self.client("stepfunctions").start_execution(
            stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload)
        )
        return str(response["executionArn"])

    def wait(self, execution_arn: str, timeout: float = 20) -> dict[str, Any]:
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while True:
            description = sfn.describe_execution(executionArn=execution_arn)
            if description["status"] != "RUNNING":
                return dict(description)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{execution_arn} still running after {timeout}s")
            time.sleep(0.1)

    def run(self, payload: dict[str, Any], name: str) -> dict[str, Any]:
        return self.wait(self.start(payload, name))

    def visited_states(self, execution_arn: str) -> list[str]:
        sfn = self.client("stepfunctions")
        events = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        return [
            e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
        ]

    def notifications(self) -> list[dict[str, Any]]:
        sqs = self.client("sqs")
        messages: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(
                QueueUrl=self.notifications_queue_url, MaxNumberOfMessages=10
            ).get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                messages.append(json.loads(json.loads(message["Body"])["Message"]))
                sqs.delete_message(
                    QueueUrl=self.notifications_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )


def _function_arn(resource: dict[str, Any]) -> str:
    name = resource["Properties"]["FunctionName"]
    return f"arn:aws:lambda:{REGION}:{MOTO_ACCOUNT}:function:{name}"


@contextmanager
def deployment_harness(
    stage: SynthesizedStage, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DeploymentHarness]:
    """Create the stage's topic, bucket, key and state machine in moto (inside ``mock_aws``)."""
    hooks: dict[str, Hook] = {}
    calls = in_process_lambdas(monkeypatch, hooks)
    refuse_existing_endpoints(monkeypatch)
    resources = stage.template_json["Resources"]
    (topic,) = stage.resources("AWS::SNS::Topic").values()
    sns = boto3.client("sns", region_name=REGION)
    topic_arn = sns.create_topic(Name=topic["Properties"]["TopicName"])["TopicArn"]
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="deployment-notifications")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    key_arn = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    bucket = "artifacts-bucket"
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=bucket)

    def resolve(token: dict[str, Any]) -> str:
        if token.get("Ref") == "AWS::Partition":
            return "aws"
        if token.get("Ref") == "AWS::Region":
            return REGION
        if token.get("Ref") == "AWS::AccountId":
            return MOTO_ACCOUNT
        if "Ref" in token and resources[token["Ref"]]["Type"] == "AWS::SNS::Topic":
            return str(topic_arn)
        if "Fn::GetAtt" in token:
            logical_id, attribute = token["Fn::GetAtt"]
            resource = resources[logical_id]
            if resource["Type"] == "AWS::Lambda::Function" and attribute == "Arn":
                return _function_arn(resource)
            if resource["Type"] == "AWS::IAM::Role" and attribute == "Arn":
                return f"arn:aws:iam::{MOTO_ACCOUNT}:role/{logical_id}"
        for cross_stack in ("Fn::GetStackOutput", "Fn::ImportValue"):
            if cross_stack in token:
                reference = json.dumps(token[cross_stack])
                if "Key" in reference and "Arn" in reference:
                    return str(key_arn)
                if "ArtifactsBucket" in reference and "Ref" in reference:
                    return bucket
        raise KeyError(f"no test value for token {token}")

    definition = state_machine_definition(stage, resolve)
    for state in definition["States"].values():
        if state["Type"] == "Wait":
            state["Seconds"] = POLL_SECONDS
    (machine,) = stage.resources("AWS::StepFunctions::StateMachine").values()
    state_machine_arn = boto3.client("stepfunctions", region_name=REGION).create_state_machine(
        name=machine["Properties"]["StateMachineName"],
        definition=json.dumps(definition),
        roleArn=f"arn:aws:iam::{MOTO_ACCOUNT}:role/state-machine",
    )["stateMachineArn"]
    yield DeploymentHarness(
        stage=stage,
        state_machine_arn=state_machine_arn,
        topic_arn=topic_arn,
        notifications_queue_url=queue_url,
        bucket=bucket,
        key_arn=key_arn,
        lambda_calls=calls,
        hooks=hooks,
    )


def register_model(
    group: str,
    *,
    status: str = "Approved",
    bucket: str = "artifacts-bucket",
    metadata: dict[str, str] | None = None,
) -> str:
    """A versioned model package like the model-build pipeline registers (moto)."""
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    groups = sagemaker.list_model_package_groups(NameContains=group)["ModelPackageGroupSummaryList"]
    if not any(g["ModelPackageGroupName"] == group for g in groups):
        sagemaker.create_model_package_group(ModelPackageGroupName=group)
    kwargs: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "ModelApprovalStatus": status,
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": XGBOOST_IMAGE,
                    "ModelDataUrl": f"s3://{bucket}/model-build/run-1/model.tar.gz",
                    "Environment": SERVING_ENV,
                }
            ],
            "SupportedContentTypes": ["text/csv", "application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    }
    if metadata:
        kwargs["CustomerMetadataProperties"] = metadata
    return str(sagemaker.create_model_package(**kwargs)["ModelPackageArn"])


def queue_endpoint_answers(*bodies: object) -> None:
    """What moto's sagemaker-runtime answers next (one body per invocation).

    moto replays its first answer to an identical request (same endpoint and body): that cache
    is cleared so each deployment's smoke test gets the answers queued for it."""
    sagemakerruntime_backends[MOTO_ACCOUNT][REGION].results.clear()
    results = [
        {
            "Body": body if isinstance(body, str) else json.dumps(body),
            "ContentType": "application/json",
            "InvokedProductionVariant": "AllTraffic",
            "CustomAttributes": "",
        }
        for body in bodies
    ]
    response = requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
        json={"account_id": MOTO_ACCOUNT, "region": REGION, "results": results},
        timeout=5,
    )
    assert response.status_code == 201
