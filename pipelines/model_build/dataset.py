"""The bundled example dataset: scikit-learn's breast-cancer data as a headered CSV.

Columns are the 30 features in scikit-learn's order with snake_case names (``mean_radius``, ...),
then ``target`` (1 = benign, 0 = malignant, as in scikit-learn). Floats are written with
``repr`` (shortest round-trip form), so the file is byte-for-byte reproducible.

    python -m pipelines.model_build.dataset --out pipelines/model_build/data/breast_cancer.csv
"""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path

TARGET_COLUMN = "target"
BUNDLED_CSV = Path(__file__).resolve().parent / "data" / "breast_cancer.csv"


def snake_case(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def feature_names() -> list[str]:
    from sklearn.datasets import load_breast_cancer

    return [snake_case(str(n)) for n in load_breast_cancer().feature_names]


def render_csv() -> str:
    """The dataset as CSV text (``\\n`` line endings, trailing newline)."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    columns = [snake_case(str(n)) for n in bunch.feature_names]
    if len(set(columns)) != len(columns):
        raise ValueError("snake_case feature names collide")
    out = io.StringIO()
    out.write(",".join([*columns, TARGET_COLUMN]) + "\n")
    for row, label in zip(bunch.data, bunch.target, strict=True):
        out.write(",".join([*(repr(float(v)) for v in row), str(int(label))]) + "\n")
    return out.getvalue()


def write_csv(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_csv().encode("utf-8"))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=BUNDLED_CSV, help="CSV file to write")
    args = parser.parse_args(argv)
    path = write_csv(args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
