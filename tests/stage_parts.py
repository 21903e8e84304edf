"""Pieces of a stage that test modules build their own small Apps from, as infra/stages.py does:
a shipped stage's config moved to the test account, a ``cdk.Stage`` there holding the real
:class:`StatefulStack` (data kept), the :class:`OperationsStack` wired to its lake, and the
synthesized ASL of a state machine with its CloudFormation tokens resolved."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aws_cdk as cdk
from constructs import Construct

from data_lake.infrastructure import StatePolicy
from infra.config import StageConfig
from stacks.stateful_stack import StatefulStack

if TYPE_CHECKING:
    from stacks.operations_stack import OperationsStack

ACCOUNT = "111111111111"
REGION = "us-east-1"


def in_test_account(config: StageConfig) -> StageConfig:
    """``config`` with its environment's account replaced by :data:`ACCOUNT`."""
    return dataclasses.replace(
        config, environment=dataclasses.replace(config.environment, account=ACCOUNT)
    )


def stateful_stage(
    scope: Construct, stage_id: str, config: StageConfig
) -> tuple[cdk.Stage, StatefulStack]:
    """A stage ``stage_id`` in :data:`ACCOUNT`/:data:`REGION` holding the stateful stack
    ``Stateful`` (removal policy RETAIN, objects kept)."""
    stage = cdk.Stage(scope, stage_id, env=cdk.Environment(account=ACCOUNT, region=REGION))
    stateful = StatefulStack(
        stage,
        "Stateful",
        config=config,
        state=StatePolicy(removal_policy=cdk.RemovalPolicy.RETAIN, auto_delete_objects=False),
    )
    return stage, stateful


def operations_stack(
    stage: cdk.Stage, stateful: StatefulStack, config: StageConfig, *, pipeline_name: str
) -> OperationsStack:
    """The operations stack ``Operations`` of ``stage``, on ``stateful``'s lake (as the stage
    builds it)."""
    from stacks.operations_stack import OperationsStack

    return OperationsStack.on_lake(
        stage, "Operations", config=config, lake=stateful.lake, pipeline_name=pipeline_name
    )


def resolved_definition(machine: dict[str, Any], resolve: Callable[[Any], str]) -> dict[str, Any]:
    """A synthesized state machine's ASL with every CloudFormation token replaced by
    ``resolve(token)``."""
    body = machine["Properties"]["DefinitionString"]
    if isinstance(body, str):
        return dict(json.loads(body))
    separator, parts = body["Fn::Join"]
    assert separator == ""
    return dict(json.loads("".join(p if isinstance(p, str) else resolve(p) for p in parts)))
