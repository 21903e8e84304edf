"""``serving_image: custom`` in a whole stage: ONE app per module, holding the branch stage of a
config whose dev environment (the one branch stages take) says custom, built like the app builds
it (security gate first, then synth), plus the repository alone with a shared stage's RETAIN.

The shipped config is prebuilt everywhere; the session templates show that nothing of this
exists there."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.compliance import Finding
from serving import infrastructure as serving
from serving.image_context import CONTEXT_FILES
from tests.conftest import resources_of_type

BRANCH = "feat/byoc"
STAGE = "mlops-br-feat-byoc"
ACCOUNT, REGION = "111111111111", "us-east-1"
REPOSITORY = f"{STAGE}-serving"
REPOSITORY_ARN = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{REPOSITORY}"
ASSET_REPOSITORY = f"cdk-hnb659fds-container-assets-{ACCOUNT}-{REGION}"
ASSET_REPOSITORY_ARN = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{ASSET_REPOSITORY}"
PULL = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]


@dataclass(frozen=True)
class Variant:
    findings: list[Finding]
    directory: Path
    templates: dict[str, dict[str, Any]]  # Stateful, ModelBuild, Deployment, Operations
    files: list[Path]
    retained: dict[str, Any]  # the repository alone, as a shared stage builds it

    def only(self, stack: str, type_: str) -> tuple[str, dict[str, Any]]:
        ((logical_id, resource),) = resources_of_type(self.templates[stack], type_).items()
        return logical_id, resource


@pytest.fixture(scope="module")
def variant(
    cdk_context: dict[str, Any],
    definition_cache_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Variant:
    import aws_cdk as cdk
    from aws_cdk import aws_kms as kms

    from infra.compliance import findings
    from infra.config import CONTEXT_KEY, load_config
    from infra.naming import Naming
    from infra.stages import stage_class
    from pipelines.model_build.definition_cache import CONTEXT_KEY as CACHE_KEY

    context = copy.deepcopy(cdk_context)
    context[CONTEXT_KEY]["environments"]["dev"]["serving_image"] = "custom"
    context[CACHE_KEY] = str(definition_cache_dir)
    config = load_config(context[CONTEXT_KEY])
    (stage_config,) = [s for s in config.stages_for_branch(BRANCH) if s.is_ephemeral]
    app = cdk.App(context=context, outdir=str(tmp_path_factory.mktemp("byoc.out")))
    stage = stage_class(stage_config)(app, config=stage_config)
    # A shared stage's repository (RETAIN), alone in its own small stack and app (synthesizing
    # the stage's app again would cost about 1.5 s).
    shared_app = cdk.App(outdir=str(tmp_path_factory.mktemp("byoc-shared.out")))
    shared = cdk.Stack(
        shared_app, "SharedRepository", env=cdk.Environment(account=ACCOUNT, region=REGION)
    )
    serving.ServingRepository(
        shared,
        "ServingRepository",
        naming=Naming("mlops", "prod"),
        key=kms.Key(shared, "Key", enable_key_rotation=True),
        removal_policy=cdk.RemovalPolicy.RETAIN,
    )
    found = findings(stage)  # the gate runs on the tree as written, before synthesis
    assembly = stage.synth()
    templates, files = {}, []
    for stack in stage.node.children:
        if isinstance(stack, cdk.Stack):
            artifact = assembly.get_stack_artifact(stack.artifact_id)
            templates[stack.node.id] = artifact.template
            files.append(Path(assembly.directory) / artifact.template_file)
    retained = shared_app.synth().get_stack_by_name(shared.stack_name).template
    return Variant(found, Path(assembly.directory), templates, files, retained)


def test_no_nag_finding_in_any_pack(variant: Variant) -> None:
    assert [str(f) for f in variant.findings] == []


def test_cfn_lint_finds_nothing(variant: Variant) -> None:
    """The stacks custom changes (the operations stack is the same as with prebuilt)."""
    import cfnlint.api

    changed = [p for p in variant.files if not p.name.startswith("mlopsbrfeatbyocOperations")]
    assert len(changed) == 3
    assert [str(m) for path in changed for m in cfnlint.api.lint_file(path)] == []


def test_repository_scans_is_immutable_expires_and_uses_the_stage_key(variant: Variant) -> None:
    _, repository = variant.only("Stateful", "AWS::ECR::Repository")
    props = repository["Properties"]
    assert props["RepositoryName"] == REPOSITORY
    assert props["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert props["ImageTagMutability"] == "IMMUTABLE"
    # The stage's existing data key: no key of its own ($1/month in a $1 branch budget).
    (key_id,) = resources_of_type(variant.templates["Stateful"], "AWS::KMS::Key")
    assert key_id.startswith("DataLakeKey")
    assert props["EncryptionConfiguration"] == {
        "EncryptionType": "KMS",
        "KmsKey": {"Fn::GetAtt": [key_id, "Arn"]},
    }
    rules = json.loads(props["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
    assert [(r["selection"]["tagStatus"], r["selection"]["countType"]) for r in rules] == [
        ("untagged", "sinceImagePushed"),
        ("any", "imageCountMoreThan"),
    ]
    assert rules[1]["selection"]["countNumber"] == serving.KEEP_IMAGES
    assert all(r["action"] == {"type": "expire"} for r in rules)
    # A branch stage is torn down: the repository goes, with its images.
    assert props["EmptyOnDelete"] is True
    assert repository["DeletionPolicy"] == repository["UpdateReplacePolicy"] == "Delete"


def test_a_shared_stage_keeps_its_repository(variant: Variant) -> None:
    ((_, repository),) = resources_of_type(variant.retained, "AWS::ECR::Repository").items()
    assert repository["DeletionPolicy"] == repository["UpdateReplacePolicy"] == "Retain"
    assert repository["Properties"].get("EmptyOnDelete") is not True
    assert repository["Properties"]["RepositoryName"] == "mlops-prod-serving"


def test_image_is_built_at_deploy_time_from_a_small_context(variant: Variant) -> None:
    (manifest,) = variant.directory.glob("*ModelBuild*.assets.json")
    images = json.loads(manifest.read_text())["dockerImages"]
    ((asset_hash, asset),) = images.items()
    assert asset["source"]["dockerFile"] == "serving/image/Dockerfile"
    assert asset["source"]["platform"] == "linux/amd64"
    ((destination),) = asset["destinations"].values()
    assert (destination["repositoryName"], destination["imageTag"]) == (
        ASSET_REPOSITORY,
        asset_hash,
    )
    context = variant.directory.parent / asset["source"]["directory"].removeprefix("../")
    staged = sorted(p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file())
    assert staged == sorted(CONTEXT_FILES)


def test_the_copy_puts_the_asset_into_the_stage_repository_under_its_content_tag(
    variant: Variant,
) -> None:
    template = variant.templates["ModelBuild"]
    copy_id, copy_resource = variant.only("ModelBuild", serving.COPY_RESOURCE_TYPE)
    props = copy_resource["Properties"]
    (manifest,) = variant.directory.glob("*ModelBuild*.assets.json")
    (asset_hash,) = json.loads(manifest.read_text())["dockerImages"]
    assert {k: v for k, v in props.items() if k not in ("ServiceToken", "ServiceTimeout")} == {
        "SourceRepository": ASSET_REPOSITORY,
        "SourceTag": asset_hash,
        "TargetRepository": REPOSITORY,
        "TargetTag": asset_hash,
    }
    function_id = props["ServiceToken"]["Fn::GetAtt"][0]
    function = template["Resources"][function_id]["Properties"]
    assert function["Handler"] == serving.COPY_HANDLER and function["Timeout"] == 900
    assert int(props["ServiceTimeout"]) > function["Timeout"]
    # Its role pulls from CDK's asset repository and pushes to this stage's, nothing else.
    role_id = function["Role"]["Fn::GetAtt"][0]
    ecr = [
        s
        for _, policy in resources_of_type(template, "AWS::IAM::Policy").items()
        if policy["Properties"]["Roles"] == [{"Ref": role_id}]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if any(str(a).startswith("ecr:") for a in _actions(s))
    ]
    assert {(s["Resource"], tuple(_actions(s))) for s in ecr} == {
        (ASSET_REPOSITORY_ARN, tuple(sorted(serving.PULL_ACTIONS))),
        (REPOSITORY_ARN, tuple(sorted(serving.PUSH_ACTIONS))),
    }
    # The pipeline (which registers packages naming the image) waits for the copy.
    _, pipeline = variant.only("ModelBuild", "AWS::SageMaker::Pipeline")
    assert copy_id in pipeline["DependsOn"]


def test_model_package_names_the_stage_image(variant: Variant) -> None:
    _, pipeline = variant.only("ModelBuild", "AWS::SageMaker::Pipeline")
    body = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]
    parts = body["Fn::Join"][1]
    # Tokens become @Ref@ (a pseudo parameter's name) or @token@ inside the JSON text.
    text = "".join(p if isinstance(p, str) else f"@{p.get('Ref', 'token')}@" for p in parts)
    definition = json.loads(text)
    (register,) = [s for s in _steps(definition["Steps"]) if s["Type"] == "RegisterModel"]
    (container,) = register["Arguments"]["InferenceSpecification"]["Containers"]
    (manifest,) = variant.directory.glob("*ModelBuild*.assets.json")
    (asset_hash,) = json.loads(manifest.read_text())["dockerImages"]
    image = f"{ACCOUNT}.dkr.ecr.{REGION}.@AWS::URLSuffix@/{REPOSITORY}:{asset_hash}"
    assert container["Image"] == image


def _steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every step, those inside a condition's branches too."""
    found = []
    for step in steps:
        found.append(step)
        arguments = step.get("Arguments", {})
        found += _steps(arguments.get("IfSteps", []) + arguments.get("ElseSteps", []))
    return found


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return sorted([actions] if isinstance(actions, str) else actions)


