"""The optional Studio domain (a small app holding only the construct, built once per module),
its config, and the Studio project tag on every pipeline, model package group and endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.config import ConfigError, load_config
from tests.conftest import resources_of_type

PROJECT_TAG = "sagemaker:project-name"
VPC = {
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "security_group_ids": ["sg-0123456789abcdef0"],
}


@pytest.fixture(scope="module")
def studio_app(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import aws_cdk as cdk
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_s3 as s3

    from infra.compliance import findings
    from infra.config import VpcConfig
    from infra.naming import Naming
    from studio.infrastructure import StudioDomain

    app = cdk.App(outdir=str(tmp_path_factory.mktemp("studio.out")))
    stage = cdk.Stage(
        app, "mlops-dev", env=cdk.Environment(account="111111111111", region="us-east-1")
    )
    stack = cdk.Stack(stage, "Studio")
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    bucket = s3.Bucket(stack, "Data", encryption_key=key, enforce_ssl=True)
    studio = StudioDomain(
        stack,
        "Studio",
        naming=Naming("mlops", "dev"),
        vpc=VpcConfig(VPC["vpc_id"], tuple(VPC["subnet_ids"]), tuple(VPC["security_group_ids"])),
        key=key,
        buckets=[bucket],
        user_profiles=["alice", "bob-2"],
    )
    found = [f for f in findings(stage) if f.resource.startswith("mlops-dev/Studio/Studio/")]
    assembly = stage.synth()
    artifact = assembly.get_stack_artifact(stack.artifact_id)
    return {
        "findings": found,
        "template": artifact.template,
        "path": Path(assembly.directory) / artifact.template_file,
        "key_id": stack.get_logical_id(key.node.default_child),  # type: ignore[arg-type]
        "role_id": stack.get_logical_id(studio.role.node.default_child),  # type: ignore[arg-type]
        "domain_id": stack.get_logical_id(studio.domain),
    }


def test_studio_construct_has_no_nag_findings(studio_app: dict[str, Any]) -> None:
    assert [str(f) for f in studio_app["findings"]] == []


def test_studio_template_passes_cfn_lint(studio_app: dict[str, Any]) -> None:
    import cfnlint.api

    assert [str(m) for m in cfnlint.api.lint_file(studio_app["path"])] == []


def test_domain_is_vpc_only_iam_auth_and_encrypted_with_the_stage_key(
    studio_app: dict[str, Any],
) -> None:
    [domain] = resources_of_type(studio_app["template"], "AWS::SageMaker::Domain").values()
    props = domain["Properties"]
    assert props["AppNetworkAccessType"] == "VpcOnly"
    assert props["AuthMode"] == "IAM"
    assert props["DomainName"] == "mlops-dev-studio"
    assert props["KmsKeyId"] == {"Fn::GetAtt": [studio_app["key_id"], "Arn"]}
    assert props["VpcId"] == VPC["vpc_id"] and props["SubnetIds"] == VPC["subnet_ids"]
    settings = props["DefaultUserSettings"]
    assert settings["ExecutionRole"] == {"Fn::GetAtt": [studio_app["role_id"], "Arn"]}
    assert settings["SecurityGroups"] == VPC["security_group_ids"]
    profiles = resources_of_type(studio_app["template"], "AWS::SageMaker::UserProfile")
    assert sorted(p["Properties"]["UserProfileName"] for p in profiles.values()) == [
        "alice",
        "bob-2",
    ]
    for profile in profiles.values():
        assert profile["Properties"]["DomainId"] == {
            "Fn::GetAtt": [studio_app["domain_id"], "DomainId"]
        }


def _statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for policy in resources_of_type(template, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_execution_role_is_scoped_to_the_stage(studio_app: dict[str, Any]) -> None:
    statements = _statements(studio_app["template"])
    assert all(s["Effect"] == "Allow" for s in statements)
    text = json.dumps(statements)
    for write in ("s3:PutObject", "s3:DeleteObject", "kms:Encrypt", "sagemaker:Delete*", '"*"]'):
        assert write not in text.replace('"Resource": "*"', ""), write
    star = [s for s in statements if s["Resource"] == "*"]
    assert len(star) == 1
    assert all(a.startswith(("sagemaker:List", "sagemaker:Search")) for a in star[0]["Action"]), (
        star[0]["Action"]
    )
    scoped = json.dumps([s for s in statements if s["Resource"] != "*"])
    for name in (
        "pipeline/mlops-dev-model-build",
        "model-package-group/mlops-dev-models",
        "model-package/mlops-dev-models/*",
        "endpoint/mlops-dev-endpoint",
    ):
        assert name in scoped, name
    starts = [s for s in statements if "sagemaker:StartPipelineExecution" in s["Action"]]
    assert len(starts) == 1 and "mlops-dev-model-build" in json.dumps(starts[0]["Resource"])


def test_studio_config_defaults_off_and_needs_the_vpc(mlops_config: dict[str, Any]) -> None:
    config = load_config(mlops_config)
    assert all(not env.studio.enabled for env in config.environments.values())
    mlops_config["environments"]["dev"]["studio"] = {"enabled": True, "user_profiles": ["ana"]}
    with pytest.raises(ConfigError) as raised:
        load_config(mlops_config)
    assert raised.value.key == "mlops.environments.dev.studio.enabled"
    assert "needs this environment's vpc" in str(raised.value)
    mlops_config["environments"]["dev"]["vpc"] = VPC
    studio = load_config(mlops_config).environments["dev"].studio
    assert studio.enabled and studio.user_profiles == ("ana",)


@pytest.mark.parametrize(
    "profiles", [["-ana"], ["ana", "ana"], "ana", [""], ["a" * 64], [7], ["ana_b"]]
)
def test_bad_user_profiles_are_one_line_errors(mlops_config: dict[str, Any], profiles: Any) -> None:
    mlops_config["environments"]["dev"]["studio"] = {"user_profiles": profiles}
    with pytest.raises(ConfigError) as raised:
        load_config(mlops_config)
    assert raised.value.key == "mlops.environments.dev.studio.user_profiles"
    assert "\n" not in str(raised.value)


def test_default_config_creates_no_domain(
    templates: dict[str, dict[str, dict[str, Any]]],
) -> None:
    for stacks in templates.values():
        for template in stacks.values():
            assert not resources_of_type(template, "AWS::SageMaker::Domain")


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource["Properties"].get("Tags", [])}


def test_pipelines_and_model_package_groups_carry_the_studio_project_tag(
    templates: dict[str, dict[str, dict[str, Any]]],
) -> None:
    for stage, stacks in templates.items():
        found = {
            type_: [_tags(r) for t in stacks.values() for r in resources_of_type(t, type_).values()]
            for type_ in ("AWS::SageMaker::Pipeline", "AWS::SageMaker::ModelPackageGroup")
        }
        for type_, tags in found.items():
            assert tags, f"{stage}: no {type_}"
            assert all(t.get(PROJECT_TAG) == stage for t in tags), (stage, type_, tags)


def test_endpoints_models_and_configs_are_tagged_by_the_deployment_workflow(
    templates: dict[str, dict[str, dict[str, Any]]],
) -> None:
    from costing.estimate import _definition_text

    checked = 0
    for stage, stacks in templates.items():
        for template in stacks.values():
            for machine in resources_of_type(template, "AWS::StepFunctions::StateMachine").values():
                text = _definition_text(machine["Properties"]["DefinitionString"])
                if "createEndpointConfig" not in text:
                    continue
                states = json.loads(text)["States"]
                for name in (
                    "CreateModel",
                    "CreateEndpointConfig",
                    "CreateEndpoint",
                    "TagEndpoint",
                ):
                    tags = states[name]["Parameters"]["Tags"]
                    assert {"Key": PROJECT_TAG, "Value": stage} in tags, (stage, name)
                    checked += 1
    assert checked == 4 * len(templates)
