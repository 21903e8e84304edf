"""Serving with the online store: a ``{"record_id": ...}`` request (online_features.py and the
inference handler's resolve_record), GetRecord stubbed (moto has no featurestore-runtime); the
config rules of the option."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.stub import Stubber

from infra.config import ConfigError, load_config
from pipelines.model_build import contract
from pipelines.model_build.model_code import inference, online_features
from tests.botocore_shapes import validate

GROUP = "mlops-dev-features"
RECORD = "a" * 64


class Model:
    """What resolve_record reads of a loaded model: its feature names."""

    features = contract.FEATURES


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    client = boto3.client(
        "sagemaker-featurestore-runtime",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    monkeypatch.setattr(online_features, "_cached", {})
    monkeypatch.setenv(online_features.ENV_FEATURE_GROUP, GROUP)
    monkeypatch.setattr(online_features, "_client", lambda region: client)
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def _expected_params() -> dict[str, Any]:
    params = {
        "FeatureGroupName": GROUP,
        "RecordIdentifierValueAsString": RECORD,
        "FeatureNames": list(contract.FEATURES),
    }
    assert validate("sagemaker-featurestore-runtime", "GetRecord", params) == []
    return params


def _decode(body: dict[str, Any]) -> inference.Instances:
    return inference.decode_request(json.dumps(body), "application/json")


def test_a_record_request_is_scored_on_the_stored_features(stubbed: Stubber) -> None:
    stored = [
        {"FeatureName": n, "ValueAsString": str(i + 0.5)} for i, n in enumerate(contract.FEATURES)
    ]
    stubbed.add_response("get_record", {"Record": stored}, _expected_params())
    instances = inference.resolve_record(_decode({"record_id": RECORD}), Model())  # type: ignore[arg-type]
    assert instances.kind == "records"
    matrix = inference.to_matrix(instances, contract.FEATURES)
    assert np.array_equal(matrix, np.asarray([[i + 0.5 for i in range(len(contract.FEATURES))]]))


@pytest.mark.parametrize(
    ("stub", "status", "message"),
    [
        ({}, 404, f"no record {RECORD} in the online feature store"),
        ("ServiceUnavailable", 503, "online feature store unavailable (ServiceUnavailable)"),
        ("AccessForbidden", 503, "online feature store unavailable (AccessForbidden)"),
    ],
)
def test_an_unknown_record_or_an_unreachable_store_is_a_clear_error(
    stubbed: Stubber, stub: Any, status: int, message: str
) -> None:
    if isinstance(stub, dict):
        stubbed.add_response("get_record", stub, _expected_params())
    else:
        stubbed.add_client_error("get_record", stub, "no", 503, expected_params=_expected_params())
    with pytest.raises(inference.PayloadError) as raised:
        inference.resolve_record(_decode({"record_id": RECORD}), Model())  # type: ignore[arg-type]
    assert (raised.value.status, raised.value.message) == (status, message)


def test_a_malformed_record_id_is_refused_without_a_call(stubbed: Stubber) -> None:
    with pytest.raises(inference.PayloadError) as raised:
        inference.resolve_record(_decode({"record_id": "../x"}), Model())  # type: ignore[arg-type]
    assert raised.value.status == 400
    assert "record_id must be 64 lowercase hex characters, got '../x'" in raised.value.message


def test_without_an_online_store_a_record_request_is_400(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(online_features.ENV_FEATURE_GROUP, raising=False)
    with pytest.raises(inference.PayloadError) as raised:
        inference.resolve_record(_decode({"record_id": RECORD}), Model())  # type: ignore[arg-type]
    assert raised.value.status == 400
    assert "no online feature store" in raised.value.message
    # An object with record_id AND features is an ordinary instance, not a record request.
    mixed = _decode({"record_id": RECORD, "mean_radius": 1.0})
    assert mixed.kind == "records"


# ---- config --------------------------------------------------------------------------------


def _config(mlops_config: dict[str, Any], feature_store: dict[str, Any]) -> Any:
    mlops_config["environments"]["staging"]["feature_store"] = feature_store
    return load_config(mlops_config).environments["staging"].feature_store


def test_the_option_is_off_by_default(cdk_context: dict[str, Any]) -> None:
    config = load_config(cdk_context["mlops"])
    for env in config.environments.values():
        assert (env.feature_store.enabled, env.feature_store.online) == (False, False)
        assert env.feature_store.training_data == "files"
    cdk_json = json.loads((Path(__file__).parents[2] / "cdk.json").read_text())
    shipped = cdk_json["context"]["mlops"]["environments"]
    assert all(env["feature_store"]["enabled"] is False for env in shipped.values())


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"online": True},
            "config error: mlops.environments.staging.feature_store.online = True: "
            "needs feature_store.enabled = true",
        ),
        (
            {"enabled": True, "training_data": "curated"},
            "config error: mlops.environments.staging.feature_store.training_data = 'curated': "
            "allowed: files, offline_store",
        ),
        (
            {"training_data": "offline_store"},
            "config error: mlops.environments.staging.feature_store.training_data = "
            "'offline_store': offline_store needs feature_store.enabled = true (allowed without "
            "it: files)",
        ),
        (
            {"enabled": "yes"},
            "config error: mlops.environments.staging.feature_store.enabled = 'yes': "
            "expected true or false",
        ),
        (
            {"enable": True},
            "config error: mlops.environments.staging.feature_store.enable = True: unknown key "
            "(did you mean 'enabled'?); allowed: enabled, online, training_data",
        ),
    ],
)
def test_bad_values_are_one_line_errors(
    mlops_config: dict[str, Any], value: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        _config(mlops_config, value)
    assert str(raised.value) == message


def test_a_valid_option(mlops_config: dict[str, Any]) -> None:
    config = _config(
        mlops_config, {"enabled": True, "online": True, "training_data": "offline_store"}
    )
    assert (config.enabled, config.online, config.training_data) == (True, True, "offline_store")


# ---- Preprocess reads the query result ------------------------------------------------------


def test_preprocess_reads_suffix_less_parquet_parts(preprocess: Any, tmp_path: Path) -> None:
    """Athena writes the result's Parquet parts without a suffix; other files are not data."""
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(60, len(contract.FEATURES))), columns=contract.FEATURES)
    frame[contract.TARGET_COLUMN] = np.arange(60) % 2
    frame.to_parquet(tmp_path / "20261130_070000_00001_abcde_1b2c3d4e", index=False)
    (tmp_path / "20261130_manifest").write_text("not parquet")
    data, where = preprocess.load_dataset(tmp_path, 50, contract.INPUT_COLUMNS)
    assert len(data) == 60 and where.endswith("1b2c3d4e")
    (tmp_path / "20261130_070000_00001_abcde_1b2c3d4e").unlink()
    with pytest.raises(preprocess.StepError, match="no CSV or Parquet files"):
        preprocess.load_dataset(tmp_path, 50, contract.INPUT_COLUMNS)
