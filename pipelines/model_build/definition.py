"""The model-build SageMaker pipeline, built with the SageMaker Python SDK v3 and rendered OFFLINE.

``build_definition(inputs)`` returns the pipeline definition JSON that the CDK construct deploys as
``AWS::SageMaker::Pipeline``: no AWS call, no network, no clock, no randomness (same inputs, same
bytes). Every step is built from ``contract.py``, the objects ``local_run.py`` runs too, so the
pipeline and the local run use the same scripts, arguments and container paths by construction.

DAG (data dependencies only: every edge is a property reference, there is no ``DependsOn``)::

    Preprocess --train--> DataQualityBaseline ............ statistics.json, constraints.json --+
        |--train/validation/transform--> Train (Training, or Tuning: best job) -- model.tar.gz --+
        |--test--> Evaluate <-- model.tar.gz                                                      |
    CheckAucThreshold: JsonGet(Evaluate evaluation.json, AUC) >= AucThreshold                     |
        true  -> RegisterModel (model metrics, drift-check baselines, approval status) <----------+
        false -> AucBelowThreshold (Fail; the message carries the AUC)

Step outputs go to ``s3://<artifacts bucket>/pipelines/<pipeline>/<ExecutionId>/<step>/<output>``
(a ``Join`` resolved at run time: executions never overwrite each other).

Caching (``CacheConfig`` on every job step, 30 days). Pipelines reuses a step's earlier successful
run when the step's arguments, parameters resolved, are the same (for a processing job:
``AppSpecification``, ``Environment``, ``ProcessingInputs``); it never looks at the data behind an
S3 URI. So every input a job reads must be named by something that changes with its content:

* the raw data: ``InputDataUrl`` *and* ``InputDataVersion``, both in Preprocess's arguments. The
  version has no usable default (empty): Preprocess fails on it, and a failed run is never
  reused, so an execution started without a version can neither reuse nor record old results.
  The version is recorded on the model package (``CustomerMetadataProperties``), the URL and
  version in its description;
* code: ``<code_uri>`` is a content-hash prefix (any code change is a new URI for every job);
* upstream outputs: per-execution prefixes, written once (the bucket expires only noncurrent
  versions), so a downstream step hits only when its upstream step was itself a hit;
* images: fixed framework versions; parameters (instance types, ``AucThreshold`` in Evaluate's
  arguments) are part of the arguments.

Re-running with the same data version and a different ``AucThreshold`` or
``ModelApprovalStatus`` reuses Preprocess, the baseline and training.

Experiment tracking is off (``PipelineExperimentConfig`` null): the SDK's default creates a
SageMaker Experiment per pipeline and a trial per execution, which the execution role would have
to be allowed to create and the branch teardown to delete; lineage lives in the model registry
(metrics, baselines, data version) and in SageMaker's automatic lineage tracking instead.

Code comes from
``<code_uri>/`` (``contract.CODE_BUNDLE_*``): a processing script is its job's ``code`` input; the
training source is ``sourcedir.tar.gz`` in a ``code`` channel that the XGBoost framework
container's script mode extracts from that local path, so every job runs network-isolated.

How the SDK is kept offline and deterministic:

* Stand-ins (``_Substitutions``): the SDK inspects some strings while building requests. It
  resolves a role that is not an IAM role ARN with ``iam:GetRole``, turns a role without ``/``
  into an ARN with IAM, and ``urlparse``s code URIs (Python rejects ``s3://${Token[TOKEN.1]}/``
  as an invalid IPv6 host). So the pipeline is built with fixed, well-formed stand-ins for the
  caller's strings and the rendered JSON gets the caller's values back verbatim: a CDK token
  reaches the template untouched and is never parsed.
* The session gets an explicit SDK config: no ``config.yaml`` defaults leak in, and telemetry
  (a background HTTP request per decorated SDK call) is opted out.
* ``ModelBuilder(dependencies=None, instance_type=...)``: with its defaults, ``register()``
  stages code (``default_bucket()``: S3 calls that create a bucket) and looks up a default
  instance type; neither is needed for a registration whose image and artifact are given.
* Job names are left to the service (the SDK drops its timestamped names from the definition).
"""

from __future__ import annotations

import functools
import json
import logging
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from pipelines.model_build import contract as c

if TYPE_CHECKING:  # the SDK is imported lazily: importing it is slow and needs a region
    from sagemaker.mlops.workflow.pipeline import Pipeline

# ---- Pipeline parameters (their names are the keys of an execution's overrides) -----------

PARAM_INPUT_DATA = "InputDataUrl"  # the contract's PipelineData parameter (checked when used)
PARAM_INPUT_DATA_VERSION = c.PARAM_INPUT_DATA_VERSION
PARAM_PROCESSING_INSTANCE_TYPE = "ProcessingInstanceType"
PARAM_PROCESSING_INSTANCE_COUNT = "ProcessingInstanceCount"
PARAM_TRAINING_INSTANCE_TYPE = "TrainingInstanceType"
PARAM_TRAINING_INSTANCE_COUNT = "TrainingInstanceCount"
PARAM_MODEL_APPROVAL_STATUS = "ModelApprovalStatus"
PARAM_AUC_THRESHOLD = c.PARAM_AUC_THRESHOLD
DEFAULT_MODEL_APPROVAL_STATUS = "PendingManualApproval"
#: Why the execution was started (the retraining workflow passes ``alarm:<name>`` or
#: ``schedule``); recorded in the model package's CustomerMetadataProperties, so it must fit
#: that map's value pattern (``[\p{L}\p{Z}\p{N}_.:/=+\-@]``, 1-256 characters).
PARAM_TRIGGER_REASON = "TriggerReason"
DEFAULT_TRIGGER_REASON = "manual"
#: Also recorded in the model package's CustomerMetadataProperties (README "Audit"): the content
#: hash of the code bundle the jobs ran (the last segment of ``code_uri``) and the ARN of the
#: execution that registered it (``ExecutionVariables.PIPELINE_EXECUTION_ARN``).
METADATA_CODE_BUNDLE_HASH = "CodeBundleHash"
METADATA_PIPELINE_EXECUTION_ARN = "PipelineExecutionArn"

# ---- Jobs ----------------------------------------------------------------------------------

