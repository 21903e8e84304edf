"""The load test's endpoint mode: SigV4-signed InvokeEndpoint requests (botocore's SigV4Auth),
checked by a local HTTP endpoint that recomputes every signature from fake env credentials;
results judged against command-line thresholds."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

from serving.loadtest import Results, Thresholds, render_endpoint_table
from serving.sigv4 import InvocationSigner, SigningError, invocations_path, runtime_url

REPO_ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 300.0  # a hang guard only: the runs take seconds
ACCESS_KEY, SECRET_KEY, TOKEN = "AKIDEXAMPLE12345", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEX", "FQo-t0k3n"
REGION, ENDPOINT = "eu-west-1", "mlops-staging-endpoint"
AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)


def verify(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    credentials: ReadOnlyCredentials,
    region: str = REGION,
) -> str | None:
    """Why the request is not correctly SigV4-signed for ``sagemaker`` in ``region`` with
    ``credentials``, or None: the signature is recomputed from what arrived."""
    lower = {k.lower(): v for k, v in headers.items()}
    match = AUTH.fullmatch(lower.get("authorization", ""))
    if not match:
        return f"not an AWS4-HMAC-SHA256 Authorization header: {lower.get('authorization')!r}"
    amz_date = lower.get("x-amz-date", "")
    if not re.fullmatch(r"\d{8}T\d{6}Z", amz_date):
        return f"X-Amz-Date missing or malformed: {amz_date!r}"
    scope = (match["key"], match["date"], match["region"], match["service"])
    if scope != (credentials.access_key, amz_date[:8], region, "sagemaker"):
        return f"wrong credential scope {scope}"
    if credentials.token and lower.get("x-amz-security-token") != credentials.token:
        return "X-Amz-Security-Token missing for session credentials"
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return f"host and x-amz-date must be signed, got {signed}"
    # the HTTP client adds Host from the URL when the signer's headers do not carry it
    lower.setdefault("host", urlsplit(url).netloc)
    missing = [name for name in signed if name not in lower]
    if missing:
        return f"signed headers not sent: {missing}"
    request = AWSRequest(
        method=method, url=url, data=body, headers={name: lower[name] for name in signed}
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(credentials, "sagemaker", region)
    expected = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
    return None if expected == match["signature"] else "signature does not match"


@dataclass
class FakeEndpoint:
    """A local InvokeEndpoint: 403 for a bad signature, predictions for a good one."""

    credentials: ReadOnlyCredentials
    path: str = invocations_path(ENDPOINT)
    verified: int = 0
    refused: list[str] = field(default_factory=list)
    url: str = ""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                url = f"http://{self.headers['Host']}{self.path}"
                problem = (
                    f"path {self.path}"
                    if self.path != endpoint.path
                    else verify("POST", url, dict(self.headers.items()), body, endpoint.credentials)
                )
                if problem:
                    endpoint.refused.append(problem)
                    self._answer(403, {"message": problem})
                    return
                endpoint.verified += 1
                if self.headers["Content-Type"] == "text/csv":
                    rows = len(body.decode().strip().splitlines())
                else:
                    data = json.loads(body)
                    rows = len(data["instances"]) if "instances" in data else 1
                    if isinstance(data, list) and data and isinstance(data[0], list):
                        rows = len(data)
                self._answer(200, {"predictions": [{"score": 0.9, "label": 1}] * rows})

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        return Handler


@pytest.fixture
def fake_endpoint() -> Iterator[FakeEndpoint]:
    endpoint = FakeEndpoint(ReadOnlyCredentials(ACCESS_KEY, SECRET_KEY, TOKEN))
    server = ThreadingHTTPServer(("127.0.0.1", 0), endpoint.handler())
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()


def fake_env(secret: str = SECRET_KEY) -> dict[str, str]:
    """Fake credentials in the environment (the default chain's first provider); no config
    files, no instance metadata: nothing else can be found."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_SESSION_TOKEN=TOKEN,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def loadtest(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving.loadtest", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )


# ----------------------------------------------------------------------------------------------
# The signer


def test_signed_headers_carry_the_sagemaker_scope_date_and_session_token() -> None:
    credentials = ReadOnlyCredentials(ACCESS_KEY, SECRET_KEY, TOKEN)
    signer = InvocationSigner(ENDPOINT, REGION, credentials)
    assert signer.url == (
        f"https://runtime.sagemaker.{REGION}.amazonaws.com/endpoints/{ENDPOINT}/invocations"
    )
    body = b"1.0,2.0\n"
    headers = signer.headers(body, "text/csv")
    assert headers["Authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{headers['X-Amz-Date'][:8]}/{REGION}/"
        "sagemaker/aws4_request, SignedHeaders="
    )
    assert headers["X-Amz-Security-Token"] == TOKEN
    assert (headers["Content-Type"], headers["Accept"]) == ("text/csv", "application/json")
    assert headers["Host"] == f"runtime.sagemaker.{REGION}.amazonaws.com"
    assert "host;" in headers["Authorization"]  # signed
    assert verify("POST", signer.url, headers, body, credentials) is None
    # the verifier is not a rubber stamp: another body, region or secret fails it
    assert verify("POST", signer.url, headers, b"9.0\n", credentials) == "signature does not match"
    assert "scope" in (verify("POST", signer.url, headers, body, credentials, "us-east-1") or "")
    other = ReadOnlyCredentials(ACCESS_KEY, "another-secret", TOKEN)
    assert verify("POST", signer.url, headers, body, other) == "signature does not match"


