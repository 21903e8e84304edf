"""SageMaker inference handler for the breast-cancer XGBoost model (the serving contract).

Runs inside AWS's prebuilt SageMaker XGBoost 1.7-1 image (Python 3.8, numpy, xgboost 1.7.4) as a
single-model endpoint with ``SAGEMAKER_PROGRAM=inference.py`` and
``SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code``; the same functions back the local server
(``python -m serving.server``).

Request (``Content-Type``):

* ``text/csv``: one row per line, the raw feature values in the model's feature order, no header.
  A first line holding the feature names is tolerated (and, if it lists them in another order,
  used to reorder the columns).
* ``application/json``: ``{"instances": [[30 numbers], ...]}`` or
  ``{"instances": [{"mean_radius": ..., ...}, ...]}``; a single object or a single list of numbers
  is one instance, and a top-level list of instances is accepted too.
* ``application/json``: ``{"record_id": "<id>"}``: the features of that record, read from the
  stage's online feature store (``online_features.py``; 400 when the model has none, 404 for an
  unknown record, 503 when the store cannot be reached).

Response (``Accept`` ``application/json``, ``*/*`` or absent)::

    {"predictions": [{"score": 0.97, "label": 1}, ...]}

``score`` is the probability of the positive class, ``label`` is ``score >= 0.5`` (1 = benign).

Bad requests are answered with a 4xx status and a JSON body
``{"error": <reason phrase>, "status": <code>, "message": <one line>}``: 415 unsupported content
type, 406 unsupported accept, 400 for a bad payload (empty body, malformed CSV/JSON, wrong number
of values, non-numeric or non-finite value, unknown or missing feature names, more than
``MAX_ROWS`` rows), the message naming the row and column where applicable. CSV rows are
numbered by their line in the body (a header is line 1); columns from 1.

How the 1.7-1 image serves this module (single-model endpoint, i.e. ``SAGEMAKER_MULTI_MODEL``
unset): its ``serve`` entry point (``sagemaker_xgboost_container.serving:serving_entrypoint``)
starts nginx in front of gunicorn (gevent workers) running ``serving:main``, a Flask app from
``sagemaker-containers`` 2.8.6.post2 (``_worker.Worker``) around its ``_transformer.Transformer``.
That Transformer wraps every user function in ``_functions.error_wrapper``, which re-raises ANY
exception as ``_errors.ClientError``; Flask answers that with a 500. Only the default
(non-user) ``input_fn``/``output_fn`` ever produce 415/406. So raising, even
``UnsupportedFormatError`` or a werkzeug ``HTTPException``, can never give a 4xx from a user
script: the status has to be in the RETURN value. This module therefore implements
``transform_fn(model, body, content_type, accept)``: it returns ``(body, content_type)`` on
success (the Transformer makes that a 200) and, for a bad request, an :class:`ErrorResponse`,
a plain WSGI application that Flask's ``make_response`` runs to build the response with its
status. The image refuses to start (``UserError``) when a module defines ``transform_fn`` next
to ``input_fn``/``predict_fn``/``output_fn``, so the steps are named ``decode_request``,
``predict`` and ``encode_response`` here. ``tests/serving/test_container_serving.py`` runs this
artifact through those pinned packages under Python 3.8 and gunicorn. Multi-model endpoints
(served by Multi Model Server and ``sagemaker-inference`` instead) are not supported.

Division of work: ``decode_request`` decodes and splits the payload (syntax, size); ``predict``,
which knows the model's features, converts and checks the values and runs the model.

Imports are limited to the standard library, numpy, ``model_format`` (numpy + xgboost) and
``data_capture`` (boto3, only when capture is configured): all present in the image. Keep this
file Python 3.8 compatible (the image's interpreter): no runtime use of 3.9+ syntax or APIs.
"""

from __future__ import annotations

import json
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np

try:  # imported as part of the repository's packages (tests, local server)
    from . import data_capture, model_format, online_features
