"""Regenerate the drift batches shipped in ``monitoring/drift/data/`` (deterministic).

    python -m monitoring.drift.batches            # rewrite data/ in place
    python -m monitoring.drift.batches --out DIR  # elsewhere (the tests compare the two)

From the bundled dataset (``pipelines/model_build/data/breast_cancer.csv``, 569 rows):

* ``clean.csv``: ``ROWS`` rows drawn with replacement, stratified by ``target`` (each class in
  its dataset proportion, so the class mix cannot drift by chance), every value multiplied by
  ``exp(N(0, NOISE))`` (a 2 % measurement jitter), rounded to 6 significant digits. The same
  distribution as the data the model was trained on.
* ``shifted.csv``: the same process with its own seed, then every ``mean_*`` and ``worst_*``
  feature (20 of 30) multiplied by ``SHIFT_FACTOR`` (1.25): a scanner that reads 25 % high; the
  ``*_error`` features (standard errors) are left as drawn.
* ``capture/<batch>/<ENDPOINT>/<VARIANT>/yyyy/mm/dd/hh/*.jsonl``: the same rows as SageMaker data
  capture files (``CaptureMode: Input``) in two hour partitions, requests of every shape the
  endpoint accepts: CSV single and multi-row bodies, a CSV header in another column order,
  ``{"instances": [[...]]}``, ``{"instances": [{...}]}`` and single-object JSON bodies, as
  ``CSV``/``JSON`` text or ``BASE64``. Read back in order they give exactly the CSV's rows.

Checked (scipy's two-sample KS, the test Evidently picks here, over seeds 0-199): the clean
process never reaches the dataset-drift share of 0.5 (at most 2 of 30 features below p = 0.05,
none in 90 % of seeds); the shifted process flags 19 or 20 of its 20 scaled features. The
shipped seeds give 0 drifted features on the clean batch; see the tests for the exact results.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from pipelines.model_build.contract import BUNDLED_DATASET, TARGET_COLUMN

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(__file__).resolve().parent / "data"
ROWS = 300
NOISE = 0.02
SHIFT_FACTOR = 1.25
SHIFTED_PREFIXES = ("mean_", "worst_")
SEEDS = {"clean": 0, "shifted": 1}
BATCHES = tuple(SEEDS)
ENDPOINT = "drift-demo-endpoint"
VARIANT = "AllTraffic"
CAPTURE_HOURS = (
    datetime(2026, 1, 15, 10, tzinfo=UTC),
    datetime(2026, 1, 15, 11, tzinfo=UTC),
)
FILES_PER_HOUR = 2
#: The window ``make drift-local`` reads: both capture hours.
WINDOW_START = "2026-01-15T10:00:00Z"
WINDOW_END = "2026-01-15T12:00:00Z"
REQUEST_KINDS = (
    "csv-row",
    "csv-rows-base64",
    "json-rows",
    "csv-header-reordered",
    "json-objects-base64",
    "json-object",
)


def load_dataset(path: Path | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Feature names, feature matrix and target of the bundled dataset."""
    path = REPO_ROOT / BUNDLED_DATASET if path is None else path
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        records = [r for r in reader if r]
    target_at = header.index(TARGET_COLUMN)
    keep = [i for i in range(len(header)) if i != target_at]
    matrix = np.array([[float(r[i]) for i in keep] for r in records])
    target = np.array([int(float(r[target_at])) for r in records])
    return [header[i] for i in keep], matrix, target


def draw(matrix: np.ndarray, target: np.ndarray, rng: np.random.Generator, rows: int) -> np.ndarray:
    """``rows`` rows resampled per class in the dataset's proportions, with jitter."""
    picks = []
    for cls in np.unique(target):
        members = np.flatnonzero(target == cls)
        picks.append(rng.choice(members, round(rows * members.size / target.size), replace=True))
    index = rng.permutation(np.concatenate(picks))
    jitter = np.exp(rng.normal(0.0, NOISE, (index.size, matrix.shape[1])))
    drawn: np.ndarray = matrix[index] * jitter
    return drawn


def round6(matrix: np.ndarray) -> np.ndarray:
    """Each value rounded to 6 significant digits (what the CSV and JSON files hold)."""
    return np.array([[float(f"{v:.6g}") for v in row] for row in matrix], dtype=np.float64)


def make_batch(
    name: str, features: list[str], matrix: np.ndarray, target: np.ndarray
) -> np.ndarray:
    rng = np.random.default_rng(SEEDS[name])
    batch = draw(matrix, target, rng, ROWS)
    if name == "shifted":
        for j, feature in enumerate(features):
            if feature.startswith(SHIFTED_PREFIXES):
                batch[:, j] *= SHIFT_FACTOR
    return round6(batch)


def shifted_features(features: list[str]) -> list[str]:
    return [f for f in features if f.startswith(SHIFTED_PREFIXES)]


