"""Sample request payloads from the bundled breast-cancer data, and a response check.

Shared by the locust file and ``serving.loadtest``; imports neither locust nor AWS libraries.
Rows come from ``pipelines/model_build/data/breast_cancer.csv`` when present (header, 30
snake_case feature columns, then ``target``), else from scikit-learn's bundled copy (offline).
"""

from __future__ import annotations

import csv
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASET_CSV = REPO_ROOT / "pipelines" / "model_build" / "data" / "breast_cancer.csv"
TARGET_COLUMN = "target"
BATCH_ROWS = 5
# kind -> weight: mostly single rows, as a real-time endpoint sees them
KIND_WEIGHTS = {"csv": 4, "json-list": 2, "json-object": 2, "csv-batch": 1, "json-batch": 1}


@dataclass(frozen=True)
class Payload:
    """One request body; ``kind`` labels it in load-test stats, ``rows`` is its row count."""

    kind: str
    content_type: str
    body: bytes
    rows: int


def snake_case(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def load_feature_rows(path: Path | None = None) -> tuple[list[str], list[list[float]]]:
    """Feature names and raw feature rows of the breast-cancer data (target dropped)."""
    path = DATASET_CSV if path is None else Path(path)
    if path.is_file():
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            keep = [i for i, name in enumerate(header) if name != TARGET_COLUMN]
            rows = [[float(record[i]) for i in keep] for record in reader if record]
        return [header[i] for i in keep], rows
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    return [snake_case(str(n)) for n in bunch.feature_names], bunch.data.tolist()


def make_payload(kind: str, features: list[str], rows: list[list[float]]) -> Payload:
    """A payload of ``kind`` (see ``KIND_WEIGHTS``) holding ``rows``."""
    if kind in ("csv", "csv-batch"):
        body = "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows)
        return Payload(kind, "text/csv", body.encode(), len(rows))
    if kind == "json-list":
        return Payload(kind, "application/json", json.dumps(rows[0]).encode(), 1)
    if kind == "json-object":
        record = dict(zip(features, rows[0], strict=True))
        return Payload(kind, "application/json", json.dumps(record).encode(), 1)
    if kind == "json-batch":
        body = json.dumps({"instances": [dict(zip(features, r, strict=True)) for r in rows]})
        return Payload(kind, "application/json", body.encode(), len(rows))
    raise ValueError(f"unknown payload kind {kind!r}")


def build_payloads(
    features: list[str], rows: list[list[float]], count: int = 200, seed: int = 0
) -> list[Payload]:
    """``count`` payloads of mixed kinds (``KIND_WEIGHTS``), reproducible for a given seed."""
    rng = random.Random(seed)
    kinds = rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()), k=count)
    kinds[: len(KIND_WEIGHTS)] = list(KIND_WEIGHTS)  # every kind at least once
    return [
        make_payload(kind, features, rng.sample(rows, BATCH_ROWS if "batch" in kind else 1))
        for kind in kinds
    ]


def check_response(body: bytes, expected_rows: int) -> str | None:
    """None when ``body`` is a valid prediction response for ``expected_rows`` rows, else why."""
    try:
        predictions = json.loads(body)["predictions"]
    except (ValueError, KeyError, TypeError) as exc:
        return f"unreadable response ({exc!r}): {body[:200]!r}"
    if not isinstance(predictions, list) or len(predictions) != expected_rows:
        return f"expected {expected_rows} predictions, got {body[:200]!r}"
    for p in predictions:
        if not _valid_prediction(p):
            return f"malformed prediction {p!r}"
    return None


def _valid_prediction(p: Any) -> bool:
    if not isinstance(p, dict) or p.get("label") not in (0, 1):
        return False
    score = p.get("score")
    return isinstance(score, float | int) and 0.0 <= score <= 1.0
