"""The ``delivery`` config section: typed defaults, placeholders, one-line errors naming the key,
the value and what is allowed; no section, no pipeline."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from infra.config import ConfigError, DeliveryConfig, LoadTestThresholds, load_config

UUID = "7d2469ff-514a-4e4f-9003-5ca4a43cdc41"


def _delivery(config: dict[str, Any]) -> dict[str, Any]:
    section: dict[str, Any] = config["delivery"]
    return section


def test_shipped_delivery_section_is_typed_with_placeholders(mlops_config: dict[str, Any]) -> None:
    delivery = load_config(mlops_config).delivery
    assert isinstance(delivery, DeliveryConfig)
    assert delivery.account == "444444444444" and delivery.placeholder_account
    assert delivery.branch == "main"  # defaults to default_branch
    assert delivery.load_test == LoadTestThresholds(
        p99_latency_ms=1000, max_error_rate=0.01, rate_per_second=20, duration_seconds=120
    )


def test_branch_defaults_to_the_default_branch(mlops_config: dict[str, Any]) -> None:
    mlops_config["default_branch"] = "trunk"
    _delivery(mlops_config).pop("branch", None)
    assert load_config(mlops_config).delivery.branch == "trunk"  # type: ignore[union-attr]
    _delivery(mlops_config)["branch"] = "release"
    assert load_config(mlops_config).delivery.branch == "release"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "arn",
    [
        f"arn:aws:codeconnections:eu-west-1:123456789012:connection/{UUID}",
        f"arn:aws:codestar-connections:us-east-1:123456789012:connection/{UUID}",
        f"arn:aws-us-gov:codeconnections:us-gov-west-1:123456789012:connection/{UUID}",
    ],
)
def test_connection_arn_forms_accepted(mlops_config: dict[str, Any], arn: str) -> None:
    _delivery(mlops_config)["connection_arn"] = arn
    assert load_config(mlops_config).delivery.connection_arn == arn  # type: ignore[union-attr]


def test_load_test_defaults_when_omitted(mlops_config: dict[str, Any]) -> None:
    del _delivery(mlops_config)["load_test"]
    assert load_config(mlops_config).delivery.load_test == LoadTestThresholds(  # type: ignore[union-attr]
        p99_latency_ms=1000, max_error_rate=0.01, rate_per_second=20, duration_seconds=120
    )


@pytest.mark.parametrize("rate", [0, 0.0, 0.5, 1, 1.0])
def test_error_rate_bounds_are_closed(mlops_config: dict[str, Any], rate: float) -> None:
    _delivery(mlops_config)["load_test"]["max_error_rate"] = rate
    loaded = load_config(mlops_config).delivery.load_test.max_error_rate  # type: ignore[union-attr]
    assert loaded == rate and type(loaded) is float


def test_no_delivery_section_no_pipeline(mlops_config: dict[str, Any]) -> None:
    del mlops_config["delivery"]
    assert load_config(mlops_config).delivery is None
    mlops_config["delivery"] = None
    assert load_config(mlops_config).delivery is None


_ARN = "arn:aws:codeconnections:us-east-1:444444444444:connection/"
BAD = [
    # (key under delivery, bad value, text the message must contain)
    ("account", "44444444444", "12-digit AWS account id"),
    ("account", 444444444444, "12-digit AWS account id"),
    ("region", "us-middle-9", "AWS region name"),
    ("connection_arn", f"{_ARN}not-a-uuid", "arn:aws:codeconnections:REGION:ACCOUNT:connection/ID"),
    ("connection_arn", f"arn:aws:codecommit:us-east-1:444444444444:connection/{UUID}", "codestar"),
    ("connection_arn", f"arn:aws:codeconnections:us-east-1:4444:connection/{UUID}", "12-digit"),
    ("connection_arn", f"arn:aws:codeconnections:mars-1:444444444444:connection/{UUID}", "REGION"),
    ("connection_arn", f"{_ARN}{UUID}\n", "connection/ID"),
    ("connection_arn", f"arn:aws:codeconnections:us-east-1:444444444444:host/{UUID}", "connection"),
    ("repository", "mlops", "owner/name"),
    ("repository", "my-org/mlops/extra", "owner/name"),
    ("repository", "https://github.com/my-org/mlops", "owner/name"),
    ("branch", "", "git branch name"),
    ("branch", " main", "git branch name"),
    ("load_test.p99_latency_ms", 0, "positive whole number"),
    ("load_test.p99_latency_ms", -5, "positive whole number"),
    ("load_test.p99_latency_ms", 250.5, "positive whole number"),
    ("load_test.max_error_rate", 1.5, "finite number in [0, 1]"),
    ("load_test.max_error_rate", -0.1, "finite number in [0, 1]"),
    ("load_test.max_error_rate", float("nan"), "finite number in [0, 1]"),
    ("load_test.max_error_rate", "0.01", "finite number in [0, 1]"),
    ("load_test.max_error_rate", True, "finite number in [0, 1]"),
    ("load_test.rate_per_second", 0, "positive whole number"),
    ("load_test.duration_seconds", 3601, "up to 3600"),
    ("load_test.p99_ms", 100, "unknown key"),
    ("acount", "444444444444", "did you mean 'account'"),
]


@pytest.mark.parametrize(("key", "value", "expected"), BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_bad_delivery_value_is_one_line_naming_key_value_and_allowed(
    mlops_config: dict[str, Any], key: str, value: Any, expected: str
) -> None:
    node = _delivery(mlops_config)
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    with pytest.raises(ConfigError) as raised:
        load_config(mlops_config)
    message = str(raised.value)
    assert "\n" not in message
    assert expected in message
    assert raised.value.key == f"mlops.delivery.{key}" and raised.value.key in message
    assert repr(value) in message


def test_missing_required_delivery_key(mlops_config: dict[str, Any]) -> None:
    for key in ("account", "region", "connection_arn", "repository"):
        config = copy.deepcopy(mlops_config)
        del config["delivery"][key]
        with pytest.raises(ConfigError, match=rf"mlops\.delivery\.{key} = None: required"):
            load_config(config)


def test_delivery_must_be_an_object(mlops_config: dict[str, Any]) -> None:
    mlops_config["delivery"] = "444444444444"
    with pytest.raises(ConfigError, match=r"mlops\.delivery = '444444444444': expected an object"):
        load_config(mlops_config)


def test_synth_stops_on_a_bad_delivery_value_before_building_anything(
    cdk_context: dict[str, Any], tmp_path: Path
) -> None:
    """What ``app.py`` prints (in one line, exit status 2: tests/foundation/test_config.py runs
    the app for that) is this error, raised before any stage is built."""
    from infra.app_builder import synthesize

    context = copy.deepcopy(cdk_context)
    context["mlops"]["delivery"]["connection_arn"] = "arn:aws:codeconnections:us-east-1:1:x"
    with pytest.raises(ConfigError) as raised:
        synthesize(context, outdir=str(tmp_path))
    assert str(raised.value).startswith(
        "config error: mlops.delivery.connection_arn = 'arn:aws:codeconnections:us-east-1:1:x': "
        "expected arn:aws:codeconnections:REGION:ACCOUNT:connection/ID"
    )
    assert not any(tmp_path.iterdir())
