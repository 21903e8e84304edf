"""Sample payloads, and the locust file (imported in a subprocess: locust monkey-patches gevent)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.model_build.model_code import inference
from serving.payloads import (
    DATASET_CSV,
    KIND_WEIGHTS,
    build_payloads,
    check_response,
    load_feature_rows,
    make_payload,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_feature_rows_match_the_model(features):
    names, rows = load_feature_rows()
    assert names == features
    assert len(rows) == 569 and all(len(r) == 30 for r in rows)


def test_feature_rows_fall_back_to_sklearn(tmp_path):
    names, rows = load_feature_rows(tmp_path / "missing.csv")
    assert names[0] == "mean_radius" and len(rows) == 569
    if DATASET_CSV.is_file():
        assert (names, rows) == load_feature_rows(DATASET_CSV)


def test_payloads_mix_all_kinds_and_the_handler_accepts_them(model):
    payloads = build_payloads(*load_feature_rows(), count=60, seed=3)
    assert {p.kind for p in payloads} == set(KIND_WEIGHTS)
    assert {p.content_type for p in payloads} == {"text/csv", "application/json"}
    assert payloads == build_payloads(*load_feature_rows(), count=60, seed=3)
    for payload in payloads:
        body, _ = inference.transform_fn(
            model, payload.body, payload.content_type, "application/json"
        )
        assert check_response(body.encode(), payload.rows) is None


def test_make_payload_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="unknown payload kind"):
        make_payload("xml", ["a"], [[1.0]])


@pytest.mark.parametrize(
    ("body", "rows", "problem"),
    [
        (b'{"predictions": [{"score": 0.5, "label": 1}]}', 1, None),
        (b'{"predictions": [{"score": 0.5, "label": 1}]}', 2, "expected 2 predictions"),
        (b'{"predictions": [{"score": 1.5, "label": 1}]}', 1, "malformed prediction"),
        (b'{"predictions": [{"score": 0.5, "label": 2}]}', 1, "malformed prediction"),
        (b"<html>", 1, "unreadable response"),
        (b'{"other": 1}', 1, "unreadable response"),
    ],
)
def test_check_response(body, rows, problem):
    result = check_response(body, rows)
    if problem is None:
        assert result is None
    else:
        assert problem in result


LOCUSTFILE_CHECK = r"""
import argparse, io, json, types
from locust import events
from locust.env import Environment
import serving.locustfile as lf

out = {}
payloads = lf.payloads()
out["kinds"] = sorted({p.kind for p in payloads})
out["users"] = sorted(c.__name__ for c in (lf.LocalInvocationsUser, lf.SageMakerEndpointUser))

def selected(endpoint, named=(), region="eu-west-1"):
    env = types.SimpleNamespace(
        parsed_options=argparse.Namespace(
            endpoint_name=endpoint, aws_region=region, user_rate=10.0, user_classes=list(named)
        ),
        user_classes=[lf.LocalInvocationsUser, lf.SageMakerEndpointUser],
        host=None,
    )
    try:
        lf._select_user(env)
    except SystemExit as exc:
        return "exit: " + str(exc)
    return [c.__name__ for c in env.user_classes] + [env.host or ""]

out["default"] = selected("")
out["endpoint"] = selected("my-endpoint")
out["named_without_endpoint"] = selected("", ["SageMakerEndpointUser"])
out["without_region"] = selected("my-endpoint", region="")
out["bad_name"] = selected("my endpoint")
print(json.dumps(out))
"""


def test_locustfile_users_selection_and_sagemaker_user():
    result = subprocess.run(
        [sys.executable, "-c", LOCUSTFILE_CHECK],
        cwd=REPO_ROOT,
        # fake credentials (the endpoint user's signer needs some); nothing is sent
        env={**os.environ, "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "x"},
        capture_output=True,
        text=True,
        timeout=600,  # only a guard against a hang: the run takes seconds
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["kinds"] == sorted(KIND_WEIGHTS)
    assert out["users"] == ["LocalInvocationsUser", "SageMakerEndpointUser"]
    assert out["default"] == ["LocalInvocationsUser", ""]
    # the endpoint user, on the region's runtime endpoint (signed requests: see
    # tests/serving/test_loadtest_endpoint.py)
    assert out["endpoint"] == [
        "SageMakerEndpointUser",
        "https://runtime.sagemaker.eu-west-1.amazonaws.com",
    ]
    assert out["named_without_endpoint"].startswith("exit: SageMakerEndpointUser needs")
    assert out["without_region"] == "exit: SageMakerEndpointUser needs --aws-region (or AWS_REGION)"
    assert out["bad_name"].startswith("exit: endpoint name 'my endpoint'")