PROCESSING_VOLUME_GB = 30
PROCESSING_MAX_RUNTIME_S = 3600
TRAINING_VOLUME_GB = 30
TRAINING_MAX_RUNTIME_S = 3600
#: Managed spot training: the time to wait for capacity plus run (>= the max runtime).
SPOT_MAX_WAIT_S = 2 * TRAINING_MAX_RUNTIME_S
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
CHECKPOINT_OUTPUT = "checkpoints"  # s3://.../<ExecutionId>/Train/checkpoints
CACHE_EXPIRE_AFTER = "P30D"

#: Retries: service faults and throttling on every step that allows a policy; capacity and
#: internal job errors on the jobs (a register step takes no SageMaker-job policy).
STEP_RETRY = {"interval_seconds": 10, "backoff_rate": 2.0, "max_attempts": 5}
JOB_RETRY = {"interval_seconds": 60, "backoff_rate": 2.0, "max_attempts": 3}

#: Tuning (``hyperparameter_tuning``): a small search around the contract's defaults; the
#: objective is ``contract.TRAIN.objective_metric`` (``objective_type``: the validation log
#: loss, minimised).
TUNING_MAX_JOBS = 12
TUNING_MAX_PARALLEL_JOBS = 3
TUNING_STRATEGY = "Bayesian"
#: hyperparameter -> (range kind, min, max); kinds: "Continuous" | "Integer".
TUNING_RANGES: dict[str, tuple[str, float, float]] = {
    "eta": ("Continuous", 0.05, 0.5),
    "max_depth": ("Integer", 2, 8),
    "min_child_weight": ("Continuous", 1.0, 10.0),
}

# ---- Monitoring backend (README "Monitoring") ------------------------------------------------

#: ``monitoring.backend`` values. Only ``model_monitor`` shapes the definition: there the
#: DataQualityBaseline step is the SDK's ``QualityCheckStep`` (the Model Monitor analyzer's
#: statistics and constraints, the format monitoring schedules read); elsewhere it is the
#: repository's own baseline script (what the drift job reads). ``drift_job`` and ``off``
#: render the same bytes.
MONITORING_BACKENDS = ("model_monitor", "drift_job", "off")
MODEL_MONITOR = "model_monitor"
#: Preprocess's extra output for Model Monitor: the train split without ``target`` (the
#: endpoint's input columns, in order, with a header) == scripts/preprocess.py FEATURES_FILE.
BASELINE_FEATURES_OUTPUT = "train_features"
BASELINE_FEATURES_FILE = "train_features.csv"
BASELINE_FEATURES_DIR = f"{c.PROCESSING_ROOT}/output/{BASELINE_FEATURES_OUTPUT}"
#: The QualityCheckStep's output name (its files: Model Monitor's statistics.json and
#: constraints.json).
MODEL_MONITOR_BASELINE_OUTPUT = "baseline"
#: CustomerMetadataProperties entry of a model_monitor package (== lambdas/monitor_sync's).
BASELINE_FORMAT_METADATA = "DataQualityBaselineFormat"
BASELINE_FORMAT_MODEL_MONITOR = "model-monitor"

# ---- Feature Store (README "Feature Store") --------------------------------------------------

OFFLINE_STORE_CATALOG = "AwsDataCatalog"
#: Where the Athena result of the offline-store query goes: <execution prefix>/Preprocess/<this>.
OFFLINE_STORE_OUTPUT = "offline_store_query"

# ---- Registration (the model package's inference specification) ---------------------------

INFERENCE_CONTENT_TYPES = ("text/csv", "application/json")
INFERENCE_RESPONSE_TYPES = ("application/json",)
INFERENCE_INSTANCE_TYPES = ("ml.t2.medium", "ml.m5.large", "ml.m5.xlarge", "ml.c5.large")
TRANSFORM_INSTANCE_TYPES = ("ml.m5.large", "ml.m5.xlarge")
METRICS_CONTENT_TYPE = "application/json"

#: The session's SDK config (instead of the machine's config files): telemetry off.
SDK_CONFIG: Mapping[str, Any] = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}

# ---- Display names and descriptions (the Studio DAG) ---------------------------------------
# Display names keep to [A-Za-z0-9_-]: the pipeline definition schema's pattern for them.

DISPLAY: dict[str, tuple[str, str]] = {
    c.PREPROCESS_STEP: (
        "Preprocess-raw-data",
        "Validates the raw CSV data, splits it into train/validation/test and fits the feature "
        "transform.",
    ),
    c.BASELINE_STEP: (
        "Data-quality-baseline",
        "Baseline statistics and constraints of the training split, for drift checks.",
    ),
    c.TRAIN_STEP: (
        "Train-XGBoost-model",
        "Trains the XGBoost binary classifier (XGBoost framework container, script mode).",
    ),
    c.EVALUATE_STEP: (
        "Evaluate-on-test-split",
        "Scores the model on the held-out test split and writes evaluation.json.",
    ),
    c.CONDITION_STEP: (
        "Check-AUC-threshold",
        "Registers the model when its test AUC reaches the AucThreshold parameter.",
    ),
    c.REGISTER_STEP: (
        "Register-model-package",
        "Registers a model package version with its metrics and drift-check baselines.",
    ),
    c.FAIL_STEP: (
        "Fail-AUC-below-threshold",
        "Fails the execution: the model did not reach the AUC threshold.",
    ),
}
MODEL_MONITOR_BASELINE_DISPLAY = (
    "Model-Monitor-baseline",
    "Model Monitor data-quality baseline (statistics, constraints) of the training features.",
)
TUNING_DISPLAY = (
    "Tune-XGBoost-model",
    "Tunes eta, max_depth and min_child_weight to minimise the validation log loss; Evaluate "
    "scores the best training job's model.",
)


