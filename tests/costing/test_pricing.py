"""Pricing of each resource type, on small hand-written assemblies (no synth)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from costing import CostingError, load_prices, stage_costs
from costing.__main__ import main
from costing.estimate import monthly_invocations, price_endpoint

PRICES = load_prices("us-east-1")
HOURS = PRICES.hours_per_month


def write_assembly(
    root: Path, stages: dict[str, tuple[str, dict[str, Any]]], kinds: dict[str, str] | None = None
) -> Path:
    """A cloud assembly with one stack per stage: {stage: (account, resources)}."""
    artifacts: dict[str, Any] = {}
    for stage, (account, resources) in stages.items():
        directory = root / f"assembly-{stage}"
        directory.mkdir(parents=True)
        (directory / "Stack.template.json").write_text(json.dumps({"Resources": resources}))
        (directory / "manifest.json").write_text(
            json.dumps(
                {
                    "artifacts": {
                        "Stack": {
                            "type": "aws:cloudformation:stack",
                            "environment": f"aws://{account}/us-east-1",
                            "properties": {"templateFile": "Stack.template.json"},
                        }
                    }
                }
            )
        )
        artifacts[f"assembly-{stage}"] = {
            "type": "cdk:cloud-assembly",
            "properties": {"directoryName": f"assembly-{stage}", "displayName": stage},
        }
    (root / "manifest.json").write_text(json.dumps({"artifacts": artifacts}))
    if kinds:
        summary = {
            "stages": [
                {"stage": s, "kind": k, "environment": "dev", "account": stages[s][0]}
                for s, k in kinds.items()
            ]
        }
        (root / "mlops-summary.json").write_text(json.dumps(summary))
    return root


def one(tmp_path: Path, resources: dict[str, Any], stage: str = "mlops-dev") -> Any:
    [cost] = stage_costs(write_assembly(tmp_path, {stage: ("111111111111", resources)}))
    return cost


def item(cost: Any, type_: str) -> Any:
    [found] = [i for i in cost.items if i.resource_type == type_]
    return found


def alarm(**props: Any) -> dict[str, Any]:
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {"Period": 300, **props}}


def test_kms_keys_cost_a_dollar_each(tmp_path: Path) -> None:
    key = {"Type": "AWS::KMS::Key", "Properties": {"EnableKeyRotation": True}}
    alias = {"Type": "AWS::KMS::Alias", "Properties": {}}
    cost = one(tmp_path, {"A": key, "B": key, "C": {"Type": "AWS::KMS::Key"}, "D": alias})
    assert item(cost, "AWS::KMS::Key").monthly_usd == 3.0
    assert cost.zero_at_idle == {"AWS::KMS::Alias": 1}
    assert cost.idle_monthly_usd == 3.0


def test_serving_image_repository_is_priced_per_stored_gb(tmp_path: Path) -> None:
    """serving_image: custom: the stage repository's images (assumed size x storage price);
    the deploy-time copy costs nothing at idle."""
    cost = one(
        tmp_path,
        {
            "Repo": {"Type": "AWS::ECR::Repository", "Properties": {}},
            "Copy": {"Type": "Custom::ServingImageCopy", "Properties": {}},
        },
    )
    line = item(cost, "AWS::ECR::Repository")
    size = PRICES["ecr.serving_image_gb"].quantity
    assert size is not None and 0 < size < 1
    assert line.monthly_usd == pytest.approx(size * PRICES["ecr.storage_gb_month"].usd)
    assert cost.zero_at_idle["Custom::ServingImageCopy"] == 1
    assert cost.unpriced == {}


def test_alarms_bill_per_metric_after_the_owner_account_free_tier(tmp_path: Path) -> None:
    math_alarm = alarm(
        Metrics=[
            {"Id": "e", "Expression": "a+b"},
            {"Id": "a", "MetricStat": {"Period": 60}},
            {"Id": "b", "MetricStat": {"Period": 60}},
        ]
    )
    resources = {f"A{i}": alarm() for i in range(10)} | {"M": math_alarm, "H": alarm(Period=10)}
    # 10 single-metric + 2 metrics of the math alarm = 12 standard metrics; 10 free; 1 high-res.
    cost = one(tmp_path, resources)
    assert item(cost, "AWS::CloudWatch::Alarm").monthly_usd == pytest.approx(2 * 0.10 + 0.30)


def test_an_ephemeral_stage_pays_every_alarm_dashboard_and_its_trail_copy(tmp_path: Path) -> None:
    trail = {
        "Type": "AWS::CloudTrail::Trail",
        "Properties": {
            "IsLogging": True,
            "AdvancedEventSelectors": [
                {"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}
            ],
        },
    }
    resources = {
        "A": alarm(),
        "D": {"Type": "AWS::CloudWatch::Dashboard", "Properties": {}},
        "T": trail,
    }
    root = write_assembly(
        tmp_path,
        {"mlops-dev": ("111111111111", resources), "mlops-br-x": ("111111111111", resources)},
        kinds={"mlops-dev": "shared", "mlops-br-x": "ephemeral"},
    )
    dev, branch = stage_costs(root)
    assert dev.idle_monthly_usd == 0.0  # 1 of 10 alarm metrics, 1 of 3 dashboards, first trail
    events = PRICES["cloudtrail.idle_management_events"].quantity
    assert events
    assert item(branch, "AWS::CloudTrail::Trail").monthly_usd == pytest.approx(
        events / 100_000 * 2.0
    )
    assert branch.idle_monthly_usd == pytest.approx(0.10 + 3.0 + events / 100_000 * 2.0, abs=0.01)
    assert branch.budget_usd == 1.0 and dev.budget_usd == 5.0


def test_a_data_events_only_trail_costs_nothing_at_idle(tmp_path: Path) -> None:
    data_only = {
        "Type": "AWS::CloudTrail::Trail",
        "Properties": {
            "AdvancedEventSelectors": [
                {"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]}]}
            ]
        },
    }
    root = write_assembly(
        tmp_path,
        {"mlops-dev": ("111111111111", {}), "mlops-br-x": ("111111111111", {"T": data_only})},
        kinds={"mlops-dev": "shared", "mlops-br-x": "ephemeral"},
    )
    assert stage_costs(root)[1].idle_monthly_usd == 0.0


def test_a_second_shared_stage_in_the_same_account_gets_no_free_tier(tmp_path: Path) -> None:
    resources = {"D": {"Type": "AWS::CloudWatch::Dashboard", "Properties": {}}}
    root = write_assembly(
        tmp_path,
        {"mlops-dev": ("111111111111", resources), "mlops-staging": ("111111111111", resources)},
        kinds={"mlops-dev": "shared", "mlops-staging": "shared"},
    )
    assert [c.idle_monthly_usd for c in stage_costs(root)] == [0.0, 3.0]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("cron(0 2 ? * * *)", 30.44),  # daily
        ("cron(0 3 ? * MON *)", 4.35),  # weekly
        ("cron(0 5 * * ? *)", 30.44),
        ("cron(0/15 * * * ? *)", 4 * 24 * 30.44),
        ("cron(0 8 1 * ? *)", 1.0),  # monthly
        ("rate(1 hour)", 730.5),
        ("rate(5 minutes)", 8766.0),
        ("at(2026-12-01T00:00:00)", 0.0),
    ],
)
def test_schedule_invocations_per_month(expression: str, expected: float) -> None:
    assert monthly_invocations(expression) == pytest.approx(expected, rel=0.01)


def test_schedules_are_priced_per_invocation(tmp_path: Path) -> None:
    every_minute = {
        "Type": "AWS::Scheduler::Schedule",
        "Properties": {"ScheduleExpression": "rate(1 minute)"},
    }
    disabled = {
        "Type": "AWS::Scheduler::Schedule",
        "Properties": {"ScheduleExpression": "rate(1 minute)", "State": "DISABLED"},
    }
    cost = one(tmp_path, {"S": every_minute, "D": disabled})
    assert item(cost, "AWS::Scheduler::Schedule").monthly_usd == pytest.approx(43830 / 1e6)


def test_a_bad_schedule_expression_is_one_line(tmp_path: Path) -> None:
    bad = {"Type": "AWS::Scheduler::Schedule", "Properties": {"ScheduleExpression": "daily"}}
    with pytest.raises(CostingError, match="expected rate\\(\\), cron\\(\\) or at\\(\\)"):
        one(tmp_path, {"S": bad})


def test_interface_endpoints_are_priced_per_az_hour_and_nat_per_hour(tmp_path: Path) -> None:
    interface = {
        "Type": "AWS::EC2::VPCEndpoint",
        "Properties": {"VpcEndpointType": "Interface", "SubnetIds": ["subnet-a", "subnet-b"]},
    }
    gateway = {"Type": "AWS::EC2::VPCEndpoint", "Properties": {"VpcEndpointType": "Gateway"}}
    nat = {"Type": "AWS::EC2::NatGateway", "Properties": {}}
    cost = one(tmp_path, {"I": interface, "G": gateway, "N": nat})
    assert item(cost, "AWS::EC2::VPCEndpoint").monthly_usd == pytest.approx(2 * HOURS * 0.01)
    assert item(cost, "AWS::EC2::NatGateway").monthly_usd == pytest.approx(HOURS * 0.045)


def test_unknown_and_scheduled_types_are_unpriced_not_ignored(tmp_path: Path) -> None:
    cost = one(
        tmp_path,
        {
            "R": {"Type": "AWS::RDS::DBInstance", "Properties": {}},
            "T": {"Type": "AWS::Glue::Trigger", "Properties": {"Type": "SCHEDULED"}},
            "E": {"Type": "AWS::Events::Rule", "Properties": {"ScheduleExpression": "rate(1 day)"}},
        },
    )
    assert set(cost.unpriced) == {"AWS::RDS::DBInstance", "AWS::Glue::Trigger", "AWS::Events::Rule"}
    assert "UNPRICED" in cost.line()


def test_serverless_endpoint_is_free_idle_and_priced_per_request() -> None:
    variant = {"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}
    cost = price_endpoint(variant, 1, None, PRICES)
    a = PRICES.assumptions
    per_request = (
        2 * a["request_duration_ms"] / 1000 * 0.00002
        + (a["request_payload_kb"] + a["response_payload_kb"]) / 1024**2 * 0.016
    )
    assert cost.idle_monthly_usd == 0.0
    assert cost.per_1000_requests_usd == pytest.approx(1000 * per_request)


def test_instance_endpoint_idles_at_min_instances_all_month() -> None:
    cost = price_endpoint({"InstanceType": "ml.m5.xlarge"}, 2, 200, PRICES)
    assert cost.idle_monthly_usd == pytest.approx(2 * 0.23 * HOURS)
    assert cost.per_1000_requests_usd == pytest.approx(0.23 / 60 * 1000 / 200)


def test_an_instance_type_missing_from_the_table_is_a_one_line_error() -> None:
    with pytest.raises(
        CostingError, match=re.escape("no price 'sagemaker.hosting.ml.p5.48xlarge'")
    ):
        price_endpoint({"InstanceType": "ml.p5.48xlarge"}, 1, 100, PRICES)


def test_price_table_entries_name_unit_source_and_date() -> None:
    raw = json.loads(Path("costing/prices/us-east-1.json").read_text())
    assert raw["region"] == "us-east-1"
    for key, entry in raw["prices"].items():
        assert isinstance(entry["usd"], (int, float)) and entry["usd"] >= 0, key
        assert entry["unit"] and entry["source"], key
        assert entry["retrieved"] == raw["retrieved"], key
        assert entry["source"].startswith(("https://", "source: not found")), key


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["costing", str(tmp_path / "missing")]) == 2
    assert "no cloud assembly" in capsys.readouterr().err
    write_assembly(tmp_path / "a", {"mlops-dev": ("1", {"R": {"Type": "AWS::RDS::DBInstance"}})})
    assert main(["costing", str(tmp_path / "a")]) == 1
    write_assembly(tmp_path / "b", {"mlops-dev": ("1", {"K": {"Type": "AWS::KMS::Key"}})})
    assert main(["costing", str(tmp_path / "b"), "--detail"]) == 0
    out = capsys.readouterr().out
    assert "cost mlops-dev" in out and "idle $   1.00/month (budget $5.00: ok)" in out
