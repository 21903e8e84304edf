"""Every job step's ``Arguments``, of every stage's deployed pipeline definition (and of tuning,
spot and VPC variants), validated against botocore's SageMaker service model: the input shapes of
CreateProcessingJob, CreateTrainingJob, CreateHyperParameterTuningJob and CreateModelPackage.

A step's arguments are the request Pipelines sends, once it has resolved the pipeline expressions
and added the job name. Here each expression becomes a typed literal of what it resolves to in an
execution: a parameter its value (the defaults, with the data version an execution must give), the
execution id a 12-character id, a step property the value that step's own arguments produce (an
output prefix is its resolved ``S3Uri``), a ``Std:Join`` the joined text. CloudFormation
references in the deployed templates become values shaped like the real ones (generated bucket
and role names, a key ARN). botocore ships with boto3: this runs on every clone.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from botocore.model import Shape

from pipelines.model_build import contract as c
from pipelines.model_build import definition as d
from tests.botocore_shapes import service_model, validate
from tests.conftest import EPHEMERAL_STAGE, SHARED_STAGES, resources_of_type
from tests.pipelines.definition_steps import all_steps

ACCOUNT = "123456789012"
REGION = "us-east-1"
EXECUTION_ID = "a1b2c3d4e5f6"  # Pipelines' execution ids: 12 lowercase letters and digits
EXECUTION_ARN = (
    f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/mlops-dev-model-build/execution/{EXECUTION_ID}"
)
#: Parameter values of an execution: the defaults, plus what an execution must give.
EXECUTION_VALUES = {c.PARAM_INPUT_DATA_VERSION: "2026-11-30.1"}
OPERATIONS = {
    "Processing": "CreateProcessingJob",
    "Training": "CreateTrainingJob",
    "Tuning": "CreateHyperParameterTuningJob",
    "RegisterModel": "CreateModelPackage",
}
#: The job name Pipelines adds to a job step's request (it is not in the definition).
NAME_MEMBER = {
    "Processing": "ProcessingJobName",
    "Training": "TrainingJobName",
    "Tuning": "HyperParameterTuningJobName",
}


def generated_job_name(step: dict[str, Any]) -> str:
    """A name of the kind Pipelines generates: ``pipelines-<execution id>-<step>-<random>`` for
    jobs (at most 63 characters); tuning job names are at most 32 characters and carry no
    ``pipelines-`` prefix (so they are modelled as ``<execution id>-<step>-<random>``)."""
    if step["Type"] == "Tuning":
        return f"{EXECUTION_ID}-{step['Name'][:8]}-Xy12AbCdEf"[:32]
    return f"pipelines-{EXECUTION_ID}-{step['Name']}-Xy12AbCdEf"[:63]


# ---- CloudFormation references -> realistic values ---------------------------------------------


def generated_bucket(stack: str, logical_id: str) -> str:
    return f"{stack}-{logical_id.lower()}"[:50].rstrip("-") + "-1a2b3c4d5e6f"


def render_cfn(value: Any, stage: str) -> str:
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(render_cfn(p, stage) for p in parts)
    if "Fn::GetAtt" in value and value["Fn::GetAtt"][0].startswith("ModelBuildExecutionRole"):
        assert value["Fn::GetAtt"][1] == "Arn"
        return f"arn:aws:iam::{ACCOUNT}:role/{stage}-ModelBuild-ModelBuildExecutionRole-AbC123dEf"
    if "Fn::GetStackOutput" in value:
        output = value["Fn::GetStackOutput"]
        name, stack = output["OutputName"], output["StackName"]
        if "RawBucket" in name or "ArtifactsBucket" in name:
            assert name.startswith("PublishOutputRef")
            return generated_bucket(stack, name.removeprefix("PublishOutputRef"))
        if "Key" in name and name.startswith("PublishOutputFnGetAtt"):
            return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    raise AssertionError(f"no realistic value for {value}")


# ---- pipeline expressions -> typed literals ------------------------------------------------------


class Execution:
    """Resolves a definition's expressions as an execution of it would."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.steps = all_steps(doc)
        self.parameters: dict[str, Any] = {
            p["Name"]: p.get("DefaultValue") for p in doc["Parameters"]
        }
        self.parameters.update(EXECUTION_VALUES)

    def literal(self, value: Any, shape: Shape | None = None) -> Any:
        if not isinstance(value, dict) or len(value) != 1:
            return value
        ((kind, body),) = value.items()
        if kind == "Std:Join":
            return str(body["On"]).join(self.text(v) for v in body["Values"])
        if kind == "Std:JsonGet":
            return 0.97
        if kind != "Get":
            return value
        if body.startswith("Parameters."):
            return self.parameters[body.removeprefix("Parameters.")]
        if body == "Execution.PipelineExecutionId":
            return EXECUTION_ID
        if body == "Execution.PipelineExecutionArn":
            return EXECUTION_ARN
        if body.startswith("Steps."):
            return self.property(body)
        raise AssertionError(f"no literal for {value}")

    def text(self, value: Any) -> str:
        resolved = self.literal(value)
        if isinstance(resolved, dict):
            raise AssertionError(f"{value} does not resolve to a value")
        return repr(resolved) if isinstance(resolved, float) else str(resolved)

    def property(self, path: str) -> str:
        _, name, rest = path.split(".", 2)
        args = self.steps[name]["Arguments"]
        output = re.fullmatch(r"ProcessingOutputConfig\.Outputs\['(\w+)'\]\.S3Output\.S3Uri", rest)
        if output:
            (listed,) = [
                o for o in args["ProcessingOutputConfig"]["Outputs"]
                if o["OutputName"] == output.group(1)
            ]  # fmt: skip
            return self.text(listed["S3Output"]["S3Uri"])
        job = generated_job_name(self.steps[name])
        if rest == "ModelArtifacts.S3ModelArtifacts":
            prefix = self.text(args["OutputDataConfig"]["S3OutputPath"])
            return f"{prefix}/{job}/output/{c.MODEL_ARTIFACT}"
        if rest == "TrainingJobDefinition.OutputDataConfig.S3OutputPath":
            return self.text(args["TrainingJobDefinition"]["OutputDataConfig"]["S3OutputPath"])
        if rest == "BestTrainingJob.TrainingJobName":
            return f"{job}-007-0e830ada"  # <tuning job>-<number>-<hash>, as tuning names them
        raise AssertionError(f"no literal for the property {path}")

    def request(self, step: dict[str, Any]) -> dict[str, Any]:
        request = copy.deepcopy(step["Arguments"])
        if step["Type"] in NAME_MEMBER:
            request[NAME_MEMBER[step["Type"]]] = generated_job_name(step)
        return request


