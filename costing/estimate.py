"""Idle monthly cost of each synthesized stage and cost per 1,000 requests of its endpoint.

Reads only the cloud assembly (``cdk.out``) and the price table shipped in ``costing/prices``:
no AWS call, no import of the app. Idle means no request, no pipeline run and no upload; what
still costs money then is what exists by the hour or month (KMS keys, alarms, dashboards, extra
trail copies, endpoint instances, VPC endpoints, NAT gateways) and what a schedule fires.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRICES_DIR = Path(__file__).parent / "prices"
SUMMARY_FILE = "mlops-summary.json"  # written by the app next to the assembly

#: Idle budgets of the issue (USD/month), by stage kind/environment. Prod has none.
BUDGETS_USD: Mapping[str, float] = {"ephemeral": 1.0, "dev": 5.0, "staging": 40.0}

#: Resource types that cost nothing while the stage is idle, and why. A type in a template that
#: is neither here nor priced in :data:`PRICED_TYPES` is reported as unpriced (and a test fails).
ZERO_AT_IDLE: Mapping[str, str] = {
    "AWS::CDK::Metadata": "not a billed resource",
    "AWS::IAM::Role": "IAM is free",
    "AWS::IAM::Policy": "IAM is free",
    "AWS::IAM::ManagedPolicy": "IAM is free",
    "AWS::KMS::Alias": "aliases are free (the key is priced)",
    "AWS::Lambda::Function": "billed per invocation and GB-second",
    "AWS::Lambda::LayerVersion": "layers are stored free (Lambda code storage quota)",
    "AWS::Lambda::Permission": "not billed",
    "AWS::Logs::LogGroup": "billed per GB ingested/stored; an idle stage logs next to nothing",
    "AWS::S3::Bucket": "billed per GB stored and per request; idle buckets hold only the code "
    "bundles (a few MB, < $0.01/month)",
    "AWS::S3::BucketPolicy": "not billed",
    "AWS::SNS::Topic": "billed per publish and delivery",
    "AWS::SNS::TopicPolicy": "not billed",
    "AWS::SQS::Queue": "billed per request; nothing polls an idle queue of this app",
    "AWS::SQS::QueuePolicy": "not billed",
    "AWS::StepFunctions::StateMachine": "billed per state transition",
    "AWS::Events::Rule": "event-pattern rules on AWS service events are free",
    "AWS::Athena::WorkGroup": "billed per TB scanned by queries",
    "AWS::Glue::Database": "Data Catalog: first million objects stored free",
    "AWS::Glue::Crawler": "billed per DPU-hour of a run",
    "AWS::Glue::Job": "billed per DPU-hour of a run",
    "AWS::Glue::SecurityConfiguration": "not billed",
    "AWS::Glue::Trigger": "a conditional trigger runs only after an ETL run",
    "AWS::SageMaker::Pipeline": "billed per job the pipeline runs",
    "AWS::SageMaker::ModelPackageGroup": "the registry is free (artifacts are in S3)",
    "AWS::SageMaker::FeatureGroup": "billed per read/write request unit and online-store GB; "
    "the offline store is S3 objects in the curated bucket",
    "AWS::SageMaker::Domain": "Studio domains are free; apps are billed while they run",
    "AWS::SageMaker::UserProfile": "user profiles are free; apps are billed while they run",
    "AWS::EC2::SecurityGroup": "not billed",
    "AWS::EC2::SecurityGroupIngress": "not billed",
    "AWS::EC2::SecurityGroupEgress": "not billed",
    "Custom::CDKBucketDeployment": "a Lambda run at deploy time only",
    "Custom::S3AutoDeleteObjects": "a Lambda run at stack deletion only",
    "Custom::ServingImageCopy": "a Lambda run at deploy time only (the serving-image copy)",
}

#: Resource types priced by :func:`_price_resources` (with the price keys they use).
PRICED_TYPES: Mapping[str, tuple[str, ...]] = {
    "AWS::KMS::Key": ("kms.key",),
    "AWS::CloudWatch::Alarm": ("cloudwatch.alarm_standard", "cloudwatch.alarm_high_resolution"),
    "AWS::CloudWatch::CompositeAlarm": ("cloudwatch.alarm_composite",),
    "AWS::CloudWatch::Dashboard": ("cloudwatch.dashboard",),
    "AWS::CloudTrail::Trail": (
        "cloudtrail.management_copy_100k",
        "cloudtrail.idle_management_events",
    ),
    "AWS::Scheduler::Schedule": ("scheduler.invocations_million",),
    "AWS::EC2::VPCEndpoint": ("vpc.interface_endpoint_az_hour",),
    "AWS::EC2::NatGateway": ("vpc.nat_gateway_hour",),
    "AWS::ECR::Repository": ("ecr.storage_gb_month", "ecr.serving_image_gb"),
}


class CostingError(Exception):
    """A missing/malformed assembly or price table, or a price the table lacks: one line."""


@dataclass(frozen=True)
class Price:
    key: str
    usd: float
    unit: str
    source: str
    retrieved: str
    quantity: float | None = None


@dataclass(frozen=True)
class PriceTable:
    region: str
    retrieved: str
    hours_per_month: float
    prices: Mapping[str, Price]
    assumptions: Mapping[str, float]

    def __getitem__(self, key: str) -> Price:
        try:
            return self.prices[key]
        except KeyError:
            raise CostingError(
                f"price table {self.region}: no price '{key}' (add it with its unit, source "
                "and date to costing/prices)"
            ) from None

    def hosting(self, instance_type: str) -> Price:
        return self[f"sagemaker.hosting.{instance_type}"]


def load_prices(region: str) -> PriceTable:
    """The shipped table of ``region`` (``costing/prices/<region>.json``)."""
    path = PRICES_DIR / f"{region}.json"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in PRICES_DIR.glob("*.json")))
        raise CostingError(f"no price table for region {region} (shipped: {shipped})")
    raw = json.loads(path.read_text())
    prices = {
        key: Price(
            key=key,
            usd=float(entry["usd"]),
            unit=str(entry["unit"]),
            source=str(entry["source"]),
            retrieved=str(entry["retrieved"]),
            quantity=entry.get("quantity"),
        )
        for key, entry in raw["prices"].items()
    }
    return PriceTable(
        region=raw["region"],
        retrieved=raw["retrieved"],
        hours_per_month=float(raw["hours_per_month"]),
        prices=prices,
        assumptions={k: float(v) for k, v in raw["assumptions"].items()},
    )


@dataclass(frozen=True)
class LineItem:
    """One priced resource type of a stage: how many, at which price, what it costs a month."""

    resource_type: str
    count: int
    price_key: str
    monthly_usd: float
    detail: str


@dataclass(frozen=True)
class EndpointCost:
    """The endpoint a stage's deployment workflow creates (from its CreateEndpointConfig task)."""

    mode: str  # "serverless" or "instances"
    description: str
    idle_monthly_usd: float
    per_1000_requests_usd: float
    basis: str