@dataclass(frozen=True)
class PipelineInputs:
    """What the CDK construct knows. Strings may be CDK tokens: they are kept verbatim."""

    pipeline_name: str
    region: str  # a concrete region: image URIs are resolved at synth time
    role_arn: str
    artifacts_bucket: str  # bucket NAME
    code_uri: str  # s3://<bucket>/code/model-build/<hash> (the contract.CODE_BUNDLE_* layout)
    input_data_uri: str  # default of the InputDataUrl parameter
    kms_key_arn: str  # job volumes and outputs (processing, training, checkpoints)
    model_package_group_name: str
    processing_instance_type: str
    processing_instance_count: int
    training_instance_type: str
    training_instance_count: int
    spot_training: bool
    hyperparameter_tuning: bool
    approval_threshold: float  # default of the AucThreshold parameter
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    #: ``monitoring.backend`` (MONITORING_BACKENDS); part of the definition cache's key.
    monitoring_backend: str = "drift_job"
    #: ``serving_image: custom``: the stage's own serving image (``serving/infrastructure.py``)
    #: the model package is registered with; None: AWS's prebuilt XGBoost image.
    serving_image_uri: str | None = None
    #: ``feature_store.training_data: offline_store``: Preprocess reads the result of this
    #: Athena query (over the offline store's Glue table, in ``offline_store_database``, run in
    #: ``athena_workgroup``) instead of the files under ``InputDataUrl``. All three or none.
    offline_store_query: str = ""
    offline_store_database: str = ""
    athena_workgroup: str = ""


def build_pipeline(inputs: PipelineInputs) -> Pipeline:
    """The SDK ``Pipeline``; its ``definition()`` carries the caller's values verbatim."""
    _check(inputs)
    with _sdk_context():
        return _Builder(inputs).build()


def build_definition(inputs: PipelineInputs) -> str:
    """The pipeline definition JSON: same inputs, identical text; no network, no AWS call."""
    return str(build_pipeline(inputs).definition())


def script_mode_hyperparameters(spec: c.TrainingStepSpec = c.TRAIN) -> dict[str, str]:
    """The hyperparameters that make the XGBoost framework container run ``spec.entry_point``.

    The training toolkit hands every other hyperparameter to the script as ``--name value``
    (``sagemaker_*`` ones excluded): ``spec.arguments()``, the local run's command line.
    """
    return {
        "sagemaker_program": spec.entry_point,
        "sagemaker_submit_directory": c.TRAINING_SOURCEDIR_PATH,
    }


# --------------------------------------------------------------------------------------------
# Stand-ins for the caller's strings
# --------------------------------------------------------------------------------------------

_MARK = "zzmlopsstandin"  # in every stand-in, and in nothing the SDK writes


class _Substitutions:
    """Caller value -> well-formed stand-in; ``restore`` puts the values back into the JSON.

    Stand-ins are unique and none contains another, so replacing each (JSON-escaped) one is
    exact. If the SDK had altered a stand-in, a leftover fragment fails the build loudly
    instead of deploying a wrong value.
    """

    def __init__(self, inputs: PipelineInputs) -> None:
        self._pairs: list[tuple[str, str]] = []
        add = self._add
        account = "000000000000"
        self.role_arn = add(inputs.role_arn, f"arn:aws:iam::{account}:role/{_MARK}role")
        self.bucket = add(inputs.artifacts_bucket, f"{_MARK}bucket")
        self.code_uri = add(inputs.code_uri.rstrip("/"), f"s3://{_MARK}codebucket/{_MARK}code")
        self.input_data_uri = add(inputs.input_data_uri, f"s3://{_MARK}databucket/{_MARK}data/")
        self.kms_key_arn = add(
            inputs.kms_key_arn, f"arn:aws:kms:{inputs.region}:{account}:key/{_MARK}key"
        )
        self.model_package_group = add(inputs.model_package_group_name, f"{_MARK}group")
        # The SDK may parse an image URI (framework detection): a well-formed one stands in.
        self.serving_image = (
            None
            if inputs.serving_image_uri is None
            else add(
                inputs.serving_image_uri,
                f"{account}.dkr.ecr.{inputs.region}.amazonaws.com/{_MARK}image:{_MARK}tag",
            )
        )
        self.subnet_ids = [
            add(value, f"subnet-{_MARK}{i}x") for i, value in enumerate(inputs.subnet_ids)
        ]
        self.security_group_ids = [
            add(value, f"sg-{_MARK}{i}x") for i, value in enumerate(inputs.security_group_ids)
        ]

    def _add(self, value: str, stand_in: str) -> str:
        self._pairs.append((stand_in, value))
        return stand_in

    def restore(self, text: str) -> str:
        for stand_in, value in sorted(self._pairs, key=lambda pair: -len(pair[0])):
            text = text.replace(_json_string(stand_in), _json_string(value))
        if _MARK in text:
            raise RuntimeError(f"the SDK altered a stand-in value ({_MARK}...) in the definition")
        return text


def _json_string(value: str) -> str:
    return json.dumps(value)[1:-1]


