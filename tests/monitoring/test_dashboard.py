"""The stage dashboard on the synthesized templates: every metric it graphs is one AWS documents
(or the drift job publishes), with the dimensions that select THIS stage's resources."""

from __future__ import annotations

import json
import re
from typing import Any

import aws_cdk as cdk
import pytest

from monitoring import dashboard as d
from monitoring.drift import metrics as drift_metrics
from tests.conftest import EPHEMERAL_STAGE

# Documented metric names and dimensions per namespace.
#  AWS/SageMaker, AWS/Sagemaker/ModelBuildingPipeline: SageMaker developer guide, "Monitor Amazon
#  SageMaker AI with Amazon CloudWatch" (Endpoint Invocation Metrics; Pipelines Execution Metrics)
#  https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html
#  AWS/States: Step Functions developer guide, "Monitoring Step Functions metrics using Amazon
#  CloudWatch" (Execution Metrics) https://docs.aws.amazon.com/step-functions/latest/dg/procedure-cw-metrics.html
#  The drift namespace: what monitoring/drift/metrics.py publishes.
DOCUMENTED: dict[str, tuple[set[str], set[frozenset[str]]]] = {
    "AWS/SageMaker": (
        {
            "Invocation4XXErrors", "Invocation5XXErrors", "Invocations", "InvocationsPerInstance",
            "ModelLatency", "OverheadLatency", "ModelSetupTime",
        },
        {frozenset({"EndpointName", "VariantName"})},
    ),
    "AWS/Sagemaker/ModelBuildingPipeline": (
        {
            "ExecutionStarted", "ExecutionFailed", "ExecutionSucceeded", "ExecutionStopped",
            "ExecutionDuration",
        },
        {frozenset({"PipelineName"})},
    ),
    "AWS/States": (
        {
            "ExecutionTime", "ExecutionThrottled", "ExecutionsAborted", "ExecutionsFailed",
            "ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsTimedOut",
        },
        {frozenset({"StateMachineArn"})},
    ),
    drift_metrics.DEFAULT_NAMESPACE: (
        {
            drift_metrics.SHARE_OF_DRIFTED_FEATURES, drift_metrics.DRIFTED_FEATURES,
            drift_metrics.DATASET_DRIFT, drift_metrics.CAPTURED_ROWS,
            drift_metrics.REJECTED_RECORDS, drift_metrics.FEATURE_DRIFT,
            drift_metrics.FEATURE_DRIFT_SCORE,
        },
        {
            frozenset({drift_metrics.ENDPOINT_DIMENSION}),
            frozenset({drift_metrics.ENDPOINT_DIMENSION, drift_metrics.FEATURE_DIMENSION}),
        },
    ),
}  # fmt: skip
#: What each stage's dashboard must show (issue 9, item 5).
REQUIRED = {
    ("AWS/SageMaker", "Invocations"),
    ("AWS/SageMaker", "Invocation4XXErrors"),
    ("AWS/SageMaker", "Invocation5XXErrors"),
    ("AWS/SageMaker", "ModelLatency"),
    ("AWS/SageMaker", "OverheadLatency"),
    ("AWS/Sagemaker/ModelBuildingPipeline", "ExecutionStarted"),
    ("AWS/Sagemaker/ModelBuildingPipeline", "ExecutionFailed"),
    ("AWS/States", "ExecutionsStarted"),
    ("AWS/States", "ExecutionsFailed"),
    (drift_metrics.DEFAULT_NAMESPACE, drift_metrics.SHARE_OF_DRIFTED_FEATURES),
}
STATISTICS = re.compile(r"^(SampleCount|Average|Sum|Minimum|Maximum|p\d{1,2}(\.\d+)?)$")


