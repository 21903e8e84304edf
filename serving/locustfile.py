# mypy: disable-error-code="untyped-decorator"
"""Locust load test for the model's serving contract.

Two users, one selected per run:

* ``LocalInvocationsUser`` (default): ``POST /invocations`` on a server following SageMaker's
  container contract, e.g. ``python -m serving.server`` (``--host http://127.0.0.1:8080``).
* ``SageMakerEndpointUser``: ``InvokeEndpoint`` on a deployed endpoint: ``POST
  /endpoints/NAME/invocations`` on ``https://runtime.sagemaker.REGION.amazonaws.com`` (or
  ``--host``), each request signed with botocore's SigV4Auth and credentials from the default
  chain (``serving/sigv4.py``). Selected when ``--endpoint-name`` (or
  ``SAGEMAKER_ENDPOINT_NAME``) is set; region from ``--aws-region``.

Naming a user class on the command line overrides that choice. Payloads (CSV and JSON, single
rows and small batches, mixed) are built from ``pipelines/model_build/data/breast_cancer.csv``
when present, else from scikit-learn's bundled copy of the same data (offline).

Each user runs at ``--user-rate`` requests per second (open-loop pacing, random phase), so
``--users N`` offers ``N * rate`` requests per second. ``--latency-file PATH`` writes the raw
response times (ms, not locust's rounded buckets) to PATH as JSON when the test stops (from
the end of the ramp-up with ``--reset-stats``); ``python -m serving.loadtest`` takes its
percentiles from there.

    locust -f serving/locustfile.py --headless -u 25 -r 25 -t 30s --host http://127.0.0.1:8080
    locust -f serving/locustfile.py --headless -u 10 -r 5 -t 60s \\
        --endpoint-name my-endpoint --aws-region eu-west-1 --user-rate 2
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from locust import FastHttpUser, events, task

try:
    from serving.payloads import Payload, build_payloads, check_response, load_feature_rows
except ImportError:  # run as `locust -f serving/locustfile.py`: the repo root is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from serving.payloads import Payload, build_payloads, check_response, load_feature_rows
from serving.sigv4 import InvocationSigner, SigningError, default_credentials, runtime_url

__all__ = ["LocalInvocationsUser", "SageMakerEndpointUser", "build_payloads", "payloads"]

DEFAULT_USER_RATE = 10.0


_PAYLOADS: list[Payload] = []


def payloads() -> list[Payload]:
    """This process's sample payloads, built once."""
    if not _PAYLOADS:
        _PAYLOADS.extend(build_payloads(*load_feature_rows()))
    return _PAYLOADS


# ----------------------------------------------------------------------------------------------
# Options, user selection and raw latency capture
# ----------------------------------------------------------------------------------------------


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--endpoint-name",
        default=os.environ.get("SAGEMAKER_ENDPOINT_NAME", ""),
        help="SageMaker endpoint to load (selects SageMakerEndpointUser); "
        "env SAGEMAKER_ENDPOINT_NAME",
    )
    parser.add_argument(
        "--aws-region",
        default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "",
        help="region of the endpoint (default: AWS_REGION / AWS_DEFAULT_REGION / boto3 config)",
    )
    parser.add_argument(
        "--user-rate",
        type=float,
        default=float(os.environ.get("LOCUST_USER_RATE", DEFAULT_USER_RATE)),
        help="requests per second per user; total offered load = users x rate "
        f"(default {DEFAULT_USER_RATE:g}, env LOCUST_USER_RATE)",
    )
    parser.add_argument(
        "--latency-file",
        default="",
        include_in_web_ui=False,
        help="write raw response times (ms) recorded after spawning completes to this JSON file",
    )


