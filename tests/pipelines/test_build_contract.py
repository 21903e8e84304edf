"""contract.py is the single source of truth: scripts accept exactly its arguments, container
defaults agree with it and the DAG is consistent. (That the code shipped into the images runs
there: tests/pipelines/test_container_code.py.)"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from mb_helpers import REPO_ROOT

from pipelines.model_build import contract as c


@pytest.fixture(scope="module")
def scripts(
    preprocess: ModuleType, baseline: ModuleType, evaluate: ModuleType
) -> dict[str, ModuleType]:
    return {c.PREPROCESS_STEP: preprocess, c.BASELINE_STEP: baseline, c.EVALUATE_STEP: evaluate}


def test_names_match_model_format(model_format: ModuleType) -> None:
    assert c.MODEL_FILE == model_format.MODEL_FILE
    assert c.TRANSFORM_FILE == model_format.TRANSFORM_FILE


@pytest.mark.parametrize("spec", c.PROCESSING_STEPS, ids=lambda s: s.name)
def test_processing_arguments_cover_declared_paths(spec: c.ProcessingStepSpec) -> None:
    container_args = [a for a in spec.arguments if isinstance(a, str) and a.startswith("/opt/ml/")]
    declared = [i.container_path for i in spec.inputs] + [o.container_path for o in spec.outputs]
    assert sorted(container_args) == sorted([*declared, spec.failure_file])
    assert all(p.startswith(c.PROCESSING_ROOT + "/") for p in declared)
    assert spec.failure_file == "/opt/ml/output/message"
    assert (REPO_ROOT / spec.script).is_file()
    assert spec.code_container_path == f"/opt/ml/processing/input/code/{Path(spec.script).name}"


@pytest.mark.parametrize("spec", c.PROCESSING_STEPS, ids=lambda s: s.name)
def test_scripts_accept_contract_arguments_and_default_to_them(
    spec: c.ProcessingStepSpec, scripts: dict[str, ModuleType]
) -> None:
    parser = scripts[spec.name].build_parser()
    runtime = {c.PARAM_INPUT_DATA_VERSION: "-v1", c.PARAM_AUC_THRESHOLD: "-Infinity"}
    from_contract = vars(parser.parse_args(list(spec.resolved_arguments(runtime))))
    # Options without a default are given on every run: run-time parameters and the schema.
    required = {a.dest: a for a in parser._actions if a.required}
    given = {p.parameter: p for p in spec.arguments if isinstance(p, c.ParameterValue)}
    expected_required = {
        c.PREPROCESS_STEP: {"data_version", "columns"},
        c.BASELINE_STEP: {"features"},
        c.EVALUATE_STEP: {"auc_threshold"},
    }.get(spec.name, set())
    assert set(required) == expected_required
    for dest in required:
        from_contract.pop(dest)
    if "columns" in required:
        assert spec.arguments[-len(c.INPUT_COLUMNS) - 1 :] == ("--columns", *c.INPUT_COLUMNS)
    if "features" in required:
        assert spec.arguments[-len(c.FEATURES) - 1 :] == ("--features", *c.FEATURES)
    # A parameter's value reaches the script whole, even one starting with "-".
    for name, value in runtime.items():
        if name in given:
            dest = given[name].prefix.removeprefix("--").removesuffix("=").replace("-", "_")
            assert vars(parser.parse_args(list(spec.resolved_arguments(runtime))))[dest] == value
    defaults = {a.dest: a.default for a in parser._actions if not a.required and a.dest != "help"}
    # Every other option is given by the contract, and the script's defaults are those values.
    assert from_contract == defaults


def test_training_arguments_and_environment(train_script: ModuleType) -> None:
    args = c.TRAIN.arguments()
    keys = args[::2]
    assert list(keys) == sorted(keys) and all(k.startswith("--") for k in keys)
    assert dict(zip(keys, args[1::2], strict=True))["--max_depth"] == "4"
    assert c.TRAIN.arguments({"max_depth": "6"})[args.index("--max_depth") + 1] == "6"
    env = c.TRAIN.environment()
    assert env == {
        "SM_CHANNEL_TRAIN": "/opt/ml/input/data/train",
        "SM_CHANNEL_VALIDATION": "/opt/ml/input/data/validation",
        "SM_CHANNEL_TRANSFORM": "/opt/ml/input/data/transform",
        "SM_MODEL_DIR": "/opt/ml/model",
        "SM_OUTPUT_DATA_DIR": "/opt/ml/output/data",
    }
    parsed = train_script.parse_args(list(args), env)
    for key, value in c.TRAIN.hyperparameter_dict.items():
        assert str(getattr(parsed, key)) in {value, str(float(value))}
    assert parsed.train == Path(env["SM_CHANNEL_TRAIN"])
    # Without the env (not in SageMaker), the defaults are the same container paths.
    assert vars(train_script.parse_args(list(args), {})) == vars(parsed)
    assert [ch.name for ch in c.TRAIN.channels] == ["train", "validation", "transform"]
    assert (REPO_ROOT / c.TRAIN.source_dir / c.TRAIN.entry_point).is_file()


def test_metric_regexes_parse_train_output() -> None:
    regex = {m.name: re.compile(m.regex) for m in c.TRAIN.metric_definitions}
    line = (
        "[3] train-auc: 0.998000 train-logloss: 0.2 validation-auc: 0.987654"
        " validation-logloss: 0.3"
    )
    assert regex["validation:auc"].findall(line) == ["0.987654"]
    assert regex["train:auc"].findall(line) == ["0.998000"]
    assert regex["validation:auc"].findall("validation-auc: 1.000000") == ["1.000000"]
    assert regex["validation:logloss"].findall(line) == ["0.3"]
    assert regex["train:logloss"].findall(line) == ["0.2"]
    # The tuning objective: a defined metric, minimised (the AUC saturates on this data).
    assert (c.TRAIN.objective_metric, c.TRAIN.objective_type) == ("validation:logloss", "Minimize")
    assert c.TRAIN.objective_metric in regex
    assert c.TRAIN.metric_definitions[0].as_sagemaker() == {
        "Name": "validation:auc",
        "Regex": c.TRAIN.metric_definitions[0].regex,
    }


def test_dag_references_earlier_steps_and_declared_outputs() -> None:
    order = {name: i for i, name in enumerate(c.STEP_ORDER)}
    outputs = {spec.name: {o.name for o in spec.outputs} for spec in c.PROCESSING_STEPS}
    outputs[c.TRAIN_STEP] = {c.TRAIN_MODEL_OUTPUT}
    consumers = [(s.name, i.source) for s in c.PROCESSING_STEPS for i in s.inputs]
    consumers += [(c.TRAIN_STEP, ch.source) for ch in c.TRAIN.channels]
    refs = 0
    for consumer, source in consumers:
        if isinstance(source, c.StepOutputRef):
            refs += 1
            assert order[source.step] < order[consumer]
            assert source.output in outputs[source.step]
        elif isinstance(source, c.RepoAsset):
            assert (REPO_ROOT / source.path).is_dir()
    assert refs == 6  # baseline 1, train 3, evaluate 2
    assert c.CONDITION.output in outputs[c.CONDITION.step]
    assert c.CONDITION.key_path == ("binary_classification_metrics", "auc", "value")
    assert c.CONDITION.path == c.EVALUATION_FILE
    assert c.RAW_DATASET_KEY == "datasets/breast_cancer/breast_cancer.csv"


def test_contract_is_plain_data() -> None:
    tree = ast.parse((REPO_ROOT / "pipelines/model_build/contract.py").read_text())
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


@pytest.mark.parametrize("value", [0, 0.0, 0.5, 1, 1.0, "0.9", " 1 "])
def test_check_threshold_accepts_finite_numbers_in_the_closed_unit_range(value: object) -> None:
    assert c.check_threshold(value) == float(str(value).strip())


@pytest.mark.parametrize(
    "value",
    [-0.0001, 1.0001, -1, 2, float("nan"), float("inf"), float("-inf"), "nan", "inf", "-inf",
     "Infinity", "", "0.9x", None, True, False, [0.5]],
)  # fmt: skip
def test_check_threshold_rejects_everything_else_in_one_line(value: object) -> None:
    with pytest.raises(ValueError) as caught:
        c.check_threshold(value, "AucThreshold")
    message = str(caught.value)
    assert message == f"AucThreshold must be a finite number in [0, 1], got {value!r}"
    assert "\n" not in message
