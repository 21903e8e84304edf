"""The pipeline's steps run real CLIs: ``promotion.checks`` against botocore's Stubber (every
request shape-validated against the SageMaker models), and each command the pipeline stack writes
into a buildspec is accepted by the CLI it calls, with the values from config."""

from __future__ import annotations

import io
import json
import shlex
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from deployment import promote
from infra.config import load_config
from promotion import checks, commands
from stacks.deployment_stack import smoke_test_row

REGION = "us-east-1"
ENDPOINT = "mlops-staging-endpoint"
ENDPOINT_ARN = f"arn:aws:sagemaker:{REGION}:222222222222:endpoint/{ENDPOINT}"
PACKAGE = f"arn:aws:sagemaker:{REGION}:222222222222:model-package/mlops-staging-models/7"
OTHER = f"arn:aws:sagemaker:{REGION}:222222222222:model-package/mlops-staging-models/8"
PREDICTION = {"predictions": [{"score": 0.93, "label": 1}]}


class StubbedSession:
    """Stands in for boto3.Session: clients are real botocore clients under a Stubber."""

    def __init__(self) -> None:
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        self.clients = {name: session.client(name) for name in ("sagemaker", "sagemaker-runtime")}
        self.stubs = {name: Stubber(client) for name, client in self.clients.items()}
        for stub in self.stubs.values():
            stub.activate()

    def client(self, name: str, **_: Any) -> Any:
        return self.clients[name]

    def serving(self, package: str | None, status: str = "InService") -> None:
        sagemaker = self.stubs["sagemaker"]
        sagemaker.add_response(
            "describe_endpoint",
            {
                "EndpointName": ENDPOINT,
                "EndpointArn": ENDPOINT_ARN,
                "EndpointConfigName": f"{ENDPOINT}-config-7",
                "EndpointStatus": status,
                "CreationTime": "2026-01-01T00:00:00Z",
                "LastModifiedTime": "2026-01-01T00:00:00Z",
            },
            {"EndpointName": ENDPOINT},
        )
        if status != "InService":
            return
        tags = [{"Key": "model-package-version", "Value": "7"}]
        if package is not None:
            tags.append({"Key": promote.PACKAGE_TAG, "Value": package})
        sagemaker.add_response("list_tags", {"Tags": tags}, {"ResourceArn": ENDPOINT_ARN})

    def answers(self, *bodies: dict[str, Any]) -> None:
        row = smoke_test_row()
        features = [float(v) for v in row.split(",")]
        requests = [
            ("text/csv", row),
            ("application/json", json.dumps({"instances": [features]})),
        ]
        for (content_type, body), answer in zip(requests, bodies, strict=False):
            payload = json.dumps(answer).encode()
            self.stubs["sagemaker-runtime"].add_response(
                "invoke_endpoint",
                {
                    "Body": StreamingBody(io.BytesIO(payload), len(payload)),
                    "ContentType": "application/json",
                },
                {
                    "EndpointName": ENDPOINT,
                    "ContentType": content_type,
                    "Accept": "application/json",
                    "Body": body,
                },
            )

    def assert_all_called(self) -> None:
        for stub in self.stubs.values():
            stub.assert_no_pending_responses()


@pytest.fixture
def session() -> Iterator[StubbedSession]:
    stubbed = StubbedSession()
    yield stubbed
    stubbed.assert_all_called()


def _argv(command: str) -> list[str]:
    """The arguments after ``python -m <module>`` in a step command (``$(...)`` unwrapped,
    the exported variable expanded as the shell would)."""
    if '="$(' in command:
        command = command.split('="$(', 1)[1].rsplit(')"', 1)[0]
    command = command.replace(f'"${commands.TESTED_PACKAGE_VARIABLE}"', shlex.quote(PACKAGE))
    words = shlex.split(command)
    start = words.index("-m") + 2
    return words[start:]


def test_smoke_check_prints_only_the_tested_version(
    session: StubbedSession, capsys: pytest.CaptureFixture[str]
) -> None:
    session.serving(PACKAGE)
    session.answers(PREDICTION, PREDICTION)
    session.serving(PACKAGE)
    argv = _argv(commands.smoke_test_commands(ENDPOINT, REGION)[0])
    assert checks.main(argv, session=session) == 0
    out, err = capsys.readouterr()
    assert out == f"{PACKAGE}\n"
    assert err.startswith("smoke test passed: ") and '"score": 0.93' in err


def test_smoke_check_fails_on_a_bad_answer(
    session: StubbedSession, capsys: pytest.CaptureFixture[str]
) -> None:
    session.serving(PACKAGE)
    session.answers({"predictions": [{"score": 1.7, "label": 1}]})
    assert checks.main(["smoke", "--endpoint", ENDPOINT], session=session) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"check failed: smoke test of {ENDPOINT} failed: text/csv: score")


def test_smoke_check_fails_when_staging_switches_version_meanwhile(
    session: StubbedSession, capsys: pytest.CaptureFixture[str]
) -> None:
    session.serving(PACKAGE)
    session.answers(PREDICTION, PREDICTION)
    session.serving(OTHER)
    assert checks.main(["smoke", "--endpoint", ENDPOINT], session=session) == 1
    assert f"switched from {PACKAGE} to {OTHER}" in capsys.readouterr().err


