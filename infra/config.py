"""Typed, validated configuration: built once from the ``mlops`` key of ``cdk.json``'s context.

Everything a construct needs arrives as one frozen :class:`StageConfig`. Validation happens here,
before any construct is built, and every problem is reported as a :class:`ConfigError` whose
message is one line naming the key, the bad value and what is allowed.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, TypeVar

from infra.naming import Naming, slugify

ENVIRONMENTS = ("dev", "staging", "prod")
DEFAULT_BRANCH = "main"
CONTEXT_KEY = "mlops"

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip

# Account ids used in the shipped cdk.json: replace them with yours (make synth says so).
PLACEHOLDER_ACCOUNTS = frozenset({"111111111111", "222222222222", "333333333333", "444444444444"})

# ASCII digits only and the whole string: ``\d`` would admit '١٢٣...' and ``$`` a trailing newline.
_ACCOUNT = re.compile(r"[0-9]{12}", re.ASCII)
_INSTANCE_TYPE = re.compile(r"^ml\.[a-z][a-z0-9-]*\.(?:[0-9]*x?large|medium|small|micro|nano)$")
_NAME_PART = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_TAG_KEY = re.compile(r"^[\w .:/=+\-@]{1,128}$")
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SG_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")
_SERVERLESS_MEMORY = (1024, 2048, 3072, 4096, 5120, 6144)
# CodeConnections (and its former name, CodeStar Connections): a connection's id is a UUID.
_CONNECTION_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:(?:codeconnections|codestar-connections):(?P<region>[a-z0-9-]+):"
    r"(?P<account>[0-9]{12}):connection/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
    r"[0-9a-f]{12}",
    re.ASCII,
)
# GitHub/GitLab/Bitbucket "owner/name" (CodePipeline's FullRepositoryId).
_REPOSITORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}/[A-Za-z0-9_.-]{1,100}", re.ASCII)


class ConfigError(Exception):
    """A configuration value is wrong. ``str(error)`` is the one line shown to the user."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"config error: {key} = {value!r}: {allowed}")


def _regions() -> frozenset[str]:
    from aws_cdk.region_info import RegionInfo

    return frozenset(r.name for r in RegionInfo.regions)


class StageKind(Enum):
    SHARED = "shared"  # the long-lived dev, staging and prod stages of the default branch
    EPHEMERAL = "ephemeral"  # one per feature branch, in the dev account, destroyed with it


@dataclass(frozen=True)
class VpcConfig:
    vpc_id: str
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]


@dataclass(frozen=True)
class ServerlessEndpoint:
    memory_mb: int
    max_concurrency: int


@dataclass(frozen=True)
class InstanceEndpoint:
    instance_type: str
    min_instances: int
    max_instances: int
    target_invocations_per_instance: int


@dataclass(frozen=True)
class Sizing:
    processing_instance_type: str
    processing_instance_count: int
    training_instance_type: str
    training_instance_count: int
    endpoint: ServerlessEndpoint | InstanceEndpoint


@dataclass(frozen=True)
class Retention:
    log_days: int
    raw_infrequent_access_days: int
    noncurrent_version_days: int
    access_log_days: int


@dataclass(frozen=True)
class Features:
    spot_training: bool
    hyperparameter_tuning: bool


@dataclass(frozen=True)
class RetrainingConfig:
    """Alarms -> retraining workflow, and scheduled retraining (``retraining/``)."""

    enabled: bool
    #: An EventBridge Scheduler ``cron(...)`` or ``rate(...)`` expression (UTC); None: no
    #: scheduled retraining.
    schedule: str | None
    #: No new pipeline execution within this many minutes after the last one started.
    cooldown_minutes: int
    #: Alarm when the share of drifted features reaches this (in [0, 1]).
    drift_share_threshold: float
    #: Alarm when the endpoint's p99 ModelLatency exceeds this many milliseconds.
    latency_p99_ms: int
    #: Alarm when the endpoint answers this many 5xx errors (or more) in five minutes.
    errors_5xx_threshold: int


DEFAULT_RETRAINING = RetrainingConfig(
    enabled=True,
    schedule=None,
    cooldown_minutes=360,
    drift_share_threshold=0.5,
    latency_p99_ms=1000,
    errors_5xx_threshold=5,
)


@dataclass(frozen=True)
class IngestionConfig:
    """New raw data -> Glue ETL -> crawler -> model build (README "Ingestion")."""

    enabled: bool = True
    #: Start the model-build pipeline on the new curated data (default: not in prod, which
    #: deploys only versions promoted from staging).
    start_pipeline: bool = True
    #: Debounce window: uploads within it are ingested by one run.
    quiet_period_seconds: int = 120


#: Upper bound of ``ingestion.quiet_period_seconds`` (one hour).
MAX_QUIET_PERIOD_SECONDS = 3600

#: ``monitoring.backend`` values: SageMaker Model Monitor (closed to new AWS customers; existing
#: ones keep it), the repo's own Evidently drift job (``monitoring/``), or nothing.
MONITORING_BACKENDS = ("model_monitor", "drift_job", "off")
#: Upper bound of ``monitoring.window_hours`` for the drift job (one week of captured data);
#: Model Monitor analyses at most 24 hours (ScheduleConfig DataAnalysisStartTime/EndTime).
MAX_DRIFT_WINDOW_HOURS = 168
MAX_MODEL_MONITOR_WINDOW_HOURS = 24


