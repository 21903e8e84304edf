"""Deployment workflow step: invoke the freshly deployed endpoint with a known sample.

The endpoint contract: ``text/csv`` rows of raw features, or ``application/json``
``{"instances": [[...]]}``, both answered with ``{"predictions": [{"score": s, "label": l}]}``.
The sample row is sent both ways; each answer must hold exactly one prediction with a score in
[0, 1] and a 0/1 label, and both encodings must give the same score. Anything else raises
:class:`SmokeTestFailed`, which the state machine catches (error name ``SmokeTestFailed``) to
roll back and clean up.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

logger = Logger()
tracer = Tracer()

# Serverless endpoints can cold-start for tens of seconds: keep the read timeout above that.
BOTO_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": 5}, read_timeout=70, connect_timeout=10
)
SCORE_TOLERANCE = 1e-6


class SmokeTestFailed(Exception):
    """The endpoint did not answer the sample as the serving contract says."""


class SmokeTestEvent(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    endpoint_name: str = Field(alias="endpointName")
    csv_row: str = Field(alias="csvRow", min_length=1)
    feature_count: int = Field(alias="featureCount", ge=1)


@dataclass(frozen=True)
class SmokeTestResult:
    endpoint_name: str
    score: float
    label: int
    csv_latency_ms: int
    json_latency_ms: int


def parse_row(csv_row: str, feature_count: int) -> list[float]:
    values = [value.strip() for value in csv_row.strip().split(",")]
    if len(values) != feature_count:
        raise ValueError(f"sample row has {len(values)} values, expected {feature_count}")
    return [float(value) for value in values]


def check_prediction(body: bytes, encoding: str) -> tuple[float, int]:
    """The single prediction of a response, or :class:`SmokeTestFailed` saying what is wrong."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SmokeTestFailed(f"{encoding}: response is not JSON: {body[:200]!r}") from error
    predictions = document.get("predictions") if isinstance(document, dict) else None
    if not isinstance(predictions, list) or len(predictions) != 1:
        raise SmokeTestFailed(f"{encoding}: expected one prediction, got {str(document)[:200]}")
    prediction = predictions[0]
    score = prediction.get("score") if isinstance(prediction, dict) else None
    label = prediction.get("label") if isinstance(prediction, dict) else None
    if not isinstance(score, int | float) or isinstance(score, bool) or not 0 <= score <= 1:
        raise SmokeTestFailed(f"{encoding}: score must be a number in [0, 1], got {score!r}")
    if label not in (0, 1) or isinstance(label, bool):
        raise SmokeTestFailed(f"{encoding}: label must be 0 or 1, got {label!r}")
    return float(score), int(label)


def _invoke(runtime: Any, endpoint_name: str, content_type: str, body: str) -> tuple[bytes, int]:
    started = time.monotonic()
    try:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint_name,
            ContentType=content_type,
            Accept="application/json",
            Body=body,
        )
    except (ClientError, BotoCoreError) as error:
        raise SmokeTestFailed(f"{content_type}: invocation failed: {error}") from error
    payload = response["Body"].read()
    return payload, int((time.monotonic() - started) * 1000)


def run_smoke_test(event: SmokeTestEvent, *, runtime: Any) -> SmokeTestResult:
    features = parse_row(event.csv_row, event.feature_count)
    csv_body, csv_ms = _invoke(runtime, event.endpoint_name, "text/csv", event.csv_row.strip())
    csv_score, csv_label = check_prediction(csv_body, "text/csv")
    json_body, json_ms = _invoke(
        runtime, event.endpoint_name, "application/json", json.dumps({"instances": [features]})
    )
    json_score, json_label = check_prediction(json_body, "application/json")
    if not math.isclose(csv_score, json_score, abs_tol=SCORE_TOLERANCE) or csv_label != json_label:
        raise SmokeTestFailed(
            f"text/csv and application/json disagree: {csv_score}/{csv_label} vs "
            f"{json_score}/{json_label}"
        )
    return SmokeTestResult(event.endpoint_name, csv_score, csv_label, csv_ms, json_ms)


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    parsed = parse(event=event, model=SmokeTestEvent)
    runtime = boto3.client(
        "sagemaker-runtime", region_name=os.environ.get("AWS_REGION"), config=BOTO_CONFIG
    )
    result = run_smoke_test(parsed, runtime=runtime)
    logger.info("smoke test passed", extra=asdict(result))
    return asdict(result)
