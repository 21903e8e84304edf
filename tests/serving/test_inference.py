"""The SageMaker handler functions: payload formats, responses and every rejection."""

from __future__ import annotations

import ast
import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.model_build.model_code import inference
from pipelines.model_build.model_code.inference import PayloadError

MODEL_CODE = Path(inference.__file__).resolve().parent


def csv_line(row: list[float]) -> str:
    return ",".join(repr(v) for v in row)


def invoke(body: Any, content_type: str, model: Any, accept: str | None = "application/json"):
    data = inference.decode_request(body, content_type)
    prediction = inference.predict(data, model)
    text, response_type = inference.encode_response(prediction, accept)
    assert response_type == "application/json"
    return json.loads(text)["predictions"]


def expected_scores(model: Any, rows: list[list[float]]) -> list[float]:
    return model.predict(np.asarray(rows, dtype=np.float64)).tolist()


def reject(body: Any, content_type: str, model: Any, accept: str = "application/json"):
    with pytest.raises(PayloadError) as caught:
        invoke(body, content_type, model, accept)
    return caught.value


# ----------------------------------------------------------------------------------------------
# Accepted payloads
# ----------------------------------------------------------------------------------------------


def test_csv_rows(model, rows):
    body = "\n".join(csv_line(r) for r in rows[:3]) + "\n"
    predictions = invoke(body, "text/csv", model)
    assert [p["score"] for p in predictions] == pytest.approx(expected_scores(model, rows[:3]))
    for p in predictions:
        assert p["label"] == (1 if p["score"] >= 0.5 else 0)


def test_csv_bytes_crlf_blank_lines_and_charset(model, rows):
    body = ("\r\n" + csv_line(rows[0]) + "\r\n\r\n" + csv_line(rows[1]) + "\r\n").encode()
    predictions = invoke(body, "text/csv; charset=utf-8", model)
    assert [p["score"] for p in predictions] == pytest.approx(expected_scores(model, rows[:2]))


def test_csv_header_equal_to_features_is_skipped(model, rows, features):
    body = ",".join(features) + "\n" + csv_line(rows[0]) + "\n"
    predictions = invoke(body, "text/csv", model)
    assert [p["score"] for p in predictions] == pytest.approx(expected_scores(model, rows[:1]))


def test_csv_header_in_another_order_reorders_columns(model, rows, features):
    order = list(reversed(range(len(features))))
    body = ",".join(features[i] for i in order) + "\n" + ",".join(repr(rows[0][i]) for i in order)
    predictions = invoke(body, "text/csv", model)
    assert [p["score"] for p in predictions] == pytest.approx(expected_scores(model, rows[:1]))


def test_csv_quoted_cells(model, rows, features):
    header = ",".join(f'"{f}"' for f in features)
    body = header + "\n" + ",".join(f'"{v!r}"' for v in rows[0])
    predictions = invoke(body, "text/csv", model)
    assert [p["score"] for p in predictions] == pytest.approx(expected_scores(model, rows[:1]))


def test_json_instances_lists(model, rows):
    predictions = invoke(json.dumps({"instances": rows[:4]}), "application/json", model)
    assert [p["score"] for p in predictions] == pytest.approx(expected_scores(model, rows[:4]))


def test_json_instances_objects_in_any_key_order(model, rows, features):
    records = [dict(reversed(list(zip(features, row, strict=True)))) for row in rows[:2]]
    predictions = invoke(json.dumps({"instances": records}), "application/json", model)
    assert [p["score"] for p in predictions] == pytest.approx(expected_scores(model, rows[:2]))


def test_json_single_object(model, rows, features):
    body = json.dumps(dict(zip(features, rows[0], strict=True))).encode()
    predictions = invoke(body, "application/json", model)
    assert [p["score"] for p in predictions] == pytest.approx(expected_scores(model, rows[:1]))


def test_json_single_list_and_top_level_list_of_rows(model, rows):
    single = invoke(json.dumps(rows[0]), "application/json", model)
    assert len(single) == 1
    several = invoke(json.dumps(rows[:3]), "application/json", model)
    assert [p["score"] for p in several] == pytest.approx(expected_scores(model, rows[:3]))