@dataclass(frozen=True)
class MonitoringConfig:
    """Which backend watches the endpoint's captured data, and when (README "Monitoring")."""

    #: One of :data:`MONITORING_BACKENDS`.
    backend: str = "drift_job"
    #: EventBridge Scheduler ``cron(...)``/``rate(...)`` expression (UTC) for the drift job; for
    #: ``model_monitor`` one of the cron forms Model Monitor's ScheduleConfig accepts.
    schedule: str = "cron(0 2 ? * * *)"
    #: Each run compares the captured requests of the last ``window_hours`` hours.
    window_hours: int = 24
    #: ``s3://`` prefix of ground-truth labels (model_monitor's model-quality job); None: none.
    ground_truth_s3_uri: str | None = None

    @property
    def enabled(self) -> bool:
        return self.backend != "off"


#: ``serving_image`` values: AWS's prebuilt SageMaker XGBoost image, or the project's own image
#: (``serving/image/Dockerfile``) built by CDK at deploy time into the stage's ECR repository
#: (``serving/infrastructure.py``, README "Serving image").
SERVING_IMAGES = ("prebuilt", "custom")

#: ``cost_controls.kms_keys`` values: the data key plus one key each for the audit trail and the
#: deployment notifications, or the data key for all three (one $1/month key instead of three).
KMS_KEY_LAYOUTS = ("per_purpose", "single")


@dataclass(frozen=True)
class CostControls:
    """What a stage keeps standing while idle, each billed by the month (README "Cost").

    The defaults are the shared stages'; a branch stage copies the dev environment but takes
    ``branch_environments.cost_controls`` (:data:`BRANCH_COST_CONTROLS` for absent keys)."""

    #: One of :data:`KMS_KEY_LAYOUTS` (a customer managed key is $1/month).
    kms_keys: str = "per_purpose"
    #: The stage's operations dashboard ($3/month beyond the account's first three).
    dashboard: bool = True
    #: The stage's CloudWatch alarms ($0.10/metric/month beyond the account's first ten):
    #: deployment guardrails (blue/green auto-rollback, dead letters) and the retraining
    #: triggers. False needs a serverless endpoint (instance endpoints roll back on them).
    alarms: bool = True
    #: The stage's trail records management events too (the first copy in an account and
    #: region is free, every further one billed); False: its S3 data events only.
    trail_management_events: bool = True


#: A branch stage lives in the dev account beside the dev stage, whose trail already holds the
#: account's management events (README "Cost" says what each saves and costs).
BRANCH_COST_CONTROLS = CostControls(
    kms_keys="single", dashboard=False, alarms=False, trail_management_events=False
)

#: Upper bound of ``audit.retention_days`` (ten years).
MAX_AUDIT_RETENTION_DAYS = 3650


@dataclass(frozen=True)
class AuditConfig:
    """The stage's CloudTrail trail (``audit/``, README "Audit")."""

    #: Also record S3 read data events (GetObject...) on the raw, curated and artifacts buckets;
    #: write data events (PutObject, DeleteObject...) are always recorded. Data events are billed
    #: per event, and reads are most of them.
    read_data_events: bool = True
    #: Trail log files expire after this many days (and are object-locked that long).
    retention_days: int = 365
    #: S3 Object Lock, governance mode, ``retention_days`` long, on the trail bucket. Never in an
    #: ephemeral (branch) stage: it must be destroyable.
    object_lock: bool = True
    #: Also deliver the trail to a CloudWatch Logs log group (``retention.log_days``).
    cloudwatch_logs: bool = False


@dataclass(frozen=True)
class StudioConfig:
    """Optional SageMaker Studio domain of the stage, VPC-only (``studio/``, README "SageMaker
    Studio"). Needs the environment's ``vpc``."""

    enabled: bool = False
    #: Studio user profiles created in the domain (names, unique).
    user_profiles: tuple[str, ...] = ()


#: ``feature_store.training_data`` values: the files under the pipeline's ``InputDataUrl`` (raw
#: or curated), or the latest non-deleted record per id of the offline store (Athena).
TRAINING_DATA_SOURCES = ("files", "offline_store")


@dataclass(frozen=True)
class FeatureStoreConfig:
    """The stage's SageMaker Feature Store feature group (``feature_store/``, README "Feature
    Store"): off by default."""

    enabled: bool = False
    #: Also an online store (GetRecord for serving); billed per request and stored record.
    online: bool = False
    #: One of :data:`TRAINING_DATA_SOURCES`: where the model-build pipeline reads its data.
    training_data: str = "files"


