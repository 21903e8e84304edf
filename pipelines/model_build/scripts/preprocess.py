"""Preprocess step (SageMaker Processing, scikit-learn image).

Reads every CSV under ``--input`` (or the single file given) -- or, when there is no CSV, every
Parquet file: the curated zone the ingestion workflow passes as ``InputDataUrl``, where the Glue
job writes ``<dataset>/ingest_date=YYYY-MM-DD/part-*.parquet`` with the raw columns' snake_case
names (the bundled dataset's names already are) --, validates it, splits it into stratified,
seeded train/validation/test sets and fits the feature transform on the train split. Parquet
needs pyarrow, which the SageMaker scikit-learn 1.2-1 image installs (pyarrow 14, conda).

The input schema is fixed: every file's header must be exactly ``--columns`` (the contract's
``INPUT_COLUMNS``: the features in order, then ``target``); a missing, extra or reordered column
is rejected, since the model, its transform and serving rely on that order. ``--data-version``
(the pipeline's ``InputDataVersion``) must be given: it is what keeps a cached run of this step
from standing in for new data under the same input URI.

Outputs (the splits stay RAW: validated but untransformed, ``target`` first, with a header):
    <train-dir>/train.csv, <validation-dir>/validation.csv, <test-dir>/test.csv
    <transform-dir>/feature_transform.json (model_format.FeatureTransform fitted on train)
    [<features-dir>/train_features.csv: the train split WITHOUT ``target``, with a header, i.e.
    the columns an endpoint receives, in the same order; only with ``--features-dir``. It is the
    dataset of the Model Monitor data-quality baseline: Model Monitor requires the baseline's
    schema to match the inference input's (the number and order of the features).]

On invalid input it exits 1 with ONE line naming the file and the problem, on stderr and in
``--failure-file`` (SageMaker Processing reports ``/opt/ml/output/message`` as ExitMessage).

Standalone: imports only the standard library, numpy, pandas and scikit-learn (pyarrow for
Parquet, when there is Parquet), plus
``model_format.py`` loaded from ``--model-code-dir``. Compatible with Python 3.8 / pandas 1.x.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import re
import sys
import traceback
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

TARGET = "target"
TRAIN_FILE = "train.csv"
VALIDATION_FILE = "validation.csv"
TEST_FILE = "test.csv"
FEATURES_FILE = "train_features.csv"  # == definition.BASELINE_FEATURES_FILE (a test checks)
MODEL_FORMAT_FILE = "model_format.py"
# Cell values read as "missing" (case-insensitive, after stripping blanks).
MISSING_TOKENS = frozenset({"", "na", "nan", "null", "none", "n/a"})
#: == contract.DATA_VERSION_PATTERN (a test checks): model package metadata allows these.
DATA_VERSION_PATTERN = r"[A-Za-z0-9_.:/=+\-@]([A-Za-z0-9 _.:/=+\-@]{0,126}[A-Za-z0-9_.:/=+\-@])?"


class StepError(Exception):
    """A problem with the step's input: reported as one line, no traceback."""


# ---- reading and validation -----------------------------------------------------------------


PARQUET_MAGIC = b"PAR1"


def _is_parquet(path: Path) -> bool:
    """A ``.parquet`` file, or a file without a suffix that starts with Parquet's magic bytes:
    the Athena query result of the offline store (feature_store.training_data), whose part
    files have no suffix."""
    if path.suffix.lower() == ".parquet":
        return True
    if path.suffix:
        return False
    try:
        with path.open("rb") as handle:
            return handle.read(4) == PARQUET_MAGIC
    except OSError:
        return False


def _is_data_file(path: Path, suffix: str) -> bool:
    """A data file of the given kind; Spark/Glue bookkeeping (``_SUCCESS``, ``.crc``, names
    starting with ``_`` or ``.``) is not data."""
    hidden = path.name.startswith(("_", "."))
    if not path.is_file() or hidden:
        return False
    return _is_parquet(path) if suffix == ".parquet" else path.suffix.lower() == suffix


