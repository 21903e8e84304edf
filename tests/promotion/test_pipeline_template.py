"""The promotion pipeline as synthesized on the default branch: waves in order, manual approval
before prod, the staging checks and the promotion with their commands and thresholds, cross-account
keys, V2, self-mutation, CI's commands as the synth step, the CodeConnections source; the stages
it deploys are the app's own assemblies, unchanged; nag, cfn-lint and checkov clean."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.config import load_config
from promotion import commands
from promotion.commands import PipelineNames
from promotion.pipeline_stack import pinned_cli_version
from tests.checks.test_checkov import CHECKOV
from tests.conftest import SHARED_STAGES, resources_of_type
from tests.foundation.test_acknowledgments import PREFIX, assembly_acknowledgments, is_specific
from tests.promotion.conftest import PIPELINE_STACK

REPO = Path(__file__).resolve().parents[2]
#: The CodePipeline variable reference: the smoke test's action namespace and exported variable.
TESTED_FROM_SMOKE_TEST = f"#{{mlops-staging@SmokeTest.{commands.TESTED_PACKAGE_VARIABLE}}}"


@pytest.fixture(scope="module")
def config(cdk_context: dict[str, Any]) -> Any:
    return load_config(cdk_context["mlops"])


def _pipeline(template: dict[str, Any]) -> dict[str, Any]:
    (pipeline,) = resources_of_type(template, "AWS::CodePipeline::Pipeline").values()
    return dict(pipeline["Properties"])


def _stage(template: dict[str, Any], name: str) -> list[dict[str, Any]]:
    (stage,) = [s for s in _pipeline(template)["Stages"] if s["Name"] == name]
    return list(stage["Actions"])


def _action(template: dict[str, Any], stage: str, name: str) -> dict[str, Any]:
    (action,) = [a for a in _stage(template, stage) if a["Name"] == name]
    return action


def _buildspec(template: dict[str, Any], action: dict[str, Any]) -> dict[str, Any]:
    project = template["Resources"][action["Configuration"]["ProjectName"]["Ref"]]
    spec: dict[str, Any] = json.loads(project["Properties"]["Source"]["BuildSpec"])
    return spec


def _env(action: dict[str, Any]) -> dict[str, str]:
    raw = action["Configuration"].get("EnvironmentVariables")
    return {v["name"]: v["value"] for v in json.loads(raw)} if raw else {}


def _deploys(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in actions if a["ActionTypeId"]["Category"] == "Deploy"]


def test_waves_in_order(pipeline_template: dict[str, Any]) -> None:
    names = [s["Name"] for s in _pipeline(pipeline_template)["Stages"]]
    assert names == ["Source", "Build", "UpdatePipeline", "Assets", *SHARED_STAGES]


def test_v2_pipeline_in_the_tooling_account(
    pipeline_template: dict[str, Any], default_branch_out: Path, config: Any
) -> None:
    pipeline = _pipeline(pipeline_template)
    assert pipeline["PipelineType"] == "V2"
    assert pipeline["Name"] == PipelineNames.of(config, config.delivery).pipeline
    manifest = json.loads((default_branch_out / "manifest.json").read_text())
    stack = manifest["artifacts"][PIPELINE_STACK]
    assert stack["environment"] == f"aws://{config.delivery.account}/{config.delivery.region}"
    # deployed once, from the default branch: the feature-branch synth has no pipeline
    assert config.delivery.branch == config.default_branch == "main"


def test_self_mutation_deploys_this_stack_with_the_pinned_cli(
    pipeline_template: dict[str, Any],
) -> None:
    (mutate,) = _stage(pipeline_template, "UpdatePipeline")
    spec = _buildspec(pipeline_template, mutate)
    assert spec["phases"]["install"]["commands"] == [
        f"npm install -g aws-cdk@{pinned_cli_version()}"
    ]
    assert spec["phases"]["build"]["commands"] == [
        f"cdk -a . deploy {PIPELINE_STACK} --require-approval=never --verbose"
    ]
    assert (
        pinned_cli_version()
        == json.loads((REPO / "package.json").read_text())["devDependencies"]["aws-cdk"]
    )


def _ci_make_commands() -> list[str]:
    """The ``make`` lines .ci/run runs, in order."""
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    return [line.strip() for line in lines if line.strip().startswith("make ")]


def test_synth_step_runs_what_ci_runs(pipeline_template: dict[str, Any], config: Any) -> None:
    (synth,) = _stage(pipeline_template, "Build")
    spec = _buildspec(pipeline_template, synth)
    ci = _ci_make_commands()
    assert ci and any(c.startswith("make synth BRANCH=") for c in ci)
    # CI synthesizes an extra branch stage; the pipeline synthesizes the default branch (the
    # shared stages and itself). Everything else is the same command.
    expected = [
        f"make synth BRANCH={config.default_branch}" if c.startswith("make synth ") else c
        for c in ci
    ]
    assert spec["phases"]["build"]["commands"] == expected
    assert spec["phases"]["install"]["commands"] == list(commands.SYNTH_INSTALL_COMMANDS)
    assert spec["artifacts"]["base-directory"] == "cdk.out"
    assert synth["InputArtifacts"] == _stage(pipeline_template, "Source")[0]["OutputArtifacts"]


def test_source_is_the_configured_codeconnections_repository_and_branch(
    pipeline_template: dict[str, Any], config: Any
) -> None:
    (source,) = _stage(pipeline_template, "Source")
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"] == {
        "ConnectionArn": config.delivery.connection_arn,
        "FullRepositoryId": config.delivery.repository,
        "BranchName": config.delivery.branch,
        "DetectChanges": True,
    }
    role_id = source["RoleArn"]["Fn::GetAtt"][0]
    policies = [
        p
        for p in resources_of_type(pipeline_template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    statements = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert {
        "Action": "codestar-connections:UseConnection",
        "Effect": "Allow",
        "Resource": config.delivery.connection_arn,
    } in statements


def test_each_wave_deploys_its_stage_assembly_to_its_account(
    pipeline_template: dict[str, Any], default_branch_out: Path, config: Any
) -> None:
    for stage_id in SHARED_STAGES:
        env = config.environments[stage_id.removeprefix("mlops-")]
        assembly = default_branch_out / f"assembly-{stage_id}"
        manifest = json.loads((assembly / "manifest.json").read_text())
        stacks = {
            a["properties"]["stackName"]: a["properties"]["templateFile"]
            for a in manifest["artifacts"].values()
            if a["type"] == "aws:cloudformation:stack"
        }
        deploys = _deploys(_stage(pipeline_template, stage_id))
        assert {d["Configuration"]["StackName"] for d in deploys} == set(stacks)
        for deploy in deploys:
            path = deploy["Configuration"]["TemplatePath"]
            template_file = stacks[deploy["Configuration"]["StackName"]]
            assert path.endswith(f"::assembly-{stage_id}/{template_file}")
            assert (assembly / template_file).is_file()
            role = json.dumps(deploy["RoleArn"])
            assert f":iam::{env.account}:role/cdk-hnb659fds-deploy-role-{env.account}-" in role


def test_stages_are_synthesized_once_and_unchanged_by_the_pipeline(
    default_branch_out: Path, synthesized: Any
) -> None:
    """The pipeline reuses the app's gated stages: their templates are byte-identical to the
    feature-branch synth's shared stages (same tags, same checkov skips, same acknowledgments)."""
    session_out = Path(synthesized.assembly.directory)
    for stage_id in SHARED_STAGES:
        ours = sorted((default_branch_out / f"assembly-{stage_id}").glob("*.template.json"))
        theirs = sorted((session_out / f"assembly-{stage_id}").glob("*.template.json"))
        assert [p.name for p in ours] == [p.name for p in theirs] and len(ours) == 4
        for mine, other in zip(ours, theirs, strict=True):
            assert mine.read_bytes() == other.read_bytes(), mine.name
    top = json.loads((default_branch_out / "manifest.json").read_text())["artifacts"]
    nested = sorted(k for k, v in top.items() if v["type"] == "cdk:cloud-assembly")
    assert nested == sorted(f"assembly-{s}" for s in SHARED_STAGES)


