"""``monitoring.backend: model_monitor``: the model-build pipeline computes a Model Monitor
data-quality baseline (the SDK's ``QualityCheckStep``) of the training features and registers it
on the model package; every other backend renders the definition it always did.

Requests are validated against botocore's SageMaker model (CreateProcessingJob for the check
job, CreateModelPackage for the registration), with pipeline expressions resolved as an
execution resolves them (test_job_arguments.Execution, extended with the check step's
properties), and the definition against the vendored public JSON schema."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest
from mb_helpers import SYNTHETIC_COLUMNS, preprocess_args, synthetic_frame
from mb_helpers import write_csv as write_frame
from pipeline_schema import schema_validator, schema_view

from pipelines.model_build import contract as c
from pipelines.model_build import definition as d
from pipelines.model_build import definition_cache as dc
from pipelines.model_build.infrastructure import image_repositories
from tests.botocore_shapes import validate
from tests.pipelines.test_definition import no_network
from tests.pipelines.test_job_arguments import BASE, EXECUTION_ID, Execution, all_steps

#: One model_monitor variant (each render costs seconds): tuning, spot and a VPC on top.
MM = replace(
    BASE,
    monitoring_backend="model_monitor",
    hyperparameter_tuning=True,
    spot_training=True,
    subnet_ids=("subnet-0123456789abcdef0",),
    security_group_ids=("sg-0123456789abcdef0",),
)
CHECK_PROPERTIES = (
    "CalculatedBaselineStatistics",
    "CalculatedBaselineConstraints",
    "BaselineUsedForDriftCheckStatistics",
    "BaselineUsedForDriftCheckConstraints",
)


class CheckExecution(Execution):
    """Also resolves the QualityCheck step's properties: S3 URIs of the files the check job
    wrote under its output prefix."""

    def property(self, path: str) -> str:
        _, name, rest = path.split(".", 2)
        step = self.steps[name]
        if step["Type"] == "QualityCheck" and rest in CHECK_PROPERTIES:
            (output,) = step["Arguments"]["ProcessingOutputConfig"]["Outputs"]
            prefix = self.text(output["S3Output"]["S3Uri"])
            file = "constraints.json" if rest.endswith("Constraints") else "statistics.json"
            return f"{prefix}/{file}"
        return super().property(path)

    def request(self, step: dict[str, Any]) -> dict[str, Any]:
        request = super().request(step)
        if step["Type"] == "QualityCheck":  # what Pipelines sends: CreateProcessingJob
            request["ProcessingJobName"] = f"pipelines-{EXECUTION_ID}-{step['Name']}-Xy12AbCdEf"
        return request


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    attempts: list[str] = []
    with no_network(attempts):
        texts = {
            "drift_job": d.build_definition(BASE),  # the field's default: drift_job
            "off": d.build_definition(replace(BASE, monitoring_backend="off")),
            "model_monitor": d.build_definition(MM),
        }
    assert attempts == []  # the check step's image resolved offline, nothing uploaded
    return texts


@pytest.fixture(scope="module")
def mm_doc(rendered: dict[str, str]) -> dict[str, Any]:
    return json.loads(rendered["model_monitor"])  # type: ignore[no-any-return]


def check_step(doc: dict[str, Any]) -> dict[str, Any]:
    step = all_steps(doc)[c.BASELINE_STEP]
    assert step["Type"] == "QualityCheck"
    return step


# ---- other backends: the definition is unchanged ------------------------------------------------


def test_drift_job_and_off_render_the_definition_without_the_field(
    rendered: dict[str, str],
) -> None:
    assert BASE.monitoring_backend == "drift_job"
    assert rendered["drift_job"] == rendered["off"]
    doc = json.loads(rendered["drift_job"])
    assert all_steps(doc)[c.BASELINE_STEP]["Type"] == "Processing"
    assert "QualityCheck" not in rendered["drift_job"]
    assert d.BASELINE_FEATURES_OUTPUT not in rendered["drift_job"]
    assert d.BASELINE_FORMAT_METADATA not in rendered["drift_job"]


def test_the_backend_is_part_of_the_definition_cache_key() -> None:
    arguments: dict[str, Any] = {"sources": "s", "versions": {}, "python": "3", "environment": {}}
    keys = {
        backend: dc.definition_key(replace(BASE, monitoring_backend=backend), **arguments)
        for backend in d.MONITORING_BACKENDS
    }
    assert len(set(keys.values())) == len(d.MONITORING_BACKENDS)


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="monitoring_backend 'modelmonitor' is not one of"):
        d.build_definition(replace(BASE, monitoring_backend="modelmonitor"))


# ---- model_monitor: the check step ------------------------------------------------------------


def test_the_check_step_baselines_the_training_features_with_model_monitor(
    mm_doc: dict[str, Any],
) -> None:
    from sagemaker.core import image_uris

    step = check_step(mm_doc)
    assert step["CheckType"] == "DATA_QUALITY"
    # Computes and registers; never fails a retraining on drift against the previous model.
    assert step["SkipCheck"] is True and step["RegisterNewBaseline"] is True
    args = step["Arguments"]
    (dataset,) = args["ProcessingInputs"]
    assert dataset["S3Input"]["S3Uri"] == {
        "Get": f"Steps.{c.PREPROCESS_STEP}.ProcessingOutputConfig.Outputs"
        f"['{d.BASELINE_FEATURES_OUTPUT}'].S3Output.S3Uri"
    }
    env = args["Environment"]
    assert env["dataset_source"] == dataset["S3Input"]["LocalPath"]
    assert json.loads(env["dataset_format"])["csv"]["header"] is True
    assert env["publish_cloudwatch_metrics"] == "Disabled"
    image = args["AppSpecification"]["ImageUri"]
    assert image == image_uris.retrieve("model-monitor", BASE.region)
    assert image.endswith("/sagemaker-model-monitor-analyzer")


def test_the_check_job_is_encrypted_isolated_and_execution_scoped(mm_doc: dict[str, Any]) -> None:
    args = check_step(mm_doc)["Arguments"]
    assert args["ProcessingOutputConfig"]["KmsKeyId"] == BASE.kms_key_arn
    assert args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == BASE.kms_key_arn
    network = dict(args["NetworkConfig"])
    assert network.pop("VpcConfig") == {
        "SecurityGroupIds": list(MM.security_group_ids),
        "Subnets": list(MM.subnet_ids),
    }
    assert network == {
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": True,
    }
    assert "ProcessingJobName" not in args  # Pipelines names it at run time
    (output,) = args["ProcessingOutputConfig"]["Outputs"]
    joined = output["S3Output"]["S3Uri"]["Std:Join"]["Values"]
    assert {"Get": "Execution.PipelineExecutionId"} in joined
    assert joined[-2:] == [c.BASELINE_STEP, d.MODEL_MONITOR_BASELINE_OUTPUT]
    assert check_step(mm_doc)["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}


def test_the_check_step_retries_as_the_other_job_steps(mm_doc: dict[str, Any]) -> None:
    """Throttling/service faults of the step and capacity/internal errors of its job are
    retried, with the policies every processing step has (the schema test validates them)."""
    policies = check_step(mm_doc)["RetryPolicies"]
    assert [set(p["ExceptionType"]) for p in policies] == [
        {"Step.SERVICE_FAULT", "Step.THROTTLING"},
        {"SageMaker.CAPACITY_ERROR", "SageMaker.JOB_INTERNAL_ERROR"},
    ]
    assert policies == all_steps(mm_doc)[c.PREPROCESS_STEP]["RetryPolicies"]


def test_preprocess_writes_the_features_only_for_model_monitor(mm_doc: dict[str, Any]) -> None:
    args = all_steps(mm_doc)[c.PREPROCESS_STEP]["Arguments"]
    outputs = {o["OutputName"]: o["S3Output"] for o in args["ProcessingOutputConfig"]["Outputs"]}
    assert outputs[d.BASELINE_FEATURES_OUTPUT]["LocalPath"] == d.BASELINE_FEATURES_DIR
    container_args = args["AppSpecification"]["ContainerArguments"]
    assert container_args[-2:] == ["--features-dir", d.BASELINE_FEATURES_DIR]


def test_job_and_registration_requests_are_valid_for_botocore(mm_doc: dict[str, Any]) -> None:
    doc = mm_doc
    assert all_steps(doc)[c.TRAIN_STEP]["Type"] == "Tuning"
    execution = CheckExecution(doc)
    operations = {
        c.BASELINE_STEP: "CreateProcessingJob",
        c.PREPROCESS_STEP: "CreateProcessingJob",
        c.REGISTER_STEP: "CreateModelPackage",
    }
    steps = all_steps(doc)
    for name, operation in operations.items():
        request = execution.request(steps[name])
        assert validate("sagemaker", operation, request, literal=execution.literal) == [], name


def test_a_broken_check_request_is_caught(mm_doc: dict[str, Any]) -> None:
    broken = copy.deepcopy(mm_doc)
    check_step(broken)["Arguments"]["NetworkConfig"]["EnableNetworkIsolation"] = "yes"
    execution = CheckExecution(broken)
    errors = validate(
        "sagemaker",
        "CreateProcessingJob",
        execution.request(check_step(broken)),
        literal=execution.literal,
    )
    assert errors == [
        "NetworkConfig.EnableNetworkIsolation: expected a boolean (Boolean), got str 'yes'"
    ]


def test_the_registered_baselines_are_the_check_steps(mm_doc: dict[str, Any]) -> None:
    register = all_steps(mm_doc)[c.REGISTER_STEP]["Arguments"]
    quality = register["ModelMetrics"]["ModelDataQuality"]
    drift = register["DriftCheckBaselines"]["ModelDataQuality"]

    def get(prop: str) -> dict[str, str]:
        return {"Get": f"Steps.{c.BASELINE_STEP}.{prop}"}

    assert quality["Statistics"]["S3Uri"] == get("CalculatedBaselineStatistics")
    assert quality["Constraints"]["S3Uri"] == get("CalculatedBaselineConstraints")
    assert drift["Statistics"]["S3Uri"] == get("BaselineUsedForDriftCheckStatistics")
    assert drift["Constraints"]["S3Uri"] == get("BaselineUsedForDriftCheckConstraints")
    # The marker monitor_sync requires; packages of other backends carry none.
    metadata = register["CustomerMetadataProperties"]
    assert metadata[d.BASELINE_FORMAT_METADATA] == d.BASELINE_FORMAT_MODEL_MONITOR
    execution = CheckExecution(mm_doc)
    resolved = execution.literal(drift["Statistics"]["S3Uri"])
    assert resolved.endswith(
        f"/{c.BASELINE_STEP}/{d.MODEL_MONITOR_BASELINE_OUTPUT}/statistics.json"
    )


def test_the_definition_validates_against_the_public_schema(mm_doc: dict[str, Any]) -> None:
    errors = schema_validator()
    view = schema_view(mm_doc)
    # The one gap: the schema predates FailOnViolation, which the SDK renders on every check
    # step (the service reads it; with SkipCheck it has no effect).
    index = [step["Name"] for step in view["Steps"]].index(c.BASELINE_STEP)
    assert [e.split(":", 1)[0] for e in errors(view)] == [f"['Steps', {index}]"]
    for step in view["Steps"]:
        step.pop("FailOnViolation", None)
    assert errors(view) == []


def test_the_pipeline_role_may_pull_the_analyzer_image(rendered: dict[str, str]) -> None:
    repositories = {name for _, _, name in image_repositories(rendered["model_monitor"])}
    assert "sagemaker-model-monitor-analyzer" in repositories
    assert "sagemaker-model-monitor-analyzer" not in {
        name for _, _, name in image_repositories(rendered["drift_job"])
    }


# ---- Preprocess --features-dir ----------------------------------------------------------------


def test_the_features_file_is_the_train_split_without_the_target(
    preprocess: ModuleType, tmp_path: Path
) -> None:
    assert preprocess.FEATURES_FILE == d.BASELINE_FEATURES_FILE
    source = write_frame(tmp_path / "raw" / "data.csv", synthetic_frame(rows=100))
    out = tmp_path / "out"
    args = preprocess_args(source, out, "--features-dir", str(out / "features"))
    assert preprocess.main(args) == 0
    train = pd.read_csv(out / "train" / c.TRAIN_FILE)
    features = pd.read_csv(out / "features" / d.BASELINE_FEATURES_FILE)
    # The endpoint's input: the features in the input schema's order, no target.
    assert tuple(features.columns) == tuple(n for n in SYNTHETIC_COLUMNS if n != "target")
    pd.testing.assert_frame_equal(features, train.drop(columns=["target"]))


def test_without_features_dir_no_features_file_is_written(
    preprocess: ModuleType, tmp_path: Path
) -> None:
    source = write_frame(tmp_path / "raw" / "data.csv", synthetic_frame(rows=100))
    out = tmp_path / "out"
    assert preprocess.main(preprocess_args(source, out)) == 0
    assert not list(out.rglob(d.BASELINE_FEATURES_FILE))