def test_integers_are_numbers(model, rows):
    ints = [int(v) for v in rows[0]]
    assert len(invoke(json.dumps({"instances": [ints]}), "application/json", model)) == 1


@pytest.mark.parametrize("accept", [None, "", "*/*", "application/json", "text/html, */*;q=0.1"])
def test_accept_variants_answer_json(model, rows, accept):
    assert len(invoke(csv_line(rows[0]), "text/csv", model, accept)) == 1


def test_labels_follow_the_threshold():
    body, content_type = inference.encode_response(np.array([0.2, 0.5, 0.97]), "application/json")
    assert content_type == "application/json"
    assert json.loads(body) == {
        "predictions": [
            {"score": 0.2, "label": 0},
            {"score": 0.5, "label": 1},
            {"score": 0.97, "label": 1},
        ]
    }


def test_predict_takes_a_plain_array(model, rows):
    scores = inference.predict(np.asarray(rows[:2]), model)
    assert scores.tolist() == pytest.approx(expected_scores(model, rows[:2]))


# The C call of inplace_predict, made directly: identical scores, bit for bit


def all_rows() -> np.ndarray:
    from serving.payloads import load_feature_rows

    return np.asarray(load_feature_rows()[1], dtype=np.float64)


@pytest.mark.parametrize("batch", [1, 5, 1000])
def test_dense_predictor_scores_are_inplace_predicts_and_the_dmatrix_paths(model, batch):
    raw = all_rows()  # the 569 rows of the data set, in batches as requests send them
    transformed = model.transform.apply(raw)
    predictor = inference.dense_predictor(model.booster)
    assert predictor._call is not None  # the fast path, not the fallback
    chunks = [transformed[i : i + batch] for i in range(0, len(raw), batch)]
    dense = np.concatenate([predictor.predict(model.booster, chunk) for chunk in chunks])
    assert dense.dtype == np.float64
    inplace = np.asarray(model.booster.inplace_predict(transformed), dtype=np.float64)
    assert np.array_equal(dense, inplace)  # exactly equal, not approximately
    assert np.array_equal(dense, model.predict(raw))  # LoadedModel.predict: xgboost.DMatrix
    with_nan = transformed[:3].copy()
    with_nan[0, 4] = np.nan  # missing values go the default way, as in xgboost's own call
    with_nan[1:, ::2] = 0.0  # and zeros are values, not missing (xgboost's default missing=NaN)
    assert np.array_equal(
        predictor.predict(model.booster, with_nan),
        np.asarray(model.booster.inplace_predict(with_nan), dtype=np.float64),
    )


def test_dense_predictor_keeps_one_proxy_per_thread(model):
    """Each thread gets its own proxy DMatrix (the call writes the request's array on it);
    scores from another thread are the same, and its proxy is freed with the thread."""
    import threading

    predictor = inference.dense_predictor(model.booster)
    transformed = model.transform.apply(all_rows()[:50])
    here = predictor.predict(model.booster, transformed)
    mine = predictor._proxy()
    assert mine is not None and predictor._proxy() is mine
    seen = {}

    def other() -> None:
        seen["proxy"] = predictor._proxy().value
        seen["scores"] = predictor.predict(model.booster, transformed)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen["proxy"] != mine.value
    assert np.array_equal(seen["scores"], here)


def test_a_freed_handle_is_released_once():
    freed = []
    handle = inference._Freed("h", lambda h: freed.append(h) or 0)
    del handle
    assert freed == ["h"]


def test_dense_predictor_is_built_once_per_booster(model):
    assert inference.dense_predictor(model.booster) is inference.dense_predictor(model.booster)


def test_dense_predictor_errors_are_xgboosts_own(model):
    """A non-zero return falls back to inplace_predict, which raises with XGBoost's message."""
    predictor = inference.dense_predictor(model.booster)
    with pytest.raises(ValueError, match="Feature shape mismatch, expected: 30, got 29"):
        predictor.predict(model.booster, np.zeros((1, 29)))


def test_dense_predictor_falls_back_without_a_booster_handle(rows):
    class Stub:
        def inplace_predict(self, matrix):
            return np.full(len(matrix), 0.25, dtype=np.float32)

    stub = Stub()
    predictor = inference.DensePredictor(stub)
    assert predictor._call is None
    assert predictor.predict(stub, np.zeros((2, 30))).tolist() == [0.25, 0.25]