@dataclass(frozen=True)
class EnvironmentConfig:
    name: str
    account: str
    region: str
    sizing: Sizing
    retention: Retention
    features: Features
    model_approval_threshold: float
    tags: Mapping[str, str]
    vpc: VpcConfig | None
    retraining: RetrainingConfig = field(default_factory=lambda: DEFAULT_RETRAINING)
    ingestion: IngestionConfig = field(default_factory=IngestionConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    studio: StudioConfig = field(default_factory=StudioConfig)
    feature_store: FeatureStoreConfig = field(default_factory=FeatureStoreConfig)
    #: One of :data:`SERVING_IMAGES`: the image the model package (and so the endpoint) runs.
    serving_image: str = "prebuilt"
    cost_controls: CostControls = field(default_factory=CostControls)

    @property
    def placeholder_account(self) -> bool:
        return self.account in PLACEHOLDER_ACCOUNTS


@dataclass(frozen=True)
class LoadTestThresholds:
    """The staging load test of the promotion pipeline: its rate, length and pass thresholds."""

    #: Fail when the p99 latency seen by the client exceeds this many milliseconds.
    p99_latency_ms: int
    #: Fail when the share of failed requests exceeds this (in [0, 1]).
    max_error_rate: float
    #: Requests per second offered to the staging endpoint.
    rate_per_second: int
    #: Length of the measured run in seconds.
    duration_seconds: int


@dataclass(frozen=True)
class DeliveryConfig:
    """The promotion pipeline (``promotion/``): deployed once, into the tooling account."""

    account: str
    region: str
    connection_arn: str
    #: ``owner/name`` of the repository the connection reads.
    repository: str
    #: The branch the pipeline builds (default: the config's ``default_branch``).
    branch: str
    load_test: LoadTestThresholds

    @property
    def placeholder_account(self) -> bool:
        return self.account in PLACEHOLDER_ACCOUNTS


#: Tags on every stack of an ephemeral (branch) stage. The sweeper (``sweeper/``) removes a stack
#: only when it carries both and its name starts with ``<project>-br-``; it counts the TTL from the
#: stack's last update (synth stays deterministic: no date in any template).
EPHEMERAL_TTL_TAG = "ephemeral-ttl-days"
DEPLOYED_BY_BRANCH_TAG = "deployed-by-branch"
MAX_EPHEMERAL_TTL_DAYS = 90
DEFAULT_EPHEMERAL_TTL_DAYS = 7
DEFAULT_SWEEPER_SCHEDULE = "cron(0 5 * * ? *)"
_ROLE_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:iam::(?P<account>[0-9]{12}):role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}",
    re.ASCII,
)
_GITHUB_REPOSITORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9_.-]{1,100}", re.ASCII)


@dataclass(frozen=True)
class BranchEnvironmentsConfig:
    """Per-branch stages deployed and destroyed by the branch workflows (README "Per-branch
    environments"), and the sweeper of expired ones in the shared dev stage."""

    #: The role the branch workflows assume with GitHub's OIDC token (in the dev account);
    #: None: the workflows stop with a message saying so.
    deploy_role_arn: str | None = None
    #: ``owner/name`` whose workflows the role trusts (its ``token.actions...:sub`` condition).
    github_repository: str | None = None
    #: An ephemeral stack not updated for this many days is removed by the sweeper.
    ttl_days: int = DEFAULT_EPHEMERAL_TTL_DAYS
    #: EventBridge Scheduler expression (UTC) of the sweeper; None: no sweeper.
    sweeper_schedule: str | None = DEFAULT_SWEEPER_SCHEDULE
    #: What a branch stage keeps standing (it copies the dev environment otherwise).
    cost_controls: CostControls = BRANCH_COST_CONTROLS


@dataclass(frozen=True)
class StageConfig:
    """Everything one deployed stage needs. Built by :meth:`AppConfig.stages_for_branch`."""

    project: str
    owner: str
    cost_center: str
    branch: str
    kind: StageKind
    environment: EnvironmentConfig
    naming: Naming = field(repr=False)
    #: Ephemeral stages only: the TTL their ``ephemeral-ttl-days`` tag carries.
    ephemeral_ttl_days: int = DEFAULT_EPHEMERAL_TTL_DAYS
    #: The shared dev stage only (where branch stages live): the branch sweeper's schedule.
    sweeper_schedule: str | None = None

    @property
    def env_name(self) -> str:
        return self.environment.name

    @property
    def stage_id(self) -> str:
        return self.naming.prefix

    @property
    def is_prod(self) -> bool:
        return self.kind is StageKind.SHARED and self.env_name == "prod"

    @property
    def is_ephemeral(self) -> bool:
        return self.kind is StageKind.EPHEMERAL

    @property
    def tags(self) -> dict[str, str]:
        tags = {
            "project": self.project,
            "environment": self.env_name,
            "branch": self.branch,
            "owner": self.owner,
            "cost-center": self.cost_center,
        }
        tags.update(self.environment.tags)
        if self.is_ephemeral:
            tags[EPHEMERAL_TTL_TAG] = str(self.ephemeral_ttl_days)
            tags[DEPLOYED_BY_BRANCH_TAG] = self.branch
        return tags


@dataclass(frozen=True)
class AppConfig:
    project: str
    owner: str
    cost_center: str
    default_branch: str
    environments: Mapping[str, EnvironmentConfig]
    #: The promotion pipeline; None: no pipeline stack.
    delivery: DeliveryConfig | None = None
    branch_environments: BranchEnvironmentsConfig = field(default_factory=BranchEnvironmentsConfig)

    def stages_for_branch(self, branch: str) -> list[StageConfig]:
        """The default branch gets the shared dev, staging and prod stages; any other branch
        additionally gets its ephemeral stage, deployed to the dev account."""
        stages = [
            StageConfig(
                project=self.project,
                owner=self.owner,
                cost_center=self.cost_center,
                branch=self.default_branch,
                kind=StageKind.SHARED,
                environment=env,
                naming=Naming(self.project, env.name),
                sweeper_schedule=(
                    self.branch_environments.sweeper_schedule if env.name == "dev" else None
                ),
            )
            for env in (self.environments[name] for name in ENVIRONMENTS)
        ]
        if branch != self.default_branch:
            slug = branch_slug(branch)
            stages.append(
                StageConfig(
                    project=self.project,
                    owner=self.owner,
                    cost_center=self.cost_center,
                    branch=branch,
                    kind=StageKind.EPHEMERAL,
                    environment=replace(
                        self.environments["dev"],
                        cost_controls=self.branch_environments.cost_controls,
                    ),
                    naming=Naming(self.project, f"br-{slug}"),
                    ephemeral_ttl_days=self.branch_environments.ttl_days,
                )
            )
        return stages