# --------------------------------------------------------------------------------------------
# The builder
# --------------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, inputs: PipelineInputs) -> None:
        from sagemaker.core.workflow.parameters import (
            ParameterFloat,
            ParameterInteger,
            ParameterString,
        )

        self.inputs = inputs
        self.subs = _Substitutions(inputs)
        self.session = _session(inputs.region, self.subs.bucket)
        self.input_data = ParameterString(PARAM_INPUT_DATA, default_value=self.subs.input_data_uri)
        # No usable default: Preprocess rejects an empty version (see "Caching" above).
        self.data_version = ParameterString(PARAM_INPUT_DATA_VERSION, default_value="")
        self.processing_instance_type = ParameterString(
            PARAM_PROCESSING_INSTANCE_TYPE, default_value=inputs.processing_instance_type
        )
        self.processing_instance_count = ParameterInteger(
            PARAM_PROCESSING_INSTANCE_COUNT, default_value=inputs.processing_instance_count
        )
        self.training_instance_type = ParameterString(
            PARAM_TRAINING_INSTANCE_TYPE, default_value=inputs.training_instance_type
        )
        self.training_instance_count = ParameterInteger(
            PARAM_TRAINING_INSTANCE_COUNT, default_value=inputs.training_instance_count
        )
        self.approval_status = ParameterString(
            PARAM_MODEL_APPROVAL_STATUS, default_value=DEFAULT_MODEL_APPROVAL_STATUS
        )
        self.auc_threshold = ParameterFloat(
            PARAM_AUC_THRESHOLD, default_value=float(inputs.approval_threshold)
        )
        self.trigger_reason = ParameterString(
            PARAM_TRIGGER_REASON, default_value=DEFAULT_TRIGGER_REASON
        )
        self.steps: dict[str, Any] = {}
        self.model_artifact: Any = None  # the Train step's model.tar.gz (a pipeline variable)
        self._images: dict[c.ImageSpec, str] = {}

    @property
    def model_monitor(self) -> bool:
        return self.inputs.monitoring_backend == MODEL_MONITOR

    def build(self) -> Pipeline:
        for spec in c.PROCESSING_STEPS:
            if spec.name == c.EVALUATE_STEP:
                self._train_step()
            if self.model_monitor and spec.name == c.BASELINE_STEP:
                self.steps[spec.name] = self._quality_check_step()
                continue
            if self.model_monitor and spec.name == c.PREPROCESS_STEP:
                spec = _with_baseline_features(spec)
            self.steps[spec.name] = self._processing_step(spec)
        top_level = [self.steps[name] for name in c.STEP_ORDER if name != c.CONDITION_STEP]
        pipeline = _restoring_pipeline_class()(
            name=self.inputs.pipeline_name,
            parameters=[
                self.input_data,
                self.data_version,
                self.processing_instance_type,
                self.processing_instance_count,
                self.training_instance_type,
                self.training_instance_count,
                self.approval_status,
                self.auc_threshold,
                self.trigger_reason,
            ],
            steps=[*top_level, self._condition_step()],
            sagemaker_session=self.session,
            pipeline_experiment_config=None,  # deliberately off: see the module docstring
        )
        pipeline.substitutions = self.subs
        return pipeline

    # ---- shared pieces ---------------------------------------------------------------------

    def _output_uri(self, step: str, output: str) -> Any:
        from sagemaker.core.workflow.execution_variables import ExecutionVariables
        from sagemaker.core.workflow.functions import Join

        return Join(
            on="/",
            values=[
                "s3:/",
                self.subs.bucket,
                "pipelines",
                self.inputs.pipeline_name,
                ExecutionVariables.PIPELINE_EXECUTION_ID,
                step,
                output,
            ],
        )

    def _source_uri(self, source: c.Source) -> Any:
        if isinstance(source, c.PipelineData):
            if source.parameter != PARAM_INPUT_DATA:
                raise ValueError(f"no pipeline parameter for {source}")
            return self.input_data
        if isinstance(source, c.RepoAsset):  # a directory: the prefix ends with "/"
            return f"{self.subs.code_uri}/{c.code_bundle_key(source.path)}/"
        if source.step == c.TRAIN_STEP:
            if source.output != c.TRAIN_MODEL_OUTPUT or self.model_artifact is None:
                raise ValueError(f"no training output {source}")
            return self.model_artifact
        outputs = self.steps[source.step].properties.ProcessingOutputConfig.Outputs
        return outputs[source.output].S3Output.S3Uri

    def _argument(self, argument: c.Argument) -> Any:
        """A contract argument: a string, or ``prefix`` joined with a pipeline parameter."""
        if isinstance(argument, str):
            return argument
        from sagemaker.core.workflow.functions import Join

        parameters = {
            PARAM_INPUT_DATA_VERSION: self.data_version,
            PARAM_AUC_THRESHOLD: self.auc_threshold,
        }
        if argument.parameter not in parameters:
            raise ValueError(f"no pipeline parameter for {argument}")
        # A Join makes one string argument of any parameter type (a Float renders as "0.9").
        return Join(on="", values=[argument.prefix, parameters[argument.parameter]])

    def _image(self, image: c.ImageSpec) -> str:
        if image not in self._images:
            from sagemaker.core import image_uris

            uri = image_uris.retrieve(image.framework, self.inputs.region, image.version)
            self._images[image] = str(uri)
        return self._images[image]

    def _vpc(self) -> dict[str, Any]:
        return {
            "subnets": list(self.subs.subnet_ids) or None,
            "security_group_ids": list(self.subs.security_group_ids) or None,
        }

    @staticmethod
    def _cache() -> Any:
        from sagemaker.mlops.workflow.steps import CacheConfig

        return CacheConfig(enable_caching=True, expire_after=CACHE_EXPIRE_AFTER)

    @staticmethod
    def _job_retry_policies() -> list[Any]:
        from sagemaker.mlops.workflow.retry import (
            SageMakerJobExceptionTypeEnum,
            SageMakerJobStepRetryPolicy,
        )

        job_errors = [
            SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
            SageMakerJobExceptionTypeEnum.INTERNAL_ERROR,
        ]
        return [
            *_step_retry_policies(),
            SageMakerJobStepRetryPolicy(exception_types=job_errors, **JOB_RETRY),
        ]

    # ---- processing ------------------------------------------------------------------------

    def _processing_step(self, spec: c.ProcessingStepSpec) -> Any:
        from sagemaker.core.network import NetworkConfig
        from sagemaker.core.processing import ScriptProcessor
        from sagemaker.core.shapes import (
            ProcessingInput,
            ProcessingOutput,
            ProcessingS3Input,
            ProcessingS3Output,
        )
        from sagemaker.core.workflow.properties import PropertyFile
        from sagemaker.mlops.workflow.steps import ProcessingStep

        processor = ScriptProcessor(
            role=self.subs.role_arn,
            image_uri=self._image(spec.image),
            command=list(spec.command),
            instance_type=self.processing_instance_type,
            instance_count=self.processing_instance_count,
            volume_size_in_gb=PROCESSING_VOLUME_GB,
            volume_kms_key=self.subs.kms_key_arn,
            output_kms_key=self.subs.kms_key_arn,
            max_runtime_in_seconds=PROCESSING_MAX_RUNTIME_S,
            network_config=NetworkConfig(
                enable_network_isolation=True,
                encrypt_inter_container_traffic=True,
                **self._vpc(),
            ),
            sagemaker_session=self.session,
        )
        # The training data from the offline store: an Athena dataset definition, put into the
        # request by the step (SDK 3.27's processor drops dataset definitions from requests).
        dataset_inputs = [
            (index, self._offline_store_input(spec, spec_input))
            for index, spec_input in enumerate(spec.inputs)
            if self.inputs.offline_store_query and isinstance(spec_input.source, c.PipelineData)
        ]
        replaced = {index for index, _ in dataset_inputs}
        inputs = [
            ProcessingInput(
                input_name=spec_input.name,
                s3_input=ProcessingS3Input(
                    s3_uri=self._source_uri(spec_input.source),
                    local_path=spec_input.container_path,
                    s3_data_type="S3Prefix",
                    s3_input_mode="File",
                    s3_data_distribution_type="FullyReplicated",
                ),
            )
            for index, spec_input in enumerate(spec.inputs)
            if index not in replaced
        ]
        outputs = [
            ProcessingOutput(
                output_name=spec_output.name,
                s3_output=ProcessingS3Output(
                    s3_uri=self._output_uri(spec.name, spec_output.name),
                    local_path=spec_output.container_path,
                    s3_upload_mode="EndOfJob",
                ),
            )
            for spec_output in spec.outputs
        ]
        step_args = processor.run(
            # ScriptProcessor adds it as the "code" input at contract.PROCESSING_CODE_DIR and
            # runs [*command, spec.code_container_path].
            code=f"{self.subs.code_uri}/{c.code_bundle_key(spec.script)}",
            inputs=inputs,
            outputs=outputs,
            arguments=[self._argument(a) for a in spec.arguments],
        )
        property_files = None
        if spec.name == c.CONDITION.step:
            property_files = [
                PropertyFile(
                    name=c.CONDITION.property_file,
                    output_name=c.CONDITION.output,
                    path=c.CONDITION.path,
                )
            ]
        display_name, description = DISPLAY[spec.name]
        step = (_dataset_input_step_class() if dataset_inputs else ProcessingStep)(
            name=spec.name,
            step_args=step_args,
            display_name=display_name,
            description=description,
            property_files=property_files,
            cache_config=self._cache(),
            retry_policies=self._job_retry_policies(),
        )
        if dataset_inputs:
            step.dataset_inputs = dataset_inputs
        return step

    def _offline_store_input(
        self, spec: c.ProcessingStepSpec, spec_input: c.ProcessingInputSpec
    ) -> Any:
        """The training data as an Athena dataset definition (a ProcessingInput request): SageMaker
        runs the query (as the job's role, in the stage's workgroup), writes the result as
        Parquet (KMS-encrypted) to this execution's prefix and copies it to the container."""
        return {
            "InputName": spec_input.name,
            "AppManaged": False,
            "DatasetDefinition": {
                "AthenaDatasetDefinition": {
                    "Catalog": OFFLINE_STORE_CATALOG,
                    "Database": self.inputs.offline_store_database,
                    "QueryString": self.inputs.offline_store_query,
                    "WorkGroup": self.inputs.athena_workgroup,
                    "OutputS3Uri": self._output_uri(spec.name, OFFLINE_STORE_OUTPUT),
                    "KmsKeyId": self.subs.kms_key_arn,
                    "OutputFormat": "PARQUET",
                },
                "LocalPath": spec_input.container_path,
                "DataDistributionType": "FullyReplicated",
                "InputMode": "File",
            },
        }

    def _quality_check_step(self) -> Any:
        """Model Monitor's data-quality baseline of the train split's features (SDK
        ``QualityCheckStep``): the analyzer writes statistics.json and constraints.json in the
        format monitoring schedules read. No check is run (``skip_check``): retraining exists
        for data that drifted, so the step only computes and registers the new baseline."""
        from sagemaker.core.model_monitor.dataset_format import DatasetFormat
        from sagemaker.core.network import NetworkConfig
        from sagemaker.mlops.workflow.check_job_config import CheckJobConfig
        from sagemaker.mlops.workflow.quality_check_step import DataQualityCheckConfig

        features = self.steps[c.PREPROCESS_STEP].properties.ProcessingOutputConfig.Outputs[
            BASELINE_FEATURES_OUTPUT
        ]
        check_job = CheckJobConfig(
            role=self.subs.role_arn,
            instance_count=self.processing_instance_count,
            instance_type=self.processing_instance_type,
            volume_size_in_gb=PROCESSING_VOLUME_GB,
            volume_kms_key=self.subs.kms_key_arn,
            output_kms_key=self.subs.kms_key_arn,
            max_runtime_in_seconds=PROCESSING_MAX_RUNTIME_S,
            sagemaker_session=self.session,
            network_config=NetworkConfig(
                enable_network_isolation=True,
                encrypt_inter_container_traffic=True,
                **self._vpc(),
            ),
        )
        display_name, description = MODEL_MONITOR_BASELINE_DISPLAY
        return _quality_check_step_class()(
            name=c.BASELINE_STEP,
            quality_check_config=DataQualityCheckConfig(
                baseline_dataset=features.S3Output.S3Uri,
                dataset_format=DatasetFormat.csv(header=True),
                output_s3_uri=self._output_uri(c.BASELINE_STEP, MODEL_MONITOR_BASELINE_OUTPUT),
            ),
            check_job_config=check_job,
            skip_check=True,
            register_new_baseline=True,
            display_name=display_name,
            description=description,
            cache_config=self._cache(),
            retry_policies=self._job_retry_policies(),  # a processing job, as the others
        )

    # ---- training / tuning -----------------------------------------------------------------

    def _train_step(self) -> None:
        from sagemaker.core.shapes import Channel, DataSource, S3DataSource, StoppingCondition
        from sagemaker.core.training.configs import (
            CheckpointConfig,
            Compute,
            Networking,
            OutputDataConfig,
        )
        from sagemaker.train.model_trainer import ModelTrainer

        spec = c.TRAIN
        spot = self.inputs.spot_training

        def channel(name: str, uri: Any, content_type: str | None = None) -> Any:
            optional = {"content_type": content_type} if content_type else {}
            return Channel(
                channel_name=name,
                data_source=DataSource(
                    s3_data_source=S3DataSource(s3_data_type="S3Prefix", s3_uri=uri)
                ),
                input_mode="File",
                **optional,
            )

        channels = [
            channel(ch.name, self._source_uri(ch.source), ch.content_type) for ch in spec.channels
        ]
        sourcedir = f"{self.subs.code_uri}/{c.CODE_BUNDLE_SOURCEDIR}"
        channels.append(channel(c.TRAINING_CODE_CHANNEL, sourcedir))
        trainer = ModelTrainer(
            training_image=self._image(spec.image),
            role=self.subs.role_arn,
            sagemaker_session=self.session,
            base_job_name=spec.name.lower(),  # never in the definition: names come at run time
            compute=Compute(
                instance_type=self.training_instance_type,
                instance_count=self.training_instance_count,
                volume_size_in_gb=TRAINING_VOLUME_GB,
                volume_kms_key_id=self.subs.kms_key_arn,
                enable_managed_spot_training=spot,
            ),
            networking=Networking(
                enable_network_isolation=True,
                enable_inter_container_traffic_encryption=True,
                **self._vpc(),
            ),
            stopping_condition=StoppingCondition(
                max_runtime_in_seconds=TRAINING_MAX_RUNTIME_S,
                **({"max_wait_time_in_seconds": SPOT_MAX_WAIT_S} if spot else {}),
            ),
            output_data_config=OutputDataConfig(
                s3_output_path=self._output_uri(spec.name, c.TRAIN_MODEL_OUTPUT),
                kms_key_id=self.subs.kms_key_arn,
            ),
            checkpoint_config=(
                CheckpointConfig(
                    s3_uri=self._output_uri(spec.name, CHECKPOINT_OUTPUT),
                    local_path=CHECKPOINT_LOCAL_PATH,
                )
                if spot
                else None
            ),
            hyperparameters={**spec.hyperparameter_dict, **script_mode_hyperparameters(spec)},
            input_data_config=channels,
        )
        if self.inputs.hyperparameter_tuning:
            self._tuning_step(trainer)
        else:
            self._training_step(trainer)

    def _training_step(self, trainer: Any) -> None:
        from sagemaker.core.training.configs import MetricDefinition
        from sagemaker.mlops.workflow.steps import TrainingStep

        spec = c.TRAIN
        trainer.with_metric_definitions(
            [MetricDefinition(name=m.name, regex=m.regex) for m in spec.metric_definitions]
        )
        display_name, description = DISPLAY[spec.name]
        step = TrainingStep(
            name=spec.name,
            step_args=trainer.train(),
            display_name=display_name,
            description=description,
            cache_config=self._cache(),
            retry_policies=self._job_retry_policies(),
        )
        self.steps[spec.name] = step
        self.model_artifact = step.properties.ModelArtifacts.S3ModelArtifacts

    def _tuning_step(self, trainer: Any) -> None:
        from sagemaker.core.parameter import ContinuousParameter, IntegerParameter
        from sagemaker.core.workflow.functions import Join
        from sagemaker.train.tuner import HyperparameterTuner

        spec = c.TRAIN
        range_types = {"Continuous": ContinuousParameter, "Integer": IntegerParameter}
        tuner = HyperparameterTuner(
            model_trainer=trainer,
            objective_metric_name=spec.objective_metric,
            objective_type=spec.objective_type,
            hyperparameter_ranges={
                name: range_types[kind](low, high)
                for name, (kind, low, high) in TUNING_RANGES.items()
            },
            metric_definitions=[m.as_sagemaker() for m in spec.metric_definitions],
            strategy=TUNING_STRATEGY,
            max_jobs=TUNING_MAX_JOBS,
            max_parallel_jobs=TUNING_MAX_PARALLEL_JOBS,
            early_stopping_type="Off",
        )
        step = _tuning_step_class()(
            name=spec.name,
            step_args=tuner.tune(),
            display_name=TUNING_DISPLAY[0],
            description=TUNING_DISPLAY[1],
            cache_config=self._cache(),
            retry_policies=self._job_retry_policies(),
        )
        step.volume_kms_key_id = self.subs.kms_key_arn
        self.steps[spec.name] = step
        # The best training job's artifact, <S3OutputPath>/<job name>/output/model.tar.gz, from
        # properties of the tuning job that ran: right even when the step is a cache hit of an
        # earlier execution (whose output path holds that execution's id, not this one's).
        self.model_artifact = Join(
            on="/",
            values=[
                step.properties.TrainingJobDefinition.OutputDataConfig.S3OutputPath,
                step.properties.BestTrainingJob.TrainingJobName,
                "output",
                c.MODEL_ARTIFACT,
            ],
        )

    # ---- condition, registration, failure -------------------------------------------------

    def _condition_step(self) -> Any:
        from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
        from sagemaker.core.workflow.functions import Join, JsonGet
        from sagemaker.mlops.workflow.condition_step import ConditionStep
        from sagemaker.mlops.workflow.fail_step import FailStep

        spec = c.CONDITION
        evaluate = self.steps[spec.step]
        (property_file,) = evaluate.property_files

        def auc() -> Any:
            return JsonGet(
                step_name=evaluate.name, property_file=property_file, json_path=spec.json_path
            )

        fail = FailStep(
            name=spec.fail_step,
            display_name=DISPLAY[spec.fail_step][0],
            description=DISPLAY[spec.fail_step][1],
            error_message=Join(
                on=" ",
                values=[
                    "Model not registered: its test AUC",
                    auc(),
                    "is below the threshold",
                    self.auc_threshold,
                ],
            ),
        )
        return ConditionStep(
            name=spec.name,
            display_name=DISPLAY[spec.name][0],
            description=DISPLAY[spec.name][1],
            conditions=[ConditionGreaterThanOrEqualTo(left=auc(), right=self.auc_threshold)],
            if_steps=[self._register_step()],
            else_steps=[fail],
        )

    def _register_step(self) -> Any:
        from sagemaker.core.drift_check_baselines import DriftCheckBaselines
        from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
        from sagemaker.core.workflow.execution_variables import ExecutionVariables
        from sagemaker.core.workflow.functions import Join
        from sagemaker.mlops.workflow.model_step import ModelStep
        from sagemaker.serve.model_builder import ModelBuilder

        def report(step: str, output: str, file_name: str) -> Any:
            prefix = self.steps[step].properties.ProcessingOutputConfig.Outputs[output]
            return MetricsSource(
                s3_uri=Join(on="/", values=[prefix.S3Output.S3Uri, file_name]),
                content_type=METRICS_CONTENT_TYPE,
            )

        evaluation = report(c.CONDITION.step, c.CONDITION.output, c.CONDITION.path)
        mm = self.model_monitor
        if mm:
            # What the SDK's own examples register: the baseline just calculated as the
            # model's data metrics, the baseline used for drift checks as its drift-check
            # baseline (the same files here: skip_check + register_new_baseline).
            check = self.steps[c.BASELINE_STEP].properties

            def source(uri: Any) -> Any:
                return MetricsSource(s3_uri=uri, content_type=METRICS_CONTENT_TYPE)

            statistics = source(check.CalculatedBaselineStatistics)
            constraints = source(check.CalculatedBaselineConstraints)
            drift_statistics = source(check.BaselineUsedForDriftCheckStatistics)
            drift_constraints = source(check.BaselineUsedForDriftCheckConstraints)
        else:
            (baseline,) = c.DATA_QUALITY_BASELINE.outputs
            statistics = report(c.BASELINE_STEP, baseline.name, c.STATISTICS_FILE)
            constraints = report(c.BASELINE_STEP, baseline.name, c.CONSTRAINTS_FILE)
            drift_statistics, drift_constraints = statistics, constraints

        builder = ModelBuilder(
            image_uri=self.subs.serving_image or self._image(c.XGBOOST_IMAGE),
            s3_model_data_url=self.model_artifact,
            env_vars=dict(c.SERVING_ENVIRONMENT),
            role_arn=self.subs.role_arn,
            sagemaker_session=self.session,
            # Given, so that no default is looked up (a JumpStart/hosting-config request).
            instance_type=INFERENCE_INSTANCE_TYPES[1],
            # The artifact carries its serving code (code/ in model.tar.gz), so nothing is
            # packaged. With the default ({"auto": True}) register() stages code anyway:
            # default_bucket(), S3 calls that also create a bucket it cannot see.
            dependencies=None,
        )
        step_args = builder.register(
            model_package_group_name=self.subs.model_package_group,
            content_types=list(INFERENCE_CONTENT_TYPES),
            response_types=list(INFERENCE_RESPONSE_TYPES),
            inference_instances=list(INFERENCE_INSTANCE_TYPES),
            transform_instances=list(TRANSFORM_INSTANCE_TYPES),
            approval_status=self.approval_status,
            # The data it was trained on. The URL goes into the description, whose pattern admits
            # any printable text (an S3 key may hold characters metadata values may not).
            description=Join(  # a pipeline variable, rendered as Std:Join like any other
                on="",
                values=[
                    f"XGBoost binary classifier trained by the {self.inputs.pipeline_name} "
                    "pipeline on ",
                    self.input_data,
                    " (InputDataVersion ",
                    self.data_version,
                    ")",
                ],
            ),
            model_metrics=ModelMetrics(
                model_statistics=evaluation,
                model_data_statistics=statistics,
                model_data_constraints=constraints,
            ),
            drift_check_baselines=DriftCheckBaselines(
                model_data_statistics=drift_statistics,
                model_data_constraints=drift_constraints,
            ),
            # Searchable: the version (Preprocess allows only what metadata values may hold).
            customer_metadata_properties={
                PARAM_INPUT_DATA_VERSION: self.data_version,
                PARAM_TRIGGER_REASON: self.trigger_reason,  # alarm:<name>, schedule, manual
                METADATA_CODE_BUNDLE_HASH: self.inputs.code_uri.rstrip("/").rsplit("/", 1)[-1],
                METADATA_PIPELINE_EXECUTION_ARN: ExecutionVariables.PIPELINE_EXECUTION_ARN,
                # Only model_monitor packages say their baseline is in Model Monitor's format
                # (the monitor_sync Lambda schedules no package without it).
                **({BASELINE_FORMAT_METADATA: BASELINE_FORMAT_MODEL_MONITOR} if mm else {}),
            },
        )
        display_name, description = DISPLAY[c.REGISTER_STEP]
        return ModelStep(
            name=c.CONDITION.register_step,
            step_args=step_args,
            display_name=display_name,
            description=description,
            retry_policies=_step_retry_policies(),  # a SageMaker-job policy is not allowed here
        )