except ImportError:  # in the container: the code directory is on sys.path, no parent package
    import data_capture  # type: ignore[no-redef]
    import model_format  # type: ignore[no-redef]
    import online_features  # type: ignore[no-redef]

CSV_CONTENT_TYPE = "text/csv"
JSON_CONTENT_TYPE = "application/json"
MAX_ROWS = 1000
THRESHOLD = 0.5

_JSON_ACCEPTS = frozenset((JSON_CONTENT_TYPE, "application/*", "*/*"))
_NUMBER_TYPES = (int, float)
_MAX_SHOWN = 40  # characters of an offending value echoed in a message
_MAX_NAMES = 5  # feature names listed in a message


class PayloadError(Exception):
    """A request the model cannot serve. ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        # One line of ASCII: safe in logs and in any client's error display.
        message = " ".join(str(message).split()).encode("ascii", "backslashreplace").decode()
        super().__init__(status, message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return str(self.message)


class ErrorResponse:
    """A 4xx answer, as a WSGI application (PEP 3333) that Flask's ``make_response`` runs.

    ``transform_fn`` returns it for a bad request: it is the only way a user script gets a status
    other than 200 or 500 out of the image's Flask worker (see the module docstring). The local
    server reads ``status``, ``body`` and ``content_type`` directly.
    """

    __slots__ = ("body", "content_type", "status")

    def __init__(self, error: PayloadError) -> None:
        self.status = error.status
        self.content_type = JSON_CONTENT_TYPE
        payload = {
            "error": reason_phrase(error.status),
            "status": error.status,
            "message": str(error),
        }
        self.body = json.dumps(payload).encode("utf-8")

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        start_response(
            f"{self.status} {reason_phrase(self.status)}",
            [("Content-Type", self.content_type), ("Content-Length", str(len(self.body)))],
        )
        return [self.body]

    def __repr__(self) -> str:
        return f"ErrorResponse(status={self.status}, body={self.body!r})"


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Instances:
    """What ``decode_request`` hands to ``predict``: the request's instances, split but unchecked.

    ``kind`` is ``"csv"`` (``items``: lists of cell strings), ``"rows"`` (JSON lists of values)
    or ``"records"`` (JSON objects keyed by feature name). ``labels[i]`` names item ``i`` in
    messages; ``header`` is the CSV header line's names, if the body had one.
    """

    __slots__ = ("header", "items", "kind", "labels")

    def __init__(
        self,
        kind: str,
        items: list[Any],
        labels: Sequence[str],
        header: Sequence[str] | None = None,
    ) -> None:
        self.kind = kind
        self.items = items
        self.labels = labels
        self.header = None if header is None else tuple(header)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return (
            f"Instances(kind={self.kind!r}, n={len(self.items)}, header={self.header is not None})"
        )


# ----------------------------------------------------------------------------------------------
# The SageMaker handler functions
# ----------------------------------------------------------------------------------------------


def model_fn(model_dir: str) -> model_format.LoadedModel:
    """Load the booster and its feature transform from ``model_dir``."""
    model = model_format.load_model(Path(model_dir))
    # Requests are small (typically one row) and both servers run a worker per core, so XGBoost's
    # default of an OpenMP thread per core only adds contention. INFERENCE_NTHREAD overrides it.
    model.booster.set_param({"nthread": int(os.environ.get("INFERENCE_NTHREAD", "1"))})
    restore_base_score(model.booster, os.path.join(model_dir, model_format.MODEL_FILE))
    return model


def restore_base_score(booster: Any, model_path: str) -> float | None:
    """Re-apply the saved ``base_score`` if this XGBoost did not read it; returns it if so.

    XGBoost >= 2 saves the intercept as a vector string (``"[6.27E-1]"``) that XGBoost 1.7, the
    serving container's, cannot parse: it silently keeps 0.5 and every score shifts (by up to
    0.12 on this data). A model trained with the repository's XGBoost and served by the 1.7-1
    container hits exactly that, so the saved value is set explicitly when the two disagree.
    """
    try:
        with open(model_path) as handle:
            saved = json.load(handle)["learner"]["learner_model_param"]["base_score"]
        config = json.loads(booster.save_config())
        loaded = config["learner"]["learner_model_param"]["base_score"]
        saved_values = [float(v) for v in str(saved).strip("[]").split(",")]
        loaded_values = [float(v) for v in str(loaded).strip("[]").split(",")]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not an XGBoost JSON model we can compare: leave it as loaded
    if len(saved_values) != 1 or len(loaded_values) != 1:
        return None  # vector intercepts (multi-target) only exist where they are understood
    if abs(saved_values[0] - loaded_values[0]) <= 1e-6 * max(1.0, abs(saved_values[0])):
        return None
    booster.set_param({"base_score": saved_values[0]})
    return saved_values[0]


def transform_fn(
    model: model_format.LoadedModel,
    request_body: Any,
    request_content_type: str | None,
    accept: str | None,
) -> tuple[str, str] | ErrorResponse:
    """The image's serving hook: ``(body, content_type)`` for a 200, an ErrorResponse for a 4xx.

    Anything other than a :class:`PayloadError` propagates: the image answers it with a 500.
    When the environment names a capture destination (``data_capture.py``: serverless endpoints,
    which SageMaker does not capture), the request and the response of a 200 are captured;
    capture never changes or fails the answer.
    """
    try:
        instances = resolve_record(decode_request(request_body, request_content_type), model)
        body, content_type = encode_response(predict(instances, model), accept)
    except PayloadError as error:
        return ErrorResponse(error)
    capture = data_capture.from_environment()
    if capture is not None:
        capture.record(request_body, request_content_type, body, content_type)
    return body, content_type


def decode_request(request_body: Any, request_content_type: str | None) -> Instances:
    """Decode the body and split it into instances (checked against the model in predict)."""
    media_type = _media_type(request_content_type)
    if media_type not in (CSV_CONTENT_TYPE, JSON_CONTENT_TYPE):
        raise PayloadError(
            415,
            f"unsupported content type {request_content_type!r}: "
            f"send {CSV_CONTENT_TYPE} or {JSON_CONTENT_TYPE}",
        )
    text = _body_text(request_body)
    if not text.strip():
        raise PayloadError(400, "empty request body")
    if media_type == CSV_CONTENT_TYPE:
        return _split_csv(text)
    return _split_json(text)


def resolve_record(instances: Instances, model: model_format.LoadedModel) -> Instances:
    """A ``{"record_id": ...}`` request becomes that record's features, read from the online
    feature store the environment names (``online_features.py``); other requests are kept."""
    if instances.kind != "record":
        return instances
    reader = online_features.from_environment()
    if reader is None:
        raise PayloadError(
            400, "this endpoint has no online feature store: send the feature values instead"
        )
    (record_id,) = instances.items
    try:
        values = reader.lookup(record_id, model.features)
    except online_features.RecordLookupError as error:
        raise PayloadError(error.status, error.message) from None
    return Instances("records", [values], [f"record {record_id}"])


def predict(input_data: Instances | np.ndarray, model: model_format.LoadedModel) -> np.ndarray:
    """Positive-class probability for each instance (a plain 2-D array of raw rows works too)."""
    matrix = to_matrix(input_data, model.features)
    # LoadedModel.predict(matrix) computes the same scores through an xgboost.DMatrix, whose
    # construction runs an OpenMP region on every core; between sparse requests the pool's threads
    # spin and wake up again: ~3.5 ms of CPU per single-row request instead of ~0.2 ms here.
    # inplace_predict skips the DMatrix and honours the booster's nthread (set in model_fn).
    # DensePredictor makes the C call inplace_predict makes, without ~0.12 ms of Python around it.
    transformed = model.transform.apply(matrix)
    return dense_predictor(model.booster).predict(model.booster, transformed)


def encode_response(prediction: np.ndarray, accept: str | None) -> tuple[str, str]:
    """Serialise scores as ``{"predictions": [{"score": s, "label": 0 or 1}, ...]}``.

    Returns ``(body, content_type)``: the image's Transformer turns that tuple into a 200 with
    exactly this content type, whatever the ``Accept`` header held.
    """
    if not _accepts_json(accept):
        raise PayloadError(
            406, f"unsupported accept {accept!r}: this model answers {JSON_CONTENT_TYPE}"
        )
    scores = np.asarray(prediction, dtype=np.float64).reshape(-1).tolist()
    predictions = [{"score": s, "label": 1 if s >= THRESHOLD else 0} for s in scores]
    return json.dumps({"predictions": predictions}), JSON_CONTENT_TYPE


# ----------------------------------------------------------------------------------------------
# The booster's prediction, through XGBoost's C API
# ----------------------------------------------------------------------------------------------


class DensePredictor:
    """``booster.inplace_predict(matrix)`` for a float64 numpy matrix, as one C call.

    For a numpy array, ``Booster.inplace_predict`` (XGBoost 1.7 and 3.x alike) ends in ONE call
    of the documented C API function ``XGBoosterPredictFromDense(handle, <the array's
    __array_interface__ as JSON>, <config JSON>, NULL, &shape, &dims, &result)`` with the config
    ``{"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0, "missing": NaN,
    "strict_shape": false, "cache_id": 0}`` (its defaults), then copies the float32 result.
    Around that call it spends ~0.12 ms in Python (input-type dispatch, imports, a feature count
    query, building ctypes array types for the output) per request of one row, twice the call
    itself. This class makes exactly that call on the same booster handle, with the same
    arguments, and copies the same float32 values: the scores are identical
    (``tests/serving/test_inference.py`` compares them bit for bit with ``inplace_predict`` and
    the DMatrix path, here and under the 1.7-1 image's xgboost 1.7.4). Anything unusual (the
    library not found, a non-zero return) falls back to ``inplace_predict`` itself.

    One difference: the proxy DMatrix the call takes (``m``, NULL from ``inplace_predict``: the
    library then creates one per call) is created once per thread (``XGProxyDMatrixCreate``) and
    passed in; the call sets the request's array on it. Creating one reads the cgroup's CPU
    quota files in XGBoost >= 2 (11 system calls, ~30 us of the ~70 us a one-row call costs
    there). It carries no meta information (no base margin), as the one the library creates.
    """

    _CONFIG = json.dumps(
        {
            "type": 0,
            "training": False,
            "iteration_begin": 0,
            "iteration_end": 0,
            "missing": float("nan"),
            "strict_shape": False,
            "cache_id": 0,
        }
    ).encode()

    def __init__(self, booster: Any) -> None:
        import ctypes

        self._ctypes = ctypes
        self._call: Any = None
        handle = getattr(booster, "handle", None)
        if handle is None:
            return
        try:
            from xgboost import libpath

            library = ctypes.CDLL(libpath.find_lib_path()[0])
            function = library.XGBoosterPredictFromDense
            self._create_proxy = library.XGProxyDMatrixCreate
            self._free_proxy = library.XGDMatrixFree
        except (ImportError, OSError, IndexError, AttributeError):
            return
        self._create_proxy.restype = self._free_proxy.restype = ctypes.c_int
        self._create_proxy.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        self._free_proxy.argtypes = [ctypes.c_void_p]
        self._local = threading.local()
        function.restype = ctypes.c_int
        function.argtypes = [
            ctypes.c_void_p,  # BoosterHandle
            ctypes.c_char_p,  # the array interface (JSON)
            ctypes.c_char_p,  # the config (JSON)
            ctypes.c_void_p,  # DMatrixHandle of a proxy: this thread's
            ctypes.POINTER(ctypes.POINTER(ctypes.c_uint64)),  # out_shape
            ctypes.POINTER(ctypes.c_uint64),  # out_dim
            ctypes.POINTER(ctypes.POINTER(ctypes.c_float)),  # out_result
        ]
        self._call = function
        self._handle = handle

    def predict(self, booster: Any, matrix: np.ndarray) -> np.ndarray:
        """Scores of a 2-D float64 matrix by ``booster`` (the one this was built for), flat."""
        if self._call is None:
            return self._fallback(booster, matrix)
        ctypes = self._ctypes
        data = np.ascontiguousarray(matrix, dtype=np.float64)
        interface = json.dumps(data.__array_interface__).encode()
        shape = ctypes.POINTER(ctypes.c_uint64)()
        dims = ctypes.c_uint64()
        result = ctypes.POINTER(ctypes.c_float)()
        status = self._call(
            self._handle,
            interface,
            self._CONFIG,
            self._proxy(),
            ctypes.byref(shape),
            ctypes.byref(dims),
            ctypes.byref(result),
        )
        if status != 0:
            return self._fallback(booster, matrix)  # raises XGBoost's error, with its message
        count = 1
        for axis in range(dims.value):
            count *= int(shape[axis])
        # The result buffer belongs to the booster (per thread, until its next prediction): copied.
        values = np.frombuffer(ctypes.string_at(result, 4 * count), dtype=np.float32)
        return values.astype(np.float64)

    def _proxy(self) -> Any:
        """This thread's proxy DMatrix handle (None, i.e. NULL, if it cannot be created)."""
        proxy = getattr(self._local, "proxy", None)
        if proxy is None:
            handle = self._ctypes.c_void_p()
            if self._create_proxy(self._ctypes.byref(handle)) != 0:
                return None
            # freed when this thread's storage goes (thread end, or the predictor collected)
            proxy = self._local.proxy = _Freed(handle, self._free_proxy)
        return proxy.handle

    @staticmethod
    def _fallback(booster: Any, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(booster.inplace_predict(matrix), dtype=np.float64).reshape(-1)


class _Freed:
    """A C handle released with ``free`` when this object is collected."""

    __slots__ = ("free", "handle")

    def __init__(self, handle: Any, free: Callable[[Any], int]) -> None:
        self.handle = handle
        self.free = free

    def __del__(self) -> None:
        self.free(self.handle)


_PREDICTORS: weakref.WeakKeyDictionary[Any, DensePredictor] = weakref.WeakKeyDictionary()


def dense_predictor(booster: Any) -> DensePredictor:
    """The booster's DensePredictor, built on first use and dropped with the booster."""
    predictor = _PREDICTORS.get(booster)
    if predictor is None:
        predictor = _PREDICTORS[booster] = DensePredictor(booster)
    return predictor


# ----------------------------------------------------------------------------------------------
# Checking instances against the model's features
# ----------------------------------------------------------------------------------------------


def to_matrix(instances: Instances | np.ndarray, features: Sequence[str]) -> np.ndarray:
    """A finite float64 matrix with one column per feature, in the model's order."""
    if isinstance(instances, np.ndarray):
        matrix = np.asarray(instances, dtype=np.float64)
        if matrix.ndim == 1:
            matrix = matrix.reshape(1, -1)
        if matrix.ndim != 2 or matrix.shape[1] != len(features):
            raise PayloadError(
                400, f"expected {len(features)} features per row, got shape {matrix.shape}"
            )
        labels: Sequence[str] = [f"row {i + 1}" for i in range(matrix.shape[0])]
        _check_finite(matrix, labels, features, positional=True)
        return matrix
    if instances.kind == "records":
        return _records_matrix(instances, features)
    if instances.kind == "record":  # not resolved (transform_fn resolves it)
        raise PayloadError(400, "a record_id request needs the online feature store")
    return _rows_matrix(instances, features)


def _rows_matrix(instances: Instances, features: Sequence[str]) -> np.ndarray:
    n = len(features)
    order = None
    if instances.header is not None:
        order = _header_order(instances.header, features)
    convert = _csv_value if instances.kind == "csv" else _json_value
    rows = []
    for label, row in zip(instances.labels, instances.items):  # noqa: B905 - Python 3.8
        if len(row) != n:
            raise PayloadError(
                400, f"{label} has {len(row)} values, expected {n} (one per feature)"
            )
        try:
            rows.append([convert(v) for v in row])
        except (TypeError, ValueError, OverflowError):
            for j, value in enumerate(row):
                try:
                    convert(value)
                except (TypeError, ValueError, OverflowError):
                    raise PayloadError(
                        400,
                        f"{label}, column {j + 1} ({_column_name(j, instances.header, features)}):"
                        f" {_show(value)} is not a number",
                    ) from None
            raise  # pragma: no cover - the loop above always finds the culprit
    matrix = np.array(rows, dtype=np.float64)
    _check_finite(matrix, instances.labels, instances.header or features, positional=True)
    if order is not None:
        matrix = matrix[:, order]
    return matrix


def _records_matrix(instances: Instances, features: Sequence[str]) -> np.ndarray:
    wanted = set(features)
    rows = []
    for label, record in zip(instances.labels, instances.items):  # noqa: B905 - Python 3.8
        if len(record) != len(features) or not wanted.issuperset(record):
            unknown = [k for k in record if k not in wanted]
            missing = [f for f in features if f not in record]
            raise PayloadError(400, f"{label}: {_name_problems(unknown, missing)}")
        try:
            rows.append([_json_value(record[f]) for f in features])
        except (TypeError, ValueError, OverflowError):
            for name in features:
                try:
                    _json_value(record[name])
                except (TypeError, ValueError, OverflowError):
                    raise PayloadError(
                        400, f"{label}, feature {name}: {_show(record[name])} is not a number"
                    ) from None
            raise  # pragma: no cover
    matrix = np.array(rows, dtype=np.float64)
    _check_finite(matrix, instances.labels, features, positional=False)
    return matrix


def _header_order(header: Sequence[str], features: Sequence[str]) -> list[int] | None:
    """Column permutation that puts a CSV header's columns in model order (None: already are)."""
    if tuple(header) == tuple(features):
        return None
    wanted = set(features)
    unknown = [h for h in header if h not in wanted]
    missing = [f for f in features if f not in set(header)]
    duplicated = sorted({h for h in header if list(header).count(h) > 1})
    if unknown or missing or duplicated:
        problems = _name_problems(unknown, missing)
        if duplicated:
            problems += f"; duplicated {_names(duplicated)}"
        raise PayloadError(400, f"row 1 (header): {problems}")
    position = {name: i for i, name in enumerate(header)}
    return [position[f] for f in features]


def _check_finite(
    matrix: np.ndarray, labels: Sequence[str], columns: Sequence[str], positional: bool
) -> None:
    finite = np.isfinite(matrix)
    if finite.all():
        return
    i, j = (int(v) for v in np.argwhere(~finite)[0])
    where = f"column {j + 1} ({columns[j]})" if positional else f"feature {columns[j]}"
    raise PayloadError(400, f"{labels[i]}, {where}: non-finite value {float(matrix[i, j])!r}")


def _csv_value(cell: str) -> float:
    return float(cell)


def _json_value(value: Any) -> float:
    if type(value) not in _NUMBER_TYPES:  # bool is an int subclass, and so excluded here
        raise TypeError(value)
    return float(value)


# ----------------------------------------------------------------------------------------------
# Splitting payloads
# ----------------------------------------------------------------------------------------------


def _split_csv(text: str) -> Instances:
    lines = text.splitlines()
    if len(lines) > MAX_ROWS + 1 and sum(1 for line in lines if line.strip()) > MAX_ROWS + 1:
        raise PayloadError(400, f"too many rows: at most {MAX_ROWS} per request")
    quoted = '"' in text
    items: list[list[str]] = []
    labels: list[str] = []
    header = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        cells = line.split(",")
        if quoted:
            cells = [_unquote(c) for c in cells]
        if not items and header is None and _is_header(cells):
            header = [c.strip() for c in cells]
            continue
        items.append(cells)
        labels.append(f"row {number}")
    if not items:
        raise PayloadError(400, "no data rows: the body holds only a header line")
    if len(items) > MAX_ROWS:
        raise PayloadError(400, f"too many rows: {len(items)}, at most {MAX_ROWS} per request")
    return Instances("csv", items, labels, header)


def _is_header(cells: list[str]) -> bool:
    """A line whose cells are all names, not numbers (e.g. ``mean_radius,mean_texture,...``)."""
    for cell in cells:
        try:
            float(cell)
            return False
        except ValueError:
            pass
    return all(c.strip() for c in cells)


def _unquote(cell: str) -> str:
    cell = cell.strip()
    if len(cell) >= 2 and cell[0] == cell[-1] == '"':
        return cell[1:-1]
    return cell


def _split_json(text: str) -> Instances:
    try:
        payload = json.loads(text)
    except ValueError as exc:  # json.JSONDecodeError; RecursionError is a RuntimeError
        raise PayloadError(400, f"malformed JSON: {exc}") from None
    except RecursionError:
        raise PayloadError(400, "malformed JSON: nested too deeply") from None
    if isinstance(payload, dict) and list(payload) == [online_features.REQUEST_KEY]:
        return Instances("record", [payload[online_features.REQUEST_KEY]], ["record_id"])
    if isinstance(payload, dict) and "instances" in payload:
        instances = payload["instances"]
        if not isinstance(instances, list):
            raise PayloadError(400, '"instances" must be a list of instances')
        return _json_instances(instances, [f"instances[{i}]" for i in range(len(instances))])
    if isinstance(payload, dict):
        return _json_instances([payload], ["instance"])
    if isinstance(payload, list):
        if payload and all(not isinstance(v, (list, dict)) for v in payload):
            return _json_instances([payload], ["instance"])
        return _json_instances(payload, [f"instances[{i}]" for i in range(len(payload))])
    raise PayloadError(
        400, 'expected a JSON object or list, e.g. {"instances": [[...feature values...]]}'
    )


def _json_instances(instances: list[Any], labels: list[str]) -> Instances:
    if not instances:
        raise PayloadError(400, "no instances in the request")
    if len(instances) > MAX_ROWS:
        raise PayloadError(
            400, f"too many rows: {len(instances)} instances, at most {MAX_ROWS} per request"
        )
    first = instances[0]
    kind = "records" if isinstance(first, dict) else "rows"
    expected = dict if kind == "records" else list
    for label, item in zip(labels, instances):  # noqa: B905 - Python 3.8
        if type(item) is not expected:
            what = "an object of feature values" if kind == "records" else "a list of numbers"
            raise PayloadError(400, f"{label} must be {what}, like {labels[0]}")
    return Instances(kind, instances, labels)


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------


def _media_type(content_type: str | None) -> str:
    return str(content_type or "").split(";", 1)[0].strip().lower()


def _accepts_json(accept: str | None) -> bool:
    if not accept or not str(accept).strip():
        return True
    return any(_media_type(part) in _JSON_ACCEPTS for part in str(accept).split(","))


def _body_text(body: Any) -> str:
    if isinstance(body, str):
        text = body
    elif isinstance(body, (bytes, bytearray, memoryview)):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadError(400, f"request body is not UTF-8 text: {exc}") from None
    elif body is None:
        text = ""
    else:
        raise PayloadError(400, f"unreadable request body of type {type(body).__name__}")
    return text[1:] if text.startswith("\ufeff") else text


def _column_name(j: int, header: Sequence[str] | None, features: Sequence[str]) -> str:
    return (header or features)[j]


def _show(value: Any) -> str:
    shown = repr(value) if isinstance(value, str) else json.dumps(value)
    return shown if len(shown) <= _MAX_SHOWN else shown[: _MAX_SHOWN - 3] + "..."


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(_show(n) for n in names[:_MAX_NAMES])
    more = len(names) - _MAX_NAMES
    return shown + (f" and {more} more" if more > 0 else "")


def _name_problems(unknown: Sequence[str], missing: Sequence[str]) -> str:
    parts = []
    if unknown:
        parts.append(f"unknown feature names {_names(unknown)}")
    if missing:
        parts.append(f"missing feature names {_names(missing)}")
    return "; ".join(parts) or "feature names do not match the model"
