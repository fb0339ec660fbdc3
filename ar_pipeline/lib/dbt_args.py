"""Builds the dbt command line for a run; pure so it is unit-tested without dbt."""

from __future__ import annotations

import json
from datetime import date, datetime
from zoneinfo import ZoneInfo


def today_in(timezone: str) -> date:
    """The calendar date in the company's time zone (AR ages in local business days)."""
    return datetime.now(ZoneInfo(timezone)).date()


def parse_as_of(value: str | None, timezone: str) -> date:
    """`YYYY-MM-DD` → date; None → today in `timezone`. Errors say what was expected."""
    if value is None or value == "":
        return today_in(timezone)
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"as_of_date {value!r} is not a date in the form YYYY-MM-DD") from exc


def dbt_build_args(as_of: date, extra_vars: dict | None = None) -> list[str]:
    """`dbt build` with the as-of date passed explicitly: models never read the clock."""
    variables = {"as_of_date": as_of.isoformat(), **(extra_vars or {})}
    return ["build", "--vars", json.dumps(variables, sort_keys=True)]