def errors_of(doc: dict[str, Any]) -> dict[str, list[str]]:
    """Step name -> problems of its request (every step with a SageMaker request)."""
    execution = Execution(doc)
    result = {}
    for name, step in all_steps(doc).items():
        if step["Type"] in OPERATIONS:
            result[name] = validate(
                "sagemaker",
                OPERATIONS[step["Type"]],
                execution.request(step),
                literal=execution.literal,
            )
    return result


# ---- the definitions -------------------------------------------------------------------------


@pytest.fixture(scope="module", params=(*SHARED_STAGES, EPHEMERAL_STAGE))
def deployed(templates: dict[str, Any], request: pytest.FixtureRequest) -> dict[str, Any]:
    stage = str(request.param)
    (resource,) = resources_of_type(
        templates[stage]["ModelBuild"], "AWS::SageMaker::Pipeline"
    ).values()
    body = resource["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]
    return json.loads(render_cfn(body, stage))  # type: ignore[no-any-return]


BASE = d.PipelineInputs(
    pipeline_name="mlops-br-feat-some-long-branch-name-model-build",
    region=REGION,
    role_arn=f"arn:aws:iam::{ACCOUNT}:role/mlops-dev-ModelBuild-ModelBuildExecutionRole-AbC123",
    artifacts_bucket=generated_bucket("mlops-dev-stateful", "DataLakeArtifactsBucket98FD8488"),
    code_uri="s3://mlops-dev-artifacts/code/model-build/" + "0123456789abcdef" * 4,
    input_data_uri="s3://mlops-dev-raw/datasets/breast_cancer/",
    kms_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    model_package_group_name="mlops-br-feat-some-long-branch-name-models",
    processing_instance_type="ml.m5.large",
    processing_instance_count=1,
    training_instance_type="ml.m5.xlarge",
    training_instance_count=1,
    spot_training=False,
    hyperparameter_tuning=False,
    approval_threshold=0.9,
)
#: cdk.json turns tuning off; these build what the other switches produce.
VARIANTS = {
    "tuning": replace(BASE, hyperparameter_tuning=True),
    "tuning_spot_vpc": replace(
        BASE,
        hyperparameter_tuning=True,
        spot_training=True,
        subnet_ids=("subnet-0123456789abcdef0", "subnet-0fedcba9876543210"),
        security_group_ids=("sg-0123456789abcdef0",),
    ),
    "spot": replace(BASE, spot_training=True),
}


@pytest.fixture(scope="module")
def variants() -> dict[str, dict[str, Any]]:
    return {name: json.loads(d.build_definition(inputs)) for name, inputs in VARIANTS.items()}


def test_deployed_job_arguments_are_valid_requests(deployed: dict[str, Any]) -> None:
    errors = errors_of(deployed)
    assert set(errors) == {
        c.PREPROCESS_STEP, c.BASELINE_STEP, c.TRAIN_STEP, c.EVALUATE_STEP, c.REGISTER_STEP,
    }  # fmt: skip
    assert errors == {name: [] for name in errors}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_tuning_spot_and_vpc_job_arguments_are_valid_requests(
    variant: str, variants: dict[str, dict[str, Any]]
) -> None:
    doc = variants[variant]
    errors = errors_of(doc)
    kind = "Tuning" if VARIANTS[variant].hyperparameter_tuning else "Training"
    assert all_steps(doc)[c.TRAIN_STEP]["Type"] == kind
    assert errors == {name: [] for name in errors}


# ---- the check catches what the service rejects ----------------------------------------------


def _break(doc: dict[str, Any], step: str, change: Callable[[dict[str, Any]], None]) -> list[str]:
    broken = copy.deepcopy(doc)
    change(all_steps(broken)[step]["Arguments"])
    return errors_of(broken)[step]


def _set_parameter_default(doc: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    broken = copy.deepcopy(doc)
    for parameter in broken["Parameters"]:
        if parameter["Name"] == name:
            parameter["DefaultValue"] = value
    return broken


def test_broken_arguments_are_caught(variants: dict[str, dict[str, Any]]) -> None:
    doc = variants["tuning_spot_vpc"]
    assert all(e == [] for e in errors_of(doc).values())

    def wrong_enum(args: dict[str, Any]) -> None:
        args["ProcessingInputs"][0]["S3Input"]["S3DataType"] = "Prefix"

    def missing_required(args: dict[str, Any]) -> None:
        del args["AppSpecification"]["ImageUri"]

    def too_long(args: dict[str, Any]) -> None:  # the schema as ONE argument: > 256 characters
        arguments = args["AppSpecification"]["ContainerArguments"]
        start = arguments.index("--columns") + 1
        arguments[start:] = [",".join(arguments[start:])]

    assert _break(doc, c.PREPROCESS_STEP, wrong_enum) == [
        "ProcessingInputs[0].S3Input.S3DataType: 'Prefix' is not one of ProcessingS3DataType: "
        "ManifestFile, S3Prefix"
    ]
    assert _break(doc, c.PREPROCESS_STEP, missing_required) == [
        "AppSpecification.ImageUri: required member of AppSpecification is missing"
    ]
    (error,) = _break(doc, c.PREPROCESS_STEP, too_long)
    assert error.startswith("AppSpecification.ContainerArguments[") and error.endswith(
        "characters, at most 256 allowed (ContainerArgument)"
    )

    def tuning_objective(args: dict[str, Any]) -> None:
        args["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["Type"] = "Min"

    assert _break(doc, c.TRAIN_STEP, tuning_objective) == [
        "HyperParameterTuningJobConfig.HyperParameterTuningJobObjective.Type: 'Min' is not one "
        "of HyperParameterTuningJobObjectiveType: Maximize, Minimize"
    ]


def test_expressions_are_resolved_with_their_types(variants: dict[str, dict[str, Any]]) -> None:
    """A parameter's value lands where the definition uses it, and is checked there."""
    doc = variants["tuning"]
    broken = _set_parameter_default(doc, "ProcessingInstanceType", "m5.large")
    errors = errors_of(broken)
    for step in (c.PREPROCESS_STEP, c.BASELINE_STEP, c.EVALUATE_STEP):
        assert errors[step] == [
            "ProcessingResources.ClusterConfig.InstanceType: 'm5.large' is not one of "
            "ProcessingInstanceType: " + ", ".join(_enum("ProcessingInstanceType"))
        ]
    # A data version the model package metadata cannot hold fails registration's request (the
    # Preprocess script refuses such a version first: DATA_VERSION_PATTERN).
    execution_values = dict(EXECUTION_VALUES)
    try:
        EXECUTION_VALUES[c.PARAM_INPUT_DATA_VERSION] = "v1,v2"
        (error,) = errors_of(doc)[c.REGISTER_STEP]
    finally:
        EXECUTION_VALUES.clear()
        EXECUTION_VALUES.update(execution_values)
    assert error.startswith("CustomerMetadataProperties.InputDataVersion: 'v1,v2' does not match")
    # Any S3 URL is recorded (in the description): a key may hold what metadata values may not.
    url = "s3://mlops-dev-raw/datasets/breast cancer,v(2)/100%/~data/"
    with_url = _set_parameter_default(doc, "InputDataUrl", url)
    assert all(e == [] for e in errors_of(with_url).values())
    register = all_steps(with_url)[c.REGISTER_STEP]["Arguments"]
    assert url in Execution(with_url).text(register["ModelPackageDescription"])
    # A property resolves to what its step produces: the evaluated artifact is Train's output.
    execution = Execution(doc)
    model = execution.text(all_steps(doc)[c.REGISTER_STEP]["Arguments"]["InferenceSpecification"][
        "Containers"
    ][0]["ModelDataUrl"])  # fmt: skip
    assert model.startswith(f"s3://{BASE.artifacts_bucket}/pipelines/{BASE.pipeline_name}/")
    assert f"/{EXECUTION_ID}/{c.TRAIN_STEP}/model/" in model and model.endswith("/model.tar.gz")


def _enum(shape: str) -> list[str]:
    model = service_model("sagemaker")
    return list(model.shape_for(shape).enum)