def branch_slug(branch: str) -> str:
    """``feat/Drift_Alarm`` -> ``feat-drift-alarm``; long names keep a stable hash suffix."""
    slug = slugify(branch, max_length=24)
    if not slug or not slug[0].isalpha():
        raise ConfigError(
            "branch",
            branch,
            "a branch name must contain letters or digits and start with a letter "
            "to become a resource name",
        )
    return slug


# --------------------------------------------------------------------------------------------
# Parsing

T = TypeVar("T")


class _Section:
    """A mapping being read: remembers its key path and rejects unknown keys."""

    def __init__(self, path: str, raw: Any, allowed: tuple[str, ...]) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(path, raw, "expected an object with keys " + ", ".join(allowed))
        self.path, self.raw = path, raw
        for key in raw:
            if str(key).startswith("_"):  # "_comment" and friends: documentation, ignored
                continue
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                tip = f" (did you mean '{hint[0]}'?)" if hint else ""
                raise ConfigError(
                    f"{path}.{key}", raw[key], f"unknown key{tip}; allowed: {', '.join(allowed)}"
                )

    def key(self, name: str) -> str:
        return f"{self.path}.{name}"

    def get(self, name: str, default: Any = ...) -> Any:
        if name in self.raw:
            return self.raw[name]
        if default is ...:
            raise ConfigError(self.key(name), None, "required key is missing")
        return default

    def check(
        self, name: str, test: Callable[[Any], bool], allowed: str, default: Any = ...
    ) -> Any:
        value = self.get(name, default)
        if not test(value):
            raise ConfigError(self.key(name), value, allowed)
        return value

    def string(self, name: str, pattern: re.Pattern[str], allowed: str, default: Any = ...) -> str:
        return str(
            self.check(
                name,
                lambda v: isinstance(v, str) and bool(pattern.match(v)),
                allowed,
                default,
            )
        )

    def positive_int(self, name: str, default: Any = ..., maximum: int | None = None) -> int:
        limit = f" up to {maximum}" if maximum else ""
        return int(
            self.check(
                name,
                lambda v: type(v) is int and v > 0 and (maximum is None or v <= maximum),
                f"expected a positive whole number{limit}",
                default,
            )
        )

    def boolean(self, name: str, default: Any = ...) -> bool:
        return bool(
            self.check(name, lambda v: isinstance(v, bool), "expected true or false", default)
        )

    def section(self, name: str, allowed: tuple[str, ...], default: Any = ...) -> _Section:
        return _Section(self.key(name), self.get(name, default), allowed)


def _account_and_region(
    section: _Section, regions: frozenset[str], account_allowed: str
) -> tuple[str, str]:
    """The section's ``account`` (12 digits, as a string) and ``region`` (one of ``regions``)."""
    account = str(
        section.check(
            "account",
            lambda v: isinstance(v, str) and _ACCOUNT.fullmatch(v) is not None,
            account_allowed,
        )
    )
    region = str(
        section.check(
            "region",
            lambda v: isinstance(v, str) and v in regions,
            "expected an AWS region name like us-east-1 or eu-west-1",
        )
    )
    return account, region


def _instance_type(section: _Section, name: str, default: Any = ...) -> str:
    return section.string(
        name, _INSTANCE_TYPE, "expected a SageMaker instance type like ml.m5.large", default
    )


def _parse_endpoint(section: _Section, env_name: str) -> ServerlessEndpoint | InstanceEndpoint:
    default_mode = "serverless" if env_name == "dev" else "instances"
    raw = section.get("endpoint", {"mode": default_mode})
    mode = _Section(section.key("endpoint"), raw, ("mode", *_ENDPOINT_KEYS)).check(
        "mode", lambda v: v in ("serverless", "instances"), "allowed: serverless, instances"
    )
    if mode == "serverless":
        ep = _Section(section.key("endpoint"), raw, ("mode", "memory_mb", "max_concurrency"))
        return ServerlessEndpoint(
            memory_mb=int(
                ep.check(
                    "memory_mb",
                    lambda v: v in _SERVERLESS_MEMORY,
                    "allowed: " + ", ".join(map(str, _SERVERLESS_MEMORY)),
                    2048,
                )
            ),
            max_concurrency=ep.positive_int("max_concurrency", 5, maximum=200),
        )
    ep = _Section(
        section.key("endpoint"),
        raw,
        (
            "mode",
            "instance_type",
            "min_instances",
            "max_instances",
            "target_invocations_per_instance",
        ),
    )
    endpoint = InstanceEndpoint(
        instance_type=_instance_type(ep, "instance_type", "ml.m5.large"),
        min_instances=ep.positive_int("min_instances", 1),
        max_instances=ep.positive_int("max_instances", 2),
        target_invocations_per_instance=ep.positive_int("target_invocations_per_instance", 100),
    )
    if endpoint.max_instances < endpoint.min_instances:
        raise ConfigError(
            ep.key("max_instances"),
            endpoint.max_instances,
            f"must be at least min_instances ({endpoint.min_instances})",
        )
    return endpoint


_ENDPOINT_KEYS = (
    "memory_mb",
    "max_concurrency",
    "instance_type",
    "min_instances",
    "max_instances",
    "target_invocations_per_instance",
)


