"""``mlops cost [CDK_OUT]``: each stage's estimated idle cost a month and its endpoint's cost per
1,000 requests, computed by ``costing.stage_costs`` from the synthesized templates and the price
table shipped in ``costing/prices`` (README "Cost"). This module only presents it: without the
costing module the command says so in one line and exits 4 (no number is made up here)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from cli.errors import EXIT_NOT_AVAILABLE, CliError
from cli.output import print_table


def stage_cost_report(outdir: Path) -> list[dict[str, Any]]:
    try:
        from costing.estimate import CostingError, stage_costs
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] != "costing":
            raise
        raise CliError(
            "cost report not available yet",
            "this checkout has no costing module (costing/estimate.py)",
            EXIT_NOT_AVAILABLE,
        ) from None
    try:
        costs = stage_costs(outdir)
    except CostingError as error:
        raise CliError(f"cost: {error}") from None
    return [
        {
            **dataclasses.asdict(cost),
            "idle_monthly_usd": cost.idle_monthly_usd,
            "budget_usd": cost.budget_usd,
        }
        for cost in costs
    ]


def print_costs(report: list[dict[str, Any]]) -> None:
    def money(value: float | None, digits: int = 2) -> str | None:
        return None if value is None else f"${value:,.{digits}f}"

    print_table(
        "estimated cost (USD)",
        ("stage", "kind", "region", "idle / month", "budget", "endpoint", "per 1,000 requests"),
        (
            (
                s["stage"],
                s["kind"],
                s["region"],
                money(s["idle_monthly_usd"]),
                money(s["budget_usd"]),
                (s["endpoint"] or {}).get("description"),
                money((s["endpoint"] or {}).get("per_1000_requests_usd"), 4),
            )
            for s in report
        ),
        "no stages in the assembly",
    )


def unpriced(report: list[dict[str, Any]]) -> list[str]:
    return sorted({t for s in report for t in s["unpriced"]})