@events.init.add_listener
def _select_user(environment: Any, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    if options.user_rate <= 0:
        raise SystemExit(f"--user-rate must be positive, got {options.user_rate}")
    RECORDER.reset_when_spawned = bool(getattr(options, "reset_stats", False))
    if not options.user_classes:  # not named on the command line: pick by --endpoint-name
        wanted = SageMakerEndpointUser if options.endpoint_name else LocalInvocationsUser
        environment.user_classes[:] = [c for c in environment.user_classes if c is wanted]
    if SageMakerEndpointUser in environment.user_classes:
        if not options.endpoint_name:
            raise SystemExit(
                "SageMakerEndpointUser needs --endpoint-name (or SAGEMAKER_ENDPOINT_NAME)"
            )
        if not options.aws_region:
            raise SystemExit("SageMakerEndpointUser needs --aws-region (or AWS_REGION)")
        try:
            if not environment.host:  # the region's runtime endpoint unless --host says
                environment.host = runtime_url(options.aws_region)
            invocation_signer(options.endpoint_name, options.aws_region, environment.host)
        except SigningError as error:
            raise SystemExit(str(error)) from None


class LatencyRecorder:
    """Raw response times of the current measurement window (reset when spawning completes)."""

    def __init__(self) -> None:
        self.reset_when_spawned = False  # follows locust's --reset-stats
        self.reset()

    def reset(self) -> None:
        self.started_at = time.time()
        self.response_times: list[float] = []
        self.failures = 0

    def record(self, response_time: float, failed: bool) -> None:
        self.response_times.append(response_time)
        self.failures += failed

    def dump(self, path: str) -> None:
        data = {
            "started_at": self.started_at,
            "stopped_at": time.time(),
            "requests": len(self.response_times),
            "failures": self.failures,
            "response_times_ms": self.response_times,
        }
        Path(path).write_text(json.dumps(data))


RECORDER = LatencyRecorder()


@events.request.add_listener
def _on_request(response_time: float, exception: Any = None, **_kwargs: Any) -> None:
    RECORDER.record(response_time, exception is not None)


@events.spawning_complete.add_listener
def _on_spawning_complete(**_kwargs: Any) -> None:
    if RECORDER.reset_when_spawned:  # when locust resets its stats: the ramp-up is left out
        RECORDER.reset()


@events.test_start.add_listener
def _on_test_start(**_kwargs: Any) -> None:
    RECORDER.reset()
    payloads()  # build before the first user runs, not inside its timed task


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is not None and options.latency_file:
        RECORDER.dump(options.latency_file)


# ----------------------------------------------------------------------------------------------
# Users
# ----------------------------------------------------------------------------------------------


class _PacedMixin:
    """Open-loop pacing at ``--user-rate``: fixed schedule, random phase, no catch-up bursts."""

    environment: Any
    _next_at: float | None = None

    def _rate(self) -> float:
        options = self.environment.parsed_options
        return options.user_rate if options is not None else DEFAULT_USER_RATE

    def wait_time(self) -> float:
        interval = 1.0 / self._rate()
        now = time.perf_counter()
        if self._next_at is None:
            self._next_at = now + random.uniform(0.0, interval)
        else:
            self._next_at = max(self._next_at + interval, now)
        return self._next_at - now


class LocalInvocationsUser(_PacedMixin, FastHttpUser):
    """POSTs sample payloads to ``/invocations`` of a local SageMaker-contract server."""

    host = "http://127.0.0.1:8080"

    def on_start(self) -> None:
        self._payloads = payloads()

    @task
    def invoke(self) -> None:
        payload = random.choice(self._payloads)
        headers = {"Content-Type": payload.content_type, "Accept": "application/json"}
        with self.client.post(
            "/invocations",
            data=payload.body,  # type: ignore[arg-type]  # bytes are sent as they are
            headers=headers,
            name=f"/invocations [{payload.kind}]",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
                return
            problem = check_response(response.content or b"", payload.rows)
            if problem:
                response.failure(problem)


_SIGNERS: dict[tuple[str, str, str], InvocationSigner] = {}


def invocation_signer(endpoint_name: str, region: str, base_url: str) -> InvocationSigner:
    """One signer per endpoint, region and base URL, over the default credential chain
    (resolved once per process; refreshable credentials refresh themselves)."""
    key = (endpoint_name, region, base_url)
    if key not in _SIGNERS:
        _SIGNERS[key] = InvocationSigner(endpoint_name, region, default_credentials(), base_url)
    return _SIGNERS[key]


class SageMakerEndpointUser(_PacedMixin, FastHttpUser):
    """``InvokeEndpoint`` on ``--endpoint-name`` over HTTPS, each request signed with botocore's
    SigV4Auth (``serving/sigv4.py``); the host is the region's runtime endpoint unless
    ``--host`` names another (a VPC endpoint, a local test server)."""

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.endpoint_name = options.endpoint_name
        self.signer = invocation_signer(options.endpoint_name, options.aws_region, str(self.host))
        self._payloads = payloads()

    @task
    def invoke(self) -> None:
        payload = random.choice(self._payloads)
        headers = self.signer.headers(payload.body, payload.content_type)
        with self.client.post(
            self.signer.path,
            data=payload.body,  # type: ignore[arg-type]  # the signed bytes, sent as they are
            headers=headers,
            name=f"InvokeEndpoint {self.endpoint_name} [{payload.kind}]",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
                return
            problem = check_response(response.content or b"", payload.rows)
            if problem:
                response.failure(problem)