@dataclass(frozen=True)
class StageCost:
    stage: str
    kind: str  # "shared" or "ephemeral"
    environment: str
    region: str
    items: tuple[LineItem, ...]
    endpoint: EndpointCost | None
    #: resource type -> count, for types that cost nothing at idle (see ZERO_AT_IDLE).
    zero_at_idle: Mapping[str, int] = field(default_factory=dict)
    #: resource type -> why it could not be priced (empty for this app's templates).
    unpriced: Mapping[str, str] = field(default_factory=dict)

    @property
    def idle_monthly_usd(self) -> float:
        endpoint = self.endpoint.idle_monthly_usd if self.endpoint else 0.0
        return round(sum(i.monthly_usd for i in self.items) + endpoint, 2)

    @property
    def budget_usd(self) -> float | None:
        return BUDGETS_USD.get("ephemeral" if self.kind == "ephemeral" else self.environment)

    def line(self) -> str:
        """One line for ``make synth``."""
        budget = self.budget_usd
        verdict = (
            "no budget"
            if budget is None
            else f"budget ${budget:.2f}: {'ok' if self.idle_monthly_usd <= budget else 'OVER'}"
        )
        parts = [
            f"cost {self.stage:<28} idle ${self.idle_monthly_usd:>7.2f}/month ({verdict})",
        ]
        if self.endpoint:
            parts.append(
                f"endpoint {self.endpoint.description}: "
                f"${self.endpoint.per_1000_requests_usd:.4f} per 1,000 requests"
            )
        if self.unpriced:
            parts.append("UNPRICED: " + ", ".join(sorted(self.unpriced)))
        return "; ".join(parts)