def find_input_files(input_path: Path) -> list[Path]:
    """The CSV files under ``input_path``, or else its Parquet files (the curated zone: the
    Glue job writes ``ingest_date=YYYY-MM-DD/part-*.parquet``). One kind per input."""
    if input_path.is_file():
        return [input_path]
    if not input_path.exists():
        raise StepError(f"{input_path}: input path does not exist")
    paths = sorted(p for p in input_path.rglob("*"))
    csv_files = [p for p in paths if _is_data_file(p, ".csv")]
    parquet_files = [p for p in paths if _is_data_file(p, ".parquet")]
    if csv_files and parquet_files:
        raise StepError(
            f"{input_path}: both CSV ({len(csv_files)}) and Parquet ({len(parquet_files)}) "
            "files in directory: give one kind"
        )
    if not csv_files and not parquet_files:
        raise StepError(f"{input_path}: no CSV or Parquet files in directory")
    return csv_files or parquet_files


find_csv_files = find_input_files  # the earlier name


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_column(path: Path, name: str, cells: pd.Series, lines: np.ndarray) -> np.ndarray:
    """Cells -> float64 (NaN for missing); fails on the first non-numeric/non-finite cell."""
    stripped = cells.str.strip()
    missing = stripped.str.lower().isin(MISSING_TOKENS).to_numpy()
    values: np.ndarray = pd.to_numeric(stripped.where(~missing), errors="coerce").to_numpy(
        dtype=np.float64
    )
    bad = np.flatnonzero(~missing & np.isnan(values))
    if bad.size:
        i = int(bad[0])
        raise StepError(
            f"{path}: non-numeric value {stripped.iloc[i]!r} in column {name!r} "
            f"at line {int(lines[i])}"
        )
    infinite = np.flatnonzero(np.isinf(values))
    if infinite.size:
        i = int(infinite[0])
        raise StepError(
            f"{path}: non-finite value {stripped.iloc[i]!r} in column {name!r} "
            f"at line {int(lines[i])}"
        )
    return values


def check_header(path: Path, header: list[str], expected: tuple[str, ...]) -> None:
    """The header must be ``expected`` exactly: same names, same order."""
    missing = [name for name in expected if name not in header]
    if missing:
        raise StepError(f"{path}: missing column {missing[0]!r}")
    extra = [name for name in header if name not in expected]
    if extra:
        raise StepError(f"{path}: unexpected column {extra[0]!r}")
    for index, wanted in enumerate(expected):  # same names, same count: compare in order
        if header[index] != wanted:
            raise StepError(
                f"{path}: column {header[index]!r} at position {index + 1}, expected {wanted!r} "
                "(columns must be in the fixed order)"
            )


def read_csv_file(path: Path, expected: tuple[str, ...]) -> pd.DataFrame:
    """One validated CSV file as a float frame (``target`` as int64), in ``expected`` order."""
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header: list[str] | None = None
            rows: list[list[str]] = []
            lines: list[int] = []
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue  # blank line
                if header is None:
                    header = [cell.strip() for cell in row]
                    continue
                if len(row) != len(header):
                    raise StepError(
                        f"{path}: line {reader.line_num} has {len(row)} fields, "
                        f"expected {len(header)}"
                    )
                rows.append(row)
                lines.append(reader.line_num)
    except UnicodeDecodeError:
        raise StepError(f"{path}: not UTF-8 text") from None
    except csv.Error as exc:
        raise StepError(f"{path}: malformed CSV ({exc})") from None

    if header is None:
        raise StepError(f"{path}: file empty")
    return frame_from_cells(path, header, rows, lines, expected)


