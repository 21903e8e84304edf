"""The model-build pipeline definition, rendered offline: schema, step graph, the contract's
arguments, security settings, determinism, no network, CDK tokens. Each variant is built once."""

from __future__ import annotations

import json
import socket
import tarfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from pipeline_schema import (
    NEWER_TOP_LEVEL_KEYS,
    SCHEMA_GAPS,
    schema_validator,
    schema_view,
)

from pipelines.model_build import contract as c
from pipelines.model_build import definition as d
from tests.pipelines.definition_steps import all_steps

EXECUTION_ID = {"Get": "Execution.PipelineExecutionId"}
ROLE_TOKEN, BUCKET_TOKEN, RAW_TOKEN, KEY_TOKEN = (f"${{Token[TOKEN.{i}]}}" for i in (1, 2, 3, 4))
#: serving_image: custom: the stage repository's URI (the URL suffix is a CDK token).
SERVING_IMAGE = "123456789012.dkr.ecr.eu-west-1.${Token[AWS.URLSuffix.5]}/mlops-dev-serving:0a1b2c"

BASE = d.PipelineInputs(
    pipeline_name="mlops-dev-model-build",
    region="eu-west-1",
    role_arn="arn:aws:iam::123456789012:role/mlops-dev-model-build",
    artifacts_bucket="mlops-dev-artifacts",
    code_uri="s3://mlops-dev-artifacts/code/model-build/0123456789abcdef",
    input_data_uri="s3://mlops-dev-raw/datasets/breast_cancer/",
    kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/0b1c2d3e-aaaa-bbbb-cccc-0123456789ab",
    model_package_group_name="mlops-dev-models",
    processing_instance_type="ml.m5.large",
    processing_instance_count=1,
    training_instance_type="ml.m5.xlarge",
    training_instance_count=1,
    spot_training=False,
    hyperparameter_tuning=False,
    approval_threshold=0.9,
)
VARIANTS: dict[str, d.PipelineInputs] = {
    "default": BASE,
    # What the CDK construct passes: tokens for the role, buckets and key (inside URIs too).
    "spot_vpc_tokens": replace(
        BASE,
        role_arn=ROLE_TOKEN,
        artifacts_bucket=BUCKET_TOKEN,
        code_uri=f"s3://{BUCKET_TOKEN}/code/model-build/0123456789abcdef",
        input_data_uri=f"s3://{RAW_TOKEN}/datasets/breast_cancer/",
        kms_key_arn=KEY_TOKEN,
        spot_training=True,
        subnet_ids=("subnet-0aaa", "subnet-0bbb"),
        security_group_ids=("sg-0ccc",),
        processing_instance_count=2,
        approval_threshold=0.85,
        serving_image_uri=SERVING_IMAGE,
    ),
    "tuning_spot": replace(BASE, hyperparameter_tuning=True, spot_training=True),
}
JOB_TYPES = ("Processing", "Training", "Tuning")


@dataclass(frozen=True)
class Built:
    inputs: d.PipelineInputs
    text: str
    doc: dict[str, Any]


@dataclass(frozen=True)
class Builds:
    variants: dict[str, Built]
    rebuilt_default: str
    network_attempts: list[str]


@contextmanager
def no_network(attempts: list[str]) -> Iterator[None]:
    """Every connection or name lookup is recorded and refused (background threads too)."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args[1:] or kwargs)[:200])
        raise OSError("network access during an offline build")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        patch.setattr(socket, "create_connection", refuse)
        patch.setattr(socket, "getaddrinfo", refuse)
        try:
            yield
        finally:  # e.g. SDK telemetry sends from a daemon thread
            for thread in threading.enumerate():
                if thread.name.startswith("sagemaker"):
                    thread.join(timeout=10)


@pytest.fixture(scope="module")
def builds() -> Builds:
    attempts: list[str] = []
    with no_network(attempts):
        variants = {}
        for name, inputs in VARIANTS.items():
            text = d.build_definition(inputs)
            variants[name] = Built(inputs, text, json.loads(text))
        rebuilt = d.build_definition(VARIANTS["default"])
    return Builds(variants, rebuilt, attempts)


@pytest.fixture(scope="module", params=list(VARIANTS))
def built(request: pytest.FixtureRequest, builds: Builds) -> Built:
    return builds.variants[request.param]


# ---- helpers --------------------------------------------------------------------------------


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def referenced_steps(node: Any) -> set[str]:
    return {
        value.split(".")[1]
        for key, value in walk(node)
        if key == "Get" and isinstance(value, str) and value.startswith("Steps.")
    }


def jobs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Job arguments by step name (for a tuning step: its training job definition)."""
    result = {}
    for name, step in all_steps(doc).items():
        if step["Type"] in JOB_TYPES:
            args = step["Arguments"]
            result[name] = args["TrainingJobDefinition"] if step["Type"] == "Tuning" else args
    return result