# --------------------------------------------------------------------------------------------
# Assembly reading
def _stage_dirs(outdir: Path) -> list[tuple[str, Path]]:
    manifest_path = outdir / "manifest.json"
    if not manifest_path.is_file():
        raise CostingError(f"{outdir}: no cloud assembly (manifest.json) here: run make synth")
    manifest = json.loads(manifest_path.read_text())
    return [
        (a["properties"].get("displayName", name), outdir / a["properties"]["directoryName"])
        for name, a in manifest["artifacts"].items()
        if a["type"] == "cdk:cloud-assembly"
    ]


def _stack_templates(assembly: Path) -> tuple[str, str, list[dict[str, Any]]]:
    """(account, region, templates) of a stage's nested assembly."""
    manifest = json.loads((assembly / "manifest.json").read_text())
    account = region = ""
    templates = []
    for artifact in manifest["artifacts"].values():
        if artifact["type"] != "aws:cloudformation:stack":
            continue
        env = artifact.get("environment", "aws://unknown/unknown").removeprefix("aws://")
        account, region = account or env.split("/")[0], region or env.split("/")[1]
        templates.append(
            json.loads((assembly / artifact["properties"]["templateFile"]).read_text())
        )
    return account, region, templates


def _stage_meta(outdir: Path) -> dict[str, dict[str, Any]]:
    path = outdir / SUMMARY_FILE
    if not path.is_file():
        return {}
    return {s["stage"]: s for s in json.loads(path.read_text()).get("stages", [])}


# --------------------------------------------------------------------------------------------
# Pricing of template resources
def _alarm_metrics(props: Mapping[str, Any]) -> tuple[int, bool]:
    """(billed metrics, high resolution) of a metric alarm: one per metric it reads."""
    metrics = props.get("Metrics")
    if metrics:
        stats = [m["MetricStat"] for m in metrics if isinstance(m, dict) and "MetricStat" in m]
        periods = [s.get("Period", 60) for s in stats]
        return max(1, len(stats)), any(isinstance(p, int) and p < 60 for p in periods)
    period = props.get("Period", 60)
    return 1, isinstance(period, int) and period < 60


_CRON = re.compile(r"^cron\((.+)\)$")
_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
DAYS_PER_MONTH = 365.25 / 12
WEEKS_PER_MONTH = DAYS_PER_MONTH / 7


def _field_values(text: str, low: int, high: int) -> float:
    """How many values a cron field selects (``*``, lists, ranges, ``/step``)."""
    if text in ("*", "?"):
        return high - low + 1
    total = 0.0
    for part in text.split(","):
        base, _, step = part.partition("/")
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = (
                int(first) if first.isdigit() else low,
                int(last) if last.isdigit() else high,
            )
        else:
            start = end = int(base) if base.isdigit() else low
            if step:
                end = high
        total += len(range(start, end + 1, int(step) if step else 1))
    return total