def test_max_rows_is_accepted(model, rows):
    body = "\n".join(csv_line(rows[i % len(rows)]) for i in range(inference.MAX_ROWS))
    assert len(invoke(body, "text/csv", model)) == inference.MAX_ROWS


# ----------------------------------------------------------------------------------------------
# Rejections: status and message
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-npy", "", None])
def test_unsupported_content_type_is_415(model, content_type):
    error = reject("1,2", content_type, model)
    assert error.status == 415
    assert "unsupported content type" in error.message


def test_unsupported_accept_is_406(model, rows):
    error = reject(csv_line(rows[0]), "text/csv", model, accept="text/csv")
    assert error.status == 406
    assert "unsupported accept 'text/csv'" in error.message


@pytest.mark.parametrize("body", ["", "  \n\r\n", b"", None])
@pytest.mark.parametrize("content_type", ["text/csv", "application/json"])
def test_empty_body_is_400(model, body, content_type):
    error = reject(body, content_type, model)
    assert (error.status, error.message) == (400, "empty request body")


def test_non_utf8_body_is_400(model):
    error = reject(b"\xff\xfe1,2", "text/csv", model)
    assert error.status == 400
    assert "not UTF-8" in error.message


def test_csv_wrong_number_of_values_names_the_row(model, rows):
    body = csv_line(rows[0]) + "\n" + csv_line(rows[1][:-1]) + "\n"
    error = reject(body, "text/csv", model)
    assert error.status == 400
    assert error.message == "row 2 has 29 values, expected 30 (one per feature)"


def test_csv_non_numeric_value_names_row_and_column(model, rows, features):
    cells = [repr(v) for v in rows[1]]
    cells[4] = "abc"
    body = csv_line(rows[0]) + "\n" + ",".join(cells)
    error = reject(body, "text/csv", model)
    assert error.status == 400
    assert error.message == f"row 2, column 5 ({features[4]}): 'abc' is not a number"


def test_csv_empty_cell_is_not_a_number(model, rows, features):
    cells = [repr(v) for v in rows[0]]
    cells[0] = ""
    error = reject(",".join(cells), "text/csv", model)
    assert error.message == f"row 1, column 1 ({features[0]}): '' is not a number"


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", "1e999"])
def test_csv_non_finite_value_is_400(model, rows, features, value):
    cells = [repr(v) for v in rows[0]]
    cells[2] = value
    error = reject(",".join(cells), "text/csv", model)
    assert error.status == 400
    assert error.message.startswith(f"row 1, column 3 ({features[2]}): non-finite value")


def test_csv_header_with_unknown_and_missing_names(model, rows, features):
    header = ["bogus", *features[1:]]
    body = ",".join(header) + "\n" + csv_line(rows[0])
    error = reject(body, "text/csv", model)
    assert error.status == 400
    assert error.message == (
        f"row 1 (header): unknown feature names 'bogus'; missing feature names '{features[0]}'"
    )


def test_csv_header_only_is_400(model, features):
    error = reject(",".join(features) + "\n", "text/csv", model)
    assert (error.status, error.message) == (400, "no data rows: the body holds only a header line")


def test_csv_too_many_rows_is_400(model, rows):
    body = "\n".join(csv_line(rows[0]) for _ in range(inference.MAX_ROWS + 1))
    error = reject(body, "text/csv", model)
    assert error.status == 400
    assert error.message.startswith("too many rows")
    assert str(inference.MAX_ROWS) in error.message


@pytest.mark.parametrize(
    "body", ['{"instances": [[1, 2]', "{'instances': []}", "not json", '{"a": 1} trailing']
)
def test_malformed_json_is_400(model, body):
    error = reject(body, "application/json", model)
    assert error.status == 400
    assert error.message.startswith("malformed JSON")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"instances": []}, "no instances in the request"),
        ([], "no instances in the request"),
        ({"instances": {"a": 1}}, '"instances" must be a list of instances'),
        ("text", 'expected a JSON object or list, e.g. {"instances": [[...feature values...]]}'),
        (42, 'expected a JSON object or list, e.g. {"instances": [[...feature values...]]}'),
        (
            {"instances": [[1.0] * 30, {"a": 1}]},
            "instances[1] must be a list of numbers, like instances[0]",
        ),
    ],
)
def test_json_structure_errors(model, payload, message):
    error = reject(json.dumps(payload), "application/json", model)
    assert (error.status, error.message) == (400, message)


