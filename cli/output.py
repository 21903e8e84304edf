"""Tables (Rich) for people, JSON for scripts (``--output json``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table


class Output(StrEnum):
    table = "table"
    json = "json"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, timedelta):
        return round(value.total_seconds())
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=_plain))


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    if isinstance(value, timedelta):
        return duration(value)
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def duration(value: timedelta) -> str:
    seconds = max(0, round(value.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def print_table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "none"
) -> None:
    table = Table(title=title, title_justify="left", expand=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    count = 0
    for row in rows:
        table.add_row(*(cell(v) for v in row))
        count += 1
    console = Console(soft_wrap=False)
    if count:
        console.print(table)
    else:
        console.print(f"{title}: {empty}")