def monthly_invocations(expression: str) -> float:
    """Average invocations per month of an EventBridge Scheduler expression."""
    expression = expression.strip()
    if expression.startswith("at("):
        return 0.0  # one-time: fires once, not monthly
    rate = _RATE.match(expression)
    if rate:
        minutes = {"minute": 1, "hour": 60, "day": 1440}[rate.group(2).rstrip("s")]
        return DAYS_PER_MONTH * 1440 / (int(rate.group(1)) * minutes)
    cron = _CRON.match(expression)
    if not cron or len(cron.group(1).split()) != 6:
        raise CostingError(f"schedule expression {expression!r}: expected rate(), cron() or at()")
    minute, hour, dom, month, dow, _year = cron.group(1).split()
    per_day = _field_values(minute, 0, 59) * _field_values(hour, 0, 23)
    months = _field_values(month, 1, 12) / 12
    if dow not in ("*", "?"):
        days = _field_values(dow.split("#")[0].split("L")[0] or "1", 1, 7) * WEEKS_PER_MONTH
        if "#" in dow or "L" in dow:
            days = 1.0  # the nth/last weekday of the month
    elif dom in ("*", "?"):
        days = DAYS_PER_MONTH
    elif dom in ("L", "LW") or dom.endswith("W"):
        days = 1.0
    else:
        days = _field_values(dom, 1, 31)
    return per_day * days * months