def _ecr_statements(template: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    return [
        s
        for policy in resources_of_type(template, "AWS::IAM::Policy").values()
        if any(r["Ref"].startswith(role_prefix) for r in policy["Properties"]["Roles"])
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if any(a.startswith("ecr:") for a in _actions(s))
    ]


@pytest.mark.parametrize(
    ("stack", "role"),
    [
        ("Deployment", "ModelDeploymentModelExecutionRole"),
        ("ModelBuild", "ModelBuildExecutionRole"),
    ],
)
def test_roles_pull_the_stage_image_from_that_repository_only(
    variant: Variant, stack: str, role: str
) -> None:
    """The deployed model's role (CreateModel pulls the package's image) and the pipeline's
    (it registers the package): pull actions on exactly this stage's repository; the only ECR
    action on "*" is GetAuthorizationToken, which has no resource-level permission."""
    statements = _ecr_statements(variant.templates[stack], role)
    covering = [
        s
        for s in statements
        if REPOSITORY_ARN in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
    ]
    assert covering and all(_actions(s) == PULL for s in covering)
    assert not any(
        REPOSITORY in json.dumps(s["Resource"]) and s not in covering for s in statements
    )
    assert [_actions(s) for s in statements if s["Resource"] == "*"] == [
        ["ecr:GetAuthorizationToken"]
    ]


def test_stage_execution_policy_covers_every_resource_type(variant: Variant) -> None:
    from promotion import bootstrap

    types = {r["Type"] for t in variant.templates.values() for r in t["Resources"].values()}
    services = {t.split("::")[1] for t in types if t.startswith("AWS::")} - {"IAM", "CDK"}
    assert services <= set(bootstrap.STAGE_SERVICES)
    assert "AWS::ECR::Repository" in types


def test_shipped_config_builds_none_of_it(templates: dict[str, dict[str, dict[str, Any]]]) -> None:
    """prebuilt everywhere (cdk.json): no repository, no image, no copy in any stage."""
    types = {
        r["Type"]
        for stage in templates.values()
        for template in stage.values()
        for r in template["Resources"].values()
    }
    assert "AWS::ECR::Repository" not in types
    assert serving.COPY_RESOURCE_TYPE not in types
