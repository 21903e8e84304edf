"""The model artifact served through the SageMaker XGBoost 1.7-1 image's own serving stack.

The image (single-model endpoint) runs the artifact's ``code/inference.py`` under Python 3.8 with
sagemaker-containers' Flask worker in gunicorn and xgboost 1.7.4. Those pinned packages are
installed into a venv of their own (``serving/container_env.py``; built on first use, so a fresh
clone with package-index access runs this); if that is impossible the tests FAIL, never skip.
The artifact is laid out exactly as the Train step writes it: the model files plus the serving
code copied by ``train.copy_serving_code``, tarred as SageMaker tars ``/opt/ml/model``.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from pipelines.model_build.model_code import inference, train
from serving import container_env
from serving.container_server import ContainerServer
from serving.processes import alive, children, group_members, wait_until
from serving.server import BackgroundServer

MODEL_CODE = Path(inference.__file__).resolve().parent


@pytest.fixture(scope="module")
def artifact(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """conftest's model (the ``model`` fixture) as the Train step leaves it, as model.tar.gz."""
    root = tmp_path_factory.mktemp("xgb-image-artifact")
    model_dir = Path(shutil.copytree(model_dir, root / "model"))
    assert train.copy_serving_code(model_dir) == [
        "inference.py",
        "model_format.py",
        "data_capture.py",
        "online_features.py",
    ]
    archive = root / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


@pytest.fixture(scope="module")
def image(artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainerServer]:
    workdir = tmp_path_factory.mktemp("xgb-image")
    with ContainerServer(artifact, workdir=workdir, workers=2) as server:
        yield server


