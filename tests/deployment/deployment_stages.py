"""Synthesizes the deployment stack once per endpoint-sizing kind, like the real app does.

Each stage is a ``cdk.Stage`` with a concrete environment (111111111111 / us-east-1) holding the
real :class:`StatefulStack` (KMS key, artifacts bucket, model registry) and the
:class:`DeploymentStack`, built with the project's cdk.json context (feature flags included) from
the shipped configuration:

* ``serverless``: the dev stage (serverless endpoint, no promotion guard);
* ``instances``: the prod stage (instance endpoint with autoscaling and guardrails, promotion
  required), moved to the test account.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Template

from infra.app_builder import load_cdk_json_context
from infra.compliance import Finding, findings
from infra.config import CONTEXT_KEY, StageConfig, load_config
from stacks.deployment_stack import DeploymentStack
from stacks.stateful_stack import StatefulStack
from tests.conftest import resources_of_type
from tests.stage_parts import in_test_account, resolved_definition, stateful_stage


@dataclass(frozen=True)
class SynthesizedStage:
    config: StageConfig
    stage: cdk.Stage
    stateful: StatefulStack
    stack: DeploymentStack
    template: Template
    template_json: dict[str, Any]
    #: ``infra.compliance.findings(stage)``, computed before synthesis like the app's gate.
    findings: list[Finding]

    def resources(self, resource_type: str) -> dict[str, Any]:
        return resources_of_type(self.template_json, resource_type)


@cache
def synthesized_stages() -> dict[str, SynthesizedStage]:
    context = load_cdk_json_context()
    config = load_config(context[CONTEXT_KEY])
    by_env = {sc.env_name: sc for sc in config.stages_for_branch(config.default_branch)}
    app = cdk.App(context=context)
    built: dict[str, tuple[StageConfig, cdk.Stage, StatefulStack, DeploymentStack]] = {}
    for kind, env_name in (("serverless", "dev"), ("instances", "prod")):
        stage_config = in_test_account(by_env[env_name])
        stage, stateful = stateful_stage(app, stage_config.stage_id, stage_config)
        stack = DeploymentStack(
            stage,
            "Deployment",
            config=stage_config,
            key=stateful.lake.key,
            artifacts_bucket=stateful.lake.artifacts_bucket,
        )
        built[kind] = (stage_config, stage, stateful, stack)
    # As infra.app_builder does: the security gate first, on the construct tree as written
    # (synthesis then rewrites cross-stack references), then the templates.
    gate = {kind: findings(parts[1]) for kind, parts in built.items()}
    result = {}
    for kind, (stage_config, stage, stateful, stack) in built.items():
        template = Template.from_stack(stack)
        result[kind] = SynthesizedStage(
            stage_config, stage, stateful, stack, template, dict(template.to_json()), gate[kind]
        )
    return result


def state_machine_definition(stage: SynthesizedStage, resolve: Any) -> dict[str, Any]:
    """The synthesized ASL with every CloudFormation token replaced by ``resolve(token)``."""
    (machine,) = stage.resources("AWS::StepFunctions::StateMachine").values()
    return resolved_definition(machine, resolve)


def unresolved_definition(stage: SynthesizedStage) -> dict[str, Any]:
    """The ASL with tokens shown as ``<token>`` (for assertions on the static parts)."""
    return state_machine_definition(stage, lambda token: "<token>")
