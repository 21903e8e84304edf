"""Prints what ``make synth`` produced: stages, stacks, resource counts, security-gate result.

Usage: ``python -m infra.summary cdk.out``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SUMMARY_FILE = "mlops-summary.json"  # written by the app next to the assembly (no jsii here)


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


def render(outdir: Path) -> str:
    report: dict[str, Any] = json.loads((outdir / SUMMARY_FILE).read_text())
    lines = [f"branch: {report['branch']}", ""]
    header = f"{'stage':<34} {'kind':<10} {'account':<14} {'region':<15} {'stack':<40} resources"
    lines += [header, "-" * len(header)]
    placeholders = False
    total = 0
    for stage in report["stages"]:
        account = stage["account"] + ("*" if stage["placeholder_account"] else "")
        placeholders |= stage["placeholder_account"]
        for i, (stack, count) in enumerate(stage_stacks(outdir, stage["stage"])):
            total += count
            first = (
                (stage["stage"], stage["kind"], account, stage["region"]) if i == 0 else ("",) * 4
            )
            lines.append(
                f"{first[0]:<34} {first[1]:<10} {first[2]:<14} {first[3]:<15} {stack:<40} {count}"
            )
    packs = ", ".join(report["rule_packs"])
    passed = all(s["nag_packs_passed"] == len(report["rule_packs"]) for s in report["stages"])
    lines += [
        "",
        f"{len(report['stages'])} stages, {total} resources",
        f"security gate ({packs}): "
        + ("0 unacknowledged findings in every stage" if passed else "FAILED"),
    ]
    if placeholders:
        lines.append("* placeholder account id: set your accounts in cdk.json before deploying")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    outdir = Path(argv[1] if len(argv) > 1 else "cdk.out")
    if not (outdir / SUMMARY_FILE).is_file():
        print(f"summary: {outdir}/{SUMMARY_FILE} not found: run make synth first", file=sys.stderr)
        return 1
    print(render(outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
