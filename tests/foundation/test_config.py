"""Config validation: every bad value is one clear line naming the key, the value and what is
allowed; the real cdk.json loads into typed, frozen objects."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.app_builder import synthesize
from infra.config import (
    AuditConfig,
    ConfigError,
    InstanceEndpoint,
    MonitoringConfig,
    ServerlessEndpoint,
    StageKind,
    load_config,
)

REPO = Path(__file__).resolve().parents[2]


def test_shipped_config_loads_into_frozen_typed_objects(mlops_config: dict[str, Any]) -> None:
    config = load_config(mlops_config)
    assert set(config.environments) == {"dev", "staging", "prod"}
    dev = config.environments["dev"]
    assert dev.account == "111111111111" and dev.placeholder_account
    assert isinstance(dev.sizing.endpoint, ServerlessEndpoint)
    assert isinstance(config.environments["prod"].sizing.endpoint, InstanceEndpoint)
    with pytest.raises(dataclasses.FrozenInstanceError):
        dev.region = "eu-west-1"  # type: ignore[misc]


def _set(config: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = config
    for part in parents:
        node = node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value


_DELETE = object()

BAD_VALUES = [
    # (path inside the mlops block, bad value, text the message must contain)
    ("environments.dev.account", "12345", "12-digit AWS account id"),
    ("environments.dev.account", 111111111111, "12-digit AWS account id"),
    ("environments.dev.account", "1111111111111", "12-digit AWS account id"),  # 13 digits
    ("environments.dev.account", "11111111111", "12-digit AWS account id"),  # 11 digits
    ("environments.dev.account", "111111111111\n", "12-digit AWS account id"),  # `$` admits it
    ("environments.dev.account", " 111111111111", "12-digit AWS account id"),
    ("environments.dev.account", "\u0661" * 12, "12-digit AWS account id"),  # Arabic-Indic
    ("environments.dev.account", "\uff11" * 12, "12-digit AWS account id"),  # fullwidth
    ("environments.staging.region", "us-middle-9", "AWS region name"),
    ("environments.qa", {"account": "444444444444", "region": "us-east-1"}, "unknown key"),
    ("environments.prod", _DELETE, "required key is missing"),
    ("environments.dev.sizing.training_instance_type", "m5.large", "SageMaker instance type"),
    ("environments.dev.sizing.processing_instance_type", "ml.m5", "SageMaker instance type"),
    ("environments.dev.sizing.training_instance_count", 0, "positive whole number"),
    ("environments.dev.sizing.processing_instance_count", -2, "positive whole number"),
    ("environments.dev.sizing.training_instance_count", 1.5, "positive whole number"),
    ("environments.prod.sizing.endpoint.min_instances", 0, "positive whole number"),
    ("environments.prod.sizing.endpoint.max_instances", 1, "at least min_instances"),
    ("environments.dev.sizing.endpoint.memory_mb", 1000, "allowed: 1024"),
    ("environments.dev.sizing.endpoint.mode", "gpu", "allowed: serverless, instances"),
    ("environments.dev.retention.log_days", -1, "retention periods"),
    ("environments.dev.retention.log_days", 0, "retention periods"),
    ("environments.dev.retention.noncurrent_version_days", 0, "positive whole number"),
    ("environments.dev.retention.access_log_days", "90", "positive whole number"),
    ("environments.dev.retention.raw_infrequent_access_days", 10, "at least 30 days"),
    ("environments.dev.regoin", "us-east-1", "did you mean 'region'"),
    ("environments.dev.sizing.traning_instance_type", "ml.m5.large", "unknown key"),
    ("projekt", "x", "did you mean 'project'"),
    ("project", "My Project", "lowercase letters"),
    ("environments.dev.model_approval_threshold", 1.5, "finite number in [0, 1]"),
    ("environments.dev.model_approval_threshold", -0.01, "finite number in [0, 1]"),
    ("environments.dev.model_approval_threshold", float("nan"), "finite number in [0, 1]"),
    ("environments.dev.model_approval_threshold", float("inf"), "finite number in [0, 1]"),
    ("environments.dev.model_approval_threshold", float("-inf"), "finite number in [0, 1]"),
    ("environments.dev.model_approval_threshold", True, "finite number in [0, 1]"),
    ("environments.dev.model_approval_threshold", "0.9", "finite number in [0, 1]"),
    ("environments.dev.model_approval_threshold", None, "finite number in [0, 1]"),
    ("environments.dev.features.spot_training", "yes", "true or false"),
    ("environments.dev.tags", {"aws:owner": "x"}, "not aws:"),
    ("environments.dev.vpc", {"vpc_id": "vpc-123"}, "VPC id"),
    ("environments.dev.vpc", {"vpc_id": "vpc-0123456789abcdef0", "subnet_ids": []}, "non-empty"),
    # monitoring: the backend, its schedule and window, the ground-truth location
    ("environments.dev.monitoring.backend", "evidently", "allowed: model_monitor, drift_job, off"),
    ("environments.dev.monitoring.backend", None, "allowed: model_monitor, drift_job, off"),
    ("environments.dev.monitoring.backend", True, "allowed: model_monitor, drift_job, off"),
    ("environments.dev.monitoring.schedule", "daily", "expected cron("),
    ("environments.dev.monitoring.schedule", None, "expected a string"),
    ("environments.dev.monitoring.schedule", "cron(0 2 * * * *)", "exactly one of day-of-month"),
    ("environments.dev.monitoring.schedule", "rate(1 hours)", "singular unit"),
    ("environments.dev.monitoring.window_hours", 0, "positive whole number up to 168"),
    ("environments.dev.monitoring.window_hours", 169, "positive whole number up to 168"),
    ("environments.dev.monitoring.window_hours", 2.5, "positive whole number"),
    ("environments.dev.monitoring.ground_truth_s3_uri", "bucket/labels", "s3://bucket/prefix"),
    ("environments.dev.monitoring.ground_truth_s3_uri", "s3://", "s3://bucket/prefix"),
    ("environments.dev.monitoring.ground_truth_s3_uri", "s3://Bad_Bucket/x", "s3://bucket/prefix"),
    ("environments.dev.monitoring.windows_hours", 2, "did you mean 'window_hours'"),
    # the old flag is gone: a config still carrying it is told what replaces it
    ("environments.dev.features.drift_monitoring", True, "replaced by monitoring.backend"),
    ("environments.prod.features.drift_monitoring", False, "allowed: model_monitor, drift_job"),
    # audit (the stage's CloudTrail trail)
    ("environments.prod.audit", "on", "expected an object with keys read_data_events"),
    ("environments.prod.audit.read_data_events", "yes", "expected true or false"),
    ("environments.dev.audit.object_lock", 1, "expected true or false"),
    ("environments.staging.audit.cloudwatch_logs", None, "expected true or false"),
    ("environments.prod.audit.retention_days", 0, "positive whole number up to 3650"),
    ("environments.prod.audit.retention_days", 3651, "positive whole number up to 3650"),
    ("environments.prod.audit.retention_days", True, "positive whole number up to 3650"),
    ("environments.prod.audit.retention_days", 365.0, "positive whole number up to 3650"),
    ("environments.prod.audit.read_events", False, "did you mean 'read_data_events'"),
    # serving_image (README "Serving image")
    ("environments.dev.serving_image", "byoc", "allowed: prebuilt, custom"),
    ("environments.prod.serving_image", "Custom", "allowed: prebuilt, custom"),
    ("environments.staging.serving_image", None, "allowed: prebuilt, custom"),
    ("environments.staging.serving_image", True, "allowed: prebuilt, custom"),
    ("environments.dev.serving_images", "custom", "did you mean 'serving_image'"),
]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    BAD_VALUES,
    ids=[f"{p}=<deleted>" if v is _DELETE else f"{p}={v!r}" for p, v, _ in BAD_VALUES],
)
def test_bad_value_is_one_line_naming_key_value_and_allowed(
    mlops_config: dict[str, Any], path: str, value: Any, expected: str
) -> None:
    _set(mlops_config, path, value)
    with pytest.raises(ConfigError) as raised:
        load_config(mlops_config)
    message = str(raised.value)
    assert "\n" not in message
    assert expected in message
    # names the key (the full path, or the offending key itself) and the value
    key = raised.value.key
    assert key.startswith("mlops.") and key in message
    assert path.split(".")[-1] in key or path in key
    if value is not _DELETE and not isinstance(value, dict):
        assert repr(value) in message


@pytest.mark.parametrize("threshold", [0, 0.0, 0.5, 1, 1.0])
def test_threshold_bounds_are_closed(mlops_config: dict[str, Any], threshold: float) -> None:
    mlops_config["environments"]["dev"]["model_approval_threshold"] = threshold
    loaded = load_config(mlops_config).environments["dev"].model_approval_threshold
    assert loaded == threshold and type(loaded) is float


def test_nan_threshold_from_json_text_is_rejected(mlops_config: dict[str, Any]) -> None:
    # Python's json module parses the non-standard NaN/Infinity literals one may type in cdk.json
    raw = json.dumps(mlops_config).replace(
        '"model_approval_threshold": 0.9', '"model_approval_threshold": NaN', 1
    )
    with pytest.raises(ConfigError, match=r"model_approval_threshold = nan: expected a finite"):
        load_config(json.loads(raw))


def test_valid_vpc_is_typed(mlops_config: dict[str, Any]) -> None:
    mlops_config["environments"]["prod"]["vpc"] = {
        "vpc_id": "vpc-0123456789abcdef0",
        "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        "security_group_ids": ["sg-0123456789abcdef0"],
    }
    vpc = load_config(mlops_config).environments["prod"].vpc
    assert vpc is not None and vpc.subnet_ids == (
        "subnet-0123456789abcdef0",
        "subnet-0123456789abcdef1",
    )


@pytest.mark.parametrize("branch", ["///", "_-_", "123-release", ""])
def test_branch_that_cannot_become_a_name_is_rejected(
    mlops_config: dict[str, Any], branch: str
) -> None:
    config = load_config(mlops_config)
    with pytest.raises(ConfigError, match="branch"):
        config.stages_for_branch(branch)


def test_main_gets_the_shared_stages_other_branches_add_an_ephemeral_one(
    mlops_config: dict[str, Any],
) -> None:
    config = load_config(mlops_config)
    main = config.stages_for_branch("main")
    assert [s.stage_id for s in main] == ["mlops-dev", "mlops-staging", "mlops-prod"]
    assert all(s.kind is StageKind.SHARED for s in main)
    feature = config.stages_for_branch("feat/Drift_Alarm")
    ephemeral = feature[-1]
    assert ephemeral.stage_id == "mlops-br-feat-drift-alarm"
    assert ephemeral.is_ephemeral and ephemeral.environment.account == "111111111111"
    assert ephemeral.tags["branch"] == "feat/Drift_Alarm"
    assert ephemeral.tags["environment"] == "dev"


def _run_app(context: dict[str, Any], outdir: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CDK_CONTEXT_JSON=json.dumps(context), CDK_OUTDIR=str(outdir))
    return subprocess.run(
        [sys.executable, "app.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("environments.dev.account", "1234", "mlops.environments.dev.account = '1234'"),
        ("environments.prod.region", "mars-1", "mlops.environments.prod.region = 'mars-1'"),
    ],
)
def test_synth_refuses_a_bad_value_with_one_line_naming_it(
    cdk_context: dict[str, Any], path: str, value: Any, expected: str, tmp_path: Path
) -> None:
    """What the app prints and its exit code are the app's main() (one subprocess test below);
    here the same synthesize() it calls, in process."""
    context = json.loads(json.dumps(cdk_context))
    _set(context["mlops"], path, value)
    with pytest.raises(ConfigError) as error:
        synthesize(context, outdir=str(tmp_path))
    assert str(error.value).startswith(f"config error: {expected}")
    assert "\n" not in str(error.value)


def test_app_rejects_a_bad_branch_in_one_line(cdk_context: dict[str, Any], tmp_path: Path) -> None:
    """The app's exit path, as a process: exit code 2, one line, no traceback."""
    result = _run_app(dict(cdk_context, branch="%%%"), tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith("config error: branch = '%%%'")
    assert "Traceback" not in result.stderr


def test_shipped_monitoring_section_is_typed(mlops_config: dict[str, Any]) -> None:
    environments = load_config(mlops_config).environments
    for env in environments.values():
        assert env.monitoring == MonitoringConfig(
            backend="drift_job",
            schedule="cron(0 2 ? * * *)",
            window_hours=24,
            ground_truth_s3_uri=None,
        )
        assert env.monitoring.enabled
        assert not hasattr(env.features, "drift_monitoring")


def test_absent_monitoring_section_defaults_to_the_drift_job(mlops_config: dict[str, Any]) -> None:
    del mlops_config["environments"]["staging"]["monitoring"]
    monitoring = load_config(mlops_config).environments["staging"].monitoring
    assert monitoring == MonitoringConfig()
    assert (monitoring.backend, monitoring.schedule, monitoring.window_hours) == (
        "drift_job",
        "cron(0 2 ? * * *)",
        24,
    )


def test_off_disables_monitoring_and_ground_truth_is_typed(mlops_config: dict[str, Any]) -> None:
    mlops_config["environments"]["dev"]["monitoring"] = {"backend": "off"}
    mlops_config["environments"]["prod"]["monitoring"] = {
        "backend": "model_monitor",
        "schedule": "cron(0 0/6 ? * * *)",
        "window_hours": 6,
        "ground_truth_s3_uri": "s3://my-labels-bucket/ground-truth/",
    }
    environments = load_config(mlops_config).environments
    assert environments["dev"].monitoring.backend == "off"
    assert not environments["dev"].monitoring.enabled
    prod = environments["prod"].monitoring
    assert prod.ground_truth_s3_uri == "s3://my-labels-bucket/ground-truth/"
    assert (prod.backend, prod.window_hours) == ("model_monitor", 6)


@pytest.mark.parametrize(
    "schedule", ["cron(0 * ? * * *)", "cron(0 12 ? * * *)", "cron(0 17/12 ? * * *)"]
)
def test_model_monitor_takes_its_documented_cron_forms(
    mlops_config: dict[str, Any], schedule: str
) -> None:
    mlops_config["environments"]["staging"]["monitoring"] = {
        "backend": "model_monitor",
        "schedule": schedule,
    }
    assert load_config(mlops_config).environments["staging"].monitoring.schedule == schedule


@pytest.mark.parametrize(
    ("monitoring", "expected"),
    [
        # valid for EventBridge Scheduler, not for Model Monitor's ScheduleConfig
        ({"schedule": "rate(6 hours)"}, "Model Monitor accepts only cron(0 * ? * * *)"),
        ({"schedule": "cron(30 2 ? * * *)"}, "Model Monitor accepts only"),
        ({"schedule": "cron(0 2 ? * MON *)"}, "Model Monitor accepts only"),
        ({"schedule": "cron(0 0/25 ? * * *)"}, "not valid"),
        # Model Monitor analyses at most 24 hours per run
        ({"window_hours": 48}, "positive whole number up to 24"),
    ],
)
def test_model_monitor_rejects_what_its_api_refuses(
    mlops_config: dict[str, Any], monitoring: dict[str, Any], expected: str
) -> None:
    mlops_config["environments"]["staging"]["monitoring"] = {
        "backend": "model_monitor",
        **monitoring,
    }
    with pytest.raises(ConfigError) as raised:
        load_config(mlops_config)
    message = str(raised.value)
    assert "\n" not in message and expected in message
    assert raised.value.key.startswith("mlops.environments.staging.monitoring.")


def test_drift_job_takes_any_scheduler_expression(mlops_config: dict[str, Any]) -> None:
    mlops_config["environments"]["dev"]["monitoring"] = {
        "schedule": "rate(6 hours)",
        "window_hours": 168,
    }
    monitoring = load_config(mlops_config).environments["dev"].monitoring
    assert (monitoring.schedule, monitoring.window_hours) == ("rate(6 hours)", 168)


# --- branch_environments (issue 10: per-branch environments, their expiry and sweeper)


def test_branch_environments_are_typed_and_tag_only_the_ephemeral_stage(
    mlops_config: dict[str, Any],
) -> None:
    from infra.config import DEPLOYED_BY_BRANCH_TAG, EPHEMERAL_TTL_TAG

    config = load_config(mlops_config)
    section = config.branch_environments
    assert section.deploy_role_arn == mlops_config["branch_environments"]["deploy_role_arn"]
    assert section.github_repository == "my-org/mlops"
    assert (section.ttl_days, section.sweeper_schedule) == (7, "cron(0 5 * * ? *)")
    with pytest.raises(dataclasses.FrozenInstanceError):
        section.ttl_days = 1  # type: ignore[misc]
    stages = config.stages_for_branch("feat/ttl")
    ephemeral = [s for s in stages if s.kind is StageKind.EPHEMERAL]
    assert [s.tags[EPHEMERAL_TTL_TAG] for s in ephemeral] == ["7"]
    assert ephemeral[0].tags[DEPLOYED_BY_BRANCH_TAG] == "feat/ttl"
    for shared in (s for s in stages if s.kind is StageKind.SHARED):
        assert EPHEMERAL_TTL_TAG not in shared.tags and DEPLOYED_BY_BRANCH_TAG not in shared.tags


def test_branch_environments_default_when_absent(mlops_config: dict[str, Any]) -> None:
    del mlops_config["branch_environments"]
    section = load_config(mlops_config).branch_environments
    assert section.deploy_role_arn is None and section.github_repository is None
    assert (section.ttl_days, section.sweeper_schedule) == (7, "cron(0 5 * * ? *)")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("deploy_role_arn", "arn:aws:iam::222222222222:role/x", "must be a role in the dev"),
        ("deploy_role_arn", "arn:aws:iam::111111111111:user/x", "expected an IAM role ARN"),
        ("deploy_role_arn", "mlops-deploy", "expected an IAM role ARN"),
        ("deploy_role_arn", 42, "expected an IAM role ARN"),
        ("github_repository", "https://github.com/o/r", "expected the GitHub repository"),
        ("github_repository", "just-a-name", "expected the GitHub repository"),
        ("ttl_days", 0, "positive whole number up to 90"),
        ("ttl_days", 91, "positive whole number up to 90"),
        ("ttl_days", "7", "positive whole number up to 90"),
        ("sweeper_schedule", "every day", "expected cron("),
        ("sweeper_schedule", "rate(1 days)", "singular unit"),
        ("unknown", 1, "unknown key"),
    ],
)
def test_bad_branch_environments_value_is_one_line(
    mlops_config: dict[str, Any], key: str, value: Any, expected: str
) -> None:
    mlops_config["branch_environments"][key] = value
    with pytest.raises(ConfigError) as raised:
        load_config(mlops_config)
    message = str(raised.value)
    assert "\n" not in message and expected in message
    assert raised.value.key == f"mlops.branch_environments.{key}" and repr(value) in message