def _parse_environment(
    path: str, name: str, raw: Any, regions: frozenset[str]
) -> EnvironmentConfig:
    env = _Section(
        path,
        raw,
        (
            "account",
            "region",
            "sizing",
            "retention",
            "features",
            "model_approval_threshold",
            "tags",
            "vpc",
            "retraining",
            "ingestion",
            "monitoring",
            "audit",
            "studio",
            "feature_store",
            "serving_image",
            "cost_controls",
        ),
    )
    account, region = _account_and_region(
        env, regions, "expected a 12-digit AWS account id, as a string"
    )

    sz = env.section(
        "sizing",
        (
            "processing_instance_type",
            "processing_instance_count",
            "training_instance_type",
            "training_instance_count",
            "endpoint",
        ),
        {},
    )
    sizing = Sizing(
        processing_instance_type=_instance_type(sz, "processing_instance_type", "ml.m5.large"),
        processing_instance_count=sz.positive_int("processing_instance_count", 1, maximum=100),
        training_instance_type=_instance_type(sz, "training_instance_type", "ml.m5.large"),
        training_instance_count=sz.positive_int("training_instance_count", 1, maximum=100),
        endpoint=_parse_endpoint(sz, name),
    )

    rt = env.section(
        "retention",
        ("log_days", "raw_infrequent_access_days", "noncurrent_version_days", "access_log_days"),
        {},
    )
    retention = Retention(
        log_days=int(
            rt.check(
                "log_days",
                lambda v: type(v) is int and v in LOG_RETENTION_DAYS,
                "expected one of CloudWatch's retention periods: "
                + ", ".join(map(str, LOG_RETENTION_DAYS)),
                30,
            )
        ),
        raw_infrequent_access_days=rt.positive_int("raw_infrequent_access_days", 30),
        noncurrent_version_days=rt.positive_int("noncurrent_version_days", 90),
        access_log_days=rt.positive_int("access_log_days", 365),
    )
    if retention.raw_infrequent_access_days < 30:
        raise ConfigError(
            rt.key("raw_infrequent_access_days"),
            retention.raw_infrequent_access_days,
            "S3 moves objects to STANDARD_IA after at least 30 days",
        )

    raw_features = env.get("features", {})
    if isinstance(raw_features, Mapping) and "drift_monitoring" in raw_features:
        raise ConfigError(
            env.key("features.drift_monitoring"),
            raw_features["drift_monitoring"],
            "replaced by monitoring.backend (allowed: " + ", ".join(MONITORING_BACKENDS) + ")",
        )
    ft = env.section("features", ("spot_training", "hyperparameter_tuning"), {})
    features = Features(
        spot_training=ft.boolean("spot_training", False),
        hyperparameter_tuning=ft.boolean("hyperparameter_tuning", False),
    )

    threshold = env.check(
        "model_approval_threshold",
        _is_threshold,
        "expected a finite number in [0, 1]: the minimum test AUC to register a model",
        0.9,
    )

    raw_tags = env.get("tags", {})
    if not isinstance(raw_tags, Mapping):
        raise ConfigError(env.key("tags"), raw_tags, "expected an object of tag name to value")
    for key, value in raw_tags.items():
        if not (isinstance(key, str) and _TAG_KEY.match(key)) or key.startswith("aws:"):
            raise ConfigError(
                f"{env.key('tags')}.{key}", key, "tag keys are 1-128 characters, not aws:"
            )
        if not isinstance(value, str) or len(value) > 256:
            raise ConfigError(f"{env.key('tags')}.{key}", value, "tag values are strings of <= 256")

    vpc: VpcConfig | None = None
    if env.get("vpc", None) is not None:
        vp = env.section("vpc", ("vpc_id", "subnet_ids", "security_group_ids"))
        vpc = VpcConfig(
            vpc_id=vp.string("vpc_id", _VPC_ID, "expected a VPC id like vpc-0123456789abcdef0"),
            subnet_ids=_id_list(vp, "subnet_ids", _SUBNET_ID, "subnet-0123456789abcdef0"),
            security_group_ids=_id_list(vp, "security_group_ids", _SG_ID, "sg-0123456789abcdef0"),
        )

    return EnvironmentConfig(
        name=name,
        account=account,
        region=region,
        sizing=sizing,
        retention=retention,
        features=features,
        model_approval_threshold=float(threshold),
        tags=dict(raw_tags),
        vpc=vpc,
        retraining=_parse_retraining(env.section("retraining", _RETRAINING_KEYS, {})),
        ingestion=_parse_ingestion(env.section("ingestion", _INGESTION_KEYS, {}), name),
        monitoring=_parse_monitoring(env.section("monitoring", _MONITORING_KEYS, {})),
        audit=_parse_audit(env.section("audit", _AUDIT_KEYS, {}), name),
        studio=_parse_studio(env.section("studio", ("enabled", "user_profiles"), {}), vpc),
        feature_store=_parse_feature_store(
            env.section("feature_store", ("enabled", "online", "training_data"), {})
        ),
        serving_image=str(
            env.check(
                "serving_image",
                lambda v: v in SERVING_IMAGES,
                "allowed: " + ", ".join(SERVING_IMAGES),
                "prebuilt",
            )
        ),
        cost_controls=_parse_cost_controls(
            env.section("cost_controls", _COST_CONTROLS_KEYS, {}), CostControls(), sizing.endpoint
        ),
    )


_COST_CONTROLS_KEYS = ("kms_keys", "dashboard", "alarms", "trail_management_events")


