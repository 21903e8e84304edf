"""What each registered model package records for the audit trail (README "Audit"): the data
version, the code bundle hash and the pipeline execution that registered it, in every stage's
deployed pipeline definition; the request validated against botocore's CreateModelPackage."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipelines.model_build import contract as c
from pipelines.model_build import definition as d
from tests.conftest import EPHEMERAL_STAGE, SHARED_STAGES, resources_of_type
from tests.pipelines.test_job_arguments import (
    EXECUTION_ARN,
    Execution,
    all_steps,
    errors_of,
    render_cfn,
)

CODE_PREFIX = "code/model-build/"


@pytest.fixture(scope="module", params=(*SHARED_STAGES, EPHEMERAL_STAGE))
def stage(request: pytest.FixtureRequest, templates: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(deployed definition, the hash of the code bundle the stack uploads)."""
    name = str(request.param)
    template = templates[name]["ModelBuild"]
    (pipeline,) = resources_of_type(template, "AWS::SageMaker::Pipeline").values()
    body = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]
    (prefix,) = [
        r["Properties"]["DestinationBucketKeyPrefix"]
        for r in resources_of_type(template, "Custom::CDKBucketDeployment").values()
        if r["Properties"]["DestinationBucketKeyPrefix"].startswith(CODE_PREFIX)
    ]
    return json.loads(render_cfn(body, name)), prefix.removeprefix(CODE_PREFIX).rstrip("/")


def test_model_package_records_data_version_code_hash_and_execution(
    stage: tuple[dict[str, Any], str],
) -> None:
    doc, code_hash = stage
    register = all_steps(doc)[c.REGISTER_STEP]
    assert register["Type"] == "RegisterModel"
    assert register["Arguments"]["CustomerMetadataProperties"] == {
        d.PARAM_INPUT_DATA_VERSION: {"Get": "Parameters.InputDataVersion"},
        d.PARAM_TRIGGER_REASON: {"Get": "Parameters.TriggerReason"},
        d.METADATA_CODE_BUNDLE_HASH: code_hash,
        d.METADATA_PIPELINE_EXECUTION_ARN: {"Get": "Execution.PipelineExecutionArn"},
    }
    # The hash is the bundle every job of this definition reads its code from.
    assert f"/{CODE_PREFIX}{code_hash}/" in json.dumps(doc)
    assert len(code_hash) == 16 and int(code_hash, 16) >= 0


def test_the_request_is_a_valid_create_model_package(stage: tuple[dict[str, Any], str]) -> None:
    doc, code_hash = stage
    assert errors_of(doc)[c.REGISTER_STEP] == []
    metadata = Execution(doc).request(all_steps(doc)[c.REGISTER_STEP])["CustomerMetadataProperties"]
    resolved = {k: Execution(doc).literal(v) for k, v in metadata.items()}
    assert resolved[d.METADATA_PIPELINE_EXECUTION_ARN] == EXECUTION_ARN
    assert resolved[d.METADATA_CODE_BUNDLE_HASH] == code_hash


def test_a_value_the_metadata_pattern_refuses_is_caught(stage: tuple[dict[str, Any], str]) -> None:
    doc, _ = stage
    broken = json.loads(json.dumps(doc))
    register = all_steps(broken)[c.REGISTER_STEP]
    register["Arguments"]["CustomerMetadataProperties"][d.METADATA_CODE_BUNDLE_HASH] = "a,b"
    (error,) = errors_of(broken)[c.REGISTER_STEP]
    assert error.startswith("CustomerMetadataProperties.CodeBundleHash: 'a,b' does not match")