def test_manual_approval_comes_before_any_prod_deployment(
    pipeline_template: dict[str, Any],
) -> None:
    prod = _stage(pipeline_template, "mlops-prod")
    approvals = [a for a in prod if a["ActionTypeId"]["Category"] == "Approval"]
    assert [a["Name"] for a in approvals] == ["ApproveProd"]
    assert approvals[0]["ActionTypeId"]["Provider"] == "Manual"
    assert approvals[0]["RunOrder"] < min(d["RunOrder"] for d in _deploys(prod))
    for stage in ("mlops-dev", "mlops-staging"):
        assert all(
            a["ActionTypeId"]["Category"] != "Approval" for a in _stage(pipeline_template, stage)
        )


def test_staging_post_steps_smoke_then_load_test_with_config_thresholds(
    pipeline_template: dict[str, Any], config: Any
) -> None:
    staging = _stage(pipeline_template, "mlops-staging")
    last_deploy = max(d["RunOrder"] for d in _deploys(staging))
    smoke = _action(pipeline_template, "mlops-staging", "SmokeTest")
    load = _action(pipeline_template, "mlops-staging", "LoadTest")
    assert last_deploy < smoke["RunOrder"] < load["RunOrder"]

    endpoint, region = "mlops-staging-endpoint", config.environments["staging"].region
    smoke_spec = _buildspec(pipeline_template, smoke)
    assert smoke_spec["phases"]["build"]["commands"] == list(
        commands.smoke_test_commands(endpoint, region)
    )
    assert smoke_spec["env"]["exported-variables"] == [commands.TESTED_PACKAGE_VARIABLE]

    load_spec = _buildspec(pipeline_template, load)
    load_test, still_served = load_spec["phases"]["build"]["commands"]
    lt = config.delivery.load_test
    argv = shlex.split(load_test)
    assert argv[:4] == ["AWS_PROFILE=staging", ".venv/bin/python", "-m", "serving.loadtest"]
    flags = dict(zip(argv[4::2], argv[5::2], strict=True))
    assert flags == {
        "--endpoint-name": endpoint,
        "--region": region,
        "--rps": str(lt.rate_per_second),
        "--duration": str(lt.duration_seconds),
        "--max-p99-ms": str(lt.p99_latency_ms),
        "--max-error-rate": str(lt.max_error_rate),
    }
    assert (lt.p99_latency_ms, lt.max_error_rate) == (1000, 0.01)  # cdk.json's thresholds
    assert still_served == commands.still_served_command(endpoint, region)
    assert _env(load) == {commands.TESTED_PACKAGE_VARIABLE: TESTED_FROM_SMOKE_TEST}
    assert smoke["Namespace"] == "mlops-staging@SmokeTest"
    access = commands.access_role_arn(config, "staging")
    for spec in (smoke_spec, load_spec):
        assert spec["phases"]["install"]["commands"] == [
            f"aws configure set profile.staging.role_arn {access}",
            "aws configure set profile.staging.credential_source EcsContainer",
            f"aws configure set profile.staging.region {region}",
            "make .venv/.installed",
            'export PATH="$PWD/.venv/bin:$PATH"',
        ]