def _with_baseline_features(spec: c.ProcessingStepSpec) -> c.ProcessingStepSpec:
    """Preprocess with its extra output for Model Monitor (``--features-dir``)."""
    from dataclasses import replace

    output = c.ProcessingOutputSpec(
        BASELINE_FEATURES_OUTPUT, BASELINE_FEATURES_DIR, (BASELINE_FEATURES_FILE,)
    )
    return replace(
        spec,
        outputs=(*spec.outputs, output),
        arguments=(*spec.arguments, "--features-dir", BASELINE_FEATURES_DIR),
    )


def _step_retry_policies() -> list[Any]:
    from sagemaker.mlops.workflow.retry import StepExceptionTypeEnum, StepRetryPolicy

    exceptions = [StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING]
    return [StepRetryPolicy(exception_types=exceptions, **STEP_RETRY)]


# --------------------------------------------------------------------------------------------
# SDK classes adjusted (created lazily: the SDK is imported on first use)
# --------------------------------------------------------------------------------------------


@functools.cache
def _restoring_pipeline_class() -> type:
    from sagemaker.mlops.workflow.pipeline import Pipeline

    class RestoringPipeline(Pipeline):  # type: ignore[misc]
        """A ``Pipeline`` whose definition carries the caller's values, not the stand-ins."""

        substitutions: _Substitutions

        def definition(self) -> str:
            with _sdk_context():
                return self.substitutions.restore(super().definition())

    return RestoringPipeline