def test_null_role_and_schedule_are_allowed(mlops_config: dict[str, Any]) -> None:
    mlops_config["branch_environments"].update(deploy_role_arn=None, sweeper_schedule=None)
    section = load_config(mlops_config).branch_environments
    assert section.deploy_role_arn is None and section.sweeper_schedule is None


def test_shipped_audit_section_is_typed(mlops_config: dict[str, Any]) -> None:
    environments = load_config(mlops_config).environments
    assert environments["dev"].audit == AuditConfig(
        read_data_events=False, retention_days=90, object_lock=False, cloudwatch_logs=False
    )
    assert environments["staging"].audit == AuditConfig(
        read_data_events=True, retention_days=365, object_lock=True, cloudwatch_logs=False
    )
    assert environments["prod"].audit == AuditConfig(
        read_data_events=True, retention_days=731, object_lock=True, cloudwatch_logs=False
    )


def test_absent_audit_section_defaults_per_environment(mlops_config: dict[str, Any]) -> None:
    """Read data events and object lock default on in staging and prod, off in dev."""
    for env in mlops_config["environments"].values():
        del env["audit"]
    environments = load_config(mlops_config).environments
    assert environments["dev"].audit == AuditConfig(read_data_events=False, object_lock=False)
    assert environments["staging"].audit == AuditConfig()
    assert environments["prod"].audit == AuditConfig()
    assert AuditConfig() == AuditConfig(
        read_data_events=True, retention_days=365, object_lock=True, cloudwatch_logs=False
    )


def test_serving_image_is_typed_and_defaults_to_prebuilt(mlops_config: dict[str, Any]) -> None:
    """The shipped config says prebuilt everywhere; an absent key is prebuilt too, and custom is
    taken per environment."""
    shipped = load_config(mlops_config).environments
    assert {name: env.serving_image for name, env in shipped.items()} == dict.fromkeys(
        ("dev", "staging", "prod"), "prebuilt"
    )
    del mlops_config["environments"]["staging"]["serving_image"]
    mlops_config["environments"]["dev"]["serving_image"] = "custom"
    envs = load_config(mlops_config).environments
    assert (envs["dev"].serving_image, envs["staging"].serving_image) == ("custom", "prebuilt")
