"""``mlops synth-summary [CDK_OUT]``: what ``make synth`` produced: stages, stacks, resource
counts, the security-gate result (from the app's summary file; no jsii)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cli.errors import CliError
from infra.workspace import SUMMARY_FILE


def stage_stacks(outdir: Path, stage: str) -> list[tuple[str, int]]:
    """(stack name, resource count) for each stack of a stage's nested assembly."""
    assembly = outdir / f"assembly-{stage}"
    manifest = json.loads((assembly / "manifest.json").read_text())
    stacks = []
    for artifact in manifest["artifacts"].values():
        if artifact["type"] != "aws:cloudformation:stack":
            continue
        template = json.loads((assembly / artifact["properties"]["templateFile"]).read_text())
        name = artifact["properties"].get("stackName", artifact.get("displayName", "?"))
        stacks.append((name, len(template.get("Resources", {}))))
    return sorted(stacks)


def load_report(outdir: Path) -> dict[str, Any]:
    """The app's summary with each stage's stacks and resource counts."""
    path = outdir / SUMMARY_FILE
    if not path.is_file():
        raise CliError(f"{path} not found", "run make synth first")
    report: dict[str, Any] = json.loads(path.read_text())
    for stage in report["stages"]:
        stage["resources"] = [
            {"stack": name, "resources": count}
            for name, count in stage_stacks(outdir, stage["stage"])
        ]
    return report


def gate_passed(report: dict[str, Any]) -> bool:
    return all(s["nag_packs_passed"] == len(report["rule_packs"]) for s in report["stages"])


def render(outdir: Path, report: dict[str, Any] | None = None) -> str:
    report = report or load_report(outdir)
    lines = [f"branch: {report['branch']}", ""]
    header = f"{'stage':<34} {'kind':<10} {'account':<14} {'region':<15} {'stack':<40} resources"
    lines += [header, "-" * len(header)]
    placeholders = False
    total = 0
    for stage in report["stages"]:
        account = stage["account"] + ("*" if stage["placeholder_account"] else "")
        placeholders |= stage["placeholder_account"]
        for i, entry in enumerate(stage["resources"]):
            stack, count = entry["stack"], entry["resources"]
            total += count
            first = (
                (stage["stage"], stage["kind"], account, stage["region"]) if i == 0 else ("",) * 4
            )
            lines.append(
                f"{first[0]:<34} {first[1]:<10} {first[2]:<14} {first[3]:<15} {stack:<40} {count}"
            )
    packs = ", ".join(report["rule_packs"])
    lines += [
        "",
        f"{len(report['stages'])} stages, {total} resources",
        f"security gate ({packs}): "
        + ("0 unacknowledged findings in every stage" if gate_passed(report) else "FAILED"),
    ]
    if placeholders:
        lines.append("* placeholder account id: set your accounts in cdk.json before deploying")
    return "\n".join(lines)
