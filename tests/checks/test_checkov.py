"""checkov's CloudFormation checks over every synthesized template: zero failures, and every skip
recorded in the template metadata of its one resource with a specific reason.

checkov conflicts with the app's pinned boto3, so it lives in its own pinned venv, ``.venv-tools``
(``make install``, from requirements-tools.txt). It runs over the session's assembly once.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3

from infra.compliance import (
    MIN_REASON_LENGTH,
    STAGE_CHECKOV_SKIPS,
    CheckovSkip,
    CheckovSkips,
    skip_checkov,
)

REPO = Path(__file__).resolve().parents[2]
CHECKOV = REPO / ".venv-tools" / "bin" / "checkov"


def run_checkov(files: list[Path]) -> dict[str, Any]:
    """checkov's JSON report over CloudFormation templates (offline: --skip-download)."""
    assert CHECKOV.exists(), f"{CHECKOV} is missing: run make install"
    result = subprocess.run(
        [
            str(CHECKOV),
            "--framework",
            "cloudformation",
            "--skip-download",
            "--compact",
            "--output",
            "json",
            "--file",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    # one report per framework; an empty run prints a bare summary instead
    (cloudformation,) = [r for r in (report if isinstance(report, list) else [report])]
    assert cloudformation["check_type"] == "cloudformation", cloudformation
    return dict(cloudformation)


FIXTURE_REASON = "Test fixture: proves a recorded skip reaches checkov with its reason."


def _bare_stack(app: cdk.App, id_: str) -> cdk.Stack:
    stack = cdk.Stack(app, id_, env=cdk.Environment(account="111111111111", region="us-east-1"))
    s3.Bucket(stack, "Bucket")
    lambda_.Function(
        stack,
        "Function",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return event\n"),
        environment={"STAGE": "test"},
    )
    return stack


@pytest.fixture(scope="module")
def fixture_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two non-compliant stacks: one bare, one with the same resources skipped with reasons."""
    outdir = tmp_path_factory.mktemp("checkov-fixture")
    app = cdk.App(outdir=str(outdir))
    _bare_stack(app, "Bare")
    skipped = _bare_stack(app, "Skipped")
    skip_checkov(skipped.node.find_child("Bucket"), "CKV_AWS_18", FIXTURE_REASON)
    cdk.Aspects.of(skipped).add(
        CheckovSkips(
            [CheckovSkip("AWS::Lambda::Function", "CKV_AWS_117", FIXTURE_REASON + " (aspect)")]
        )
    )
    app.synth()
    return {name: outdir / f"{name}.template.json" for name in ("Bare", "Skipped")}


@pytest.fixture(scope="module")
def report(template_files: list[Path], fixture_templates: dict[str, Path]) -> dict[str, Any]:
    """One checkov run over the session's assembly and the two fixture templates."""
    return run_checkov([*template_files, *fixture_templates.values()])


def _results(report: dict[str, Any], kind: str, files: list[Path]) -> list[dict[str, Any]]:
    wanted = {str(f.resolve()) for f in files}
    return [r for r in report["results"][kind] if str(Path(r["file_abs_path"]).resolve()) in wanted]


def _failures(report: dict[str, Any], files: list[Path]) -> list[str]:
    return [
        f"{f['check_id']} {f['check_name']} on {f['resource']} in {f['file_abs_path']}"
        for f in _results(report, "failed_checks", files)
    ]


def test_checkov_reports_no_failure_on_any_template(
    report: dict[str, Any], template_files: list[Path]
) -> None:
    assert _failures(report, template_files) == []
    assert report["summary"]["parsing_errors"] == 0
    assert len(_results(report, "passed_checks", template_files)) > 500
    # every template was read: each has resources that checkov checked
    read = {
        str(Path(r["file_abs_path"]).resolve())
        for kind in ("passed_checks", "failed_checks", "skipped_checks")
        for r in _results(report, kind, template_files)
    }
    assert read == {str(f.resolve()) for f in template_files}


def test_every_skip_is_in_template_metadata_with_a_specific_reason(
    report: dict[str, Any], template_files: list[Path]
) -> None:
    recorded = {}
    for path in template_files:
        for logical_id, resource in json.loads(path.read_text())["Resources"].items():
            for entry in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                recorded[(path.name, logical_id, entry["id"])] = entry["comment"]
    skipped = _results(report, "skipped_checks", template_files)
    assert skipped, "no skip at all: the metadata did not reach checkov"
    for check in skipped:
        logical_id = check["resource"].split(".", 1)[1]
        key = (Path(check["file_abs_path"]).name, logical_id, check["check_id"])
        assert key in recorded, f"{key} skipped without template metadata"
        comment = check["check_result"]["suppress_comment"]
        assert comment == recorded[key]
        assert len(comment.strip()) >= MIN_REASON_LENGTH


def test_checkov_fails_non_compliant_resources_and_honours_recorded_skips(
    report: dict[str, Any], fixture_templates: dict[str, Path]
) -> None:
    def results(kind: str, stack: str) -> dict[str, str | None]:
        return {
            r["check_id"]: r["check_result"].get("suppress_comment")
            for r in _results(report, kind, [fixture_templates[stack]])
        }

    bare_failed = results("failed_checks", "Bare")
    assert {"CKV_AWS_18", "CKV_AWS_117", "CKV_AWS_115", "CKV_AWS_173"} <= set(bare_failed)
    assert results("skipped_checks", "Bare") == {}
    assert results("skipped_checks", "Skipped") == {
        "CKV_AWS_18": FIXTURE_REASON,
        "CKV_AWS_117": FIXTURE_REASON + " (aspect)",
    }
    assert set(results("failed_checks", "Skipped")) == set(bare_failed) - {
        "CKV_AWS_18",
        "CKV_AWS_117",
    }


def test_skip_checkov_keeps_one_entry_per_check_and_merges_checks() -> None:
    stack = cdk.Stack(cdk.App(), "S")
    bucket = s3.Bucket(stack, "Bucket")
    skip_checkov(bucket, "CKV_AWS_18", "First reason that is long enough to be specific.")
    skip_checkov(bucket, "CKV_AWS_21", "Another check, another specific reason for it.")
    skip_checkov(bucket, "CKV_AWS_18", "Replaced reason that is long enough to be specific.")
    cfn = bucket.node.default_child
    assert isinstance(cfn, cdk.CfnResource)
    assert cfn.get_metadata("checkov") == {
        "skip": [
            {"id": "CKV_AWS_21", "comment": "Another check, another specific reason for it."},
            {"id": "CKV_AWS_18", "comment": "Replaced reason that is long enough to be specific."},
        ]
    }


@pytest.mark.parametrize(
    ("check_id", "reason", "match"),
    [
        ("CKV_AWS_18", "", "specific reason"),
        ("CKV_AWS_18", "TODO", "specific reason"),
        ("CKV_AWS_18", "short", "specific reason"),
        ("AWS_18", "A reason that is certainly long enough to pass.", "check id"),
        ("CKV_GCP_1", "A reason that is certainly long enough to pass.", "check id"),
    ],
)
def test_skip_checkov_rejects_bad_ids_and_weak_reasons(
    check_id: str, reason: str, match: str
) -> None:
    bucket = s3.Bucket(cdk.Stack(cdk.App(), "S"), "Bucket")
    with pytest.raises(ValueError, match=match):
        skip_checkov(bucket, check_id, reason)
    with pytest.raises(ValueError, match=match):
        CheckovSkips([CheckovSkip("AWS::S3::Bucket", check_id, reason)])


def test_stage_wide_skips_name_a_resource_type_and_a_real_reason() -> None:
    for skip in STAGE_CHECKOV_SKIPS:
        assert skip.resource_type.startswith("AWS::") and len(skip.reason) >= MIN_REASON_LENGTH
