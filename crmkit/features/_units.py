"""Explicit time units. A duration always says its unit; there is no hidden 30-day month."""

from __future__ import annotations

import polars as pl

from crmkit._params import check_choice

__all__ = ["PERIODS", "UNITS", "UNIT_DAYS", "period_start", "unit_suffix"]

UNITS = ("days", "weeks", "calendar_months", "mean_months")
"""Units a duration can be expressed in. ``mean_months`` is 30.4375 days (365.25 / 12);
``calendar_months`` counts month boundaries, so it goes with calendar-month periods."""

PERIODS = ("days", "weeks", "calendar_months")
"""Granularities at which purchases are collapsed (purchases in one period count once)."""

UNIT_DAYS = {"days": 1.0, "weeks": 7.0, "mean_months": 30.4375}
"""Length of each fixed-length unit in days."""


def period_start(expr: pl.Expr, period: str) -> pl.Expr:
    """Map a date or datetime expression to the (Date) start of its period.

    Weeks start on Monday (ISO weeks, the same as pandas' ``W-SUN`` periods).

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> df = pl.DataFrame({"d": [dt.date(2024, 5, 15)]})
    >>> df.select(period_start(pl.col("d"), "weeks"))["d"][0]
    datetime.date(2024, 5, 13)
    """
    check_choice(period, PERIODS, "period", "period_start")
    day = expr.cast(pl.Date)
    if period == "days":
        return day
    if period == "weeks":
        return day.dt.truncate("1w")
    return day.dt.truncate("1mo")


def unit_suffix(unit: str) -> str:
    """The suffix that duration columns in ``unit`` carry, e.g. ``recency_weeks``.

    Examples
    --------
    >>> unit_suffix("weeks")
    'weeks'
    """
    return check_choice(unit, UNITS, "unit", "unit_suffix")