def render(body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The dashboard body with each CloudFormation token as a placeholder, and the tokens."""
    if isinstance(body, str):
        return json.loads(body), {}
    separator, parts = body["Fn::Join"]
    tokens: dict[str, Any] = {}
    text = []
    for part in parts:
        if isinstance(part, str):
            text.append(part)
        else:
            name = f"TOKEN{len(tokens)}"
            tokens[name] = part
            text.append(name)
    return json.loads(separator.join(text)), tokens


def metric_entries(body: dict[str, Any]) -> list[tuple[dict[str, Any], list[Any]]]:
    return [
        (widget, entry)
        for widget in body["widgets"]
        if widget["type"] == "metric"
        for entry in widget["properties"]["metrics"]
    ]


def split(entry: list[Any]) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    options = entry[-1] if isinstance(entry[-1], dict) else {}
    plain = entry[:-1] if options else entry
    assert "..." not in plain and "." not in plain  # no shorthand: every entry is complete
    namespace, name, *pairs = plain
    assert len(pairs) % 2 == 0, entry
    return namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True)), options


def stage_dashboards(
    templates: dict[str, dict[str, dict[str, Any]]],
) -> list[tuple[str, dict[str, Any], dict[str, Any], dict[str, dict[str, Any]]]]:
    found = []
    for stage_name, stacks in templates.items():
        operations = stacks["Operations"]
        dashboards = [
            r for r in operations["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"
        ]
        if stage_name == EPHEMERAL_STAGE:
            # cost_controls.dashboard false in branch stages (README "Cost").
            assert dashboards == []
            continue
        (resource,) = dashboards
        body, _tokens = render(resource["Properties"]["DashboardBody"])
        found.append((stage_name, resource["Properties"], body, stacks))
    return found


def test_every_graphed_metric_is_documented_and_selects_this_stages_resources(
    templates: dict[str, dict[str, dict[str, Any]]],
) -> None:
    stages = stage_dashboards(templates)
    assert len(stages) == len(templates) - 1 >= 3  # all but the branch stage (no dashboard)
    for stage_name, properties, body, stacks in stages:
        assert properties["DashboardName"] == f"{stage_name}-operations"
        (pipeline,) = [
            r["Properties"]["PipelineName"]
            for r in stacks["ModelBuild"]["Resources"].values()
            if r["Type"] == "AWS::SageMaker::Pipeline"
        ]
        machines = {
            logical_id: r["Properties"].get("StateMachineName", "")
            for logical_id, r in stacks["Operations"]["Resources"].items()
            if r["Type"] == "AWS::StepFunctions::StateMachine"
        }
        _, tokens = render(properties["DashboardBody"])
        shown: set[tuple[str, str]] = set()
        graphed_machines: set[str] = set()
        for widget, entry in metric_entries(body):
            region = widget["properties"]["region"]
            assert region == "us-east-1", (stage_name, region)  # the stage's own region
            if isinstance(entry[0], dict):  # a SEARCH expression: checked below
                continue
            namespace, name, dimensions, options = split(entry)
            assert namespace in DOCUMENTED, (stage_name, namespace)
            names, dimension_sets = DOCUMENTED[namespace]
            assert name in names, (stage_name, namespace, name)
            assert frozenset(dimensions) in dimension_sets, (stage_name, name, dimensions)
            stat = options.get("stat", widget["properties"]["stat"])
            assert STATISTICS.match(stat), stat
            shown.add((namespace, name))
            if "EndpointName" in dimensions:
                assert dimensions["EndpointName"] == f"{stage_name}-endpoint"
            if "VariantName" in dimensions:
                assert dimensions["VariantName"] == "AllTraffic"
            if "PipelineName" in dimensions:
                assert dimensions["PipelineName"] == pipeline
            if "StateMachineArn" in dimensions:
                token = tokens[dimensions["StateMachineArn"]]
                assert token == {"Ref": token["Ref"]} and token["Ref"] in machines
                graphed_machines.add(token["Ref"])
        assert shown >= REQUIRED, (stage_name, REQUIRED - shown)
        # every workflow of the stage is on its dashboard, the ingestion workflow among them
        assert graphed_machines == set(machines), stage_name
        assert any("ingest" in machines[m] for m in graphed_machines), machines


def test_latency_percentiles_and_the_drift_threshold(
    templates: dict[str, dict[str, dict[str, Any]]],
) -> None:
    for stage_name, _properties, body, _stacks in stage_dashboards(templates):
        stats: dict[str, list[str]] = {}
        for _widget, entry in metric_entries(body):
            if isinstance(entry[0], dict):
                continue
            _namespace, name, _dimensions, options = split(entry)
            if name in d.ENDPOINT_LATENCIES:
                stats.setdefault(name, []).append(options["stat"])
        assert stats == {
            "ModelLatency": ["p50", "p90", "p99"],
            "OverheadLatency": ["p50", "p90", "p99"],
        }
        (share,) = [
            w
            for w in body["widgets"]
            if w["type"] == "metric"
            and any(
                e[1:2] == [drift_metrics.SHARE_OF_DRIFTED_FEATURES]
                for e in w["properties"]["metrics"]
            )
        ]
        (line,) = share["properties"]["annotations"]["horizontal"]
        assert line["value"] == 0.5, stage_name  # cdk.json retraining.drift_share_threshold


def test_per_feature_drift_is_a_search_of_the_drift_jobs_metric(
    templates: dict[str, dict[str, dict[str, Any]]],
) -> None:
    for stage_name, _properties, body, _stacks in stage_dashboards(templates):
        expressions = [
            entry[0]["expression"]
            for _widget, entry in metric_entries(body)
            if isinstance(entry[0], dict)
        ]
        (expression,) = expressions
        match = re.fullmatch(
            r"SEARCH\('\{(?P<ns>[^,]+),(?P<dims>[^}]+)\} MetricName=\"(?P<name>\w+)\" "
            r"EndpointName=\"(?P<endpoint>[\w-]+)\"', 'Maximum', 3600\)",
            expression,
        )
        assert match, expression
        assert match["ns"] == drift_metrics.DEFAULT_NAMESPACE
        assert match["dims"].split(",") == ["EndpointName", "Feature"]
        assert match["name"] == drift_metrics.FEATURE_DRIFT
        assert match["endpoint"] == f"{stage_name}-endpoint"


def test_widgets_tile_the_grid_without_overlap(
    templates: dict[str, dict[str, dict[str, Any]]],
) -> None:
    for _stage, _properties, body, _stacks in stage_dashboards(templates):
        cells: set[tuple[int, int]] = set()
        for widget in body["widgets"]:
            assert widget["x"] >= 0 and widget["x"] + widget["width"] <= 24
            area = {
                (x, y)
                for x in range(widget["x"], widget["x"] + widget["width"])
                for y in range(widget["y"], widget["y"] + widget["height"])
            }
            assert not area & cells, widget["properties"].get("title")
            cells |= area
        assert len(body["widgets"]) <= 500  # PutDashboard's limit


# ---- backends the default config does not use: a small app with the construct only ----------


@pytest.fixture(scope="module")
def other_backends() -> dict[str, dict[str, Any]]:
    app = cdk.App()
    stack = cdk.Stack(app, "S", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    for backend in ("model_monitor", "off"):
        d.StageDashboard(
            stack,
            backend,
            dashboard_name=f"x-{backend}",
            endpoint_name="x-endpoint",
            variant_name="AllTraffic",
            pipeline_name="x-model-build",
            state_machines=[("Ingestion", "arn:aws:states:eu-west-1:111111111111:stateMachine:i")],
            drift_backend=backend,
        )
    template = app.synth().get_stack_by_name("S").template
    return {
        r["Properties"]["DashboardName"].removeprefix("x-"): render(
            r["Properties"]["DashboardBody"]
        )[0]
        for r in template["Resources"].values()
    }


def test_model_monitor_and_off_backends(other_backends: dict[str, dict[str, Any]]) -> None:
    monitor = other_backends["model_monitor"]
    expressions = [
        e[0]["expression"] for _w, e in metric_entries(monitor) if isinstance(e[0], dict)
    ]
    assert expressions == [
        "SEARCH('{aws/sagemaker/Endpoints/data-metrics,Endpoint,MonitoringSchedule} "
        "Endpoint=\"x-endpoint\" feature_baseline_drift', 'Maximum', 3600)"
    ]
    from monitoring.model_monitor import METRIC_NAMESPACES

    assert d.MODEL_MONITOR_NAMESPACE in METRIC_NAMESPACES
    off = other_backends["off"]
    graphed = {split(e)[0] for _w, e in metric_entries(off) if not isinstance(e[0], dict)}
    assert drift_metrics.DEFAULT_NAMESPACE not in graphed
    assert any("Monitoring is off" in w["properties"].get("markdown", "") for w in off["widgets"])
    for body in other_backends.values():
        assert {
            w["properties"].get("region") for w in body["widgets"] if w["type"] == "metric"
        } == {"eu-west-1"}


def test_unknown_backend_or_bad_namespace_is_refused() -> None:
    stack = cdk.Stack(cdk.App(), "S")
    common: dict[str, Any] = {
        "dashboard_name": "x",
        "endpoint_name": "e",
        "variant_name": "AllTraffic",
        "pipeline_name": "p",
        "state_machines": [],
    }
    with pytest.raises(ValueError, match="drift_backend 'evidently' is not one of drift_job"):
        d.StageDashboard(stack, "A", drift_backend="evidently", **common)
    with pytest.raises(drift_metrics.MetricsError, match="may not start with"):
        d.StageDashboard(stack, "B", drift_namespace="AWS/Mine", **common)
