"""Idle cost of the session synth's stages: budgets, coverage of every resource type, and the
endpoint priced from the deployment workflow matching each stage's config."""

from __future__ import annotations

from typing import Any

import pytest

from costing import PRICED_TYPES, ZERO_AT_IDLE, StageCost, load_prices, stage_costs
from infra.config import InstanceEndpoint, ServerlessEndpoint
from tests.conftest import EPHEMERAL_STAGE


@pytest.fixture(scope="module")
def costs(synthesized: Any) -> dict[str, StageCost]:
    return {c.stage: c for c in stage_costs(synthesized.assembly.directory)}


def test_every_resource_type_is_priced_or_zero_at_idle(
    templates: dict[str, dict[str, dict[str, Any]]], costs: dict[str, StageCost]
) -> None:
    types = {
        resource["Type"]
        for stacks in templates.values()
        for template in stacks.values()
        for resource in template["Resources"].values()
    }
    assert not types - set(PRICED_TYPES) - set(ZERO_AT_IDLE), "add the new type to costing/"
    assert {name: c.unpriced for name, c in costs.items() if c.unpriced} == {}
    for cost in costs.values():
        assert {i.resource_type for i in cost.items} | set(cost.zero_at_idle) <= types


def test_every_price_key_the_rules_use_is_in_the_table() -> None:
    table = load_prices("us-east-1")
    for keys in PRICED_TYPES.values():
        for key in keys:
            assert table[key].unit


@pytest.mark.parametrize("stage", ["mlops-dev", "mlops-staging"])
def test_shared_stages_meet_their_idle_budget(costs: dict[str, StageCost], stage: str) -> None:
    cost = costs[stage]
    assert cost.budget_usd is not None
    assert cost.idle_monthly_usd <= cost.budget_usd, cost.line()


def test_branch_stage_meets_its_idle_budget(costs: dict[str, StageCost]) -> None:
    cost = costs[EPHEMERAL_STAGE]
    assert cost.budget_usd == 1.0
    assert cost.idle_monthly_usd <= cost.budget_usd, cost.line()


def test_branch_stage_idle_cost_does_not_grow(costs: dict[str, StageCost]) -> None:
    """What keeps a branch stage at $1 (branch_environments.cost_controls, README "Cost"): one
    KMS key, no alarm, no dashboard, no billed trail copy. A change that adds one back fails
    here naming the line item, before the budget test above."""
    cost = costs[EPHEMERAL_STAGE]
    # A cent or more a month: the key only (its daily drift schedule is $0.00003).
    billed = {i.resource_type: i for i in cost.items if i.monthly_usd >= 0.01}
    assert set(billed) == {"AWS::KMS::Key"}, cost.line() + " " + str(sorted(billed))
    assert billed["AWS::KMS::Key"].count == 1
    assert sum(i.monthly_usd for i in cost.items if i.resource_type not in billed) < 0.01
    counts = {i.resource_type: i.count for i in cost.items}
    assert "AWS::CloudWatch::Alarm" not in counts and "AWS::CloudWatch::Dashboard" not in counts
    assert cost.idle_monthly_usd <= 1.00, cost.line()


def test_kms_keys_are_counted_per_stage(
    templates: dict[str, dict[str, dict[str, Any]]], costs: dict[str, StageCost]
) -> None:
    for stage, stacks in templates.items():
        keys = sum(
            r["Type"] == "AWS::KMS::Key" for t in stacks.values() for r in t["Resources"].values()
        )
        [item] = [i for i in costs[stage].items if i.resource_type == "AWS::KMS::Key"]
        assert keys >= 1 and item.count == keys and item.monthly_usd == keys * 1.0


def test_endpoint_priced_from_the_workflow_matches_the_stage_config(
    synthesized: Any, costs: dict[str, StageCost]
) -> None:
    prices = load_prices("us-east-1")
    for stage in synthesized.stages:
        sizing = stage.config.environment.sizing.endpoint
        endpoint = costs[stage.stage_name].endpoint
        assert endpoint is not None, stage.stage_name
        if isinstance(sizing, ServerlessEndpoint):
            assert endpoint.mode == "serverless" and endpoint.idle_monthly_usd == 0.0
            assert f"serverless {sizing.memory_mb} MB" in endpoint.description
            assert f"max concurrency {sizing.max_concurrency}" in endpoint.description
        else:
            assert isinstance(sizing, InstanceEndpoint)
            hourly = prices.hosting(sizing.instance_type).usd
            assert endpoint.mode == "instances"
            assert endpoint.idle_monthly_usd == pytest.approx(
                sizing.min_instances * hourly * prices.hours_per_month
            )
            assert endpoint.per_1000_requests_usd == pytest.approx(
                hourly / 60 * 1000 / sizing.target_invocations_per_instance
            )
        assert endpoint.per_1000_requests_usd > 0


def test_staging_serves_serverless_so_it_idles_for_the_price_of_its_keys(
    costs: dict[str, StageCost],
) -> None:
    staging = costs["mlops-staging"]
    assert staging.endpoint is not None and staging.endpoint.mode == "serverless"
    # Only the KMS keys are billed at idle: the rest is within the account's free tier.
    assert staging.idle_monthly_usd == sum(
        i.monthly_usd for i in staging.items if i.resource_type == "AWS::KMS::Key"
    )