def _parse_cost_controls(
    section: _Section, default: CostControls, endpoint: ServerlessEndpoint | InstanceEndpoint
) -> CostControls:
    controls = CostControls(
        kms_keys=str(
            section.check(
                "kms_keys",
                lambda v: v in KMS_KEY_LAYOUTS,
                "allowed: " + ", ".join(KMS_KEY_LAYOUTS),
                default.kms_keys,
            )
        ),
        dashboard=section.boolean("dashboard", default.dashboard),
        alarms=section.boolean("alarms", default.alarms),
        trail_management_events=section.boolean(
            "trail_management_events", default.trail_management_events
        ),
    )
    if not controls.alarms and isinstance(endpoint, InstanceEndpoint):
        raise ConfigError(
            section.key("alarms"),
            False,
            "an instance endpoint needs its alarms: blue/green updates roll back on them "
            "(allowed: true, or a serverless endpoint)",
        )
    return controls


def _parse_feature_store(section: _Section) -> FeatureStoreConfig:
    enabled = section.boolean("enabled", False)
    online = section.boolean("online", False)
    training_data = str(
        section.check(
            "training_data",
            lambda v: v in TRAINING_DATA_SOURCES,
            "allowed: " + ", ".join(TRAINING_DATA_SOURCES),
            "files",
        )
    )
    if not enabled and online:
        raise ConfigError(section.key("online"), online, "needs feature_store.enabled = true")
    if not enabled and training_data != "files":
        raise ConfigError(
            section.key("training_data"),
            training_data,
            "offline_store needs feature_store.enabled = true (allowed without it: files)",
        )
    return FeatureStoreConfig(enabled=enabled, online=online, training_data=training_data)


#: SageMaker's UserProfileName pattern (CreateUserProfile).
_USER_PROFILE = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", re.ASCII)


def _parse_studio(section: _Section, vpc: VpcConfig | None) -> StudioConfig:
    enabled = section.boolean("enabled", False)
    raw = section.get("user_profiles", [])
    names = raw if isinstance(raw, list) else None
    if names is None or not all(
        isinstance(n, str) and _USER_PROFILE.fullmatch(n) is not None for n in names
    ):
        raise ConfigError(
            section.key("user_profiles"),
            raw,
            "expected a list of user profile names (letters, digits, hyphens; 1-63, no leading "
            "or trailing hyphen)",
        )
    if len(set(names)) != len(names):
        raise ConfigError(section.key("user_profiles"), raw, "user profile names must be unique")
    if enabled and vpc is None:
        raise ConfigError(
            section.key("enabled"),
            True,
            "a VPC-only Studio domain needs this environment's vpc (vpc_id, subnet_ids, "
            "security_group_ids)",
        )
    return StudioConfig(enabled=enabled, user_profiles=tuple(names))


_AUDIT_KEYS = ("read_data_events", "retention_days", "object_lock", "cloudwatch_logs")


def _parse_audit(section: _Section, env_name: str) -> AuditConfig:
    """Defaults: read data events and object lock in staging and prod, not in dev (README
    "Audit" says why); one year of trail logs."""
    shared = env_name != "dev"
    return AuditConfig(
        read_data_events=section.boolean("read_data_events", shared),
        retention_days=section.positive_int(
            "retention_days", AuditConfig.retention_days, maximum=MAX_AUDIT_RETENTION_DAYS
        ),
        object_lock=section.boolean("object_lock", shared),
        cloudwatch_logs=section.boolean("cloudwatch_logs", False),
    )


_MONITORING_KEYS = ("backend", "schedule", "window_hours", "ground_truth_s3_uri")
#: The only schedules Model Monitor's ScheduleConfig takes (besides NOW): hourly
#: ``cron(0 * ? * * *)``, daily ``cron(0 H ? * * *)``, every N hours ``cron(0 H/N ? * * *)``.
_MODEL_MONITOR_CRON = re.compile(
    r"^cron\(0 (?:\*|(?:[01]?[0-9]|2[0-3])(?:/(?:[1-9]|1[0-9]|2[0-4]))?) \? \* \* \*\)$"
)
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](?:/[^\s]*)?$")


def _parse_monitoring(section: _Section) -> MonitoringConfig:
    default = MonitoringConfig()
    backend = str(
        section.check(
            "backend",
            lambda v: v in MONITORING_BACKENDS,
            "allowed: " + ", ".join(MONITORING_BACKENDS),
            default.backend,
        )
    )
    schedule = section.get("schedule", default.schedule)
    problem = schedule_expression_problem(schedule)
    if problem:
        raise ConfigError(section.key("schedule"), schedule, problem)
    if backend == "model_monitor" and not _MODEL_MONITOR_CRON.match(schedule):
        raise ConfigError(
            section.key("schedule"),
            schedule,
            "Model Monitor accepts only cron(0 * ? * * *), cron(0 H ? * * *) or "
            "cron(0 H/N ? * * *) (H 0-23, N 1-24)",
        )
    limit = MAX_MODEL_MONITOR_WINDOW_HOURS if backend == "model_monitor" else MAX_DRIFT_WINDOW_HOURS
    window_hours = section.positive_int("window_hours", default.window_hours, maximum=limit)
    ground_truth = section.check(
        "ground_truth_s3_uri",
        lambda v: v is None or (isinstance(v, str) and _S3_URI.match(v) is not None),
        "expected an s3://bucket/prefix URI, or null",
        None,
    )
    return MonitoringConfig(
        backend=backend,
        schedule=str(schedule),
        window_hours=window_hours,
        ground_truth_s3_uri=None if ground_truth is None else str(ground_truth),
    )


_INGESTION_KEYS = ("enabled", "start_pipeline", "quiet_period_seconds")


