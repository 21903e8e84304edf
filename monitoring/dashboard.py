"""One CloudWatch dashboard per stage: the endpoint, drift, the model-build pipeline, workflows.

::

    StageDashboard(self, "Dashboard", dashboard_name=..., endpoint_name=..., variant_name=...,
                   pipeline_name=..., state_machines=[("Ingestion", arn), ...],
                   drift_backend="drift_job", drift_namespace="MLOps/ModelDrift")

Rows (24-column grid):

* the endpoint (``AWS/SageMaker``, ``EndpointName`` + ``VariantName``): invocations; 4xx and 5xx
  errors; ``ModelLatency`` and ``OverheadLatency`` p50/p90/p99 (microseconds);
* drift: for ``drift_job``, the drift job's own metrics (:mod:`monitoring.drift.metrics`: share
  of drifted features against the retraining alarm's threshold, dataset drift, drifted features,
  captured rows and rejected records, and every feature's verdict through a ``SEARCH``
  expression, so no feature list is repeated here); for ``model_monitor``, Model Monitor's
  per-feature ``feature_baseline_drift_*`` metrics (``SEARCH`` in its namespace); for ``off``, a
  note saying so;
* the model-build pipeline (``AWS/Sagemaker/ModelBuildingPipeline``, ``PipelineName``):
  executions started, succeeded, failed, stopped; execution duration;
* one widget per state machine (``AWS/States``, ``StateMachineArn``): executions started,
  succeeded, failed, timed out, aborted.

Metric names and dimensions are the ones AWS documents for each namespace (SageMaker developer
guide "Monitor Amazon SageMaker AI with Amazon CloudWatch", Step Functions developer guide
"Monitoring Step Functions metrics using Amazon CloudWatch"); tests/monitoring/test_dashboard.py
checks every metric of the synthesized body against those lists.

Built as ONE ``AWS::CloudWatch::Dashboard`` (L1) whose body is composed here as plain JSON
(CloudWatch API reference "Dashboard Body Structure and Syntax"): no widget or metric
constructs, so a dashboard costs one construct at synth time. Why not cdk-monitoring-constructs
(or the L2 widgets): README "Dashboard" has the measurements.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from monitoring.drift import metrics as drift_metrics

SAGEMAKER_NAMESPACE = "AWS/SageMaker"
PIPELINE_NAMESPACE = "AWS/Sagemaker/ModelBuildingPipeline"
STATES_NAMESPACE = "AWS/States"
#: Model Monitor's data-quality metrics of real-time endpoints (== monitoring.model_monitor's).
MODEL_MONITOR_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
DRIFT_BACKENDS = ("drift_job", "model_monitor", "off")

LATENCY_PERCENTILES = ("p50", "p90", "p99")
ENDPOINT_COUNTS = ("Invocations",)
ENDPOINT_ERRORS = ("Invocation4XXErrors", "Invocation5XXErrors")
ENDPOINT_LATENCIES = ("ModelLatency", "OverheadLatency")
PIPELINE_EXECUTIONS = (
    "ExecutionStarted",
    "ExecutionSucceeded",
    "ExecutionFailed",
    "ExecutionStopped",
)
STATE_MACHINE_EXECUTIONS = (
    "ExecutionsStarted",
    "ExecutionsSucceeded",
    "ExecutionsFailed",
    "ExecutionsTimedOut",
    "ExecutionsAborted",
)
#: Endpoint and pipeline graphs: 5-minute points; drift runs publish once per run (hours apart).
PERIOD_SECONDS = 300
DRIFT_PERIOD_SECONDS = 3600
#: The time range a dashboard opens with.
DEFAULT_RANGE = "-P7D"
GRID_WIDTH = 24
#: CloudWatch dashboard names: at most 255 characters (A-Z, a-z, 0-9, "-", "_").
DASHBOARD_NAME_MAX = 255
HEIGHT = 6


class StageDashboard(Construct):
    """The stage's dashboard. Exposes ``dashboard`` (the L1 resource) and ``body`` (the
    dashboard body as a Python document, tokens as CDK token strings)."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        dashboard_name: str,
        endpoint_name: str,
        variant_name: str,
        pipeline_name: str,
        state_machines: Sequence[tuple[str, str]],
        drift_backend: str = "drift_job",
        drift_namespace: str = drift_metrics.DEFAULT_NAMESPACE,
        drift_share_threshold: float | None = None,
    ) -> None:
        super().__init__(scope, id_)
        if drift_backend not in DRIFT_BACKENDS:
            raise ValueError(
                f"drift_backend {drift_backend!r} is not one of {', '.join(DRIFT_BACKENDS)}"
            )
        drift_metrics.validate_namespace(drift_namespace)
        region = cdk.Stack.of(self).region
        self.body = dashboard_body(
            region=region,
            endpoint_name=endpoint_name,
            variant_name=variant_name,
            pipeline_name=pipeline_name,
            state_machines=state_machines,
            drift_backend=drift_backend,
            drift_namespace=drift_namespace,
            drift_share_threshold=drift_share_threshold,
        )
        self.dashboard = cloudwatch.CfnDashboard(
            self,
            "Dashboard",
            dashboard_name=dashboard_name,
            dashboard_body=json.dumps(self.body, separators=(",", ":")),
        )


