"""Synthesizes the retraining construct once per test session, like the app builds it: a
``cdk.Stage`` (111111111111 / us-east-1) with the real :class:`StatefulStack` (data key, curated
bucket) and a stack holding an operations topic (SSE-KMS with the data key) and
:class:`retraining.infrastructure.Retraining`, from the shipped cdk.json configuration:

* ``staging``: the staging stage (a weekly cron schedule; a dead-letter queue for the rule like
  the operations stack's, SSE-SQS);
* ``dev``: the dev stage (no schedule configured, no dead-letter queue).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template

from infra.app_builder import load_cdk_json_context
from infra.compliance import Finding, acknowledge, findings
from infra.config import CONTEXT_KEY, StageConfig, load_config
from ingestion.infrastructure import CURATED_PREFIX
from retraining.infrastructure import Retraining
from tests.conftest import resources_of_type
from tests.stage_parts import ACCOUNT as ACCOUNT
from tests.stage_parts import REGION as REGION
from tests.stage_parts import in_test_account, resolved_definition, stateful_stage


@dataclass(frozen=True)
class SynthesizedRetraining:
    config: StageConfig
    construct: Retraining
    template: Template
    template_json: dict[str, Any]
    findings: list[Finding]

    def resources(self, resource_type: str) -> dict[str, Any]:
        return resources_of_type(self.template_json, resource_type)

    def one(self, resource_type: str) -> dict[str, Any]:
        (resource,) = self.resources(resource_type).values()
        return dict(resource)


@cache
def synthesized_retraining() -> dict[str, SynthesizedRetraining]:
    context = load_cdk_json_context()
    config = load_config(context[CONTEXT_KEY])
    by_env = {sc.env_name: sc for sc in config.stages_for_branch(config.default_branch)}
    app = cdk.App(context=context)
    built = {}
    for env_name in ("staging", "dev"):
        stage_config = in_test_account(by_env[env_name])
        stage, stateful = stateful_stage(app, stage_config.stage_id, stage_config)
        stack = cdk.Stack(stage, "Operations")
        lake = stateful.lake
        topic = sns.Topic(stack, "Topic", master_key=lake.key, enforce_ssl=True)
        dead_letter_queue = None
        if env_name == "staging":
            dead_letter_queue = sqs.Queue(
                stack, "Dlq", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True
            )
            for finding in ("AwsSolutions-SQS3", "Serverless-SQSRedrivePolicy"):
                acknowledge(dead_letter_queue, finding, "Test fixture: this queue IS the DLQ.")
        construct = Retraining(
            stack,
            "Retraining",
            naming=stage_config.naming,
            settings=stage_config.environment.retraining,
            pipeline_name=stage_config.naming.pipeline,
            input_data_url=lake.curated_bucket.s3_url_for_object(CURATED_PREFIX),
            key=lake.key,
            log_retention_days=stage_config.environment.retention.log_days,
            removal_policy=cdk.RemovalPolicy.RETAIN,
            topic=topic,
            dead_letter_queue=dead_letter_queue,
        )
        built[env_name] = (stage_config, stage, stack, construct)
    gate = {name: findings(parts[1]) for name, parts in built.items()}
    result = {}
    for name, (stage_config, _stage, stack, construct) in built.items():
        template = Template.from_stack(stack)
        result[name] = SynthesizedRetraining(
            stage_config, construct, template, dict(template.to_json()), gate[name]
        )
    return result


def state_machine_definition(stage: SynthesizedRetraining, resolve: Any) -> dict[str, Any]:
    """The synthesized ASL with every CloudFormation token replaced by ``resolve(token)``."""
    return resolved_definition(stage.one("AWS::StepFunctions::StateMachine"), resolve)