def _price_resources(
    resources: Iterable[Mapping[str, Any]], prices: PriceTable, *, owns_account: bool
) -> tuple[list[LineItem], Counter[str], dict[str, str]]:
    """Line items of the priced types, counts of the zero-at-idle ones, and the unpriced.

    ``owns_account``: this stage gets its account's free allowances (the first trail copy of
    management events, 10 alarm metrics, 3 dashboards); an ephemeral stage beside a shared one
    in the same account pays for all of its own."""
    by_type: dict[str, list[Mapping[str, Any]]] = {}
    for resource in resources:
        by_type.setdefault(resource["Type"], []).append(resource.get("Properties", {}))
    items: list[LineItem] = []
    zero: Counter[str] = Counter()
    unpriced: dict[str, str] = {}
    hours = prices.hours_per_month
    for type_, props_list in sorted(by_type.items()):
        count = len(props_list)
        if type_ == "AWS::KMS::Key":
            price = prices["kms.key"]
            rotating = sum(1 for p in props_list if p.get("EnableKeyRotation"))
            items.append(
                LineItem(
                    type_,
                    count,
                    price.key,
                    count * price.usd,
                    f"{count} customer managed keys x ${price.usd:.2f}/month ({rotating} rotate "
                    "yearly: +$1/month per key after each of the first two rotations)",
                )
            )
        elif type_ == "AWS::CloudWatch::Alarm":
            standard = high = 0
            for props in props_list:
                metrics, is_high = _alarm_metrics(props)
                if is_high:
                    high += metrics
                else:
                    standard += metrics
            std_price = prices["cloudwatch.alarm_standard"]
            high_price = prices["cloudwatch.alarm_high_resolution"]
            free = _free(prices, "cloudwatch.free_alarm_metrics") if owns_account else 0
            billed = max(0, standard - free)
            items.append(
                LineItem(
                    type_,
                    count,
                    std_price.key,
                    billed * std_price.usd + high * high_price.usd,
                    f"{standard} standard alarm metrics ({billed} billed after "
                    f"{'the account free tier' if owns_account else 'no free tier'}) x "
                    f"${std_price.usd:.2f}"
                    + (f" + {high} high-resolution x ${high_price.usd:.2f}" if high else ""),
                )
            )
        elif type_ == "AWS::CloudWatch::CompositeAlarm":
            price = prices["cloudwatch.alarm_composite"]
            items.append(
                LineItem(type_, count, price.key, count * price.usd, f"{count} composite alarms")
            )
        elif type_ == "AWS::CloudWatch::Dashboard":
            price = prices["cloudwatch.dashboard"]
            billed = max(
                0, count - (_free(prices, "cloudwatch.free_dashboards") if owns_account else 0)
            )
            items.append(
                LineItem(
                    type_,
                    count,
                    price.key,
                    billed * price.usd,
                    f"{count} dashboards, {billed} billed after "
                    f"{'the account free tier' if owns_account else 'no free tier'} x "
                    f"${price.usd:.2f}/month",
                )
            )
        elif type_ == "AWS::CloudTrail::Trail":
            copy = prices["cloudtrail.management_copy_100k"]
            volume = prices["cloudtrail.idle_management_events"].quantity or 0.0
            management = [
                p for p in props_list if _logs_management_events(p) and p.get("IsLogging", True)
            ]
            paid = max(0, len(management) - (1 if owns_account else 0))
            monthly = paid * volume / 100_000 * copy.usd
            items.append(
                LineItem(
                    type_,
                    count,
                    copy.key,
                    monthly,
                    f"{len(management)} trails logging management events; "
                    + (
                        "the first copy in the account is free"
                        if owns_account
                        else "another stage's trail holds the free copy"
                    )
                    + f"; {paid} paid copies x {volume:,.0f} idle events (assumption) x "
                    f"${copy.usd:.2f}/100k; data events: none at idle",
                )
            )
        elif type_ == "AWS::Scheduler::Schedule":
            price = prices["scheduler.invocations_million"]
            enabled = [p for p in props_list if p.get("State", "ENABLED") == "ENABLED"]
            invocations = sum(monthly_invocations(p["ScheduleExpression"]) for p in enabled)
            items.append(
                LineItem(
                    type_,
                    count,
                    price.key,
                    invocations / 1e6 * price.usd,
                    f"{len(enabled)} enabled schedules, {invocations:,.0f} invocations/month x "
                    f"${price.usd:.2f}/million (free tier not applied); their targets' work is "
                    "not idle and not counted",
                )
            )
        elif type_ == "AWS::EC2::VPCEndpoint":
            price = prices["vpc.interface_endpoint_az_hour"]
            interface = [p for p in props_list if p.get("VpcEndpointType") == "Interface"]
            az_hours = sum(len(p.get("SubnetIds", [])) or 1 for p in interface) * hours
            items.append(
                LineItem(
                    type_,
                    count,
                    price.key,
                    az_hours * price.usd,
                    f"{len(interface)} interface endpoints, {az_hours:,.0f} endpoint-AZ-hours x "
                    f"${price.usd:.3f} (gateway endpoints are free)",
                )
            )
        elif type_ == "AWS::EC2::NatGateway":
            price = prices["vpc.nat_gateway_hour"]
            items.append(
                LineItem(
                    type_,
                    count,
                    price.key,
                    count * hours * price.usd,
                    f"{count} NAT gateways x {hours:.0f} h x ${price.usd:.3f}",
                )
            )
        elif type_ == "AWS::ECR::Repository":
            price = prices["ecr.storage_gb_month"]
            size = prices["ecr.serving_image_gb"].quantity or 0.0
            items.append(
                LineItem(
                    type_,
                    count,
                    price.key,
                    count * size * price.usd,
                    f"{count} serving-image repositories x {size:g} GB (assumption) x "
                    f"${price.usd:.2f}/GB-month (CDK's asset repository holds one more copy per "
                    "account; scanning on push is free)",
                )
            )
        elif type_ in ZERO_AT_IDLE:
            scheduled = _scheduled_work(type_, props_list)
            if scheduled:
                unpriced[type_] = scheduled
            else:
                zero[type_] = count
        else:
            unpriced[type_] = "not in the price table nor in the zero-at-idle list"
    return items, zero, unpriced


def _free(prices: PriceTable, key: str) -> int:
    return int(prices[key].quantity or 0)


def _logs_management_events(props: Mapping[str, Any]) -> bool:
    advanced = props.get("AdvancedEventSelectors")
    if advanced:
        return any(
            any(
                f.get("Field") == "eventCategory" and "Management" in f.get("Equals", [])
                for f in selector.get("FieldSelectors", [])
            )
            for selector in advanced
        )
    basic = props.get("EventSelectors")
    if basic:
        return any(s.get("IncludeManagementEvents", True) for s in basic)
    return True  # a trail without selectors logs management events