def test_json_wrong_number_of_values(model, rows):
    error = reject(json.dumps({"instances": [rows[0], rows[1] + [1.0]]}), "application/json", model)
    assert error.message == "instances[1] has 31 values, expected 30 (one per feature)"


@pytest.mark.parametrize("bad", ["1.5", None, True, [1.0], {"v": 1}])
def test_json_non_numeric_value_names_instance_and_column(model, rows, features, bad):
    row: list[Any] = list(rows[0])
    row[7] = bad
    error = reject(json.dumps({"instances": [rows[1], row]}), "application/json", model)
    assert error.status == 400
    shown = repr(bad) if isinstance(bad, str) else json.dumps(bad)
    assert error.message == f"instances[1], column 8 ({features[7]}): {shown} is not a number"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_json_non_finite_value_is_400(model, rows, features, literal):
    values = [repr(v) for v in rows[0]]
    values[0] = literal
    error = reject('{"instances": [[' + ",".join(values) + "]]}", "application/json", model)
    assert error.status == 400
    assert error.message.startswith(f"instances[0], column 1 ({features[0]}): non-finite value")


def test_json_object_unknown_and_missing_names(model, rows, features):
    record = dict(zip(features, rows[0], strict=True))
    del record[features[3]]
    record["extra_feature"] = 1.0
    error = reject(json.dumps({"instances": [record]}), "application/json", model)
    assert error.status == 400
    assert error.message == (
        "instances[0]: unknown feature names 'extra_feature'; "
        f"missing feature names '{features[3]}'"
    )


def test_json_single_object_missing_names_lists_a_few(model, features):
    error = reject(json.dumps({features[0]: 1.0}), "application/json", model)
    assert error.message.startswith("instance: missing feature names")
    assert error.message.endswith("and 24 more")


def test_json_object_bad_value_names_the_feature(model, rows, features):
    record: dict[str, Any] = dict(zip(features, rows[0], strict=True))
    record[features[5]] = "x"
    error = reject(json.dumps({"instances": [record]}), "application/json", model)
    assert error.message == f"instances[0], feature {features[5]}: 'x' is not a number"
    record[features[5]] = float("nan")
    error = reject(json.dumps({"instances": [record]}), "application/json", model)
    assert error.message == f"instances[0], feature {features[5]}: non-finite value nan"


def test_json_too_many_rows_is_400(model, rows):
    error = reject(
        json.dumps({"instances": [rows[0]] * (inference.MAX_ROWS + 1)}), "application/json", model
    )
    assert error.status == 400
    assert error.message.startswith("too many rows: 1001 instances")


def test_long_values_are_truncated_and_messages_are_one_ascii_line(model, rows):
    cells = [repr(v) for v in rows[0]]
    cells[0] = "\u00e9" * 100
    error = reject(",".join(cells), "text/csv", model)
    assert error.message.startswith("row 1, column 1 (mean_radius): '\\xe9")
    assert error.message.isascii() and "..." in error.message
    assert len(error.message) < 250
    assert PayloadError(400, "two\nlines\r\n").message == "two lines"


# ----------------------------------------------------------------------------------------------
# Fit with the SageMaker XGBoost container
# ----------------------------------------------------------------------------------------------


def test_hooks_are_the_ones_the_image_calls():
    # sagemaker-containers' Transformer calls model_fn(model_dir) and
    # transform_fn(model, content, content_type, accept); the image refuses to start a module that
    # defines transform_fn next to input_fn/predict_fn/output_fn.
    assert len(inspect.signature(inference.model_fn).parameters) == 1
    assert len(inspect.signature(inference.transform_fn).parameters) == 4
    assert not {"input_fn", "predict_fn", "output_fn"} & set(vars(inference))


