"""The ``retraining`` config section: typed defaults, the shipped values, and every bad value a
one-line config error naming key, value and what is allowed (schedule expressions parsed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.config import ConfigError, RetrainingConfig, load_config, schedule_expression_problem

REPO = Path(__file__).resolve().parents[2]


def _retraining(config: dict[str, Any], env: str = "staging") -> dict[str, Any]:
    section: dict[str, Any] = config["environments"][env].setdefault("retraining", {})
    return section


def test_shipped_config_has_a_typed_retraining_section(mlops_config: dict[str, Any]) -> None:
    environments = load_config(mlops_config).environments
    staging = environments["staging"].retraining
    assert staging == RetrainingConfig(
        enabled=True,
        schedule="cron(0 3 ? * MON *)",
        cooldown_minutes=360,
        drift_share_threshold=0.5,
        latency_p99_ms=1000,
        errors_5xx_threshold=5,
    )
    assert environments["dev"].retraining.schedule is None
    assert type(staging.drift_share_threshold) is float


def test_an_absent_section_gets_the_documented_defaults(mlops_config: dict[str, Any]) -> None:
    del mlops_config["environments"]["prod"]["retraining"]
    assert load_config(mlops_config).environments["prod"].retraining == RetrainingConfig(
        enabled=True,
        schedule=None,
        cooldown_minutes=360,
        drift_share_threshold=0.5,
        latency_p99_ms=1000,
        errors_5xx_threshold=5,
    )


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 3 ? * MON *)",
        "cron(0 3 * * ? *)",
        "cron(0/15 8-18 ? * MON-FRI *)",
        "cron(30 2 1,15 * ? *)",
        "cron(0 3 L * ? *)",
        "cron(0 3 ? * 6#3 *)",
        "cron(0 3 ? JAN-MAR 2L 2027)",
        "rate(1 day)",
        "rate(12 hours)",
        "rate(30 minutes)",
    ],
)
def test_documented_schedule_expressions_are_accepted(
    mlops_config: dict[str, Any], expression: str
) -> None:
    assert schedule_expression_problem(expression) is None
    _retraining(mlops_config)["schedule"] = expression
    assert load_config(mlops_config).environments["staging"].retraining.schedule == expression


BAD = [
    # (key, bad value, text the message must contain)
    ("schedule", "cron(0 3 * * *)", "6 space-separated fields, got 5"),  # Unix cron
    ("schedule", "cron(0 3 * * * *)", "exactly one of day-of-month and day-of-week"),
    ("schedule", "cron(0 3 ? * ? *)", "exactly one of day-of-month and day-of-week"),
    ("schedule", "cron(61 3 ? * MON *)", "cron minutes field '61'"),
    ("schedule", "cron(0 24 ? * MON *)", "cron hours field '24'"),
    ("schedule", "cron(0 3 ? 13 MON *)", "cron month field '13'"),
    ("schedule", "cron(0 3 ? * FUNDAY *)", "cron day-of-week field 'FUNDAY'"),
    ("schedule", "cron(0 3 ? * MON 1900)", "cron year field '1900'"),
    ("schedule", "cron(0 ? ? * MON *)", "cron hours field '?'"),
    ("schedule", "rate(1 days)", "singular unit for 1"),
    ("schedule", "rate(5 hour)", "singular unit for 1"),
    ("schedule", "rate(0 hours)", "expected cron("),
    ("schedule", "rate(5 weeks)", "expected cron("),
    ("schedule", "at(2026-12-01T03:00:00)", "expected cron("),
    ("schedule", "0 3 * * *", "expected cron("),
    ("schedule", 7, "expected a string"),
    ("cooldown_minutes", 0, "positive whole number"),
    ("cooldown_minutes", -5, "positive whole number"),
    ("cooldown_minutes", 1.5, "positive whole number"),
    ("cooldown_minutes", "60", "positive whole number"),
    ("drift_share_threshold", 1.5, "finite number in [0, 1]"),
    ("drift_share_threshold", -0.1, "finite number in [0, 1]"),
    ("drift_share_threshold", True, "finite number in [0, 1]"),
    ("drift_share_threshold", "0.5", "finite number in [0, 1]"),
    ("latency_p99_ms", 0, "positive whole number"),
    ("errors_5xx_threshold", 0, "positive whole number"),
    ("enabled", "yes", "true or false"),
    ("cooldown", 60, "unknown key (did you mean 'cooldown_minutes'?)"),
]


@pytest.mark.parametrize(("key", "value", "expected"), BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_bad_value_is_one_line_naming_key_value_and_allowed(
    mlops_config: dict[str, Any], key: str, value: Any, expected: str
) -> None:
    _retraining(mlops_config)[key] = value
    with pytest.raises(ConfigError) as raised:
        load_config(mlops_config)
    message = str(raised.value)
    assert "\n" not in message
    assert raised.value.key == f"mlops.environments.staging.retraining.{key}"
    assert message.startswith(f"config error: mlops.environments.staging.retraining.{key} = ")
    assert repr(value) in message
    assert expected in message


def test_the_section_must_be_an_object(mlops_config: dict[str, Any]) -> None:
    mlops_config["environments"]["dev"]["retraining"] = "weekly"
    with pytest.raises(ConfigError, match=r"^config error: mlops.environments.dev.retraining = "):
        load_config(mlops_config)


def test_synth_refuses_a_bad_cron_with_one_line(
    cdk_context: dict[str, Any], tmp_path: Path
) -> None:
    """The app's exit path (code 2, the line on stderr) is tested once in
    tests/foundation/test_config.py; here the same synthesize() the app calls, in process."""
    from infra.app_builder import synthesize

    context = json.loads(json.dumps(cdk_context))
    context["mlops"]["environments"]["prod"]["retraining"]["schedule"] = "cron(0 3 * * *)"
    with pytest.raises(ConfigError) as error:
        synthesize(context, outdir=str(tmp_path))
    assert str(error.value) == (
        "config error: mlops.environments.prod.retraining.schedule = 'cron(0 3 * * *)': "
        "a cron expression has 6 space-separated fields, got 5, or null"
    )
