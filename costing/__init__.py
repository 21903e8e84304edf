"""Idle cost per stage and cost per 1,000 requests per endpoint, from the synthesized templates
and the price table in ``costing/prices`` (README "Cost"). Entry point: ``python -m costing``."""

from costing.estimate import (
    BUDGETS_USD,
    PRICED_TYPES,
    ZERO_AT_IDLE,
    CostingError,
    EndpointCost,
    LineItem,
    PriceTable,
    StageCost,
    load_prices,
    stage_costs,
)

__all__ = [
    "BUDGETS_USD",
    "PRICED_TYPES",
    "ZERO_AT_IDLE",
    "CostingError",
    "EndpointCost",
    "LineItem",
    "PriceTable",
    "StageCost",
    "load_prices",
    "stage_costs",
]
