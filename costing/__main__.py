"""``python -m costing [cdk.out] [--detail]``: one idle-cost line per stage (``make synth``).

Exit codes: 0 printed; 1 a stage has resource types the table cannot price; 2 no assembly, no
price table for a stage's region, or a price missing from it (one line on stderr).
"""

from __future__ import annotations

import sys
from pathlib import Path

from costing.estimate import CostingError, stage_costs


def main(argv: list[str]) -> int:
    args = [a for a in argv[1:] if not a.startswith("--")]
    detail = "--detail" in argv[1:]
    outdir = Path(args[0] if args else "cdk.out")
    try:
        costs = stage_costs(outdir)
    except CostingError as exc:
        print(f"costing: {exc}", file=sys.stderr)
        return 2
    for cost in costs:
        print(cost.line())
        if detail:
            for item in cost.items:
                print(f"    ${item.monthly_usd:8.2f}  {item.resource_type}: {item.detail}")
            if cost.endpoint:
                print(f"    endpoint: {cost.endpoint.basis}")
    if any(c.unpriced for c in costs):
        print("costing: unpriced resource types (add them to costing/)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
