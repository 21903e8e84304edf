"""The runtime contract of the model-build pipeline: one place for paths, arguments and names.

Both the SageMaker pipeline definition and the local runner (``local_run.py``) build their steps
from the objects below, so "same scripts, same arguments, same container paths" holds by
construction. Plain data only: no SageMaker (or any third-party) import.

Data flow (``StepOutputRef`` says which step output feeds which input)::

    raw CSV(s) --> Preprocess --train/validation/test/transform-->
        DataQualityBaseline (train)      -> statistics.json, constraints.json, reference.csv
        Train (train, validation, transform channels) -> model.tar.gz
        Evaluate (model.tar.gz, test)    -> evaluation.json
    CheckAucThreshold: evaluation.json[binary_classification_metrics.auc.value] >= threshold
        -> register the model, else Fail step.

The input schema is fixed: ``INPUT_COLUMNS`` (``FEATURES`` in order, then ``target``). Preprocess
gets it as ``--columns`` and rejects any other header; the feature transform it fits (and the model
artifact carries as ``feature_transform.json``) keeps that order, which serving relies on.

Argument values given at run time are ``ParameterValue``s: a pipeline parameter in the definition
(``InputDataVersion``, ``AucThreshold``), the corresponding option of the local run.

Every processing script takes ``--failure-file /opt/ml/output/message``: SageMaker Processing
returns the first 1 KB of that file as the job's ``ExitMessage``. Training failures are written to
``/opt/ml/output/failure`` by the SageMaker training toolkit itself (``FailureReason``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# --------------------------------------------------------------------------------------------
# Names shared with the scripts (and with model_format.py, checked by a test)
# --------------------------------------------------------------------------------------------

TARGET_COLUMN = "target"
#: The model's features, in the order the model, its transform and serving use (the bundled
#: dataset's columns: scikit-learn's breast-cancer features, snake_case).
FEATURES: tuple[str, ...] = (
    "mean_radius", "mean_texture", "mean_perimeter", "mean_area", "mean_smoothness",
    "mean_compactness", "mean_concavity", "mean_concave_points", "mean_symmetry",
    "mean_fractal_dimension",
    "radius_error", "texture_error", "perimeter_error", "area_error", "smoothness_error",
    "compactness_error", "concavity_error", "concave_points_error", "symmetry_error",
    "fractal_dimension_error",
    "worst_radius", "worst_texture", "worst_perimeter", "worst_area", "worst_smoothness",
    "worst_compactness", "worst_concavity", "worst_concave_points", "worst_symmetry",
    "worst_fractal_dimension",
)  # fmt: skip
#: The header an input CSV must have, exactly (names and order).
INPUT_COLUMNS: tuple[str, ...] = (*FEATURES, TARGET_COLUMN)
TRAIN_FILE = "train.csv"
VALIDATION_FILE = "validation.csv"
TEST_FILE = "test.csv"
TRANSFORM_FILE = "feature_transform.json"  # == model_format.TRANSFORM_FILE
MODEL_FILE = "xgboost-model.json"  # == model_format.MODEL_FILE
MODEL_ARTIFACT = "model.tar.gz"  # what SageMaker makes of /opt/ml/model
MODEL_CODE_SUBDIR = "code"  # train.py copies the serving code to <model_dir>/code/
STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
#: The drift job's reference sample, next to statistics.json (== monitoring.drift.baseline's).
REFERENCE_FILE = "reference.csv"
EVALUATION_FILE = "evaluation.json"

#: Serving environment for the model (the artifact carries its code in ``code/``).
SERVING_ENVIRONMENT: dict[str, str] = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
}

# Repository paths (relative to the repo root) of the code each step runs.
MODEL_CODE_DIR = "pipelines/model_build/model_code"
SCRIPTS_DIR = "pipelines/model_build/scripts"
BUNDLED_DATASET = "pipelines/model_build/data/breast_cancer.csv"
#: Where the CDK stack uploads the bundled dataset, relative to the raw bucket.
RAW_DATASET_PREFIX = "datasets/breast_cancer/"
RAW_DATASET_KEY = RAW_DATASET_PREFIX + "breast_cancer.csv"

# --------------------------------------------------------------------------------------------
# Container paths
# --------------------------------------------------------------------------------------------

PROCESSING_ROOT = "/opt/ml/processing"
PROCESSING_CODE_DIR = "/opt/ml/processing/input/code"  # where SageMaker puts `code=`
PROCESSING_FAILURE_FILE = "/opt/ml/output/message"  # -> DescribeProcessingJob.ExitMessage
TRAINING_CODE_DIR = "/opt/ml/code"  # where the training toolkit unpacks source_dir
TRAINING_MODEL_DIR = "/opt/ml/model"  # SM_MODEL_DIR, tarred into model.tar.gz
TRAINING_OUTPUT_DATA_DIR = "/opt/ml/output/data"  # SM_OUTPUT_DATA_DIR
TRAINING_CHANNEL_ROOT = "/opt/ml/input/data"  # SM_CHANNEL_<NAME> = <root>/<name>


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSpec:
    """A SageMaker framework image: ``image_uris.retrieve(framework, region, version)``."""

    framework: str  # "sklearn" | "xgboost"
    version: str
    repository: str  # ECR repository name, e.g. "sagemaker-scikit-learn"
    py_version: str = "py3"

    @property
    def tag(self) -> str:
        return f"{self.repository}:{self.version}"


SKLEARN_IMAGE = ImageSpec("sklearn", "1.2-1", "sagemaker-scikit-learn")
XGBOOST_IMAGE = ImageSpec("xgboost", "1.7-1", "sagemaker-xgboost")


# --------------------------------------------------------------------------------------------
# Data sources
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepOutputRef:
    """An output of an upstream step (for Train, output ``model`` is ``model.tar.gz``)."""

    step: str
    output: str


@dataclass(frozen=True)
class PipelineData:
    """Data the pipeline is given (a pipeline parameter holding an S3 URI)."""

    parameter: str
    default_key: str  # key under the raw bucket


@dataclass(frozen=True)
class RepoAsset:
    """A directory of this repository uploaded as-is (e.g. as a CDK asset)."""

    path: str


Source = StepOutputRef | PipelineData | RepoAsset


# --------------------------------------------------------------------------------------------
# Run-time argument values
# --------------------------------------------------------------------------------------------

#: The version of the input data (any label that changes whenever the data does: a date, a
#: commit, an S3 version id...). It is part of Preprocess's arguments, so cached step results
#: are reused only for the same URI *and* version, and it is recorded on the model package.
PARAM_INPUT_DATA_VERSION = "InputDataVersion"
#: The AUC a model must reach to be registered (a finite number in [0, 1]).
PARAM_AUC_THRESHOLD = "AucThreshold"
#: What a data version may hold: it becomes model package metadata
#: (``CustomerMetadataProperties`` values: letters, digits, spaces and ``_.:/=+-@``, at most
#: 256 characters); kept to ASCII and 128 characters here.
DATA_VERSION_PATTERN = r"[A-Za-z0-9_.:/=+\-@]([A-Za-z0-9 _.:/=+\-@]{0,126}[A-Za-z0-9_.:/=+\-@])?"


@dataclass(frozen=True)
class ParameterValue:
    """An argument given at run time: ``prefix`` + the value of pipeline parameter ``parameter``.

    Option and value form ONE argument (``--name=value``): a value such as ``-Infinity`` or
    ``-v1`` given as a separate argument would be read as an option by argparse.
    """

    parameter: str
    prefix: str = ""

    def render(self, value: str) -> str:
        return self.prefix + value


Argument = str | ParameterValue


# --------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------

PREPROCESS_STEP = "Preprocess"
BASELINE_STEP = "DataQualityBaseline"
TRAIN_STEP = "Train"
EVALUATE_STEP = "Evaluate"
CONDITION_STEP = "CheckAucThreshold"
REGISTER_STEP = "RegisterModel"
FAIL_STEP = "AucBelowThreshold"

#: The output name of the training step's model artifact (``StepOutputRef(TRAIN_STEP, ...)``).
TRAIN_MODEL_OUTPUT = "model"


@dataclass(frozen=True)
class ProcessingInputSpec:
    name: str  # ProcessingInput.input_name
    container_path: str  # ProcessingInput.destination
    source: Source


@dataclass(frozen=True)
class ProcessingOutputSpec:
    name: str  # ProcessingOutput.output_name
    container_path: str  # ProcessingOutput.source
    files: tuple[str, ...]  # files the script writes there


@dataclass(frozen=True)
class ProcessingStepSpec:
    name: str
    image: ImageSpec
    script: str  # repo-relative path of the script (ProcessingStep `code=`)
    inputs: tuple[ProcessingInputSpec, ...]
    outputs: tuple[ProcessingOutputSpec, ...]
    arguments: tuple[Argument, ...]
    command: tuple[str, ...] = ("python3",)
    failure_file: str = PROCESSING_FAILURE_FILE

    @property
    def script_name(self) -> str:
        return self.script.rsplit("/", 1)[-1]

    @property
    def code_container_path(self) -> str:
        return f"{PROCESSING_CODE_DIR}/{self.script_name}"

    def resolved_arguments(self, values: dict[str, str]) -> tuple[str, ...]:
        """The arguments with each ``ParameterValue`` replaced by ``values[parameter]``."""
        return tuple(
            a.render(values[a.parameter]) if isinstance(a, ParameterValue) else a
            for a in self.arguments
        )

    def input(self, name: str) -> ProcessingInputSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.name} has no input {name!r}")

    def output(self, name: str) -> ProcessingOutputSpec:
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.name} has no output {name!r}")


@dataclass(frozen=True)
class TrainingChannelSpec:
    name: str  # channel name: SM_CHANNEL_<NAME>, /opt/ml/input/data/<name>
    source: StepOutputRef
    content_type: str

    @property
    def container_path(self) -> str:
        return f"{TRAINING_CHANNEL_ROOT}/{self.name}"

    @property
    def env_var(self) -> str:
        return f"SM_CHANNEL_{self.name.upper()}"


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    regex: str

    def as_sagemaker(self) -> dict[str, str]:
        return {"Name": self.name, "Regex": self.regex}


@dataclass(frozen=True)
class TrainingStepSpec:
    name: str
    image: ImageSpec
    source_dir: str  # repo-relative; unpacked to /opt/ml/code
    entry_point: str
    hyperparameters: tuple[tuple[str, str], ...]
    channels: tuple[TrainingChannelSpec, ...]
    metric_definitions: tuple[MetricDefinition, ...]
    objective_metric: str  # for a tuning job
    objective_type: str  # "Minimize" | "Maximize"
    model_dir: str = TRAINING_MODEL_DIR
    output_data_dir: str = TRAINING_OUTPUT_DATA_DIR
    code_dir: str = TRAINING_CODE_DIR

    @property
    def hyperparameter_dict(self) -> dict[str, str]:
        return dict(self.hyperparameters)

    def arguments(self, hyperparameters: dict[str, str] | None = None) -> tuple[str, ...]:
        """The command line script mode gives the entry point (``--key value``, sorted keys)."""
        values = self.hyperparameter_dict
        values.update(hyperparameters or {})
        args: list[str] = []
        for key in sorted(values):
            args += [f"--{key}", values[key]]
        return tuple(args)

    def environment(self) -> dict[str, str]:
        """The SM_* variables the training toolkit sets (container paths)."""
        env = {channel.env_var: channel.container_path for channel in self.channels}
        env["SM_MODEL_DIR"] = self.model_dir
        env["SM_OUTPUT_DATA_DIR"] = self.output_data_dir
        return env

    def channel(self, name: str) -> TrainingChannelSpec:
        for spec in self.channels:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.name} has no channel {name!r}")


@dataclass(frozen=True)
class ConditionSpec:
    """CheckAucThreshold: JsonGet(Evaluate's property file, json_path) >= threshold."""

    name: str
    step: str  # the step owning the property file
    property_file: str  # PropertyFile.name
    output: str  # PropertyFile.output_name
    path: str  # PropertyFile.path
    json_path: str
    default_threshold: float
    register_step: str
    fail_step: str

    @property
    def key_path(self) -> tuple[str, ...]:
        return tuple(self.json_path.split("."))


def _io(kind: str, name: str) -> str:
    return f"{PROCESSING_ROOT}/{kind}/{name}"


def _argv(*pairs: tuple[str, Argument]) -> tuple[Argument, ...]:
    return tuple(token for pair in pairs for token in pair)


# ---- Preprocess --------------------------------------------------------------------------

SPLIT_SEED = 42
VALIDATION_FRACTION = 0.15
TEST_FRACTION = 0.15
MIN_ROWS = 50

_PRE_IN_RAW = ProcessingInputSpec(
    "raw", _io("input", "raw"), PipelineData("InputDataUrl", RAW_DATASET_PREFIX)
)
_PRE_IN_CODE = ProcessingInputSpec(
    "model_code", _io("input", "model_code"), RepoAsset(MODEL_CODE_DIR)
)
_PRE_OUT = {
    "train": ProcessingOutputSpec("train", _io("output", "train"), (TRAIN_FILE,)),
    "validation": ProcessingOutputSpec(
        "validation", _io("output", "validation"), (VALIDATION_FILE,)
    ),
    "test": ProcessingOutputSpec("test", _io("output", "test"), (TEST_FILE,)),
    "transform": ProcessingOutputSpec("transform", _io("output", "transform"), (TRANSFORM_FILE,)),
}

PREPROCESS = ProcessingStepSpec(
    name=PREPROCESS_STEP,
    image=SKLEARN_IMAGE,
    script=f"{SCRIPTS_DIR}/preprocess.py",
    inputs=(_PRE_IN_RAW, _PRE_IN_CODE),
    outputs=tuple(_PRE_OUT.values()),
    arguments=(
        *_argv(
            ("--input", _PRE_IN_RAW.container_path),
            ("--model-code-dir", _PRE_IN_CODE.container_path),
            ("--train-dir", _PRE_OUT["train"].container_path),
            ("--validation-dir", _PRE_OUT["validation"].container_path),
            ("--test-dir", _PRE_OUT["test"].container_path),
            ("--transform-dir", _PRE_OUT["transform"].container_path),
            ("--validation-fraction", str(VALIDATION_FRACTION)),
            ("--test-fraction", str(TEST_FRACTION)),
            ("--seed", str(SPLIT_SEED)),
            ("--min-rows", str(MIN_ROWS)),
            ("--failure-file", PROCESSING_FAILURE_FILE),
        ),
        ParameterValue(PARAM_INPUT_DATA_VERSION, "--data-version="),
        "--columns",  # one argument each: a container argument holds at most 256 characters
        *INPUT_COLUMNS,
    ),
)

# ---- DataQualityBaseline -----------------------------------------------------------------

BASELINE_BUCKETS = 10
#: reference.csv holds at most this many training rows (a seeded sample of a larger split): up to
#: 1000 reference rows Evidently tests numerical drift with Kolmogorov-Smirnov (see baseline.py).
REFERENCE_ROWS = 1000
REFERENCE_SEED = 42

_BASE_IN = ProcessingInputSpec(
    "train", _io("input", "train"), StepOutputRef(PREPROCESS_STEP, "train")
)
_BASE_OUT = ProcessingOutputSpec(
    "baseline", _io("output", "baseline"), (STATISTICS_FILE, CONSTRAINTS_FILE, REFERENCE_FILE)
)

DATA_QUALITY_BASELINE = ProcessingStepSpec(
    name=BASELINE_STEP,
    image=SKLEARN_IMAGE,
    script=f"{SCRIPTS_DIR}/baseline.py",
    inputs=(_BASE_IN,),
    outputs=(_BASE_OUT,),
    arguments=(
        *_argv(
            ("--input", _BASE_IN.container_path),
            ("--output-dir", _BASE_OUT.container_path),
            ("--buckets", str(BASELINE_BUCKETS)),
            ("--reference-rows", str(REFERENCE_ROWS)),
            ("--seed", str(REFERENCE_SEED)),
            ("--failure-file", PROCESSING_FAILURE_FILE),
        ),
        "--features",  # one argument each, like Preprocess's --columns
        *FEATURES,
    ),
)

# ---- Train ---------------------------------------------------------------------------------

HYPERPARAMETERS: tuple[tuple[str, str], ...] = (
    ("max_depth", "4"),
    ("eta", "0.2"),
    ("num_round", "200"),
    ("subsample", "0.8"),
    ("min_child_weight", "1"),
    ("early_stopping_rounds", "20"),
    ("seed", "42"),
    ("nthread", "1"),
)

TRAIN = TrainingStepSpec(
    name=TRAIN_STEP,
    image=XGBOOST_IMAGE,
    source_dir=MODEL_CODE_DIR,
    entry_point="train.py",
    hyperparameters=HYPERPARAMETERS,
    channels=(
        TrainingChannelSpec("train", StepOutputRef(PREPROCESS_STEP, "train"), "text/csv"),
        TrainingChannelSpec("validation", StepOutputRef(PREPROCESS_STEP, "validation"), "text/csv"),
        TrainingChannelSpec(
            "transform", StepOutputRef(PREPROCESS_STEP, "transform"), "application/json"
        ),
    ),
    metric_definitions=(
        MetricDefinition("validation:auc", r"validation-auc: ([0-9]*\.?[0-9]+)"),
        MetricDefinition("train:auc", r"train-auc: ([0-9]*\.?[0-9]+)"),
        MetricDefinition("validation:logloss", r"validation-logloss: ([0-9]*\.?[0-9]+)"),
        MetricDefinition("train:logloss", r"train-logloss: ([0-9]*\.?[0-9]+)"),
    ),
    # The validation AUC of this data saturates at 1.0 (ties between candidates, so a tuning
    # job would pick any of them, the most overfit included); the log loss keeps discriminating.
    objective_metric="validation:logloss",
    objective_type="Minimize",
)

# ---- Evaluate ------------------------------------------------------------------------------

_EVAL_IN_MODEL = ProcessingInputSpec(
    "model", _io("input", "model"), StepOutputRef(TRAIN_STEP, TRAIN_MODEL_OUTPUT)
)
_EVAL_IN_TEST = ProcessingInputSpec(
    "test", _io("input", "test"), StepOutputRef(PREPROCESS_STEP, "test")
)
_EVAL_OUT = ProcessingOutputSpec("evaluation", _io("output", "evaluation"), (EVALUATION_FILE,))
CLASSIFICATION_THRESHOLD = 0.5

EVALUATE = ProcessingStepSpec(
    name=EVALUATE_STEP,
    image=XGBOOST_IMAGE,
    script=f"{SCRIPTS_DIR}/evaluate.py",
    inputs=(_EVAL_IN_MODEL, _EVAL_IN_TEST),
    outputs=(_EVAL_OUT,),
    arguments=(
        *_argv(
            ("--model-dir", _EVAL_IN_MODEL.container_path),
            ("--test", _EVAL_IN_TEST.container_path),
            ("--output-dir", _EVAL_OUT.container_path),
            ("--classification-threshold", str(CLASSIFICATION_THRESHOLD)),
            ("--failure-file", PROCESSING_FAILURE_FILE),
        ),
        # Checked at run time (a finite number in [0, 1]): the condition compares with it.
        ParameterValue(PARAM_AUC_THRESHOLD, "--auc-threshold="),
    ),
)

# ---- Condition -----------------------------------------------------------------------------

#: The closed range of a probability threshold (the AUC threshold, a classification cut-off).
THRESHOLD_RANGE = (0.0, 1.0)


def check_threshold(value: object, name: str = "threshold") -> float:
    """``value`` as a float if it is a finite number in [0, 1] (closed); else ``ValueError``.

    Accepts an int or float (not a bool) or a string holding a number (a command-line value);
    the error is one line naming ``name``, the value given and the allowed range.
    """
    low, high = THRESHOLD_RANGE
    allowed = f"a finite number in [{low:g}, {high:g}]"
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or not low <= number <= high:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return number


AUC_JSON_PATH = "binary_classification_metrics.auc.value"
DEFAULT_AUC_THRESHOLD = 0.9

CONDITION = ConditionSpec(
    name=CONDITION_STEP,
    step=EVALUATE_STEP,
    property_file="EvaluationReport",
    output=_EVAL_OUT.name,
    path=EVALUATION_FILE,
    json_path=AUC_JSON_PATH,
    default_threshold=DEFAULT_AUC_THRESHOLD,
    register_step=REGISTER_STEP,
    fail_step=FAIL_STEP,
)

#: Execution order (also a valid topological order of the DAG).
STEP_ORDER: tuple[str, ...] = (
    PREPROCESS_STEP,
    BASELINE_STEP,
    TRAIN_STEP,
    EVALUATE_STEP,
    CONDITION_STEP,
)
PROCESSING_STEPS: tuple[ProcessingStepSpec, ...] = (PREPROCESS, DATA_QUALITY_BASELINE, EVALUATE)

# --------------------------------------------------------------------------------------------
# Code bundle: what the CDK stack uploads under <code_uri>/ and the pipeline's jobs read
# --------------------------------------------------------------------------------------------

CODE_BUNDLE_SCRIPTS = "scripts"  # <code_uri>/scripts/<script file>: a processing job's `code`
CODE_BUNDLE_MODEL_CODE = "model_code"  # <code_uri>/model_code/<files of MODEL_CODE_DIR>
CODE_BUNDLE_SOURCEDIR = "sourcedir.tar.gz"  # <code_uri>/sourcedir.tar.gz: MODEL_CODE_DIR, tarred
#: The training channel holding sourcedir.tar.gz; script mode extracts it from this local path
#: (``sagemaker_submit_directory``), so the training job needs no network access for its code.
TRAINING_CODE_CHANNEL = "code"
TRAINING_SOURCEDIR_PATH = f"{TRAINING_CHANNEL_ROOT}/{TRAINING_CODE_CHANNEL}/{CODE_BUNDLE_SOURCEDIR}"


def code_bundle_key(repo_path: str) -> str:
    """The key, relative to <code_uri>/, of a script or code directory of this repository."""
    if repo_path == MODEL_CODE_DIR:
        return CODE_BUNDLE_MODEL_CODE
    directory, _, name = repo_path.rpartition("/")
    if directory == SCRIPTS_DIR and name:
        return f"{CODE_BUNDLE_SCRIPTS}/{name}"
    raise KeyError(f"{repo_path!r} is not part of the code bundle")
