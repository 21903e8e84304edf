"""``make drift-local``: the drift job on the two shipped batches, against the bundled dataset.

    python -m monitoring.drift.local_run [--output-dir .work/drift-local]

For each batch (``clean``, ``shifted``) it runs ``monitoring.drift.job`` -- the entry point a
Processing job runs -- on the batch's capture files (``data/capture/<batch>/...``, window
``batches.WINDOW_START .. WINDOW_END``) with the bundled dataset's features as the reference,
and prints the per-feature results. Reports land in ``<output-dir>/<batch>/``. Exits 1 unless
drift is found on the shifted batch and not on the clean one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from monitoring.drift import batches, job
from pipelines.model_build.contract import BUNDLED_DATASET

EXPECTED_DRIFT = {"clean": False, "shifted": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the drift job on the shipped batches.")
    parser.add_argument("--output-dir", type=Path, default=Path(".work/drift-local"))
    parser.add_argument("--data-dir", type=Path, default=batches.DATA_DIR)
    args = parser.parse_args(argv)

    reference = batches.REPO_ROOT / BUNDLED_DATASET
    verdicts: dict[str, bool] = {}
    for name in batches.BATCHES:
        out_dir = args.output_dir / name
        (out_dir / "failure").unlink(missing_ok=True)  # a previous run's, if it failed
        print(f"== {name} batch vs the bundled dataset ({reference.name}) ==", flush=True)
        code = job.main(
            [
                "--reference",
                str(reference),
                "--capture-dir",
                str(batches.capture_root(args.data_dir, name)),
                "--window-start",
                batches.WINDOW_START,
                "--window-end",
                batches.WINDOW_END,
                "--endpoint-name",
                batches.ENDPOINT,
                "--output-dir",
                str(out_dir),
                "--reference-uri",
                BUNDLED_DATASET,
                "--failure-file",
                str(out_dir / "failure"),
            ]
        )
        if code != 0:
            return code
        report = json.loads((out_dir / "drift_report.json").read_text(encoding="utf-8"))
        verdicts[name] = bool(report["summary"]["dataset_drift"])
        print()

    ok = verdicts == EXPECTED_DRIFT
    for name, drift in verdicts.items():
        print(f"{name}: dataset drift {'FOUND' if drift else 'not found'}")
    print("as expected (drift on the shifted batch only)" if ok else "UNEXPECTED drift verdicts")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
