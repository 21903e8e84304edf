"""preprocess.py: validation messages, stratified seeded split, transform fitted on train only."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from mb_helpers import (
    BUNDLED_CSV,
    DATA_VERSION,
    MODEL_CODE_DIR,
    SCRIPTS_DIR,
    preprocess_args,
    synthetic_frame,
    write_csv,
)

from pipelines.model_build import contract as c


def run_ok(preprocess: ModuleType, input_path: Path, out: Path, *extra: str) -> None:
    assert preprocess.main(preprocess_args(input_path, out, *extra)) == 0


def test_writes_raw_stratified_splits_target_first(
    preprocess: ModuleType, make_csv: Callable[..., Path], tmp_path: Path
) -> None:
    source = make_csv(rows=100)
    out = tmp_path / "out"
    run_ok(preprocess, source, out)
    original = pd.read_csv(source)
    parts = {
        name: pd.read_csv(out / name / f"{name}.csv") for name in ("train", "validation", "test")
    }
    assert [len(p) for p in parts.values()] == [70, 15, 15]
    for part in parts.values():
        assert list(part.columns) == ["target", "a", "b", "c"]
        assert set(part["target"]) == {0, 1}  # stratified: both classes everywhere
        assert abs(part["target"].mean() - 0.5) < 0.1
    # Raw, untransformed values: the splits partition the input rows exactly.
    combined = pd.concat(parts.values()).sort_values(["a", "b"]).reset_index(drop=True)
    expected = original[["target", "a", "b", "c"]].sort_values(["a", "b"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(combined, expected)


def test_split_is_deterministic_and_seeded(
    preprocess: ModuleType, make_csv: Callable[..., Path], tmp_path: Path
) -> None:
    source = make_csv(rows=100)
    run_ok(preprocess, source, tmp_path / "one")
    run_ok(preprocess, source, tmp_path / "two")
    run_ok(preprocess, source, tmp_path / "three", "--seed", "7")
    for name in ("train/train.csv", "validation/validation.csv", "test/test.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    one = (tmp_path / "one" / "train/train.csv").read_bytes()
    assert one != (tmp_path / "three" / "train/train.csv").read_bytes()
    transform = "transform/feature_transform.json"
    assert (tmp_path / "one" / transform).read_bytes() == (
        tmp_path / "two" / transform
    ).read_bytes()


def test_transform_is_fitted_on_train_split_only(
    preprocess: ModuleType, model_format: ModuleType, tmp_path: Path
) -> None:
    frame = synthetic_frame(rows=100)
    frame.loc[frame.index[::10], "a"] = np.nan  # some missing values to impute
    source = write_csv(tmp_path / "raw" / "data.csv", frame)
    out = tmp_path / "out"
    run_ok(preprocess, source, out)
    transform = model_format.FeatureTransform.load(out / "transform" / "feature_transform.json")
    train = pd.read_csv(out / "train" / "train.csv")
    assert transform.features == ("a", "b", "c")
    assert transform.medians[0] == pytest.approx(np.nanmedian(train["a"]))
    assert transform.means[1] == pytest.approx(train["b"].mean())
    assert transform.scales[1] == pytest.approx(train["b"].std(ddof=0))
    assert transform.means[1] != pytest.approx(frame["b"].mean(), abs=1e-9)  # not all rows
    # Missing values stay missing in the raw splits.
    total_missing = sum(
        pd.read_csv(out / n / f"{n}.csv")["a"].isna().sum() for n in ("train", "validation", "test")
    )
    assert total_missing == 10


def test_reads_every_csv_in_a_directory(preprocess: ModuleType, tmp_path: Path) -> None:
    frame = synthetic_frame(rows=100)
    write_csv(tmp_path / "raw" / "part-1.csv", frame.iloc[:40])
    write_csv(tmp_path / "raw" / "z-nested" / "part-2.CSV", frame.iloc[40:])
    (tmp_path / "raw" / "README.txt").write_text("not data")
    out = tmp_path / "out"
    run_ok(preprocess, tmp_path / "raw", out)
    sizes = [len(pd.read_csv(out / n / f"{n}.csv")) for n in ("train", "validation", "test")]
    assert sum(sizes) == 100
    assert list(pd.read_csv(out / "test" / "test.csv").columns) == ["target", "a", "b", "c"]


GOOD_HEADER = "a,b,c,target\n"


def _rows(n: int, start: int = 0) -> str:
    return "".join(f"{i * 0.5},{i % 3},{i % 5},{i % 2}\n" for i in range(start, start + n))


# (case id, files to write {name: content}, input (relative to raw dir), expected message tail)
BAD_INPUTS = [
    ("missing-file", {}, "nope.csv", "nope.csv: input path does not exist"),
    ("no-csv-in-dir", {"notes.txt": "x"}, ".", "raw: no CSV or Parquet files in directory"),
    ("empty-file", {"data.csv": ""}, "data.csv", "data.csv: file empty"),
    ("header-only", {"data.csv": GOOD_HEADER}, "data.csv", "data.csv: no data rows (header only)"),
    (
        "missing-target",
        {"data.csv": "a,b,c,label\n" + _rows(60)},
        "data.csv",
        "data.csv: missing column 'target'",
    ),
    (
        "extra-column",
        {"data.csv": "a,b,c,d,target\n" + "".join(f"{i},{i},{i},{i},{i % 2}\n" for i in range(60))},
        "data.csv",
        "data.csv: unexpected column 'd'",
    ),
    (
        "reordered-columns",
        {"data.csv": "b,a,c,target\n" + _rows(60)},
        "data.csv",
        "data.csv: column 'b' at position 1, expected 'a' (columns must be in the fixed order)",
    ),
    (
        "target-not-last",
        {"data.csv": "target,a,b,c\n" + _rows(60)},
        "data.csv",
        "data.csv: column 'target' at position 1, expected 'a' "
        "(columns must be in the fixed order)",
    ),
    (
        "reordered-second-file",
        {"a.csv": GOOD_HEADER + _rows(40), "b.csv": "a,c,b,target\n" + _rows(40)},
        ".",
        "b.csv: column 'c' at position 2, expected 'b' (columns must be in the fixed order)",
    ),
    (
        "non-numeric",
        {"data.csv": GOOD_HEADER + _rows(3) + "1.0,abc,2,1\n" + _rows(60, 3)},
        "data.csv",
        "data.csv: non-numeric value 'abc' in column 'b' at line 5",
    ),
    (
        "too-few-rows",
        {"data.csv": GOOD_HEADER + _rows(12)},
        "data.csv",
        "data.csv: too few rows (12 < 50)",
    ),
    (
        "bad-target",
        {"data.csv": GOOD_HEADER + _rows(5) + "1.0,2,3,2\n" + _rows(60, 5)},
        "data.csv",
        "data.csv: invalid value '2' in column 'target' at line 7 (expected 0 or 1)",
    ),
    (
        "missing-target-value",
        {"data.csv": GOOD_HEADER + _rows(2) + "1.0,2,3,\n" + _rows(60, 2)},
        "data.csv",
        "data.csv: missing value in column 'target' at line 4",
    ),
    (
        "empty-column",
        {"data.csv": GOOD_HEADER + "".join(f"{i},{i},,{i % 2}\n" for i in range(60))},
        "data.csv",
        "data.csv: column 'c' has no values",
    ),
    (
        "no-header",
        {"data.csv": _rows(60)},
        "data.csv",
        "data.csv: no header row (the first line holds numbers)",
    ),
    (
        "ragged-row",
        {"data.csv": GOOD_HEADER + _rows(2) + "1,2\n" + _rows(60, 2)},
        "data.csv",
        "data.csv: line 4 has 2 fields, expected 4",
    ),
    (
        "inconsistent-files",
        {"a.csv": GOOD_HEADER + _rows(40), "b.csv": "a,b,target\n" + "1,2,0\n" * 40},
        ".",
        "b.csv: missing column 'c'",
    ),
    (
        "single-class",
        {"data.csv": GOOD_HEADER + "".join(f"{i},{i},{i},1\n" for i in range(60))},
        "data.csv",
        "data.csv: column 'target' holds a single class (1)",
    ),
    (
        "infinite",
        {"data.csv": GOOD_HEADER + "inf,1,1,1\n" + _rows(60)},
        "data.csv",
        "data.csv: non-finite value 'inf' in column 'a' at line 2",
    ),
]


@pytest.mark.parametrize(
    ("files", "target", "expected"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_fails_with_one_line_naming_file_and_problem(
    preprocess: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
    target: str,
    expected: str,
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, content in files.items():
        (raw / name).write_text(content)
    out = tmp_path / "out"
    code = preprocess.main(preprocess_args(raw / target if target != "." else raw, out))
    assert code != 0
    stderr = capsys.readouterr().err
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("ERROR: ")
    assert lines[0].endswith(expected), lines[0]
    assert str(raw) in lines[0]  # the full path of the file (or directory) is named
    message = (out / "failure" / "message").read_text()
    assert message == lines[0].removeprefix("ERROR: ") + "\n"
    assert not (out / "train").exists()  # nothing written on failure


def test_missing_model_code_dir_is_reported(
    preprocess: ModuleType, make_csv: Callable[..., Path], tmp_path: Path
) -> None:
    args = preprocess_args(make_csv(), tmp_path / "out")
    args[args.index("--model-code-dir") + 1] = str(tmp_path / "nowhere")
    assert preprocess.main(args) == 1
    assert "no model_format.py" in (tmp_path / "out" / "failure" / "message").read_text()


def test_bad_fractions_are_rejected(
    preprocess: ModuleType, make_csv: Callable[..., Path], tmp_path: Path
) -> None:
    args = preprocess_args(
        make_csv(), tmp_path / "out", "--validation-fraction", "0.6", "--test-fraction", "0.5"
    )
    assert preprocess.main(args) == 1
    assert "must be below 1" in (tmp_path / "out" / "failure" / "message").read_text()


def test_cli_exits_non_zero_without_traceback(tmp_path: Path) -> None:
    source = tmp_path / "raw" / "short.csv"
    source.parent.mkdir()
    source.write_text(GOOD_HEADER + _rows(12))
    completed = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS_DIR / "preprocess.py"),
            *preprocess_args(source, tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    assert completed.stderr == f"ERROR: {source}: too few rows (12 < 50)\n"
    assert MODEL_CODE_DIR.is_dir()


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("", "InputDataVersion is empty: start the execution with the version of its input data"),
        (
            "   ",
            "InputDataVersion is empty: start the execution with the version of its input data",
        ),
        ("a,b", "InputDataVersion 'a,b' is not a valid version: 1-128 characters from letters"),
        ("v" * 129, "is not a valid version: 1-128 characters"),
    ],
)
def test_a_missing_or_invalid_data_version_is_rejected_before_reading(
    preprocess: ModuleType,
    make_csv: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    version: str,
    expected: str,
) -> None:
    args = preprocess_args(make_csv(), tmp_path / "out")
    args[args.index(f"--data-version={DATA_VERSION}")] = f"--data-version={version}"
    assert preprocess.main(args) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert expected in line
    assert (tmp_path / "out" / "failure" / "message").read_text() == line[len("ERROR: ") :] + "\n"
    assert not (tmp_path / "out" / "train").exists()


def test_data_version_pattern_is_the_contracts(preprocess: ModuleType) -> None:
    assert preprocess.DATA_VERSION_PATTERN == c.DATA_VERSION_PATTERN


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (["a", "b", "c"], "--columns: no 'target' column"),
        (["a", "a", "target"], "--columns: duplicate column names"),
        (["target"], "--columns: no feature columns besides 'target'"),
    ],
)
def test_a_bad_schema_argument_is_rejected(
    preprocess: ModuleType,
    make_csv: Callable[..., Path],
    tmp_path: Path,
    columns: list[str],
    expected: str,
) -> None:
    args = preprocess_args(make_csv(), tmp_path / "out")
    start = args.index("--columns") + 1
    args[start : start + 4] = columns
    assert preprocess.main(args) == 1
    assert (tmp_path / "out" / "failure" / "message").read_text() == expected + "\n"


def test_the_bundled_dataset_has_the_contracts_schema_and_keeps_its_order(
    preprocess: ModuleType, tmp_path: Path
) -> None:
    header = BUNDLED_CSV.read_text().splitlines()[0].split(",")
    assert tuple(header) == c.INPUT_COLUMNS
    assert len(c.FEATURES) == 30 and c.INPUT_COLUMNS[-1] == c.TARGET_COLUMN
    spec = c.PREPROCESS
    given = spec.arguments[spec.arguments.index("--columns") + 1 :]
    assert tuple(given) == c.INPUT_COLUMNS  # the pipeline passes the contract's schema
    args = [
        "--input", str(BUNDLED_CSV), "--data-version=bundled",
        "--model-code-dir", str(MODEL_CODE_DIR),
        "--train-dir", str(tmp_path / "train"), "--validation-dir", str(tmp_path / "validation"),
        "--test-dir", str(tmp_path / "test"), "--transform-dir", str(tmp_path / "transform"),
        "--failure-file", str(tmp_path / "message"), "--columns", *c.INPUT_COLUMNS,
    ]  # fmt: skip
    assert preprocess.main(args) == 0
    transform = json.loads((tmp_path / "transform" / c.TRANSFORM_FILE).read_text())
    assert tuple(transform["features"]) == c.FEATURES  # the order serving relies on
    train = pd.read_csv(tmp_path / "train" / c.TRAIN_FILE)
    assert tuple(train.columns) == (c.TARGET_COLUMN, *c.FEATURES)


# ---- curated Parquet (the ingestion workflow's InputDataUrl) ----------------------------------


def _write_curated(root: Path, frame: pd.DataFrame, parts: int = 2) -> Path:
    """The Glue job's layout: ``<dataset>/ingest_date=<date>/part-*.snappy.parquet`` (numeric
    columns as double, the partition only in the path) plus Spark's ``_SUCCESS`` marker."""
    dataset = root / "breast_cancer"
    chunks = np.array_split(np.arange(len(frame)), parts)
    for i, rows in enumerate(chunks):
        part = dataset / f"ingest_date=2026-11-{28 + i}" / f"part-0000{i}-abc.snappy.parquet"
        part.parent.mkdir(parents=True, exist_ok=True)
        frame.iloc[rows].astype("float64").to_parquet(part, index=False, compression="snappy")
    (dataset / "_SUCCESS").write_text("")
    return root