def _metric(
    namespace: str, name: str, dimensions: Sequence[tuple[str, str]], **options: Any
) -> list[Any]:
    """One entry of a widget's ``metrics`` array: namespace, name, dimension pairs, options."""
    entry: list[Any] = [namespace, name]
    for key, value in dimensions:
        entry += [key, value]
    return [*entry, options] if options else entry


def _graph(
    title: str,
    metrics: list[list[Any]],
    region: str,
    *,
    stat: str = "Sum",
    period: int = PERIOD_SECONDS,
    **properties: Any,
) -> dict[str, Any]:
    return {
        "type": "metric",
        "properties": {
            "title": title,
            "region": region,
            "view": "timeSeries",
            "stacked": False,
            "stat": stat,
            "period": period,
            "metrics": metrics,
            **properties,
        },
    }


def _text(markdown: str) -> dict[str, Any]:
    return {"type": "text", "properties": {"markdown": markdown}}


def _search(expression: str) -> list[dict[str, Any]]:
    """A metric-math SEARCH entry: one series per metric found, labelled by CloudWatch."""
    return [{"expression": expression, "id": "e1"}]


def _drift_widgets(
    backend: str,
    namespace: str,
    endpoint: str,
    region: str,
    threshold: float | None,
) -> list[dict[str, Any]]:
    if backend == "off":
        return [
            _text(
                "### Drift\nMonitoring is off for this stage (`monitoring.backend: off`): no "
                "drift metrics are published."
            )
        ]
    if backend == "model_monitor":
        expression = (
            f"SEARCH('{{{MODEL_MONITOR_NAMESPACE},Endpoint,MonitoringSchedule}} "
            f"Endpoint=\"{endpoint}\" feature_baseline_drift', 'Maximum', {DRIFT_PERIOD_SECONDS})"
        )
        return [
            _graph(
                "Drift: Model Monitor feature_baseline_drift per feature",
                [_search(expression)],
                region,
                stat="Maximum",
                period=DRIFT_PERIOD_SECONDS,
            )
        ]
    endpoint_dim = [(drift_metrics.ENDPOINT_DIMENSION, endpoint)]
    share: dict[str, Any] = {}
    if threshold is not None:
        share["annotations"] = {
            "horizontal": [{"label": "retraining alarm threshold", "value": threshold}]
        }
    per_feature = (
        f"SEARCH('{{{namespace},{drift_metrics.ENDPOINT_DIMENSION},"
        f'{drift_metrics.FEATURE_DIMENSION}}} MetricName="{drift_metrics.FEATURE_DRIFT}" '
        f"{drift_metrics.ENDPOINT_DIMENSION}=\"{endpoint}\"', 'Maximum', {DRIFT_PERIOD_SECONDS})"
    )
    return [
        _graph(
            "Drift: share of drifted features, dataset drift (1 = yes)",
            [
                _metric(namespace, drift_metrics.SHARE_OF_DRIFTED_FEATURES, endpoint_dim),
                _metric(namespace, drift_metrics.DATASET_DRIFT, endpoint_dim),
            ],
            region,
            stat="Maximum",
            period=DRIFT_PERIOD_SECONDS,
            yAxis={"left": {"min": 0, "max": 1}},
            **share,
        ),
        _graph(
            "Drift runs: drifted features, captured rows, rejected records",
            [
                _metric(namespace, drift_metrics.DRIFTED_FEATURES, endpoint_dim, stat="Maximum"),
                _metric(namespace, drift_metrics.CAPTURED_ROWS, endpoint_dim),
                _metric(namespace, drift_metrics.REJECTED_RECORDS, endpoint_dim),
            ],
            region,
            stat="Sum",
            period=DRIFT_PERIOD_SECONDS,
        ),
        _graph(
            "Drift per feature (1 = drifted)",
            [_search(per_feature)],
            region,
            stat="Maximum",
            period=DRIFT_PERIOD_SECONDS,
        ),
    ]