def test_promotion_runs_after_prod_deploys_with_the_tested_version(
    pipeline_template: dict[str, Any], config: Any
) -> None:
    prod = _stage(pipeline_template, "mlops-prod")
    promote = _action(pipeline_template, "mlops-prod", "PromoteModel")
    assert promote["RunOrder"] > max(d["RunOrder"] for d in _deploys(prod))
    assert promote["RunOrder"] == max(a["RunOrder"] for a in prod)
    spec = _buildspec(pipeline_template, promote)
    assert spec["phases"]["build"]["commands"] == [commands.promote_command(config.project)]
    assert _env(promote) == {commands.TESTED_PACKAGE_VARIABLE: TESTED_FROM_SMOKE_TEST}
    install = spec["phases"]["install"]["commands"]
    assert install[-2:] == list(commands.STEP_INSTALL)
    for profile, env_name in (("staging", "staging"), ("prod", "prod")):
        arn = commands.access_role_arn(config, env_name)
        assert f"aws configure set profile.{profile}.role_arn {arn}" in install


def test_step_roles_may_assume_only_the_stage_access_roles(
    pipeline_template: dict[str, Any], config: Any
) -> None:
    names = PipelineNames.of(config, config.delivery)
    roles = {
        r["Properties"]["RoleName"]: logical_id
        for logical_id, r in resources_of_type(pipeline_template, "AWS::IAM::Role").items()
        if "RoleName" in r["Properties"]
    }
    expected = {
        names.checks_role: [commands.access_role_arn(config, "staging")],
        names.promote_role: [
            commands.access_role_arn(config, "staging"),
            commands.access_role_arn(config, "prod"),
        ],
    }
    assert set(expected) <= set(roles)
    policies = resources_of_type(pipeline_template, "AWS::IAM::Policy").values()
    for role_name, arns in expected.items():
        statements = [
            s
            for p in policies
            if {"Ref": roles[role_name]} in p["Properties"]["Roles"]
            for s in p["Properties"]["PolicyDocument"]["Statement"]
        ]
        assume = [s for s in statements if s["Action"] == "sts:AssumeRole"]
        assert assume == [
            {
                "Action": "sts:AssumeRole",
                "Effect": "Allow",
                "Resource": arns[0] if len(arns) == 1 else arns,
            }
        ]