def post(
    server: ContainerServer | BackgroundServer, body: str | bytes, headers: dict[str, str]
) -> tuple[int, str, bytes]:
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        data = body.encode("utf-8") if isinstance(body, str) else body
        conn.request("POST", "/invocations", body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        conn.close()


def csv_line(row: list[float]) -> str:
    return ",".join(repr(v) for v in row)


def test_the_stack_is_the_images(image):
    log = "\n".join(image.log)
    assert "Starting gunicorn 19.10.0" in log
    assert "Using worker: gevent" in log
    venv = Path(image.process.args[0]).parents[1]
    assert (venv / container_env.MARKER).read_text().startswith("python 3.8.")
    assert (
        (venv / container_env.MARKER).read_text().endswith(container_env.REQUIREMENTS.read_text())
    )


def test_good_csv_and_json_get_200_and_this_repositorys_scores(image, model, rows, features):
    expected = inference.predict(np.asarray(rows[:3]), model).tolist()

    status, content_type, body = post(
        image, "\n".join(csv_line(r) for r in rows[:3]), {"Content-Type": "text/csv"}
    )
    assert (status, content_type) == (200, "application/json"), body
    scores = [p["score"] for p in json.loads(body)["predictions"]]
    # xgboost 1.7.4 in the image, restore_base_score included: the same scores
    assert scores == pytest.approx(expected, abs=1e-6)

    records = [dict(zip(features, r, strict=True)) for r in rows[:3]]
    status, content_type, body = post(
        image,
        json.dumps({"instances": records}),
        {"Content-Type": "application/json", "Accept": "application/json"},
    )
    assert (status, content_type) == (200, "application/json"), body
    assert [p["score"] for p in json.loads(body)["predictions"]] == pytest.approx(
        expected, abs=1e-6
    )


BAD_REQUESTS = [
    (
        "wrong content type",
        "1,2",
        {"Content-Type": "text/plain"},
        415,
        "unsupported content type 'text/plain': send text/csv or application/json",
    ),
    (
        "wrong field count",
        "1,2,3",
        {"Content-Type": "text/csv"},
        400,
        "row 1 has 3 values, expected 30 (one per feature)",
    ),
    (
        "non-numeric value",
        ",".join(["1"] * 29 + ["abc"]),
        {"Content-Type": "text/csv"},
        400,
        "row 1, column 30 (worst_fractal_dimension): 'abc' is not a number",
    ),
    ("empty body", "", {"Content-Type": "text/csv"}, 400, "empty request body"),
    ("empty JSON body", "", {"Content-Type": "application/json"}, 400, "empty request body"),
    (
        "JSON field count",
        json.dumps({"instances": [[1, 2]]}),
        {"Content-Type": "application/json"},
        400,
        "instances[0] has 2 values, expected 30 (one per feature)",
    ),
    (
        "JSON non-numeric",
        json.dumps({"instances": [[1] * 29 + ["x"]]}),
        {"Content-Type": "application/json"},
        400,
        "instances[0], column 30 (worst_fractal_dimension): 'x' is not a number",
    ),
    (
        "unsupported accept",
        ",".join(["1"] * 30),
        {"Content-Type": "text/csv", "Accept": "text/csv"},
        406,
        "unsupported accept 'text/csv': this model answers application/json",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "message"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_requests_get_4xx_and_a_message(image, case, body, headers, status, message):
    got_status, content_type, raw = post(image, body, headers)
    assert got_status == status, f"{case}: {got_status} {raw[:300]!r}"
    assert content_type == "application/json"
    error = json.loads(raw)
    assert error["status"] == status
    assert error["message"] == message


def test_stop_ends_every_pre_forked_worker(artifact, tmp_path):
    server = ContainerServer(artifact, workdir=tmp_path, workers=2).start()
    try:
        master = server.process.pid
        wait_until(lambda: len(children(master)) == 2, 120, "two gunicorn workers")
        workers = children(master)
        # The whole server runs in one process group (a worker gunicorn replaces on a loaded
        # machine may join it at any time: the group is a superset, never less).
        members = set(group_members(master))
        assert {master, *workers} <= members
    finally:
        server.stop()
    assert not [pid for pid in (members | {master, *workers}) if alive(pid)]
    assert group_members(master) == []


def test_the_local_server_answers_exactly_as_the_image(image, model_dir, rows):
    """serving.server (make loadtest) and the image: same status, content type and body."""
    requests = [(body, headers) for _, body, headers, _, _ in BAD_REQUESTS] + [
        (csv_line(rows[0]), {"Content-Type": "text/csv"}),
        (json.dumps({"instances": [rows[0]]}), {}),  # no Content-Type: JSON, as in the image
        (csv_line(rows[0]), {"ContentType": "text/csv", "Content-Type": "text/plain"}),
        (csv_line(rows[0]).encode("latin-1") + b"\xff", {"Content-Type": "text/csv"}),
    ]
    with BackgroundServer(model_dir, port=0) as local:
        for body, headers in requests:
            assert post(local, body, headers) == post(image, body, headers), (body, headers)


DENSE_PREDICTOR_CHECK = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import inference
model = inference.model_fn(sys.argv[2])
raw = np.asarray(json.loads(sys.argv[3]), dtype=np.float64)
transformed = model.transform.apply(raw)
predictor = inference.dense_predictor(model.booster)
assert predictor._call is not None, "the fallback, not the C call"
one_by_one = np.concatenate([predictor.predict(model.booster, transformed[i:i + 1])
                             for i in range(len(raw))])
batch = predictor.predict(model.booster, transformed)
inplace = np.asarray(model.booster.inplace_predict(transformed), dtype=np.float64)
print(json.dumps([bool(np.array_equal(one_by_one, inplace)), bool(np.array_equal(batch, inplace)),
                  bool(np.array_equal(batch, model.predict(raw)))]))
"""


def test_dense_predictor_is_exact_under_the_images_xgboost(model_dir, rows):
    """DensePredictor under Python 3.8 + xgboost 1.7.4: the C call gives inplace_predict's and
    the DMatrix path's scores exactly (the image loads the same handler)."""
    python = container_env.ensure_venv()
    result = subprocess.run(
        [str(python), "-c", DENSE_PREDICTOR_CHECK, str(MODEL_CODE), str(model_dir),
         json.dumps(rows)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [True, True, True]