def _csv_text(features: list[str], rows: np.ndarray) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(features)
    writer.writerows([[repr(float(v)) for v in row] for row in rows])
    return out.getvalue()


@dataclass(frozen=True)
class Request:
    content_type: str
    body: str
    base64: bool
    rows: int


def make_request(
    kind: str, features: list[str], rows: np.ndarray, rng: np.random.Generator
) -> Request:
    values = [[float(v) for v in row] for row in rows]
    if kind == "csv-row":
        return Request("text/csv", ",".join(map(repr, values[0])) + "\n", False, 1)
    if kind == "csv-rows-base64":
        body = "".join(",".join(map(repr, row)) + "\n" for row in values)
        return Request("text/csv", body, True, len(values))
    if kind == "csv-header-reordered":
        order = rng.permutation(len(features))
        lines = [",".join(features[j] for j in order)]
        lines += [",".join(repr(row[j]) for j in order) for row in values]
        return Request("text/csv; charset=utf-8", "\n".join(lines) + "\n", False, len(values))
    if kind == "json-rows":
        return Request("application/json", json.dumps({"instances": values}), False, len(values))
    if kind == "json-objects-base64":
        body = json.dumps({"instances": [dict(zip(features, r, strict=True)) for r in values]})
        return Request("application/json", body, True, len(values))
    if kind == "json-object":
        return Request(
            "application/json", json.dumps(dict(zip(features, values[0], strict=True))), False, 1
        )
    raise ValueError(f"unknown request kind {kind!r}")


def capture_record(request: Request, event_id: str, when: datetime) -> str:
    data = request.body
    encoding = "JSON" if request.content_type.startswith("application/json") else "CSV"
    if request.base64:
        data, encoding = base64.b64encode(request.body.encode()).decode("ascii"), "BASE64"
    record = {
        "captureData": {
            "endpointInput": {
                "observedContentType": request.content_type,
                "mode": "INPUT",
                "data": data,
                "encoding": encoding,
            }
        },
        "eventMetadata": {
            "eventId": event_id,
            "inferenceTime": when.isoformat().replace("+00:00", "Z"),
        },
        "eventVersion": "0",
    }
    return json.dumps(record, separators=(",", ":"))


def capture_files(name: str, features: list[str], batch: np.ndarray) -> dict[str, str]:
    """Relative path -> JSON Lines text of the batch as captured requests (in row order)."""
    rng = np.random.default_rng(SEEDS[name] + 1000)
    requests: list[Request] = []
    start = 0
    kind_index = 0
    while start < len(batch):
        kind = REQUEST_KINDS[kind_index % len(REQUEST_KINDS)]
        kind_index += 1
        size = 1 if kind in ("csv-row", "json-object") else int(rng.integers(2, 6))
        rows = batch[start : start + size]
        requests.append(make_request(kind, features, rows, rng))
        start += len(rows)
    slots = len(CAPTURE_HOURS) * FILES_PER_HOUR
    per_file = -(-len(requests) // slots)
    files: dict[str, str] = {}
    for slot in range(slots):
        chunk = requests[slot * per_file : (slot + 1) * per_file]
        if not chunk:
            continue
        hour = CAPTURE_HOURS[slot // FILES_PER_HOUR]
        offsets = np.sort(rng.integers(0, 1800, len(chunk))) + 1800 * (slot % FILES_PER_HOUR)
        lines = []
        for request, offset in zip(chunk, offsets, strict=True):
            event_id = str(uuid.UUID(bytes=rng.bytes(16), version=4))
            lines.append(capture_record(request, event_id, hour + timedelta(seconds=int(offset))))
        first = hour + timedelta(seconds=int(offsets[0]))
        file_id = uuid.UUID(bytes=rng.bytes(16), version=4)
        key = f"{hour:%Y/%m/%d/%H}/{first:%M-%S}-000-{file_id}.jsonl"
        files[f"capture/{name}/{ENDPOINT}/{VARIANT}/{key}"] = "\n".join(lines) + "\n"
    return files


def generate(dataset: Path | None = None) -> dict[str, str]:
    """Relative path under ``data/`` -> file text, for every shipped file."""
    features, matrix, target = load_dataset(dataset)
    out: dict[str, str] = {}
    for name in BATCHES:
        batch = make_batch(name, features, matrix, target)
        out[f"{name}.csv"] = _csv_text(features, batch)
        out.update(capture_files(name, features, batch))
    return out


def capture_root(data_dir: Path, name: str) -> Path:
    """The local copy of ``<capture>/<endpoint>/<variant>/`` of a shipped batch."""
    return data_dir / "capture" / name / ENDPOINT / VARIANT


def write(out_dir: Path) -> list[Path]:
    written = []
    for relative, text in sorted(generate().items()):
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the shipped drift batches.")
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