def _scheduled_work(type_: str, props_list: list[Mapping[str, Any]]) -> str | None:
    """A 'zero at idle' type that is scheduled runs at idle: it must be priced, not ignored."""
    if type_ == "AWS::Glue::Trigger" and any(p.get("Type") == "SCHEDULED" for p in props_list):
        return "a SCHEDULED Glue trigger runs its jobs/crawlers at idle"
    if type_ == "AWS::Glue::Crawler" and any(p.get("Schedule") for p in props_list):
        return "a scheduled Glue crawler runs at idle"
    if type_ == "AWS::Events::Rule" and any(p.get("ScheduleExpression") for p in props_list):
        return "a scheduled EventBridge rule runs its targets at idle"
    return None


# --------------------------------------------------------------------------------------------
# The endpoint, from the deployment workflow's definition
def _definition_text(value: Any) -> str:
    """A state machine's DefinitionString with every CloudFormation token replaced by a marker."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(p if isinstance(p, str) else "<token>" for p in parts)
    return ""


def _endpoint_states(templates: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every state of every state machine that creates an endpoint config."""
    found = []
    for template in templates:
        for resource in template.get("Resources", {}).values():
            if resource["Type"] != "AWS::StepFunctions::StateMachine":
                continue
            text = _definition_text(resource.get("Properties", {}).get("DefinitionString"))
            if "createEndpointConfig" not in text:
                continue
            try:
                definition = json.loads(text)
            except json.JSONDecodeError:
                continue
            found.append(definition.get("States", {}))
    return found


def price_endpoint(
    variant: Mapping[str, Any], min_instances: int, target_per_instance: int | None,
    prices: PriceTable,
) -> EndpointCost:  # fmt: skip
    """Idle monthly cost and cost per 1,000 requests of one production variant."""
    a = prices.assumptions
    duration_s = a["request_duration_ms"] / 1000
    data_gb = (a["request_payload_kb"] + a["response_payload_kb"]) / (1024 * 1024)
    serverless = variant.get("ServerlessConfig")
    if serverless:
        memory_gb = int(serverless["MemorySizeInMB"]) / 1024
        compute = prices["sagemaker.serverless_gb_second"]
        data = prices["sagemaker.serverless_data_gb"]
        per_request = memory_gb * duration_s * compute.usd + data_gb * data.usd
        return EndpointCost(
            mode="serverless",
            description=f"serverless {serverless['MemorySizeInMB']} MB, max concurrency "
            f"{serverless.get('MaxConcurrency', '?')}: $0 idle",
            idle_monthly_usd=0.0,
            per_1000_requests_usd=1000 * per_request,
            basis=f"{memory_gb:g} GB x {duration_s * 1000:.0f} ms x ${compute.usd}/GB-s + "
            f"{a['request_payload_kb'] + a['response_payload_kb']:.0f} KB x ${data.usd}/GB "
            "per request (duration and payload: assumptions)",
        )
    instance_type = str(variant.get("InstanceType", ""))
    hourly = prices.hosting(instance_type)
    idle = min_instances * hourly.usd * prices.hours_per_month
    # Marginal cost at the autoscaling target: an instance at its target serves
    # target_per_instance invocations a minute, so 1,000 requests take 1000/target minutes.
    target = target_per_instance or 1
    per_1000 = hourly.usd / 60 * 1000 / target
    return EndpointCost(
        mode="instances",
        description=f"{min_instances} x {instance_type} (min): ${idle:.2f}/month idle",
        idle_monthly_usd=idle,
        per_1000_requests_usd=per_1000,
        basis=f"{min_instances} x ${hourly.usd}/h x {prices.hours_per_month:.0f} h idle; per "
        f"1,000 requests: instance time at the scaling target ({target} invocations/minute)",
    )