def test_cross_account_keys_encrypt_the_artifacts_for_the_stage_accounts(
    pipeline_template: dict[str, Any], config: Any
) -> None:
    (key_id,) = resources_of_type(pipeline_template, "AWS::KMS::Key")
    key = pipeline_template["Resources"][key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    store = _pipeline(pipeline_template)["ArtifactStore"]
    assert store["EncryptionKey"] == {"Id": {"Fn::GetAtt": [key_id, "Arn"]}, "Type": "KMS"}
    (bucket,) = resources_of_type(pipeline_template, "AWS::S3::Bucket").values()
    sse = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert sse["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {"Fn::GetAtt": [key_id, "Arn"]}
    policy = json.dumps(key["KeyPolicy"])
    for env in config.environments.values():
        assert (
            f":iam::{env.account}:role/cdk-hnb659fds-deploy-role-{env.account}-{env.region}"
            in policy
        )
    decrypt = [
        s
        for s in key["KeyPolicy"]["Statement"]
        if s["Action"] == ["kms:Decrypt", "kms:DescribeKey"]
    ]
    assert len(decrypt) == 1 and len(decrypt[0]["Principal"]["AWS"]) == len(config.environments)


def test_pipeline_stack_acknowledgments_are_exact_and_specific(default_branch_out: Path) -> None:
    acks = assembly_acknowledgments(default_branch_out)
    ours = {
        (path, key, reason) for path, key, reason in acks if path.startswith(f"/{PIPELINE_STACK}")
    }
    assert ours, "the pipeline stack passed the nag gate without any acknowledgment?"
    for path, key, reason in ours:
        assert key.startswith(PREFIX) and re.match(
            r"^(AwsSolutions|NIST\.800\.53\.R5)-[A-Za-z0-9]+(\[.+\])?$", key[len(PREFIX) :]
        ), (path, key)
        assert is_specific(reason), (path, key, reason)


def test_cfn_lint_and_checkov_pass_on_the_pipeline_template(default_branch_out: Path) -> None:
    """checkov (its own venv, as tests/checks runs it) in the background while cfn-lint runs
    in-process: every finding level counts, as with ``--non-zero-exit-code informational``."""
    import cfnlint.api

    template = default_branch_out / f"{PIPELINE_STACK}.template.json"
    assert CHECKOV.exists(), f"{CHECKOV} is missing: run make install"
    checkov = subprocess.Popen(
        [str(CHECKOV), "--framework", "cloudformation", "--skip-download", "--compact",
         "--output", "json", "--file", str(template)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert [str(match) for match in cfnlint.api.lint_file(template)] == []
    finally:
        out, err = checkov.communicate(timeout=300)
    assert checkov.returncode in (0, 1), err
    report = json.loads(out)
    assert report["check_type"] == "cloudformation"
    assert report["summary"]["failed"] == 0, report["results"].get("failed_checks")
    skipped = report["results"]["skipped_checks"]
    assert {s["check_id"] for s in skipped} == {"CKV_AWS_18", "CKV_AWS_21", "CKV_AWS_111"}
    assert all(len(s["check_result"].get("suppress_comment", "")) >= 25 for s in skipped)


def test_make_deploy_patterns_still_select_one_stage(default_branch_out: Path) -> None:
    """``make deploy ENV=prod`` runs ``cdk deploy 'mlops-prod/*'``: with the pipeline stack in
    the assembly, that pattern still selects the four prod stacks only; the pipeline stack is
    deployed by its own name."""
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [
            str(REPO / "node_modules" / ".bin" / "cdk"),
            "ls",
            "--app",
            str(default_branch_out),
            "mlops-prod/*",
            PIPELINE_STACK,
        ],
        cwd=REPO,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        PIPELINE_STACK,
        "mlops-prod/Stateful (mlops-prod-stateful)",
        "mlops-prod/ModelBuild (mlops-prod-model-build)",
        "mlops-prod/Deployment (mlops-prod-deployment)",
        "mlops-prod/Operations (mlops-prod-operations)",
    ]


def test_feature_branch_synth_has_no_pipeline(synthesized: Any) -> None:
    top = json.loads((Path(synthesized.assembly.directory) / "manifest.json").read_text())
    stacks = [k for k, v in top["artifacts"].items() if v["type"] == "aws:cloudformation:stack"]
    assert stacks == []  # every stack of a feature-branch synth sits in a stage assembly
    assert not (Path(synthesized.assembly.directory) / f"{PIPELINE_STACK}.template.json").exists()


def test_no_pipeline_without_delivery_or_off_the_default_branch(
    cdk_context: dict[str, Any],
) -> None:
    from promotion.app import add_pipeline, add_pipeline_access

    config = load_config(cdk_context["mlops"])
    # neither touches the app nor the stages when there is nothing to add
    assert add_pipeline(None, config, "feat/x", []) is None  # type: ignore[arg-type]
    without = load_config({k: v for k, v in cdk_context["mlops"].items() if k != "delivery"})
    assert add_pipeline(None, without, "main", []) is None  # type: ignore[arg-type]
    add_pipeline_access(without, [object()])  # type: ignore[list-item]