def test_transform_fn_answers_200_as_a_tuple_and_4xx_as_a_wsgi_response(model, rows):
    body, content_type = inference.transform_fn(model, csv_line(rows[0]), "text/csv", "*/*")
    assert content_type == "application/json"
    assert len(json.loads(body)["predictions"]) == 1

    error = inference.transform_fn(model, "1,2", "text/csv", "application/json")
    assert isinstance(error, inference.ErrorResponse)
    started = []
    chunks = error({}, lambda status, headers: started.append((status, dict(headers))))
    status, headers = started[0]
    assert status == "400 Bad Request"
    assert headers["Content-Type"] == "application/json"
    assert int(headers["Content-Length"]) == len(b"".join(chunks))
    assert json.loads(b"".join(chunks)) == {
        "error": "Bad Request",
        "status": 400,
        "message": "row 1 has 2 values, expected 30 (one per feature)",
    }


def test_transform_fn_lets_other_errors_through(model):
    # anything but a PayloadError is a server fault: the image answers it with a 500
    with pytest.raises(AttributeError):
        inference.transform_fn(None, "1", "text/csv", "application/json")


def test_payload_error_is_one_ascii_line():
    error = PayloadError(415, "nope\n\u00e9")
    assert (error.status, error.message, str(error)) == (415, "nope \\xe9", "nope \\xe9")


def test_inference_source_parses_as_python_38():
    source = (MODEL_CODE / "inference.py").read_text()
    tree = ast.parse(source, feature_version=(3, 8))  # raises SyntaxError on newer syntax
    assert tree.body


CONTAINER_SMOKE = r"""
import json, sys
sys.path.insert(0, sys.argv[3])  # SAGEMAKER_SUBMIT_DIRECTORY
import numpy, xgboost  # in the container; what they import themselves is theirs
before = set(sys.modules)
import inference  # top-level, as the container imports SAGEMAKER_PROGRAM
model = inference.model_fn(sys.argv[1])
body, content_type = inference.transform_fn(model, sys.argv[2], "text/csv", "application/json")
assert content_type == "application/json", content_type
assert len(json.loads(body)["predictions"]) == 1
assert inference.transform_fn(model, "x", "text/plain", "application/json").status == 415
allowed = {"inference", "model_format", "data_capture", "online_features"}  # boto3 when used
third_party = {
    name.split(".")[0] for name in set(sys.modules) - before
    if name.split(".")[0] not in sys.stdlib_module_names and not name.startswith("_")
}
print(json.dumps(sorted(third_party - allowed)))
"""


def test_imports_as_a_top_level_module_from_the_code_dir(model_dir, rows, tmp_path):
    """The artifact's code/ directory, imported the way the container does, needs nothing else."""
    code = tmp_path / "code"
    code.mkdir()
    for name in ("inference.py", "model_format.py", "data_capture.py", "online_features.py"):
        shutil.copy(MODEL_CODE / name, code / name)
    result = subprocess.run(
        [sys.executable, "-I", "-c", CONTAINER_SMOKE, str(model_dir), csv_line(rows[0]), str(code)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,  # only a guard against a hang: the run takes seconds
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_base_score_is_restored_when_this_xgboost_did_not_read_it(model_dir, rows):
    """XGBoost 1.7 (the container's) reads XGBoost 3's "[6.27E-1]" intercept as 0.5."""
    reference = inference.model_fn(str(model_dir))
    expected = inference.predict(np.asarray(rows[:5]), reference)
    model_path = str(model_dir / "xgboost-model.json")
    assert inference.restore_base_score(reference.booster, model_path) is None  # read fine

    degraded = inference.model_fn(str(model_dir))
    # XGBoost 1.7 falls back to 0.5; 0.9 differs from the saved value whichever XGBoost saved it
    degraded.booster.set_param({"base_score": 0.9})
    assert not np.allclose(inference.predict(np.asarray(rows[:5]), degraded), expected)
    restored = inference.restore_base_score(degraded.booster, model_path)
    assert restored is not None and restored != 0.9
    assert inference.predict(np.asarray(rows[:5]), degraded) == pytest.approx(expected)


def test_base_score_check_tolerates_other_files(model, tmp_path):
    (tmp_path / "m.json").write_text("{}")
    assert inference.restore_base_score(model.booster, str(tmp_path / "m.json")) is None
    assert inference.restore_base_score(model.booster, str(tmp_path / "missing.json")) is None