def output_uri(inputs: d.PipelineInputs, step: str, output: str) -> dict[str, Any]:
    values = ["s3:/", inputs.artifacts_bucket, "pipelines", inputs.pipeline_name, EXECUTION_ID]
    return {"Std:Join": {"On": "/", "Values": [*values, step, output]}}


def model_artifact(built: Built) -> Any:
    if built.inputs.hyperparameter_tuning:
        parts = [
            {"Get": f"Steps.{c.TRAIN_STEP}.TrainingJobDefinition.OutputDataConfig.S3OutputPath"},
            {"Get": f"Steps.{c.TRAIN_STEP}.BestTrainingJob.TrainingJobName"},
            "output",
            c.MODEL_ARTIFACT,
        ]
        return {"Std:Join": {"On": "/", "Values": parts}}
    return {"Get": f"Steps.{c.TRAIN_STEP}.ModelArtifacts.S3ModelArtifacts"}


def processing_output(step: str, output: str) -> dict[str, str]:
    return {"Get": f"Steps.{step}.ProcessingOutputConfig.Outputs['{output}'].S3Output.S3Uri"}


def file_in(step: str, output: str, name: str) -> dict[str, Any]:
    return {"Std:Join": {"On": "/", "Values": [processing_output(step, output), name]}}


def auc_json_get() -> dict[str, Any]:
    property_file = f"Steps.{c.CONDITION.step}.PropertyFiles.{c.CONDITION.property_file}"
    return {"Std:JsonGet": {"PropertyFile": {"Get": property_file}, "Path": c.AUC_JSON_PATH}}