def read_parquet_file(path: Path, expected: tuple[str, ...]) -> pd.DataFrame:
    """One validated Parquet file (e.g. a curated part written by the Glue job), checked
    exactly like a CSV file: its columns are the header, its rows the lines (``line`` N in a
    message is data row N + 1, as if the header were line 1). Nulls are missing values."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise StepError(f"{path}: reading Parquet needs pyarrow, which is not installed") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError... for a bad file
        raise StepError(f"{path}: not a readable Parquet file ({type(exc).__name__})") from None
    header = [str(name).strip() for name in table.column_names]
    if not header:
        raise StepError(f"{path}: file empty")
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    rows = [
        ["" if column[i] is None else str(column[i]) for column in columns]
        for i in range(table.num_rows)
    ]
    lines = list(range(2, len(rows) + 2))
    return frame_from_cells(path, header, rows, lines, expected)


def read_data_file(path: Path, expected: tuple[str, ...]) -> pd.DataFrame:
    if _is_parquet(path):
        return read_parquet_file(path, expected)
    return read_csv_file(path, expected)


def frame_from_cells(
    path: Path,
    header: list[str],
    rows: list[list[str]],
    lines: list[int],
    expected: tuple[str, ...],
) -> pd.DataFrame:
    """Cells (text) of one file -> the validated float frame (``target`` as int64)."""
    for position, name in enumerate(header, start=1):
        if not name:
            raise StepError(f"{path}: empty column name at position {position} of the header")
    if all(_is_number(name) for name in header):
        raise StepError(f"{path}: no header row (the first line holds numbers)")
    seen = set()
    for name in header:
        if name in seen:
            raise StepError(f"{path}: duplicate column {name!r} in header")
        seen.add(name)
    check_header(path, header, expected)
    if not rows:
        raise StepError(f"{path}: no data rows (header only)")

    cells = pd.DataFrame(rows, columns=header, dtype=str)
    line_numbers = np.asarray(lines)
    columns = {}
    for name in header:
        columns[name] = _parse_column(path, name, cells[name], line_numbers)

    target = columns[TARGET]
    missing_target = np.flatnonzero(np.isnan(target))
    if missing_target.size:
        line = int(line_numbers[missing_target[0]])
        raise StepError(f"{path}: missing value in column {TARGET!r} at line {line}")
    invalid = np.flatnonzero((target != 0) & (target != 1))
    if invalid.size:
        i = int(invalid[0])
        raise StepError(
            f"{path}: invalid value {cells[TARGET].iloc[i].strip()!r} in column {TARGET!r} "
            f"at line {int(line_numbers[i])} (expected 0 or 1)"
        )
    for name in header:
        if name != TARGET and np.isnan(columns[name]).all():
            raise StepError(f"{path}: column {name!r} has no values")

    frame = pd.DataFrame(columns, columns=header)
    for name in header:  # keep integer columns integer in the written splits ("3", not "3.0")
        values = columns[name]
        integral = not np.isnan(values).any() and np.array_equal(values, np.floor(values))
        if integral and np.abs(values).max() < 2**53:
            frame[name] = values.astype(np.int64)
    return frame


def check_columns(columns: list[str]) -> tuple[str, ...]:
    """The ``--columns`` schema: unique names, ``target`` among them, at least one feature."""
    if len(set(columns)) != len(columns):
        raise StepError("--columns: duplicate column names")
    if TARGET not in columns:
        raise StepError(f"--columns: no {TARGET!r} column")
    if len(columns) < 2:
        raise StepError(f"--columns: no feature columns besides {TARGET!r}")
    return tuple(columns)


def load_dataset(
    input_path: Path, min_rows: int, expected: tuple[str, ...]
) -> tuple[pd.DataFrame, str]:
    """All CSV (else Parquet) files under input_path, validated and concatenated: (frame,
    where) where
    ``where`` names the file (or the directory and file count) for later messages. Columns:
    ``target`` first, then the features in ``expected`` order."""
    files = find_input_files(input_path)
    columns = [TARGET] + [c for c in expected if c != TARGET]
    frames = [read_data_file(path, expected)[columns] for path in files]
    data = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    kind = "Parquet" if _is_parquet(files[0]) else "CSV"
    where = str(files[0]) if len(files) == 1 else f"{input_path} ({len(files)} {kind} files)"
    if len(data) < min_rows:
        raise StepError(f"{where}: too few rows ({len(data)} < {min_rows})")
    classes = sorted(set(int(v) for v in data[TARGET]))
    if len(classes) < 2:
        raise StepError(f"{where}: column {TARGET!r} holds a single class ({classes[0]})")
    return data, where


# ---- split and transform ----------------------------------------------------------------------


def split_dataset(
    data: pd.DataFrame, validation_fraction: float, test_fraction: float, seed: int, where: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Stratified, seeded train/validation/test split; rows keep their input order."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(data))
    labels = data[TARGET].to_numpy()
    # Absolute sizes (rounded fractions of the whole): no float surprises in the second split.
    n_test = max(1, round(test_fraction * len(data)))
    n_validation = max(1, round(validation_fraction * len(data)))
    try:
        rest, test = train_test_split(index, test_size=n_test, random_state=seed, stratify=labels)
        train, validation = train_test_split(
            rest, test_size=n_validation, random_state=seed, stratify=labels[rest]
        )
    except ValueError as exc:
        raise StepError(f"{where}: cannot split: {' '.join(str(exc).split())}") from None
    train_frame, validation_frame, test_frame = (
        data.iloc[np.sort(part)].reset_index(drop=True) for part in (train, validation, test)
    )
    return train_frame, validation_frame, test_frame


def load_model_format(code_dir: Path) -> ModuleType:
    path = code_dir / MODEL_FORMAT_FILE
    if not path.is_file():
        raise StepError(f"{code_dir}: no {MODEL_FORMAT_FILE} (is the model_code input mapped?)")
    spec = importlib.util.spec_from_file_location("model_format", path)
    if spec is None or spec.loader is None:
        raise StepError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules["model_format"] = module
    spec.loader.exec_module(module)
    return module


def write_split(frame: pd.DataFrame, directory: Path, filename: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    frame.to_csv(path, index=False)
    return path


# ---- entry point --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Validate, split and fit the feature transform.")
    parser.add_argument("--input", type=Path, default=Path("/opt/ml/processing/input/raw"))
    # Given by the pipeline on every run (no defaults: the contract is their one source).
    parser.add_argument("--data-version", required=True)
    parser.add_argument("--columns", nargs="+", required=True)
    parser.add_argument(
        "--model-code-dir", type=Path, default=Path("/opt/ml/processing/input/model_code")
    )
    parser.add_argument("--train-dir", type=Path, default=Path("/opt/ml/processing/output/train"))
    parser.add_argument(
        "--validation-dir", type=Path, default=Path("/opt/ml/processing/output/validation")
    )
    parser.add_argument("--test-dir", type=Path, default=Path("/opt/ml/processing/output/test"))
    parser.add_argument(
        "--transform-dir", type=Path, default=Path("/opt/ml/processing/output/transform")
    )
    parser.add_argument("--features-dir", type=Path, default=None)
    parser.add_argument("--validation-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--min-rows", type=int, default=50)
    parser.add_argument("--failure-file", type=Path, default=Path("/opt/ml/output/message"))
    return parser


def run(args: argparse.Namespace) -> None:
    for name in ("validation_fraction", "test_fraction"):
        value = getattr(args, name)
        if not 0.0 < value < 1.0:
            raise StepError(f"--{name.replace('_', '-')} must be in (0, 1), got {value}")
    if args.validation_fraction + args.test_fraction >= 1.0:
        raise StepError("--validation-fraction + --test-fraction must be below 1")

    version = args.data_version.strip()
    if not version:
        raise StepError(
            "InputDataVersion is empty: start the execution with the version of its input data "
            "(e.g. a date or commit), so that no cached result stands in for other data"
        )
    if re.fullmatch(DATA_VERSION_PATTERN, version) is None:
        raise StepError(
            f"InputDataVersion {version!r} is not a valid version: 1-128 characters from "
            "letters, digits, spaces and _.:/=+-@ (not starting or ending with a space)"
        )
    expected = check_columns(args.columns)
    model_format = load_model_format(args.model_code_dir)
    data, where = load_dataset(args.input, args.min_rows, expected)
    train, validation, test = split_dataset(
        data, args.validation_fraction, args.test_fraction, args.seed, where
    )
    features = [c for c in data.columns if c != TARGET]
    transform = model_format.FeatureTransform.fit(features, train[features].to_numpy())

    write_split(train, args.train_dir, TRAIN_FILE)
    write_split(validation, args.validation_dir, VALIDATION_FILE)
    write_split(test, args.test_dir, TEST_FILE)
    args.transform_dir.mkdir(parents=True, exist_ok=True)
    transform.save(args.transform_dir / model_format.TRANSFORM_FILE)
    if args.features_dir is not None:
        write_split(train[features], args.features_dir, FEATURES_FILE)
    counts = ", ".join(
        f"{name} {len(part)} ({int(part[TARGET].sum())} positive)"
        for name, part in (("train", train), ("validation", validation), ("test", test))
    )
    print(f"{where} (version {version}): {len(data)} rows, {len(features)} features -> {counts}")


def _report_failure(message: str, failure_file: Path | None) -> None:
    message = " ".join(message.split())
    print(f"ERROR: {message}", file=sys.stderr)
    if failure_file is not None:
        try:
            failure_file.parent.mkdir(parents=True, exist_ok=True)
            failure_file.write_text(message + "\n", encoding="utf-8")
        except OSError:
            pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except StepError as exc:
        _report_failure(str(exc), args.failure_file)
        return 1
    except Exception as exc:  # unexpected: keep the traceback in the logs
        traceback.print_exc()
        _report_failure(f"unexpected error: {type(exc).__name__}: {exc}", args.failure_file)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