def _parse_ingestion(section: _Section, env_name: str) -> IngestionConfig:
    return IngestionConfig(
        enabled=section.boolean("enabled", True),
        start_pipeline=section.boolean("start_pipeline", env_name != "prod"),
        quiet_period_seconds=section.positive_int(
            "quiet_period_seconds", 120, maximum=MAX_QUIET_PERIOD_SECONDS
        ),
    )


_RETRAINING_KEYS = (
    "enabled",
    "schedule",
    "cooldown_minutes",
    "drift_share_threshold",
    "latency_p99_ms",
    "errors_5xx_threshold",
)
_RATE = re.compile(r"^rate\((?P<value>[1-9][0-9]{0,5}) (?P<unit>minutes?|hours?|days?)\)$")
_CRON = re.compile(r"^cron\((?P<fields>[^()]*)\)$")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
#: cron fields: (name, minimum, maximum, names for 1.., extra single-value forms)
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minutes", 0, 59, ()),
    ("hours", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 1, 7, _DAYS),
    ("year", 1970, 2199, ()),
)


def schedule_expression_problem(expression: Any) -> str | None:
    """Why ``expression`` is not an EventBridge (Scheduler) ``cron(...)``/``rate(...)``
    expression, or None when it is one. Follows the documented syntax: six cron fields
    (minutes hours day-of-month month day-of-week year) with exactly one of day-of-month and
    day-of-week ``?``; ``rate(1 hour)`` singular, ``rate(5 hours)`` plural."""
    if not isinstance(expression, str):
        return "expected a string"
    rate = _RATE.match(expression)
    if rate:
        plural = rate["unit"].endswith("s")
        if (rate["value"] == "1") == plural:
            return "use a singular unit for 1 (rate(1 hour)) and a plural one otherwise"
        return None
    cron = _CRON.match(expression)
    if not cron:
        return "expected cron(minutes hours day-of-month month day-of-week year) or rate(N unit)"
    parts = cron["fields"].split(" ")
    if len(parts) != 6:
        return f"a cron expression has 6 space-separated fields, got {len(parts)}"
    for (name, low, high, names), part in zip(_CRON_FIELDS, parts, strict=True):
        problem = _cron_field_problem(name, part, low, high, names)
        if problem:
            return problem
    if (parts[2] == "?") == (parts[4] == "?"):
        return "exactly one of day-of-month and day-of-week must be '?'"
    return None