def test_long_term_credentials_send_no_token() -> None:
    credentials = Credentials(ACCESS_KEY, SECRET_KEY)  # no session token
    headers = InvocationSigner(ENDPOINT, REGION, credentials).headers(b"{}", "application/json")
    assert "X-Amz-Security-Token" not in headers
    assert f"Credential={ACCESS_KEY}/" in headers["Authorization"]


@pytest.mark.parametrize(
    ("name", "region", "url", "problem"),
    [
        ("bad name", REGION, None, "endpoint name 'bad name'"),
        ("-leading", REGION, None, "endpoint name"),
        ("x" * 64, REGION, None, "endpoint name"),
        (ENDPOINT, "Europe", None, "region 'Europe'"),
        (ENDPOINT, REGION, "ftp://host", "endpoint URL"),
        (ENDPOINT, REGION, "https://host/prefix", "endpoint URL"),
    ],
)
def test_bad_signer_input_is_one_line(
    name: str, region: str, url: str | None, problem: str
) -> None:
    with pytest.raises(SigningError) as raised:
        InvocationSigner(name, region, ReadOnlyCredentials("a", "b", None), url)
    assert problem in str(raised.value) and "\n" not in str(raised.value)


def test_runtime_url_is_the_regional_sagemaker_runtime() -> None:
    assert runtime_url("ap-southeast-2") == "https://runtime.sagemaker.ap-southeast-2.amazonaws.com"


# ----------------------------------------------------------------------------------------------
# Thresholds


def _results(requests: int, failures: int, rps: float, p99: float) -> Results:
    return Results(requests, failures, rps, 5.0, 9.0, p99, p99 + 1, "raw response times")


@pytest.mark.parametrize(
    ("results", "missed"),
    [
        (_results(1000, 0, 20.0, 80.0), []),
        (_results(1000, 10, 18.0, 100.0), []),  # every threshold is inclusive
        (_results(1000, 0, 20.0, 100.1), ["p99 <= 100 ms"]),
        (_results(1000, 11, 20.0, 50.0), ["error rate <= 0.01"]),
        (_results(1000, 0, 17.9, 50.0), ["req/s >= 18"]),
        (_results(0, 0, 0.0, math.nan), ["p99 <= 100 ms", "error rate <= 0.01", "req/s >= 18"]),
    ],
)
def test_thresholds(results: Results, missed: list[str]) -> None:
    thresholds = Thresholds(max_p99_ms=100, max_error_rate=0.01, min_rps=18)
    assert [m.split(" (measured")[0] for m in thresholds.missed(results)] == missed
    table = render_endpoint_table(results, thresholds)
    for row in ("error rate", "req/s achieved", "p50 latency", "p95 latency", "p99 latency"):
        assert row in table
    assert table.count("MISSED") == len(missed)


# ----------------------------------------------------------------------------------------------
# End to end against the local endpoint


def test_endpoint_mode_signs_every_request_and_meets_the_thresholds(
    fake_endpoint: FakeEndpoint,
) -> None:
    result = loadtest(
        *("--endpoint-name", ENDPOINT, "--region", REGION, "--endpoint-url", fake_endpoint.url),
        *("--rps", "20", "--duration", "2", "--users", "2"),
        *("--max-p99-ms", "5000", "--max-error-rate", "0", "--min-rps", "1"),
        env=fake_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert fake_endpoint.refused == []
    out = result.stdout
    rows = dict(line.rsplit(None, 1) for line in out.splitlines() if line.startswith("req"))
    requests = int(rows["requests"])
    # the check requests (one per payload kind) plus the load, every one verified
    assert requests > 0 and fake_endpoint.verified >= requests + 5
    assert "error rate" in out and "0.0000" in out
    assert out.count("MET") == 3 and "MISSED" not in out
    assert f"SigV4 {REGION}/sagemaker" in out


def test_wrong_credentials_fail_on_the_check_request(fake_endpoint: FakeEndpoint) -> None:
    result = loadtest(
        *("--endpoint-name", ENDPOINT, "--region", REGION, "--endpoint-url", fake_endpoint.url),
        *("--duration", "2"),
        env=fake_env(secret="not-the-secret"),
    )
    assert result.returncode == 1
    assert "HTTP 403" in result.stderr and "signature does not match" in result.stderr
    assert fake_endpoint.verified == 0 and len(fake_endpoint.refused) == 1  # no load was sent


def test_without_credentials_one_line_and_exit_2() -> None:
    env = fake_env()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(name)
    result = loadtest("--endpoint-name", ENDPOINT, "--region", REGION, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: no AWS credentials found (environment, profile, SSO, container or instance role)"
    ]
