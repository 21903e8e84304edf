"""The security gate really fails: a non-compliant resource inside a Stage stops the synth."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3

from infra.compliance import ComplianceError, acknowledge, enforce, findings
from tests.conftest import EPHEMERAL_STAGE, SHARED_STAGES


def _stage_with_bare_bucket() -> tuple[cdk.Stage, s3.Bucket]:
    app = cdk.App()
    stage = cdk.Stage(app, "bad", env=cdk.Environment(account="111111111111", region="us-east-1"))
    stack = cdk.Stack(stage, "Stack")
    return stage, s3.Bucket(stack, "Bare")


def test_gate_fails_on_a_deliberately_non_compliant_bucket_in_a_stage() -> None:
    stage, _ = _stage_with_bare_bucket()
    with pytest.raises(ComplianceError) as raised:
        enforce(stage)
    rules = {f.rule for f in raised.value.findings}
    assert {"AwsSolutions-S1", "AwsSolutions-S10", "NIST.800.53.R5-S3BucketLoggingEnabled"} <= rules
    message = str(raised.value)
    assert "bad/Stack/Bare/Resource" in message and "AwsSolutions-S10" in message


def test_acknowledging_one_exact_finding_leaves_the_others() -> None:
    stage, bucket = _stage_with_bare_bucket()
    acknowledge(
        bucket, "AwsSolutions-S1", "Test fixture: only proves acknowledgments are honoured."
    )
    rules = {f.rule for f in findings(stage)}
    assert "AwsSolutions-S1" not in rules and "AwsSolutions-S10" in rules


@pytest.mark.parametrize("reason", ["", "TODO", "ok", "suppressed", "short reason"])
def test_acknowledgment_needs_a_specific_reason(reason: str) -> None:
    _, bucket = _stage_with_bare_bucket()
    with pytest.raises(ValueError, match="specific reason"):
        acknowledge(bucket, "AwsSolutions-S1", reason)


def test_acknowledgment_needs_an_exact_finding_id() -> None:
    _, bucket = _stage_with_bare_bucket()
    with pytest.raises(ValueError, match="finding id"):
        acknowledge(bucket, "S1", "A perfectly specific reason that is long enough.")


def test_every_stage_passed_every_rule_pack_at_synth(synthesized: Any) -> None:
    # synthesize() runs the gate on each stage before writing the assembly and raises on any
    # unacknowledged finding; the report records that every pack ran and passed.
    report = {s["stage"]: s["nag_packs_passed"] for s in synthesized.report["stages"]}
    assert report == dict.fromkeys((*SHARED_STAGES, EPHEMERAL_STAGE), 3)


def test_cfn_lint_reports_nothing_on_any_template(template_files: list[Path]) -> None:
    assert len(template_files) >= 4
    result = subprocess.run(
        [
            str(Path(__import__("sys").executable).parent / "cfn-lint"),
            "--non-zero-exit-code",
            "informational",
            "--",
            *map(str, template_files),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""