def test_reads_the_curated_parquet_layout_like_the_same_csv(
    preprocess: ModuleType, tmp_path: Path
) -> None:
    frame = synthetic_frame(rows=100)
    curated = _write_curated(tmp_path / "curated", frame)
    csv_source = write_csv(tmp_path / "raw" / "data.csv", frame)
    run_ok(preprocess, curated, tmp_path / "from-parquet")
    run_ok(preprocess, csv_source, tmp_path / "from-csv")
    for name in ("train", "validation", "test"):
        from_parquet = (tmp_path / "from-parquet" / name / f"{name}.csv").read_text()
        assert from_parquet == (tmp_path / "from-csv" / name / f"{name}.csv").read_text()
    transform = "transform/feature_transform.json"
    assert json.loads((tmp_path / "from-parquet" / transform).read_text()) == json.loads(
        (tmp_path / "from-csv" / transform).read_text()
    )


def test_the_bundled_dataset_as_curated_parquet_has_the_contracts_schema(
    preprocess: ModuleType, tmp_path: Path
) -> None:
    frame = pd.read_csv(BUNDLED_CSV)
    curated = _write_curated(tmp_path / "curated", frame, parts=3)
    out = tmp_path / "out"
    args = preprocess_args(curated, out, columns=c.INPUT_COLUMNS)
    assert preprocess.main(args) == 0
    header = (out / "train" / "train.csv").read_text().splitlines()[0].split(",")
    assert header == [c.TARGET_COLUMN, *c.FEATURES]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("reorder", "column 'b' at position 1, expected 'a' (columns must be in the fixed order)"),
        ("null-target", "missing value in column 'target' at line 2"),
        ("text", "non-numeric value 'x' in column 'a' at line 2"),
    ],
)
def test_bad_parquet_fails_with_one_line_naming_the_file(
    preprocess: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: str,
    expected: str,
) -> None:
    frame = synthetic_frame(rows=60).astype({"a": "object", "target": "float64"})
    if change == "reorder":
        frame = frame[["b", "a", "c", "target"]]
    elif change == "null-target":
        frame.loc[0, "target"] = None
    else:
        frame.loc[0, "a"] = "x"
        frame["a"] = frame["a"].astype(str)
    path = tmp_path / "curated" / "part-00000.parquet"
    path.parent.mkdir(parents=True)
    frame.to_parquet(path, index=False)
    assert preprocess.main(preprocess_args(tmp_path / "curated", tmp_path / "out")) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"ERROR: {path}: {expected}"


def test_csv_and_parquet_in_one_input_are_rejected(
    preprocess: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = synthetic_frame(rows=60)
    _write_curated(tmp_path / "in", frame)
    write_csv(tmp_path / "in" / "extra.csv", frame)
    assert preprocess.main(preprocess_args(tmp_path / "in", tmp_path / "out")) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.endswith("in: both CSV (1) and Parquet (2) files in directory: give one kind")


def test_an_unreadable_parquet_file_is_one_line(
    preprocess: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "in" / "part-0.parquet"
    path.parent.mkdir()
    path.write_bytes(b"not parquet")
    assert preprocess.main(preprocess_args(tmp_path / "in", tmp_path / "out")) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"ERROR: {path}: not a readable Parquet file (")
