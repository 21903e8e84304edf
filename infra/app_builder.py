"""Builds the CDK app: config once, one Stage per environment (plus the branch's), gates, synth."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import cx_api

from infra.compliance import RULE_PACKS, ComplianceError, enforce
from infra.config import CONTEXT_KEY, AppConfig, ConfigError, load_config
from infra.stages import MlopsStage, stage_class
from infra.workspace import REPO_ROOT as REPO_ROOT  # re-exported: callers import them from here
from infra.workspace import SUMMARY_FILE, current_git_branch, resolve_branch
from infra.workspace import load_cdk_json_context as load_cdk_json_context
from pipelines.model_build.definition_cache import CONTEXT_KEY as DEFINITION_CACHE
from pipelines.model_build.definition_cache import resolve_directory
from promotion.app import add_pipeline, add_pipeline_access


def definition_cache_directory(value: Any) -> Path | None:
    """The ``definition-cache`` context value as a directory (None: render every definition)."""
    try:
        return resolve_directory(value)
    except ValueError as error:
        raise ConfigError(DEFINITION_CACHE, value, str(error)) from None


TREE_METADATA = "tree-metadata"


def tree_metadata_wanted(value: Any) -> bool:
    """The ``tree-metadata`` context value (``-c tree-metadata=true``): write ``tree.json``?

    Off by default. ``tree.json`` describes every construct with its resolved CloudFormation
    properties: the CDK CLI reads it only to filter its notices (it proceeds without), nothing in
    this project reads it, and writing it resolves every resource's properties a second time
    (about 0.3 s of each synth of all stages). Tools that browse the construct tree (the AWS
    Toolkit's CDK explorer) want it: ``make synth TREE=on``."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "on", "false", "off"):
        return value.strip().lower() in ("true", "on")
    raise ConfigError(TREE_METADATA, value, "expected true/on or false/off")


def cli_context() -> dict[str, Any]:
    """The context the CDK CLI hands the app: ``CDK_CONTEXT_JSON``, or the file named by
    ``CONTEXT_OVERFLOW_LOCATION_ENV`` when it is too large for the environment (as App reads)."""
    context: dict[str, Any] = json.loads(os.environ.get("CDK_CONTEXT_JSON") or "{}")
    overflow = os.environ.get("CONTEXT_OVERFLOW_LOCATION_ENV")
    if overflow:
        context.update(json.loads(Path(overflow).read_text()))
    return context


def build_stages(app: cdk.App, config: AppConfig, branch: str) -> list[MlopsStage]:
    return [stage_class(sc)(app, config=sc) for sc in config.stages_for_branch(branch)]


def summary(config: AppConfig, branch: str, stages: list[MlopsStage], packs: int) -> dict[str, Any]:
    return {
        "branch": branch,
        "rule_packs": [pack.__name__ for pack in RULE_PACKS],
        "stages": [
            {
                "stage": stage.stage_name,
                "kind": stage.config.kind.value,
                "environment": stage.config.env_name,
                "account": stage.config.environment.account,
                "placeholder_account": stage.config.environment.placeholder_account,
                "region": stage.config.environment.region,
                "stacks": [
                    child.stack_name
                    for child in stage.node.children
                    if isinstance(child, cdk.Stack)
                ],
                "nag_packs_passed": packs,
            }
            for stage in stages
        ],
    }


@dataclass(frozen=True)
class Synthesized:
    app: cdk.App
    stages: list[MlopsStage]
    assembly: cx_api.CloudAssembly
    report: dict[str, Any]

    def stage(self, stage_id: str) -> MlopsStage:
        return next(s for s in self.stages if s.stage_name == stage_id)


def synthesize(
    context: Mapping[str, Any] | None = None,
    outdir: str | None = None,
    *,
    builtin_cfn_validation: bool = False,
) -> Synthesized:
    """Build, gate and synthesize. Raises ConfigError / ComplianceError.

    CDK's built-in CloudFormation validation (resource schemas, AppProps
    ``builtinCloudFormationValidation``) is off unless ``builtin_cfn_validation``: cfn-lint checks
    every template against the same schemas and more, and fails on any finding, in the test suite
    (tests/foundation/test_security_gate.py) and in CI (make check-templates); the built-in pass
    took about 4 s of a 10 s ``cdk synth`` of all stages. The cdk-nag gate (:func:`enforce`)
    runs on every stage either way. ``CDK_VALIDATION=true cdk synth`` turns the built-in pass
    back on (see :func:`main`)."""
    context = dict(context) if context is not None else None
    # App() reads the CLI's context itself, but whether to write tree.json is decided before.
    # As App does: the CLI's context overrides the ``context`` argument (its defaults).
    tree = cli_context().get(TREE_METADATA, (context or {}).get(TREE_METADATA))
    app = cdk.App(
        context=context,
        outdir=outdir,
        builtin_cloud_formation_validation=builtin_cfn_validation,
        tree_metadata=tree_metadata_wanted(tree),
        # Each metadata entry (every acknowledgment, every nag annotation) would carry a JS stack
        # trace of jsii frames, never a line of this project's code; capturing them took about
        # 0.3 s of a synth of all stages.
        stack_traces=False,
    )
    config = load_config(app.node.try_get_context(CONTEXT_KEY))
    # The pipeline definitions' cache (-c definition-cache=<dir>|off; default .work/cache/...),
    # resolved once here; the model-build construct reads the result from the context.
    cache_dir = definition_cache_directory(app.node.try_get_context(DEFINITION_CACHE))
    app.node.set_context(DEFINITION_CACHE, str(cache_dir) if cache_dir else False)
    branch = resolve_branch(app.node.try_get_context("branch"), config, current_git_branch())
    stages = build_stages(app, config, branch)
    add_pipeline_access(config, stages)
    packs = 0
    for stage in stages:
        packs = enforce(stage)
    # After the stages' gates: the pipeline's add_stage synthesizes each stage on the spot.
    add_pipeline(app, config, branch, stages)
    assembly = app.synth()
    report = summary(config, branch, stages, packs)
    Path(assembly.directory, SUMMARY_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return Synthesized(app=app, stages=stages, assembly=assembly, report=report)


def main() -> None:
    # Synth never calls AWS. The sagemaker SDK wants a region to import and creates a boto3 client
    # at import time: keep that from probing the EC2 metadata endpoint for credentials. The
    # pipeline definition uses each stage's own region, whatever this default says.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    try:
        synthesize(builtin_cfn_validation=os.environ.get("CDK_VALIDATION") == "true")
    except ConfigError as error:
        print(error, file=sys.stderr)
        sys.exit(2)
    except ComplianceError as error:
        print(error, file=sys.stderr)
        sys.exit(3)