@functools.cache
def _quality_check_step_class() -> type:
    from sagemaker.mlops.workflow.quality_check_step import QualityCheckStep

    class RenderableQualityCheckStep(QualityCheckStep):  # type: ignore[misc]
        """A ``QualityCheckStep`` whose request renders its network settings.

        SDK 3.27 puts the ``NetworkConfig`` object itself into the CreateProcessingJob request
        (``_check_job_request``), which the definition cannot serialise; it becomes the API's
        ``NetworkConfig`` structure, as the processing steps get it. The step's optional
        fields left unset (no model package group to fetch a baseline from, no supplied
        baseline) are omitted instead of rendered as ``null``, which the definition schema
        does not admit. Its ``RetryPolicies`` (which the definition schema admits for a
        QualityCheck step; the SDK's class takes none) render as a ``ConfigurableRetryStep``'s.
        """

        def __init__(
            self, *args: Any, retry_policies: list[Any] | None = None, **kwargs: Any
        ) -> None:
            super().__init__(*args, **kwargs)
            self.retry_policies = list(retry_policies or [])

        def to_request(self) -> dict[str, Any]:
            request: dict[str, Any] = super().to_request()
            if self.retry_policies:
                request["RetryPolicies"] = [p.to_request() for p in self.retry_policies]
            for key in (
                "ModelPackageGroupName",
                "SuppliedBaselineStatistics",
                "SuppliedBaselineConstraints",
            ):
                if request.get(key) is None:
                    request.pop(key, None)
            return request

        @property
        def arguments(self) -> dict[str, Any]:
            request: dict[str, Any] = super().arguments
            network = request.get("NetworkConfig")
            if network is not None and not isinstance(network, dict):
                request["NetworkConfig"] = network._to_request_dict()
            return request

    return RenderableQualityCheckStep