def test_endpoint_not_in_service_or_not_deployed_by_the_workflow(
    session: StubbedSession, capsys: pytest.CaptureFixture[str]
) -> None:
    session.serving(PACKAGE, status="Updating")
    assert checks.main(["served", "--endpoint", ENDPOINT], session=session) == 1
    assert f"endpoint {ENDPOINT} is Updating, not InService" in capsys.readouterr().err
    session.serving(None)
    assert checks.main(["served", "--endpoint", ENDPOINT], session=session) == 1
    assert "has no model-package-arn tag" in capsys.readouterr().err


def test_missing_endpoint_is_a_failed_check(
    session: StubbedSession, capsys: pytest.CaptureFixture[str]
) -> None:
    session.stubs["sagemaker"].add_client_error(
        "describe_endpoint",
        service_error_code="ValidationException",
        service_message=f'Could not find endpoint "{ENDPOINT}".',
        expected_params={"EndpointName": ENDPOINT},
    )
    assert checks.main(["served", "--endpoint", ENDPOINT], session=session) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Could not find endpoint" in err


def test_still_served_check_after_the_load_test(
    session: StubbedSession, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _argv(commands.still_served_command(ENDPOINT, REGION))
    assert argv[argv.index("--expect") + 1] == PACKAGE
    session.serving(PACKAGE)
    assert checks.main(argv, session=session) == 0
    assert capsys.readouterr().out == f"{PACKAGE}\n"
    session.serving(OTHER)
    assert checks.main(argv, session=session) == 1
    assert f"serves {OTHER}, not the tested {PACKAGE}" in capsys.readouterr().err


def test_unknown_profile_is_one_line(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config").write_text("[profile other]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    assert checks.main(["served", "--endpoint", ENDPOINT, "--profile", "staging"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == "check failed: The config profile (staging) could not be found\n"


def test_expect_only_with_served() -> None:
    with pytest.raises(SystemExit) as exited:
        checks.main(["smoke", "--endpoint", ENDPOINT, "--expect", PACKAGE], session=object())
    assert exited.value.code == 2


def test_promote_step_command_is_mlops_promote_with_both_profiles(
    cdk_context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PromoteModel step runs the operator CLI's ``mlops promote`` (one code path): its
    words, given to the CLI, reach deployment.promote.promote with both profiles."""
    from typer.testing import CliRunner

    from cli import promote as cli_promote
    from cli.main import app

    config = load_config(cdk_context["mlops"])
    sessions: list[dict[str, Any]] = []
    called: dict[str, Any] = {}

    def fake_session(**kwargs: Any) -> Any:
        sessions.append(kwargs)
        return type("Session", (), {"region_name": None, "client": lambda self, name, **_: name})()

    def fake_promote(package_arn: str, **kwargs: Any) -> promote.PromotionResult:
        called.update(kwargs, package_arn=package_arn)
        return promote.PromotionResult(package_arn, OTHER, True, True, "s3://b/k", "0" * 64, "ok")

    monkeypatch.setattr("cli.aws.boto3.Session", fake_session)
    monkeypatch.setattr(cli_promote, "artifacts_bucket_from_stack", lambda cfn, name: "prod-bucket")
    monkeypatch.setattr(cli_promote, "promote", fake_promote)
    command = commands.promote_command(config.project)
    command = command.replace(f'"${commands.TESTED_PACKAGE_VARIABLE}"', shlex.quote(PACKAGE))
    words = shlex.split(command)
    assert words[:2] == [commands.MLOPS, "promote"]
    result = CliRunner().invoke(app, words[1:])
    assert result.exit_code == 0, result.output
    assert sessions == [
        {"profile_name": "staging", "region_name": None},  # each profile carries its region
        {"profile_name": "prod", "region_name": None},
    ]
    assert called["package_arn"] == PACKAGE
    assert called["names"] == promote.PromotionNames.for_project("mlops", "prod-bucket")
    assert called["dry_run"] is False
    assert json.loads(result.stdout)["target_package_arn"] == OTHER


def test_load_test_step_command_is_accepted_by_the_load_test(
    cdk_context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving import loadtest

    config = load_config(cdk_context["mlops"])
    seen: dict[str, Any] = {}
    monkeypatch.setattr(loadtest, "run_endpoint", lambda args: seen.update(vars(args)) or 0)
    monkeypatch.setattr(loadtest, "run", lambda args: pytest.fail("ran the local server mode"))
    command = commands.load_test_command(ENDPOINT, REGION, config.delivery)  # type: ignore[arg-type]
    assert command.startswith(f"AWS_PROFILE={commands.SOURCE_PROFILE} ")
    assert loadtest.main(_argv(command)) == 0
    lt = config.delivery.load_test  # type: ignore[union-attr]
    assert (seen["endpoint_name"], seen["region"]) == (ENDPOINT, REGION)
    assert (seen["rps"], seen["duration"]) == (lt.rate_per_second, lt.duration_seconds)
    assert (seen["max_p99_ms"], seen["max_error_rate"]) == (lt.p99_latency_ms, lt.max_error_rate)
