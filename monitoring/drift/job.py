"""The drift job: captured requests of a window against the training baseline, reports out.

    python -m monitoring.drift.job \\
        --reference /opt/ml/processing/input/baseline/reference.csv \\
        --capture-dir /opt/ml/processing/input/capture \\
        --window-start 2026-01-15T10:00:00Z --window-end 2026-01-15T12:00:00Z \\
        --endpoint-name mlops-prod-endpoint --output-dir /opt/ml/processing/output/report

Inputs are local files, so a network-isolated SageMaker Processing job can run it:

* ``--reference``: the training baseline's reference sample, a CSV with a header naming the
  model's features in the model's order (a ``target`` column, if present, is ignored); or a
  directory holding ``reference.csv``. The header defines the features compared and the column
  order of header-less CSV requests.
* ``--capture-dir``: a local copy of ``<DestinationS3Uri>/<endpoint>/<variant>/`` (a Processing
  input with ``S3DataType: S3Prefix`` on that prefix); files outside the window are skipped.
  Or, with ``--preselected``, the files of a ``ManifestFile`` input built by the launcher with
  ``capture.list_window_keys`` + ``capture.window_manifest`` (only the window is downloaded):
  every ``*.jsonl`` below the directory is read, whatever its relative path.

Outputs in ``--output-dir``: ``drift_report.json``, ``drift_report.html`` (Evidently) and
``metric_data.json`` (the CloudWatch datums, timestamped at the window's end). With
``--publish-metrics`` the job also sends the datums with PutMetricData (needs network access to
CloudWatch, i.e. not in an isolated job). Drift is a result, not a failure: exit 0. Bad input
(window, reference, no usable captured rows) exits 1 with one line on stderr and in
``--failure-file`` (SageMaker Processing reports that file's first 1 KB as ``ExitMessage``).
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from monitoring.drift import baseline, capture, core, metrics
from pipelines.model_build.contract import TARGET_COLUMN

REFERENCE_FILE = baseline.REFERENCE_FILE
DEFAULT_FAILURE_FILE = Path("/opt/ml/output/message")


class JobError(ValueError):
    """Bad job input: reported as one line, no traceback."""


@dataclass(frozen=True)
class JobOutput:
    document: dict[str, Any]  # the JSON report
    datums: list[dict[str, Any]]
    run: core.DriftRun
    paths: tuple[Path, ...]


def load_reference(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """The reference sample and its feature names (header order, ``target`` dropped)."""
    if path.is_dir():
        path = path / REFERENCE_FILE
    if not path.is_file():
        raise JobError(f"{path}: reference file does not exist")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), [])
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise JobError(f"{path}: reference file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise JobError(f"{path}: reference file is not a readable CSV ({message})") from None
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise JobError(f"{path}: repeated column(s) in the header: {', '.join(duplicated)}")
    features = [str(c) for c in frame.columns if c != TARGET_COLUMN]
    if not features:
        raise JobError(f"{path}: no feature columns in the header")
    return frame, features


def run_drift(
    *,
    reference: pd.DataFrame,
    features: list[str],
    sources: Iterable[tuple[str, str]],
    window: capture.Window,
    output_dir: Path,
    endpoint_name: str,
    namespace: str = metrics.DEFAULT_NAMESPACE,
    drift_share: float = core.DEFAULT_DRIFT_SHARE,
    min_rows: int = core.DEFAULT_MIN_ROWS,
    context: dict[str, Any] | None = None,
) -> JobOutput:
    """Parse the capture ``sources``, compare, write the reports and ``metric_data.json``.

    The same function serves any runner: local files (this module's CLI) or S3 objects
    (``capture.s3_sources``) in a runtime that may call S3.
    """
    metrics.validate_namespace(namespace)
    data = capture.read_capture(sources, features)
    if data.files == 0:
        raise JobError(f"no capture files in window {_window_text(window)}")
    if data.rows == 0:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(data.rejected.items())) or "none"
        raise JobError(
            f"no usable captured rows in window {_window_text(window)}: {data.records} records "
            f"in {data.files} files, rejected ({reasons})"
        )
    run = core.detect_drift(
        reference,
        data.frame,
        features,
        drift_share=drift_share,
        min_rows=min_rows,
        timestamp=window.end.replace(tzinfo=None),
    )
    full_context = {
        "endpoint_name": endpoint_name,
        "window": window.to_dict(),
        "capture": data.summary(),
        **(context or {}),
    }
    document = core.report_document(run, full_context)
    json_path, html_path = core.write_reports(run, document, output_dir)
    datums = metrics.metric_data(document, endpoint_name=endpoint_name, timestamp=window.end)
    metric_path = output_dir / metrics.METRIC_DATA_FILE
    metrics.write_metric_data(metric_path, namespace, datums)
    return JobOutput(document, datums, run, (json_path, html_path, metric_path))


def _window_text(window: capture.Window) -> str:
    hours = window.hours()
    return (
        f"{window.to_dict()['start']} .. {window.to_dict()['end']} ({len(hours)} hour partitions)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Data drift of captured requests (Evidently).")
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--capture-dir", type=Path, required=True)
    parser.add_argument("--window-start", required=True, help="ISO 8601 with zone, e.g. ...Z")
    parser.add_argument("--window-end", required=True, help="ISO 8601 with zone (exclusive)")
    parser.add_argument("--endpoint-name", required=True)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--namespace", default=metrics.DEFAULT_NAMESPACE)
    parser.add_argument("--drift-share", type=float, default=core.DEFAULT_DRIFT_SHARE)
    parser.add_argument("--min-rows", type=int, default=core.DEFAULT_MIN_ROWS)
    parser.add_argument("--model-package-arn", default=None, help="recorded in the report")
    parser.add_argument("--reference-uri", default=None, help="recorded in the report")
    parser.add_argument(
        "--preselected",
        action="store_true",
        help="--capture-dir holds only the window's files (a ManifestFile input): read them all",
    )
    parser.add_argument("--publish-metrics", action="store_true")
    parser.add_argument("--failure-file", type=Path, default=DEFAULT_FAILURE_FILE)
    return parser


def run(args: argparse.Namespace) -> JobOutput:
    window = capture.Window.parse(args.window_start, args.window_end)
    if args.min_rows < 1:
        raise JobError(f"--min-rows must be at least 1, got {args.min_rows}")
    reference, features = load_reference(args.reference)
    if args.preselected:
        files = capture.local_capture_files(args.capture_dir)
    else:
        files = capture.local_window_files(args.capture_dir, window)
    if not files:
        raise JobError(
            f"{args.capture_dir}: no capture files (yyyy/mm/dd/hh/*.jsonl) in window "
            f"{_window_text(window)}"
        )
    context = {
        "reference": args.reference_uri or str(args.reference),
        "model_package_arn": args.model_package_arn,
    }
    output = run_drift(
        reference=reference,
        features=features,
        sources=capture.local_sources(files),
        window=window,
        output_dir=args.output_dir,
        endpoint_name=args.endpoint_name,
        namespace=args.namespace,
        drift_share=args.drift_share,
        min_rows=args.min_rows,
        context=context,
    )
    if args.publish_metrics:
        import boto3

        calls = metrics.publish_metric_data(
            boto3.client("cloudwatch"), args.namespace, output.datums
        )
        print(f"published {len(output.datums)} metric datums in {calls} PutMetricData call(s)")
    return output


def describe(output: JobOutput) -> str:
    cap = output.document["context"]["capture"]
    lines = [
        f"captured: {cap['records']} records in {cap['files']} files -> {cap['rows']} rows, "
        f"{cap['rejected_records']} records rejected",
        core.format_table(output.run.result),
        "reports: " + ", ".join(str(p) for p in output.paths),
    ]
    return "\n".join(lines)


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
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        output = run(args)
    except (JobError, capture.CaptureError, core.DriftInputError, metrics.MetricsError) as exc:
        _report_failure(str(exc), args.failure_file)
        return 1
    except Exception as exc:  # unexpected: keep the traceback in the logs
        traceback.print_exc()
        _report_failure(f"unexpected error: {type(exc).__name__}: {exc}", args.failure_file)
        return 1
    print(describe(output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