@functools.cache
def _dataset_input_step_class() -> type:
    from sagemaker.mlops.workflow.steps import ProcessingStep

    class DatasetInputProcessingStep(ProcessingStep):  # type: ignore[misc]
        """A ``ProcessingStep`` with dataset-definition inputs (an Athena query).

        SDK 3.27's ``_processing_input_to_request_dict`` keeps only ``S3Input``, dropping a
        ``ProcessingInput``'s ``DatasetDefinition``; the inputs are given as request
        dictionaries instead and inserted at their place among the inputs.
        """

        dataset_inputs: list[tuple[int, dict[str, Any]]]

        @property
        def arguments(self) -> dict[str, Any]:
            request: dict[str, Any] = super().arguments
            inputs = list(request["ProcessingInputs"])
            for index, processing_input in self.dataset_inputs:
                inputs.insert(index, processing_input)
            request["ProcessingInputs"] = inputs
            return request

    return DatasetInputProcessingStep


@functools.cache
def _tuning_step_class() -> type:
    from sagemaker.mlops.workflow.steps import TuningStep

    class SecureTuningStep(TuningStep):  # type: ignore[misc]
        """A ``TuningStep`` whose training-job definition keeps the trainer's security settings.

        SDK 3.27's ``HyperparameterTuner`` rebuilds the definition from the ``ModelTrainer`` but
        drops its volume KMS key, network isolation and inter-container traffic encryption; they
        are put back into the request (the same values the training step gets).
        """

        volume_kms_key_id: str

        @property
        def arguments(self) -> dict[str, Any]:
            request: dict[str, Any] = super().arguments
            definition = request["TrainingJobDefinition"]
            definition["ResourceConfig"]["VolumeKmsKeyId"] = self.volume_kms_key_id
            definition["EnableNetworkIsolation"] = True
            definition["EnableInterContainerTrafficEncryption"] = True
            return request

    return SecureTuningStep