def _cron_value(text: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    if text.upper() in names:
        return True
    return text.isascii() and text.isdigit() and low <= int(text) <= high


def _cron_field_problem(
    name: str, part: str, low: int, high: int, names: tuple[str, ...]
) -> str | None:
    bad = f"cron {name} field {part!r} is not valid (values {low}-{high}"
    bad += f" or {names[0]}-{names[-1]})" if names else ")"
    if part == "?":
        return None if name in ("day-of-month", "day-of-week") else bad
    if name == "day-of-month" and re.fullmatch(r"L|LW|([1-9]|[12][0-9]|3[01])W", part):
        return None
    if name == "day-of-week" and re.fullmatch(r"[1-7]L|L|[1-7]#[1-5]", part):
        return None
    for item in part.split(","):
        base, _, step = item.partition("/")
        if step and not (step.isascii() and step.isdigit() and 0 < int(step) <= high):
            return bad
        if base == "*":
            continue
        start, dash, end = base.partition("-")
        if not _cron_value(start, low, high, names):
            return bad
        if dash and not _cron_value(end, low, high, names):
            return bad
    return None


def _parse_retraining(section: _Section) -> RetrainingConfig:
    schedule = section.get("schedule", None)
    if schedule is not None:
        problem = schedule_expression_problem(schedule)
        if problem:
            raise ConfigError(section.key("schedule"), schedule, f"{problem}, or null")
    default = DEFAULT_RETRAINING
    return RetrainingConfig(
        enabled=section.boolean("enabled", default.enabled),
        schedule=schedule,
        cooldown_minutes=section.positive_int(
            "cooldown_minutes", default.cooldown_minutes, maximum=525600
        ),
        drift_share_threshold=float(
            section.check(
                "drift_share_threshold",
                _is_threshold,
                "expected a finite number in [0, 1]: the share of drifted features that alarms",
                default.drift_share_threshold,
            )
        ),
        latency_p99_ms=section.positive_int(
            "latency_p99_ms", default.latency_p99_ms, maximum=3600000
        ),
        errors_5xx_threshold=section.positive_int(
            "errors_5xx_threshold", default.errors_5xx_threshold
        ),
    )


def _is_threshold(value: Any) -> bool:
    """A probability-like score: int or float (not bool, not a string), finite, in [0, 1]."""
    return type(value) in (int, float) and math.isfinite(value) and 0 <= value <= 1


def _id_list(
    section: _Section, name: str, pattern: re.Pattern[str], example: str
) -> tuple[str, ...]:
    value = section.get(name)
    ok = (
        isinstance(value, list)
        and 0 < len(value) <= 16
        and all(isinstance(v, str) and pattern.match(v) for v in value)
    )
    if not ok:
        raise ConfigError(
            section.key(name), value, f"expected a non-empty list of ids like {example}"
        )
    return tuple(value)


_DELIVERY_KEYS = ("account", "region", "connection_arn", "repository", "branch", "load_test")
_LOAD_TEST_KEYS = ("p99_latency_ms", "max_error_rate", "rate_per_second", "duration_seconds")


def _parse_delivery(
    section: _Section, default_branch: str, regions: frozenset[str]
) -> DeliveryConfig:
    account, region = _account_and_region(
        section, regions, "expected the tooling account's 12-digit AWS account id, as a string"
    )
    connection_arn = str(
        section.check(
            "connection_arn",
            lambda v: (
                isinstance(v, str)
                and (match := _CONNECTION_ARN.fullmatch(v)) is not None
                and match["region"] in regions
            ),
            "expected arn:aws:codeconnections:REGION:ACCOUNT:connection/ID (or the older "
            "codestar-connections service prefix) with a 12-digit account and a UUID id",
        )
    )
    repository = section.string(
        "repository",
        re.compile(rf"^{_REPOSITORY.pattern}$", re.ASCII),
        "expected owner/name of the repository the connection reads, like my-org/mlops",
    )
    branch = section.check(
        "branch",
        lambda v: isinstance(v, str) and 0 < len(v) <= 256 and v.strip() == v,
        "expected a git branch name (or omit it: the default_branch)",
        default_branch,
    )
    lt = section.section("load_test", _LOAD_TEST_KEYS, {})
    load_test = LoadTestThresholds(
        p99_latency_ms=lt.positive_int("p99_latency_ms", 1000, maximum=600000),
        max_error_rate=float(
            lt.check(
                "max_error_rate",
                _is_threshold,
                "expected a finite number in [0, 1]: the share of failed requests allowed",
                0.01,
            )
        ),
        rate_per_second=lt.positive_int("rate_per_second", 20, maximum=10000),
        duration_seconds=lt.positive_int("duration_seconds", 120, maximum=3600),
    )
    return DeliveryConfig(
        account=account,
        region=region,
        connection_arn=connection_arn,
        repository=repository,
        branch=str(branch),
        load_test=load_test,
    )


_BRANCH_ENVIRONMENTS_KEYS = (
    "deploy_role_arn",
    "github_repository",
    "ttl_days",
    "sweeper_schedule",
    "cost_controls",
)


def _parse_branch_environments(
    section: _Section, dev: EnvironmentConfig
) -> BranchEnvironmentsConfig:
    dev_account = dev.account
    role = section.get("deploy_role_arn", None)
    if role is not None:
        match = _ROLE_ARN.fullmatch(role) if isinstance(role, str) else None
        if match is None:
            raise ConfigError(
                section.key("deploy_role_arn"),
                role,
                "expected an IAM role ARN like arn:aws:iam::111111111111:role/NAME, or null",
            )
        if match["account"] != dev_account:
            raise ConfigError(
                section.key("deploy_role_arn"),
                role,
                f"must be a role in the dev account ({dev_account}, environments.dev.account): "
                "branch stages deploy there",
            )
    repository = section.get("github_repository", None)
    if repository is not None and not (
        isinstance(repository, str) and _GITHUB_REPOSITORY.fullmatch(repository)
    ):
        raise ConfigError(
            section.key("github_repository"),
            repository,
            "expected the GitHub repository as owner/name, like my-org/mlops, or null",
        )
    schedule = section.get("sweeper_schedule", DEFAULT_SWEEPER_SCHEDULE)
    if schedule is not None:
        problem = schedule_expression_problem(schedule)
        if problem:
            raise ConfigError(section.key("sweeper_schedule"), schedule, f"{problem}, or null")
    return BranchEnvironmentsConfig(
        deploy_role_arn=role,
        github_repository=repository,
        ttl_days=section.positive_int(
            "ttl_days", DEFAULT_EPHEMERAL_TTL_DAYS, maximum=MAX_EPHEMERAL_TTL_DAYS
        ),
        sweeper_schedule=schedule,
        cost_controls=_parse_cost_controls(
            section.section("cost_controls", _COST_CONTROLS_KEYS, {}),
            BRANCH_COST_CONTROLS,
            dev.sizing.endpoint,
        ),
    )


def load_config(context: Mapping[str, Any] | None) -> AppConfig:
    """Validate the ``mlops`` context object and return the typed configuration."""
    if context is None:
        raise ConfigError(CONTEXT_KEY, None, "missing from cdk.json context")
    root = _Section(
        CONTEXT_KEY,
        context,
        (
            "project",
            "owner",
            "cost_center",
            "default_branch",
            "environments",
            "delivery",
            "branch_environments",
        ),
    )
    project = root.string(
        "project",
        _NAME_PART,
        "expected 1-20 characters: lowercase letters, digits and hyphens, starting with a letter",
    )
    owner = root.check(
        "owner", lambda v: isinstance(v, str) and 0 < len(v) <= 256, "expected a non-empty string"
    )
    cost_center = root.check(
        "cost_center",
        lambda v: isinstance(v, str) and 0 < len(v) <= 256,
        "expected a non-empty string",
    )
    default_branch = root.check(
        "default_branch",
        lambda v: isinstance(v, str) and 0 < len(v) <= 256,
        "expected a git branch name",
        DEFAULT_BRANCH,
    )
    envs = root.section("environments", ENVIRONMENTS)
    regions = _regions()
    environments = {}
    for name in ENVIRONMENTS:
        environments[name] = _parse_environment(envs.key(name), name, envs.get(name), regions)
    delivery = None
    if root.get("delivery", None) is not None:
        delivery = _parse_delivery(
            root.section("delivery", _DELIVERY_KEYS), str(default_branch), regions
        )
    return AppConfig(
        project=project,
        owner=str(owner),
        cost_center=str(cost_center),
        default_branch=str(default_branch),
        environments=environments,
        delivery=delivery,
        branch_environments=_parse_branch_environments(
            root.section("branch_environments", _BRANCH_ENVIRONMENTS_KEYS, {}),
            environments["dev"],
        ),
    )
