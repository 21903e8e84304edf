"""CloudWatch datums of a drift report and their publication, against moto and botocore's model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from monitoring.drift import metrics
from monitoring.drift.metrics import MetricsError
from tests.botocore_shapes import validate

WHEN = datetime(2026, 1, 15, 12, tzinfo=UTC)
ENDPOINT = "mlops-prod-endpoint"


def report(n_features: int = 3, drifted: int = 2, rejected: int = 4) -> dict[str, Any]:
    features = [
        {
            "name": f"feature_{i:04d}",
            "drifted": i < drifted,
            "score": 1e-200 if i == 0 else 0.5 / (i + 1),
            "score_kind": "p_value",
            "method": "K-S p_value",
            "threshold": 0.05,
        }
        for i in range(n_features)
    ]
    return {
        "schema_version": 1,
        "context": {"capture": {"rejected_records": rejected}},
        "summary": {
            "dataset_drift": drifted / n_features >= 0.5,
            "drift_share_threshold": 0.5,
            "share_of_drifted_features": drifted / n_features,
            "number_of_drifted_features": drifted,
            "number_of_features": n_features,
            "current_rows": 300,
        },
        "features": features,
    }


def by_key(datums: list[dict[str, Any]]) -> dict[tuple[str, ...], dict[str, Any]]:
    return {
        (d["MetricName"], *(f"{x['Name']}={x['Value']}" for x in d["Dimensions"])): d
        for d in datums
    }


def test_datums_per_feature_and_overall() -> None:
    datums = metrics.metric_data(report(), endpoint_name=ENDPOINT, timestamp=WHEN)
    got = by_key(datums)
    ep = f"EndpointName={ENDPOINT}"
    assert got[("ShareOfDriftedFeatures", ep)]["Value"] == pytest.approx(2 / 3)
    assert got[("DriftedFeatures", ep)]["Value"] == 2
    assert got[("DriftedFeatures", ep)]["Unit"] == "Count"
    assert got[("DatasetDrift", ep)]["Value"] == 1.0
    assert got[("CapturedRows", ep)]["Value"] == 300
    assert got[("RejectedRecords", ep)]["Value"] == 4
    assert got[("FeatureDrift", ep, "Feature=feature_0000")]["Value"] == 1.0
    assert got[("FeatureDrift", ep, "Feature=feature_0002")]["Value"] == 0.0
    # A p-value below CloudWatch's smallest magnitude is sent as 0, others unchanged.
    assert got[("FeatureDriftScore", ep, "Feature=feature_0000")]["Value"] == 0.0
    assert got[("FeatureDriftScore", ep, "Feature=feature_0001")]["Value"] == 0.25
    assert len(datums) == 5 + 2 * 3
    assert {d["Timestamp"] for d in datums} == {WHEN}


def test_datums_are_a_valid_put_metric_data_request_per_botocore_model() -> None:
    datums = metrics.metric_data(report(), endpoint_name=ENDPOINT, timestamp=WHEN)
    request = {"Namespace": metrics.DEFAULT_NAMESPACE, "MetricData": datums}
    assert validate("cloudwatch", "PutMetricData", request) == []
    # ... and the validator does look at them: a bad unit is caught.
    broken = [{**datums[0], "Unit": "Percentage"}]
    assert validate("cloudwatch", "PutMetricData", {**request, "MetricData": broken})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"score": float("nan")}, "is not finite"),
        ({"score": 1e109}, "too large"),
        ({"name": ""}, "feature name '' must be 1-1024"),
    ],
)
def test_values_cloudwatch_refuses_are_errors(change: dict[str, Any], message: str) -> None:
    document = report()
    document["features"][1].update(change)
    with pytest.raises(MetricsError, match=message):
        metrics.metric_data(document, endpoint_name=ENDPOINT, timestamp=WHEN)


def test_bad_endpoint_name_and_naive_timestamp() -> None:
    with pytest.raises(MetricsError, match="endpoint name"):
        metrics.metric_data(report(), endpoint_name="", timestamp=WHEN)
    with pytest.raises(MetricsError, match="no time zone"):
        metrics.metric_data(report(), endpoint_name=ENDPOINT, timestamp=datetime(2026, 1, 15))


@pytest.mark.parametrize("namespace", ["", "AWS/SageMaker", ":x", "x" * 256, "drift\tjobs"])
def test_bad_namespaces(namespace: str) -> None:
    with pytest.raises(MetricsError, match="namespace"):
        metrics.validate_namespace(namespace)


class CallSpy:
    """A CloudWatch client whose put_metric_data calls are recorded, then passed to moto."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.sizes: list[int] = []

    def put_metric_data(self, **kwargs: Any) -> Any:
        assert validate("cloudwatch", "PutMetricData", kwargs) == []
        self.sizes.append(len(kwargs["MetricData"]))
        return self.client.put_metric_data(**kwargs)