def channels(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {ch["ChannelName"]: ch for ch in job["InputDataConfig"]}


@pytest.fixture(scope="module")
def schema_errors() -> Callable[[dict[str, Any]], list[str]]:
    return schema_validator()


def test_definition_validates_against_the_schema(
    built: Built, schema_errors: Callable[[dict[str, Any]], list[str]]
) -> None:
    assert set(built.doc) == {"Version", "Metadata", "Parameters", "Steps", *NEWER_TOP_LEVEL_KEYS}
    assert schema_errors(schema_view(built.doc)) == []


def test_unknown_top_level_keys_fail_validation(
    builds: Builds, schema_errors: Callable[[dict[str, Any]], list[str]]
) -> None:
    doc = builds.variants["default"].doc
    for key in ("Foo", "PipelineDefinitionConfig", "ParallelismConfiguration"):
        assert schema_errors({**schema_view(doc), key: {}}), key
    for key in NEWER_TOP_LEVEL_KEYS:  # the only two keys the view removes
        assert schema_errors({**schema_view(doc), key: doc[key] or {}}), key


@pytest.mark.parametrize("gap", SCHEMA_GAPS)
def test_every_schema_gap_rewrite_is_needed(
    gap: str, builds: Builds, schema_errors: Callable[[dict[str, Any]], list[str]]
) -> None:
    others = tuple(g for g in SCHEMA_GAPS if g != gap)
    assert any(schema_errors(schema_view(b.doc, others)) for b in builds.variants.values())


def test_function_values_are_well_formed(built: Built) -> None:
    """What the schema view reduces to {"Get": ...}: joins of plain values, JsonGet on a
    property file that its step declares."""
    steps = all_steps(built.doc)
    joins = [value for key, value in walk(built.doc) if key == "Std:Join"]
    json_gets = [value for key, value in walk(built.doc) if key == "Std:JsonGet"]
    assert joins and json_gets
    for join in joins:
        assert set(join) == {"On", "Values"} and join["On"] in {"/", " ", ""}
        for value in join["Values"]:
            assert isinstance(value, str | float | int) or set(value) in ({"Get"}, {"Std:JsonGet"})
    for json_get in json_gets:
        assert set(json_get) == {"PropertyFile", "Path"}
        _, step, kind, name = json_get["PropertyFile"]["Get"].split(".")
        assert kind == "PropertyFiles"
        declared = [p["PropertyFileName"] for p in steps[step].get("PropertyFiles", [])]
        assert name in declared


# ---- step graph -----------------------------------------------------------------------------


def test_steps_names_types_and_order(built: Built) -> None:
    train_type = "Tuning" if built.inputs.hyperparameter_tuning else "Training"
    expected = {
        c.PREPROCESS_STEP: "Processing",
        c.BASELINE_STEP: "Processing",
        c.TRAIN_STEP: train_type,
        c.EVALUATE_STEP: "Processing",
        c.CONDITION_STEP: "Condition",
        c.REGISTER_STEP: "RegisterModel",
        c.FAIL_STEP: "Fail",
    }
    assert [s["Name"] for s in built.doc["Steps"]] == list(c.STEP_ORDER)
    assert {name: s["Type"] for name, s in all_steps(built.doc).items()} == expected
    condition = all_steps(built.doc)[c.CONDITION_STEP]["Arguments"]
    assert [s["Name"] for s in condition["IfSteps"]] == [c.REGISTER_STEP]
    assert [s["Name"] for s in condition["ElseSteps"]] == [c.FAIL_STEP]
    for name, step in all_steps(built.doc).items():
        assert step["DisplayName"] and step["Description"], name


def test_dependencies_are_the_contracts_data_flow(built: Built) -> None:
    """No DependsOn: each edge is a property reference, the ones the contract's sources imply."""
    steps = all_steps(built.doc)
    assert not [key for key, _ in walk(built.doc) if key == "DependsOn"]

    def upstream(sources: list[c.Source]) -> set[str]:
        return {s.step for s in sources if isinstance(s, c.StepOutputRef)}

    expected = {spec.name: upstream([i.source for i in spec.inputs]) for spec in c.PROCESSING_STEPS}
    expected[c.TRAIN_STEP] = upstream([ch.source for ch in c.TRAIN.channels])
    expected[c.CONDITION_STEP] = {c.CONDITION.step}
    expected[c.REGISTER_STEP] = {c.TRAIN_STEP, c.BASELINE_STEP, c.EVALUATE_STEP}
    expected[c.FAIL_STEP] = {c.CONDITION.step}
    actual = {name: referenced_steps(step["Arguments"]) for name, step in steps.items()}
    actual[c.CONDITION_STEP] = referenced_steps(steps[c.CONDITION_STEP]["Arguments"]["Conditions"])
    assert actual == expected
    assert expected[c.EVALUATE_STEP] == {c.TRAIN_STEP, c.PREPROCESS_STEP}


def test_parameters(built: Built) -> None:
    inputs = built.inputs
    assert built.doc["Parameters"] == [
        {"Name": "InputDataUrl", "Type": "String", "DefaultValue": inputs.input_data_uri},
        # No usable default: Preprocess rejects an empty version (test_preprocess_script.py).
        {"Name": "InputDataVersion", "Type": "String", "DefaultValue": ""},
        {"Name": "ProcessingInstanceType", "Type": "String", "DefaultValue": "ml.m5.large"},
        {
            "Name": "ProcessingInstanceCount",
            "Type": "Integer",
            "DefaultValue": inputs.processing_instance_count,
        },
        {"Name": "TrainingInstanceType", "Type": "String", "DefaultValue": "ml.m5.xlarge"},
        {"Name": "TrainingInstanceCount", "Type": "Integer", "DefaultValue": 1},
        {"Name": "ModelApprovalStatus", "Type": "String", "DefaultValue": "PendingManualApproval"},
        {"Name": "AucThreshold", "Type": "Float", "DefaultValue": inputs.approval_threshold},
        # Why it ran: the retraining workflow passes alarm:<name> or schedule.
        {"Name": "TriggerReason", "Type": "String", "DefaultValue": "manual"},
    ]
    for name, job in jobs(built.doc).items():
        resources = job.get("ProcessingResources", {}).get("ClusterConfig") or job["ResourceConfig"]
        kind = "Training" if name == c.TRAIN_STEP else "Processing"
        assert resources["InstanceType"] == {"Get": f"Parameters.{kind}InstanceType"}
        assert resources["InstanceCount"] == {"Get": f"Parameters.{kind}InstanceCount"}


# ---- the contract's arguments ("same arguments as the local run") ----------------------------


@pytest.mark.parametrize("spec", c.PROCESSING_STEPS, ids=lambda s: s.name)
def test_processing_step_runs_the_contract(spec: c.ProcessingStepSpec, built: Built) -> None:
    step = all_steps(built.doc)[spec.name]
    args = step["Arguments"]
    code_uri = built.inputs.code_uri
    assert args["AppSpecification"]["ContainerArguments"] == [
        argument
        if isinstance(argument, str)
        else {
            "Std:Join": {
                "On": "",
                "Values": [argument.prefix, {"Get": f"Parameters.{argument.parameter}"}],
            }
        }
        for argument in spec.arguments
    ]
    assert args["AppSpecification"]["ContainerEntrypoint"] == [
        *spec.command,
        spec.code_container_path,
    ]
    assert f"/{spec.image.repository}:{spec.image.version}" in args["AppSpecification"]["ImageUri"]
    assert ".dkr.ecr.eu-west-1.amazonaws.com/" in args["AppSpecification"]["ImageUri"]
    inputs = {i["InputName"]: i["S3Input"] for i in args["ProcessingInputs"]}
    assert list(inputs) == [*(i.name for i in spec.inputs), "code"]
    assert inputs["code"]["LocalPath"] == c.PROCESSING_CODE_DIR
    assert inputs["code"]["S3Uri"] == f"{code_uri}/{c.code_bundle_key(spec.script)}"
    for spec_input in spec.inputs:
        s3_input = inputs[spec_input.name]
        assert s3_input["LocalPath"] == spec_input.container_path
        assert (s3_input["S3DataType"], s3_input["S3InputMode"]) == ("S3Prefix", "File")
        source = spec_input.source
        if isinstance(source, c.PipelineData):
            assert s3_input["S3Uri"] == {"Get": f"Parameters.{source.parameter}"}
        elif isinstance(source, c.RepoAsset):
            assert s3_input["S3Uri"] == f"{code_uri}/{c.code_bundle_key(source.path)}/"
        elif source.step == c.TRAIN_STEP:
            assert s3_input["S3Uri"] == model_artifact(built)
        else:
            assert s3_input["S3Uri"] == processing_output(source.step, source.output)
    outputs = {o["OutputName"]: o["S3Output"] for o in args["ProcessingOutputConfig"]["Outputs"]}
    assert list(outputs) == [o.name for o in spec.outputs]
    for spec_output in spec.outputs:
        assert outputs[spec_output.name]["LocalPath"] == spec_output.container_path
        assert outputs[spec_output.name]["S3Uri"] == output_uri(
            built.inputs, spec.name, spec_output.name
        )


def test_training_runs_the_contract_in_script_mode(built: Built) -> None:
    job = jobs(built.doc)[c.TRAIN_STEP]
    spec = c.TRAIN
    script_mode = {
        "sagemaker_program": spec.entry_point,
        "sagemaker_submit_directory": f"/opt/ml/input/data/code/{c.CODE_BUNDLE_SOURCEDIR}",
    }
    assert d.script_mode_hyperparameters() == script_mode
    algorithm = job["AlgorithmSpecification"]
    assert algorithm["TrainingImage"].endswith(f"/{spec.image.repository}:{spec.image.version}")
    assert algorithm["TrainingInputMode"] == "File"
    metrics = [m.as_sagemaker() for m in spec.metric_definitions]
    if built.inputs.hyperparameter_tuning:
        tuned = set(d.TUNING_RANGES)
        static = {k: v for k, v in spec.hyperparameter_dict.items() if k not in tuned}
        assert job["StaticHyperParameters"] == {**static, **script_mode}
    else:
        assert job["HyperParameters"] == {**spec.hyperparameter_dict, **script_mode}
    assert algorithm["MetricDefinitions"] == metrics
    by_name = channels(job)
    assert list(by_name) == [*(ch.name for ch in spec.channels), c.TRAINING_CODE_CHANNEL]
    for ch in spec.channels:
        assert by_name[ch.name]["ContentType"] == ch.content_type
        assert by_name[ch.name]["DataSource"]["S3DataSource"] == {
            "S3DataType": "S3Prefix",
            "S3Uri": processing_output(ch.source.step, ch.source.output),
        }
    code = by_name[c.TRAINING_CODE_CHANNEL]["DataSource"]["S3DataSource"]
    assert code["S3Uri"] == f"{built.inputs.code_uri}/{c.CODE_BUNDLE_SOURCEDIR}"
    assert job["OutputDataConfig"]["S3OutputPath"] == output_uri(
        built.inputs, c.TRAIN_STEP, c.TRAIN_MODEL_OUTPUT
    )


def test_tuning_replaces_training_when_enabled(builds: Builds) -> None:
    assert all_steps(builds.variants["default"].doc)[c.TRAIN_STEP]["Type"] == "Training"
    step = all_steps(builds.variants["tuning_spot"].doc)[c.TRAIN_STEP]
    assert step["Type"] == "Tuning"
    config = step["Arguments"]["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": "Minimize",
        "MetricName": "validation:logloss",
    }
    assert (c.TRAIN.objective_metric, c.TRAIN.objective_type) == ("validation:logloss", "Minimize")
    assert c.TRAIN.objective_metric in {m.name for m in c.TRAIN.metric_definitions}
    ranges = {
        r["Name"]: (kind.removesuffix("ParameterRanges"), r["MinValue"], r["MaxValue"])
        for kind, listed in config["ParameterRanges"].items()
        for r in listed
    }
    assert ranges == {
        name: (kind, str(low), str(high)) for name, (kind, low, high) in d.TUNING_RANGES.items()
    }
    assert set(ranges) == {"eta", "max_depth", "min_child_weight"}
    assert set(ranges) <= set(c.TRAIN.hyperparameter_dict)
    assert config["ResourceLimits"] == {
        "MaxNumberOfTrainingJobs": d.TUNING_MAX_JOBS,
        "MaxParallelTrainingJobs": d.TUNING_MAX_PARALLEL_JOBS,
    }
    assert config["Strategy"] == "Bayesian"


def test_the_evaluated_model_is_the_registered_model(built: Built) -> None:
    steps = all_steps(built.doc)
    evaluate_inputs = steps[c.EVALUATE_STEP]["Arguments"]["ProcessingInputs"]
    (model_input,) = [i for i in evaluate_inputs if i["InputName"] == "model"]
    (container,) = steps[c.REGISTER_STEP]["Arguments"]["InferenceSpecification"]["Containers"]
    assert model_input["S3Input"]["S3Uri"] == container["ModelDataUrl"] == model_artifact(built)


def test_code_bundle_holds_what_the_definition_runs(tmp_path: Path) -> None:
    from pipelines.model_build.packaging import build_code_bundle

    build_code_bundle(tmp_path / "bundle")
    bundle = tmp_path / "bundle"
    for spec in c.PROCESSING_STEPS:
        assert (bundle / c.code_bundle_key(spec.script)).is_file()
    assert (bundle / c.code_bundle_key(c.MODEL_CODE_DIR)).is_dir()
    with tarfile.open(bundle / c.CODE_BUNDLE_SOURCEDIR) as tar:
        assert c.TRAIN.entry_point in tar.getnames()


# ---- spot, VPC, KMS, isolation, caching, retries ---------------------------------------------


def test_spot_training_when_enabled(built: Built) -> None:
    job = jobs(built.doc)[c.TRAIN_STEP]
    stopping = job["StoppingCondition"]
    if built.inputs.spot_training:
        assert job["EnableManagedSpotTraining"] is True
        assert stopping["MaxWaitTimeInSeconds"] >= stopping["MaxRuntimeInSeconds"]
        assert job["CheckpointConfig"] == {
            "S3Uri": output_uri(built.inputs, c.TRAIN_STEP, d.CHECKPOINT_OUTPUT),
            "LocalPath": "/opt/ml/checkpoints",
        }
    else:
        assert job.get("EnableManagedSpotTraining") in (None, False)
        assert "MaxWaitTimeInSeconds" not in stopping and "CheckpointConfig" not in job


def test_vpc_config_on_every_job_when_given(built: Built) -> None:
    inputs = built.inputs
    expected = {
        "Subnets": list(inputs.subnet_ids),
        "SecurityGroupIds": list(inputs.security_group_ids),
    }
    for name, job in jobs(built.doc).items():
        vpc = job.get("NetworkConfig", job).get("VpcConfig")
        assert vpc == (expected if inputs.subnet_ids else None), name
    assert any(b.subnet_ids for b in VARIANTS.values())


def test_kms_isolation_and_encryption_on_every_job(built: Built) -> None:
    key = built.inputs.kms_key_arn
    for name, job in jobs(built.doc).items():
        if "ProcessingResources" in job:
            volume = job["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"]
            output = job["ProcessingOutputConfig"]["KmsKeyId"]
            network = job["NetworkConfig"]
        else:
            volume = job["ResourceConfig"]["VolumeKmsKeyId"]
            output = job["OutputDataConfig"]["KmsKeyId"]
            network = job
        assert volume == output == key, name
        assert network["EnableNetworkIsolation"] is True, name
        assert network["EnableInterContainerTrafficEncryption"] is True, name
        assert job["RoleArn"] == built.inputs.role_arn, name
    kms_fields = [v for k, v in walk(built.doc) if k in {"KmsKeyId", "VolumeKmsKeyId"}]
    assert len(kms_fields) == 2 * len(jobs(built.doc)) and set(kms_fields) == {key}


def test_caching_and_retry_policies(built: Built) -> None:
    step_retry = {"Step.SERVICE_FAULT", "Step.THROTTLING"}
    job_retry = {"SageMaker.CAPACITY_ERROR", "SageMaker.JOB_INTERNAL_ERROR"}
    for name, step in all_steps(built.doc).items():
        policies = step.get("RetryPolicies", [])
        for policy in policies:
            assert policy["MaxAttempts"] >= 2 and policy["BackoffRate"] > 1, name
            assert policy["IntervalSeconds"] >= 1, name
        kinds = [set(p["ExceptionType"]) for p in policies]
        if step["Type"] in JOB_TYPES:
            assert step["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}, name
            assert kinds == [step_retry, job_retry], name
        elif step["Type"] == "RegisterModel":
            assert kinds == [step_retry]
        else:
            assert "CacheConfig" not in step and not policies, name


def test_outputs_are_execution_scoped_and_job_names_generated(built: Built) -> None:
    scoped = [
        v
        for k, v in walk(built.doc)
        if k in {"S3OutputPath", "S3Uri"} and isinstance(v, dict) and "Std:Join" in v
        if v["Std:Join"]["Values"][0] == "s3:/"
    ]
    outputs = sum(len(spec.outputs) for spec in c.PROCESSING_STEPS) + 1  # + model
    assert len(scoped) == outputs + built.inputs.spot_training  # + checkpoints
    assert all(EXECUTION_ID in v["Std:Join"]["Values"] for v in scoped)
    keys = {key for key, _ in walk(built.doc)}
    names = {"ProcessingJobName", "TrainingJobName", "HyperParameterTuningJobName"}
    assert not keys & {*names, "ModelPackageName", "ModelName"}


# ---- condition, registration, failure --------------------------------------------------------


def test_condition_compares_the_contracts_metric_with_the_threshold(built: Built) -> None:
    steps = all_steps(built.doc)
    assert steps[c.CONDITION_STEP]["Arguments"]["Conditions"] == [
        {
            "Type": "GreaterThanOrEqualTo",
            "LeftValue": auc_json_get(),
            "RightValue": {"Get": "Parameters.AucThreshold"},
        }
    ]
    assert steps[c.CONDITION.step]["PropertyFiles"] == [
        {
            "PropertyFileName": c.CONDITION.property_file,
            "OutputName": c.CONDITION.output,
            "FilePath": c.CONDITION.path,
        }
    ]
    assert c.CONDITION.path == c.EVALUATION_FILE
    assert c.CONDITION.output in {o.name for o in c.EVALUATE.outputs}


def test_fail_step_message_carries_the_metric(built: Built) -> None:
    message = all_steps(built.doc)[c.FAIL_STEP]["Arguments"]["ErrorMessage"]["Std:Join"]
    assert auc_json_get() in message["Values"]
    assert {"Get": "Parameters.AucThreshold"} in message["Values"]
    assert any("AUC" in v for v in message["Values"] if isinstance(v, str))


def test_registration(built: Built) -> None:
    args = all_steps(built.doc)[c.REGISTER_STEP]["Arguments"]
    assert args["ModelPackageGroupName"] == built.inputs.model_package_group_name
    # The data the model was trained on, as the execution was given it.
    assert args["CustomerMetadataProperties"] == {
        "InputDataVersion": {"Get": "Parameters.InputDataVersion"},
        "TriggerReason": {"Get": "Parameters.TriggerReason"},
        "CodeBundleHash": built.inputs.code_uri.rstrip("/").rsplit("/", 1)[-1],
        "PipelineExecutionArn": {"Get": "Execution.PipelineExecutionArn"},
    }
    assert args["ModelPackageDescription"] == {
        "Std:Join": {
            "On": "",
            "Values": [
                f"XGBoost binary classifier trained by the {built.inputs.pipeline_name} "
                "pipeline on ",
                {"Get": "Parameters.InputDataUrl"},
                " (InputDataVersion ",
                {"Get": "Parameters.InputDataVersion"},
                ")",
            ],
        }
    }
    assert args["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    spec = args["InferenceSpecification"]
    (container,) = spec["Containers"]
    if built.inputs.serving_image_uri is None:  # serving_image: prebuilt
        assert container["Image"].endswith(f"/{c.XGBOOST_IMAGE.repository}:1.7-1")
    else:  # custom: the stage's own image, verbatim (token included)
        assert container["Image"] == built.inputs.serving_image_uri == SERVING_IMAGE
    assert container["Environment"] == c.SERVING_ENVIRONMENT
    assert spec["SupportedContentTypes"] == ["text/csv", "application/json"]
    assert spec["SupportedResponseMIMETypes"] == ["application/json"]
    (baseline,) = c.DATA_QUALITY_BASELINE.outputs
    statistics = {
        "ContentType": "application/json",
        "S3Uri": file_in(c.BASELINE_STEP, baseline.name, c.STATISTICS_FILE),
    }
    constraints = {
        "ContentType": "application/json",
        "S3Uri": file_in(c.BASELINE_STEP, baseline.name, c.CONSTRAINTS_FILE),
    }
    evaluation = {
        "ContentType": "application/json",
        "S3Uri": file_in(c.EVALUATE_STEP, c.CONDITION.output, c.EVALUATION_FILE),
    }
    metrics = args["ModelMetrics"]
    assert metrics["ModelQuality"] == {"Statistics": evaluation}
    assert metrics["ModelDataQuality"] == {"Statistics": statistics, "Constraints": constraints}
    assert args["DriftCheckBaselines"] == {
        "ModelDataQuality": {"Statistics": statistics, "Constraints": constraints}
    }
    assert {c.STATISTICS_FILE, c.CONSTRAINTS_FILE, c.REFERENCE_FILE} == set(baseline.files)


# ---- determinism, no network, tokens ------------------------------------------------------------


def test_definition_is_deterministic(builds: Builds) -> None:
    assert builds.rebuilt_default == builds.variants["default"].text
    assert len({b.text for b in builds.variants.values()}) == len(VARIANTS)


def test_builds_make_no_network_access(builds: Builds) -> None:
    assert builds.network_attempts == []
    assert set(builds.variants) == set(VARIANTS)
    attempts: list[str] = []
    with no_network(attempts), pytest.raises(OSError):  # the guard itself works
        socket.create_connection(("sagemaker.eu-west-1.amazonaws.com", 443), timeout=1)
    assert attempts


def test_cdk_tokens_survive_verbatim(builds: Builds) -> None:
    built = builds.variants["spot_vpc_tokens"]
    text = built.text
    assert "zzmlopsstandin" not in "".join(b.text for b in builds.variants.values())
    role_arns = [v for k, v in walk(built.doc) if k == "RoleArn"]
    assert len(role_arns) == len(jobs(built.doc)) and set(role_arns) == {ROLE_TOKEN}
    assert built.doc["Parameters"][0]["DefaultValue"] == f"s3://{RAW_TOKEN}/datasets/breast_cancer/"
    code_uris = [v for k, v in walk(built.doc) if k == "S3Uri" and isinstance(v, str)]
    assert code_uris and all(
        v.startswith(f"s3://{BUCKET_TOKEN}/code/model-build/") for v in code_uris
    )
    for token in (ROLE_TOKEN, BUCKET_TOKEN, RAW_TOKEN, KEY_TOKEN):
        assert json.dumps(token)[1:-1] == token and token in text


def test_substitutions_refuse_an_altered_stand_in() -> None:
    substitutions = d._Substitutions(VARIANTS["spot_vpc_tokens"])
    rendered = json.dumps({"RoleArn": substitutions.role_arn, "Bucket": substitutions.bucket})
    assert json.loads(substitutions.restore(rendered)) == {
        "RoleArn": ROLE_TOKEN,
        "Bucket": BUCKET_TOKEN,
    }
    with pytest.raises(RuntimeError, match="altered"):
        substitutions.restore(json.dumps({"RoleArn": substitutions.role_arn[:-1]}))


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"subnet_ids": ("subnet-1",)}, "go together"),
        ({"region": "${Token[AWS.Region.1]}"}, "concrete region"),
        ({"kms_key_arn": ""}, "empty"),
        ({"training_instance_count": 0}, "at least 1"),
    ],
)
def test_invalid_inputs_are_refused(change: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        d.build_definition(replace(BASE, **change))


# ---- caching: the cache key covers what each job reads ----------------------------------------

#: The request members Pipelines compares to find a cached run, per step type (AWS: "Default
#: cache key attributes by pipeline step type").
CACHE_KEY = {
    "Processing": ("AppSpecification", "Environment", "ProcessingInputs"),
    "Training": (
        "AlgorithmSpecification", "CheckpointConfig", "DebugHookConfig",
        "DebugRuleConfigurations", "Environment", "HyperParameters", "InputDataConfig",
    ),
    "Tuning": ("HyperParameterTuningJobConfig", "TrainingJobDefinition", "TrainingJobDefinitions"),
}  # fmt: skip
#: Of a tuning job's training job definition, only these count.
TUNING_DEFINITION_KEY = (
    "AlgorithmSpecification", "HyperParameterRanges", "InputDataConfig",
    "StaticHyperParameters", "TuningObjective",
)  # fmt: skip


def cache_key(step: dict[str, Any]) -> dict[str, Any]:
    key = {k: v for k, v in step["Arguments"].items() if k in CACHE_KEY[step["Type"]]}
    if step["Type"] == "Tuning":
        definition = key["TrainingJobDefinition"]
        key["TrainingJobDefinition"] = {
            k: v for k, v in definition.items() if k in TUNING_DEFINITION_KEY
        }
    return key


def test_cache_keys_cover_every_input_a_job_reads(built: Built) -> None:
    """Pipelines never looks behind an S3 URI: each URI a cached job reads must change with its
    content. Allowed: the code bundle (a content-hash prefix), upstream step outputs (written once
    under the execution id) and the raw data URI only together with the data version."""
    code_uri = built.inputs.code_uri
    steps = all_steps(built.doc)
    cached = {name: s for name, s in steps.items() if s.get("CacheConfig", {}).get("Enabled")}
    assert set(cached) == set(jobs(built.doc))
    for name, step in cached.items():
        key = cache_key(step)
        uris = [v for k, v in walk(key) if k in {"S3Uri", "S3OutputPath"}]
        assert uris, name
        for uri in uris:
            if isinstance(uri, str):
                assert uri.startswith(code_uri + "/"), (name, uri)
            elif uri == {"Get": "Parameters.InputDataUrl"}:
                assert '{"Get": "Parameters.InputDataVersion"}' in json.dumps(key), name
            elif "Std:Join" in uri and EXECUTION_ID in uri["Std:Join"]["Values"]:
                # Spot checkpoints: unique per execution, so the key only gets narrower (a
                # spot-trained Train step is never a cache hit; resuming another execution's
                # checkpoints would be wrong anyway).
                assert (name, uri) == (c.TRAIN_STEP, output_uri(built.inputs, name, "checkpoints"))
            else:
                assert referenced_steps(uri), (name, uri)  # an upstream step's output
    # Only Preprocess reads the raw data, and its key holds the version as an argument.
    readers = {n for n, s in cached.items() if "Parameters.InputDataUrl" in json.dumps(s)}
    assert readers == {c.PREPROCESS_STEP}
    arguments = steps[c.PREPROCESS_STEP]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert {
        "Std:Join": {
            "On": "",
            "Values": ["--data-version=", {"Get": "Parameters.InputDataVersion"}],
        }
    } in arguments
    # Upstream outputs are execution-scoped (never overwritten), so a hit implies equal data.
    for spec in c.PROCESSING_STEPS:
        for output in spec.outputs:
            uri = output_uri(built.inputs, spec.name, output.name)
            assert EXECUTION_ID in uri["Std:Join"]["Values"]


def test_experiment_tracking_is_off(built: Built) -> None:
    """The SDK's default PipelineExperimentConfig (in some regions) creates an experiment and a
    trial per execution: permissions the role does not have and resources teardown leaves."""
    assert built.doc["PipelineExperimentConfig"] is None
    assert "Execution.PipelineExecutionId" not in json.dumps(built.doc["Parameters"])


def test_experiment_config_would_otherwise_be_rendered_in_ga_regions() -> None:
    """Why the explicit None matters: in us-east-1 the SDK's default is on."""
    from sagemaker.mlops.workflow.pipeline import Pipeline

    with d._sdk_context():
        session = d._session("us-east-1", "bucket")
        pipeline = Pipeline(name="p", steps=[], sagemaker_session=session)
    assert pipeline.pipeline_experiment_config is not None