def _endpoint_cost(
    templates: Iterable[Mapping[str, Any]], prices: PriceTable
) -> EndpointCost | None:
    for states in _endpoint_states(templates):
        create = next(
            (
                s
                for s in states.values()
                if str(s.get("Resource", "")).endswith("sagemaker:createEndpointConfig")
            ),
            None,
        )
        if create is None:
            continue
        variants = create.get("Parameters", {}).get("ProductionVariants", [])
        if not variants:
            continue
        register = [
            s["Parameters"]
            for name, s in states.items()
            if str(s.get("Resource", "")).endswith("registerScalableTarget")
            and "MinCapacity" in s.get("Parameters", {})
        ]
        policies = [
            s["Parameters"].get("TargetTrackingScalingPolicyConfiguration", {})
            for s in states.values()
            if str(s.get("Resource", "")).endswith("putScalingPolicy")
        ]
        min_instances = int(register[0]["MinCapacity"]) if register else 1
        target = next(
            (int(p["TargetValue"]) for p in policies if isinstance(p.get("TargetValue"), int)),
            None,
        )
        return price_endpoint(variants[0], min_instances, target, prices)
    return None


# --------------------------------------------------------------------------------------------
def stage_costs(assembly_dir: str | Path) -> list[StageCost]:
    """Idle cost of every stage in a cloud assembly, in the assembly's order.

    Signature: ``stage_costs(assembly_dir: str | Path) -> list[StageCost]``.

    ``assembly_dir`` is the CDK output directory (``cdk.out``) holding one nested assembly
    ``assembly-<stage>`` per stage. Each :class:`StageCost` has ``stage``, ``kind``
    (``shared``/``ephemeral``), ``environment``, ``region``, ``idle_monthly_usd`` (a float,
    USD/month, rounded to cents), ``items`` (one :class:`LineItem` per priced resource type:
    ``resource_type``, ``count``, ``price_key``, ``monthly_usd``, ``detail``), ``endpoint``
    (an :class:`EndpointCost` with ``mode``, ``description``, ``idle_monthly_usd``,
    ``per_1000_requests_usd``, ``basis``; None without a deployment workflow),
    ``zero_at_idle`` (type -> count), ``unpriced`` (type -> reason), ``budget_usd`` (None for
    prod) and ``line()`` (the one-line summary ``make synth`` prints). Prices come from
    ``costing/prices/<region>.json``. Raises :class:`CostingError` (one-line message) on a
    missing assembly, a region without a table or a price the table lacks.
    """
    outdir = Path(assembly_dir)
    meta = _stage_meta(outdir)
    tables: dict[str, PriceTable] = {}
    stages = _stage_dirs(outdir)
    # Free allowances are per account (and region, for CloudTrail): the first shared stage of
    # an account owns them; ephemeral stages beside it, and a second shared stage in the same
    # account, pay in full.
    read = [(name, *_stack_templates(path)) for name, path in stages]
    kinds = {
        name: str(meta.get(name, {}).get("kind", "ephemeral" if "-br-" in name else "shared"))
        for name, *_ in read
    }
    owners: dict[tuple[str, str], str] = {}
    for name, account, region, _ in read:
        if kinds[name] == "shared":
            owners.setdefault((account, region), name)
    results = []
    for name, account, region, templates in read:
        info = meta.get(name, {})
        kind = kinds[name]
        environment = str(info.get("environment", name.rsplit("-", 1)[-1]))
        prices = tables.get(region) or tables.setdefault(region, load_prices(region))
        owner = owners.setdefault((account, region), name)
        resources = [r for t in templates for r in t.get("Resources", {}).values()]
        items, zero, unpriced = _price_resources(resources, prices, owns_account=owner == name)
        results.append(
            StageCost(
                stage=name,
                kind=kind,
                environment=environment,
                region=region,
                items=tuple(items),
                endpoint=_endpoint_cost(templates, prices),
                zero_at_idle=dict(zero),
                unpriced=unpriced,
            )
        )
    return results


def render(costs: Iterable[StageCost]) -> str:
    return "\n".join(c.line() for c in costs)
