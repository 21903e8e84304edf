"""Serverless stages: the synthesized workflow gives CreateModel the handler's capture settings and
the model's execution role may write there; instance stages leave capture to SageMaker."""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

from pipelines.model_build.model_code import data_capture
from pipelines.model_build.model_code.data_capture import CaptureConfig


def _render(join: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The definition with each CloudFormation token replaced by a placeholder, and the map."""
    separator, parts = join["Fn::Join"]
    tokens: dict[str, str] = {}
    text = []
    for part in parts:
        if isinstance(part, str):
            text.append(part)
        else:
            placeholder = tokens.setdefault(json.dumps(part, sort_keys=True), f"T{len(tokens)}")
            text.append(placeholder)
    return json.loads(separator.join(text)), {v: k for k, v in tokens.items()}


def _policy_statements(template: dict[str, Any], contains: str) -> list[dict[str, Any]]:
    (policy,) = [
        r
        for logical_id, r in template["Resources"].items()
        if r["Type"] == "AWS::IAM::Policy" and contains in logical_id
    ]
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


def _bucket(token: dict[str, Any]) -> tuple[str, str]:
    """(stack, construct id of the bucket) of a cross-stack reference to a bucket's Ref/Arn."""
    output = token["Fn::GetStackOutput"]
    match = re.search(r"ArtifactsBucket[0-9A-F]{8}", output["OutputName"])
    assert match, output
    return output["StackName"], match.group(0)


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def test_serverless_models_carry_the_capture_settings_and_may_write_them(
    templates: dict[str, dict[str, dict[str, Any]]],
) -> None:
    kinds = []
    for stage_name, stacks in templates.items():
        template = stacks["Deployment"]
        (machine,) = [
            r
            for r in template["Resources"].values()
            if r["Type"] == "AWS::StepFunctions::StateMachine"
        ]
        definition, tokens = _render(machine["Properties"]["DefinitionString"])
        states = definition["States"]
        container = states["CreateModel"]["Parameters"]["PrimaryContainer"]
        (variant,) = states["CreateEndpointConfig"]["Parameters"]["ProductionVariants"]
        if "ServerlessConfig" not in variant:
            kinds.append("instance")
            assert container == {"ModelPackageName.$": "$.plan.packageArn"}, stage_name
            assert "DataCaptureConfig" in states["CreateEndpointConfig"]["Parameters"]
            continue
        kinds.append("serverless")
        environment = container["Environment"]
        assert set(environment) == {
            data_capture.ENV_S3_URI,
            data_capture.ENV_ENDPOINT,
            data_capture.ENV_VARIANT,
            data_capture.ENV_SAMPLING,
            data_capture.ENV_KMS_KEY,
            data_capture.ENV_REGION,
        }
        uri = environment[data_capture.ENV_S3_URI]
        assert uri.startswith("s3://T") and uri.endswith("/data-capture/"), uri
        bucket_token = json.loads(tokens[uri[len("s3://") : -len("/data-capture/")]])
        assert "ArtifactsBucket" in json.dumps(bucket_token)
        endpoint = environment[data_capture.ENV_ENDPOINT]
        assert endpoint.startswith(stage_name) and endpoint.endswith("-endpoint")
        config = CaptureConfig.from_environment(
            {**environment, data_capture.ENV_S3_URI: "s3://b/data-capture/"}
        )
        assert config is not None and config.sampling_percent == 100
        written = f"{config.key_prefix()}/2026/01/15/10/58-30-250-id.jsonl"

        statements = _policy_statements(template, "ModelExecutionRole")
        (put,) = [s for s in statements if "s3:PutObject" in _actions(s)]
        bucket_arn, pattern = put["Resource"]["Fn::Join"][1]
        assert "ArtifactsBucket" in json.dumps(bucket_arn)
        assert _bucket(bucket_arn) == _bucket(bucket_token)  # the bucket the URI names
        assert fnmatch.fnmatchcase(written, pattern.lstrip("/")), (pattern, written)
        assert not fnmatch.fnmatchcase(f"pipelines/x/{written}", pattern.lstrip("/"))
        key_token = json.loads(tokens[environment[data_capture.ENV_KMS_KEY]])
        (kms,) = [s for s in statements if "kms:GenerateDataKey*" in _actions(s)]
        assert kms["Resource"] == key_token  # SSE-KMS with the stage key the env names
        assert {"kms:Encrypt", "kms:GenerateDataKey*"} <= set(_actions(kms))
    assert "serverless" in kinds and "instance" in kinds, kinds