def dashboard_body(
    *,
    region: str,
    endpoint_name: str,
    variant_name: str,
    pipeline_name: str,
    state_machines: Sequence[tuple[str, str]],
    drift_backend: str,
    drift_namespace: str,
    drift_share_threshold: float | None,
) -> dict[str, Any]:
    """The dashboard body (a JSON document), widgets laid out row by row."""
    endpoint = [("EndpointName", endpoint_name), ("VariantName", variant_name)]
    pipeline = [("PipelineName", pipeline_name)]
    rows: list[list[dict[str, Any]]] = [
        [
            _text(
                f"## {endpoint_name}\nEndpoint `{endpoint_name}` (variant `{variant_name}`), "
                f"model-build pipeline `{pipeline_name}`. Latencies in microseconds; drift "
                "points appear once per drift run."
            )
        ],
        [
            _graph(
                "Endpoint invocations",
                [_metric(SAGEMAKER_NAMESPACE, n, endpoint) for n in ENDPOINT_COUNTS],
                region,
            ),
            _graph(
                "Endpoint errors (4xx, 5xx)",
                [_metric(SAGEMAKER_NAMESPACE, n, endpoint) for n in ENDPOINT_ERRORS],
                region,
            ),
        ],
        [
            _graph(
                f"{name} p50 / p90 / p99 (microseconds)",
                [
                    _metric(SAGEMAKER_NAMESPACE, name, endpoint, stat=p, label=f"{name} {p}")
                    for p in LATENCY_PERCENTILES
                ],
                region,
                stat="p99",
            )
            for name in ENDPOINT_LATENCIES
        ],
        _drift_widgets(
            drift_backend, drift_namespace, endpoint_name, region, drift_share_threshold
        ),
        [
            _graph(
                f"Pipeline {pipeline_name}: executions",
                [_metric(PIPELINE_NAMESPACE, n, pipeline) for n in PIPELINE_EXECUTIONS],
                region,
            ),
            _graph(
                f"Pipeline {pipeline_name}: execution duration (ms)",
                [_metric(PIPELINE_NAMESPACE, "ExecutionDuration", pipeline, stat="Maximum")],
                region,
                stat="Average",
            ),
        ],
    ]
    machines = [
        _graph(
            f"{title} workflow: executions",
            [
                _metric(STATES_NAMESPACE, n, [("StateMachineArn", arn)])
                for n in STATE_MACHINE_EXECUTIONS
            ],
            region,
        )
        for title, arn in state_machines
    ]
    for start in range(0, len(machines), 3):
        rows.append(machines[start : start + 3])
    widgets = []
    y = 0
    for row in rows:
        width = GRID_WIDTH // len(row)
        height = 2 if all(w["type"] == "text" for w in row) else HEIGHT
        for i, widget in enumerate(row):
            widgets.append({**widget, "x": i * width, "y": y, "width": width, "height": height})
        y += height
    return {"start": DEFAULT_RANGE, "periodOverride": "inherit", "widgets": widgets}
