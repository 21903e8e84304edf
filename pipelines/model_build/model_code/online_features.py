"""Online features for the inference handler: a request may name a record instead of its values.

With the stage's Feature Store online store (``feature_store.online``), a client sends::

    Content-Type: application/json
    {"record_id": "<the record's id>"}

and the handler reads that record's features with ``GetRecord`` from the feature group named by
the model's environment, then scores them like a request carrying the values. The record id is
what the ETL job wrote (``feature_store/runtime/ingest.content_record_id``: 64 lowercase hex
characters); one record per request.

Environment (set on the model by the deployment; unset: record requests are refused with 400):

=================================  ================================================
``MLOPS_FEATURE_GROUP``            the feature group's name
``MLOPS_FEATURE_STORE_REGION``     its region (default: the container's)
=================================  ================================================

Standard library, plus boto3/botocore (in the SageMaker XGBoost image) imported on first use.
Python 3.8 compatible (the image's interpreter).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

ENV_FEATURE_GROUP = "MLOPS_FEATURE_GROUP"
ENV_REGION = "MLOPS_FEATURE_STORE_REGION"
REQUEST_KEY = "record_id"
RECORD_ID = re.compile(r"[0-9a-f]{64}")
_TIMEOUT_S = 2


class RecordLookupError(Exception):
    """A record request that cannot be served: ``status`` (400, 404, 503) and one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class OnlineFeatures:
    """Reads one record's features from the online store."""

    def __init__(self, feature_group: str, client: Any) -> None:
        self.feature_group = feature_group
        self.client = client

    def lookup(self, record_id: Any, features: Sequence[str]) -> dict[str, float]:
        """``{feature: value}`` of the record (a missing feature is absent: predict says so)."""
        if not isinstance(record_id, str) or RECORD_ID.fullmatch(record_id) is None:
            shown = repr(record_id)[:70]
            raise RecordLookupError(
                400, f"record_id must be 64 lowercase hex characters, got {shown}"
            )
        try:
            response = self.client.get_record(
                FeatureGroupName=self.feature_group,
                RecordIdentifierValueAsString=record_id,
                FeatureNames=list(features),
            )
        except Exception as error:  # botocore ClientError or a connection error
            code = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
            raise RecordLookupError(503, f"online feature store unavailable ({code})") from None
        record = response.get("Record")
        if not record:
            raise RecordLookupError(404, f"no record {record_id} in the online feature store")
        values: dict[str, float] = {}
        for item in record:
            name, text = item.get("FeatureName"), item.get("ValueAsString")
            if name in features and text is not None:
                try:
                    values[name] = float(text)
                except ValueError:
                    raise RecordLookupError(
                        400, f"record {record_id}: feature {name} is not a number"
                    ) from None
        return values


_cached: dict[str, OnlineFeatures] = {}


def from_environment(
    environ: Any = None, client_factory: Callable[[str | None], Any] | None = None
) -> OnlineFeatures | None:
    """The reader the environment configures (one per process), or None when unset."""
    env = os.environ if environ is None else environ
    name = str(env.get(ENV_FEATURE_GROUP, "")).strip()
    if not name:
        return None
    if name not in _cached:
        region = str(env.get(ENV_REGION, "")).strip() or None
        factory = client_factory or _client
        _cached[name] = OnlineFeatures(name, factory(region))
    return _cached[name]


def _client(region: str | None) -> Any:  # pragma: no cover - needs boto3 and AWS
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=_TIMEOUT_S,
        read_timeout=_TIMEOUT_S,
        retries={"mode": "standard", "max_attempts": 2},
    )
    return boto3.client("sagemaker-featurestore-runtime", region_name=region, config=config)