# --------------------------------------------------------------------------------------------
# Session, checks, SDK context
# --------------------------------------------------------------------------------------------


@functools.cache
def _session(region: str, bucket: str) -> Any:
    """One session per region and bucket stand-in for the process, shared by every build: its
    ~15 boto3 clients (each parsing botocore's JSON models) are created once. Reusing it
    leaves each definition byte-identical (tests: the rebuilt definition is the same text)."""
    import boto3
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    return PipelineSession(
        boto_session=boto3.Session(region_name=region),
        default_bucket=bucket,
        sagemaker_config=json.loads(json.dumps(SDK_CONFIG)),
    )


def _check(inputs: PipelineInputs) -> None:
    for field in fields(inputs):
        value = getattr(inputs, field.name)
        if isinstance(value, str) and not value and field.name not in _OFFLINE_STORE_FIELDS:
            raise ValueError(f"PipelineInputs.{field.name} is empty")
    if len({bool(getattr(inputs, name)) for name in _OFFLINE_STORE_FIELDS}) != 1:
        raise ValueError(f"PipelineInputs.{', '.join(_OFFLINE_STORE_FIELDS)} go together")
    for name in ("subnet_ids", "security_group_ids"):
        ids = getattr(inputs, name)
        if not isinstance(ids, tuple) or not all(isinstance(v, str) and v for v in ids):
            raise TypeError(f"PipelineInputs.{name} must be a tuple of non-empty strings")
    if bool(inputs.subnet_ids) != bool(inputs.security_group_ids):
        raise ValueError("subnet_ids and security_group_ids go together (both or neither)")
    if inputs.monitoring_backend not in MONITORING_BACKENDS:
        raise ValueError(
            f"PipelineInputs.monitoring_backend {inputs.monitoring_backend!r} is not one of "
            f"{', '.join(MONITORING_BACKENDS)}"
        )
    if "${" in inputs.region:
        raise ValueError("PipelineInputs.region must be a concrete region, not a token")
    for name in ("processing_instance_count", "training_instance_count"):
        if getattr(inputs, name) < 1:
            raise ValueError(f"PipelineInputs.{name} must be at least 1")


_OFFLINE_STORE_FIELDS = ("offline_store_query", "offline_store_database", "athena_workgroup")
_context_depth = 0


@contextmanager
def _sdk_context() -> Iterator[None]:
    """Quiet, fast SDK calls while the pipeline is built or rendered (re-entrant).

    * Logging up to WARNING is off: the SDK logs every defaulted or dropped field (e.g.
      "Popping out 'ProcessingJobName'"), all expected here; errors still show.
    * The "Running within a PipelineSession" warning of each job is ignored, and so are the
      SDK's deprecation warnings about its own internal imports.
    * The SDK re-validates the session's config against its JSON schema on every config lookup
      (about 60 per build, about 70 ms each: jsonschema re-checks the schema every time), which
      would triple the build time; each config object is validated once per build instead.
    """
    global _context_depth
    if _context_depth:
        yield
        return
    from sagemaker.core.config.config_manager import SageMakerConfig

    validate = SageMakerConfig.__dict__["validate_sagemaker_config"]
    validated: list[object] = []

    def validate_once(sagemaker_config: Any = None) -> None:
        if any(sagemaker_config is done for done in validated):
            return
        validate.__func__(sagemaker_config)
        validated.append(sagemaker_config)

    disabled = logging.root.manager.disable
    _context_depth += 1
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Running within a PipelineSession")
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="sagemaker")
            logging.disable(logging.WARNING)
            SageMakerConfig.validate_sagemaker_config = staticmethod(validate_once)
            yield
    finally:
        SageMakerConfig.validate_sagemaker_config = validate
        logging.disable(disabled)
        _context_depth -= 1
