"""cdk-nag acknowledgments reach the cloud assembly, each with the specific reason it was given.

An acknowledgment is stored as ``aws:cdk:acknowledged-rules`` metadata on its construct and written
into the stack's metadata file in the assembly: that is what a reviewer (and ``cdk``) reads. A
reason that gets lost or emptied on the way must fail here, not pass silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3

from infra.compliance import _FINDING_ID, _WEAK_REASONS, MIN_REASON_LENGTH, acknowledge
from tests.conftest import EPHEMERAL_STAGE, SHARED_STAGES

ACK_TYPE = "aws:cdk:acknowledged-rules"
PREFIX = "Annotation::"

Ack = tuple[str, str, str]  # construct path, finding id, reason


def assembly_acknowledgments(assembly_dir: Path) -> set[Ack]:
    """Every acknowledgment recorded in one (nested) assembly's stack metadata."""
    manifest = json.loads((assembly_dir / "manifest.json").read_text())
    found: set[Ack] = set()
    for artifact in manifest["artifacts"].values():
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        # Inline, or (newer CDK) in a separate file the manifest names.
        metadata = [*(artifact.get("metadata") or {}).items()]
        if "additionalMetadataFile" in artifact:
            extra = json.loads((assembly_dir / artifact["additionalMetadataFile"]).read_text())
            metadata.extend(extra.items())
        for path, entries in metadata:
            for entry in entries:
                if entry["type"] == ACK_TYPE:
                    found.update((path, key, reason) for key, reason in entry["data"].items())
    return found


def tree_acknowledgments(scope: cdk.Stage) -> set[Ack]:
    """What the construct tree acknowledged (via infra.compliance.acknowledge)."""
    return {
        (f"/{node.node.path}", key, reason)
        for node in scope.node.find_all()
        for entry in node.node.metadata
        if entry.type == ACK_TYPE
        for key, reason in entry.data.items()
    }


def is_specific(reason: Any) -> bool:
    return (
        isinstance(reason, str)
        and len(reason.strip()) >= MIN_REASON_LENGTH
        and not _WEAK_REASONS.match(reason)
    )


@pytest.mark.parametrize("stage_id", [*SHARED_STAGES, EPHEMERAL_STAGE])
def test_every_acknowledgment_reaches_the_assembly_with_a_specific_reason(
    synthesized: Any, stage_id: str
) -> None:
    stage = synthesized.stage(stage_id)
    in_assembly = assembly_acknowledgments(Path(stage.synth().directory))
    assert in_assembly, "no acknowledgment in the assembly: the gate could not have passed"
    assert in_assembly == tree_acknowledgments(stage)
    for path, key, reason in sorted(in_assembly):
        assert key.startswith(PREFIX) and _FINDING_ID.match(key[len(PREFIX) :]), (path, key)
        assert is_specific(reason), f"{key} on {path}: reason {reason!r}"


def _tiny_stage(outdir: Path) -> tuple[cdk.App, cdk.Stage, s3.Bucket]:
    app = cdk.App(outdir=str(outdir))
    stage = cdk.Stage(app, "ack", env=cdk.Environment(account="111111111111", region="us-east-1"))
    return app, stage, s3.Bucket(cdk.Stack(stage, "Stack"), "Bucket")


def test_acknowledge_writes_the_exact_id_and_reason_into_the_assembly(tmp_path: Path) -> None:
    app, stage, bucket = _tiny_stage(tmp_path)
    reason = "Fixture bucket: proves the reason survives into the cloud assembly."
    acknowledge(bucket, "AwsSolutions-S1", reason)
    acknowledge(bucket, "AwsSolutions-IAM5[Action::s3:GetObject*]", reason + " (second)")
    app.synth()
    assert assembly_acknowledgments(Path(stage.synth().directory)) == {
        ("/ack/Stack/Bucket", f"{PREFIX}AwsSolutions-S1", reason),
        (
            "/ack/Stack/Bucket",
            f"{PREFIX}AwsSolutions-IAM5[Action::s3:GetObject*]",
            reason + " (second)",
        ),
    }


def test_an_emptied_reason_is_caught_in_the_assembly(tmp_path: Path) -> None:
    # What the suite must notice: an acknowledgment that bypasses acknowledge() with no reason.
    app, stage, bucket = _tiny_stage(tmp_path)
    cdk.Validations.of(bucket).acknowledge(cdk.Acknowledgment(id="AwsSolutions-S1", reason=""))
    app.synth()
    ((_, _, reason),) = assembly_acknowledgments(Path(stage.synth().directory))
    assert not is_specific(reason)


@pytest.mark.parametrize(
    "reason",
    [
        "",
        "   ",
        "TODO",
        "ok",
        "N/A",
        "none.",
        "suppressed",
        "ignored",
        "placeholder",
        "short reason",
        "TODO: explain why this finding does not apply here",
        "Placeholder reason until the security review is done",
        "Will fix later, see FIXME in the construct code",
    ],
)
def test_acknowledge_rejects_empty_and_placeholder_reasons(tmp_path: Path, reason: str) -> None:
    _, _, bucket = _tiny_stage(tmp_path)
    with pytest.raises(ValueError, match="specific reason"):
        acknowledge(bucket, "AwsSolutions-S1", reason)
    assert not any(entry.type == ACK_TYPE for entry in bucket.node.metadata)