@mock_aws
def test_publish_batches_at_most_1000_datums_per_call() -> None:
    spy = CallSpy(boto3.client("cloudwatch", region_name="us-east-1"))
    # 600 features: 5 overall + 1200 per-feature datums.
    datums = metrics.metric_data(report(600, 200), endpoint_name=ENDPOINT, timestamp=WHEN)
    assert len(datums) == 1205
    assert metrics.publish_metric_data(spy, "MLOps/Test", datums) == 2
    assert spy.sizes == [1000, 205]
    spy.sizes.clear()
    assert metrics.publish_metric_data(spy, "MLOps/Test", datums[:1000]) == 1
    assert metrics.publish_metric_data(spy, "MLOps/Test", datums[:10], batch_size=4) == 3
    assert spy.sizes == [1000, 4, 4, 2]
    assert metrics.publish_metric_data(spy, "MLOps/Test", []) == 0
    with pytest.raises(MetricsError, match="batch size must be 1-1000"):
        metrics.publish_metric_data(spy, "MLOps/Test", datums, batch_size=1001)


@mock_aws
def test_published_metrics_read_back_from_cloudwatch(tmp_path: Path) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    datums = metrics.metric_data(report(), endpoint_name=ENDPOINT, timestamp=WHEN)
    # Through the file a network-isolated job writes, as a launcher would publish it.
    path = tmp_path / metrics.METRIC_DATA_FILE
    metrics.write_metric_data(path, "MLOps/ModelDrift", datums)
    namespace, loaded = metrics.read_metric_data(path)
    assert loaded == datums
    metrics.publish_metric_data(cloudwatch, namespace, loaded)

    def stat(name: str, **dims: str) -> list[float]:
        points = cloudwatch.get_metric_statistics(
            Namespace="MLOps/ModelDrift",
            MetricName=name,
            Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
            StartTime=WHEN - timedelta(minutes=5),
            EndTime=WHEN + timedelta(minutes=5),
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
        return [p["Maximum"] for p in points]

    assert stat("ShareOfDriftedFeatures", EndpointName=ENDPOINT) == [pytest.approx(2 / 3)]
    assert stat("FeatureDrift", EndpointName=ENDPOINT, Feature="feature_0001") == [1.0]
    assert stat("FeatureDrift", EndpointName=ENDPOINT, Feature="feature_0002") == [0.0]
    assert stat("FeatureDriftScore", EndpointName=ENDPOINT, Feature="feature_0002") == [
        pytest.approx(0.5 / 3)
    ]
    listed = cloudwatch.list_metrics(Namespace="MLOps/ModelDrift")["Metrics"]
    assert len(listed) == len(datums)


def test_reading_a_broken_metric_data_file_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "metric_data.json"
    path.write_text('{"Namespace": "AWS/x", "MetricData": []}')
    with pytest.raises(MetricsError, match="not a metric data file"):
        metrics.read_metric_data(path)
    with pytest.raises(MetricsError, match="not a metric data file"):
        metrics.read_metric_data(tmp_path / "missing.json")
