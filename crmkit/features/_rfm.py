"""Recency-frequency-monetary summaries with lifetimes' definitions, in polars."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from crmkit._exprs import exact_sum
from crmkit._frames import Output, check_table, parse_dates, to_lazy, to_output
from crmkit._params import check_choice, check_date
from crmkit.exceptions import SchemaError
from crmkit.features._units import PERIODS, UNIT_DAYS, UNITS, period_start

__all__ = ["calibration_holdout_split", "rfm_summary", "rfm_unit"]


def _check_units(unit: str, period: str | None, owner: str) -> str:
    check_choice(unit, UNITS, "unit", owner)
    if period is None:
        period = "calendar_months" if unit == "calendar_months" else "days"
    check_choice(period, PERIODS, "period", owner)
    if (unit == "calendar_months") != (period == "calendar_months"):
        raise ValueError(
            f"The 'unit' and 'period' parameters of {owner} must both be 'calendar_months' or "
            f"neither (a calendar month has no fixed length in days). Got unit={unit!r}, "
            f"period={period!r} instead; use unit='mean_months' for 30.4375-day months."
        )
    return period


def _span(later: pl.Expr, earlier: pl.Expr, unit: str) -> pl.Expr:
    """Duration between two period-start dates, in ``unit``."""
    if unit == "calendar_months":
        return ((later.dt.year() - earlier.dt.year()) * 12
                + later.dt.month() - earlier.dt.month()).cast(pl.Float64)
    days = (later - earlier).dt.total_days().cast(pl.Float64)
    return days if unit == "days" else days / UNIT_DAYS[unit]


def _prepare(transactions: Any, customer_col: str, time_col: str, value_col: str | None,
             owner: str) -> pl.LazyFrame:
    lf = to_lazy(transactions, "transactions")
    names = lf.collect_schema().names()
    needed = [customer_col, time_col] + ([value_col] if value_col else [])
    missing = [c for c in needed if c not in names]
    if missing:
        raise SchemaError(
            f"{owner}: the transactions table has no column {', '.join(map(repr, missing))}; "
            f"it has {', '.join(names)}. Name the columns with customer_col=, time_col=, value_col=."
        )
    # the data contract: ISO date strings parsed, no null id or date, finite amounts
    lf = parse_dates(lf.select(needed), {time_col: pl.Datetime("us")}, owner)
    check_table(lf, owner, ids=(customer_col,), dates=(time_col,),
                numbers=(value_col,) if value_col else ())
    cols = [pl.col(customer_col), pl.col(time_col)]
    if value_col:
        cols.append(pl.col(value_col).cast(pl.Float64))
    return lf.select(cols)


def rfm_summary(
    transactions: Any,
    *,
    observation_end: dt.date | str | None = None,
    unit: str = "weeks",
    period: str | None = None,
    customer_col: str = "customer_id",
    time_col: str = "timestamp",
    value_col: str | None = "amount",
    output: Output = "polars",
):
    """Summarise transactions into frequency, recency, T and monetary value per customer.

    The definitions are those of lifetimes' ``summary_data_from_transaction_data``
    and of Fader, Hardie & Lee (2005): purchases are first collapsed to ``period``
    (purchases in the same period count once, their values summed), then

    - ``frequency``: number of repeat purchase periods (periods with a purchase, minus one);
    - ``recency_<unit>``: time between the first and the last purchase period;
    - ``T_<unit>``: time between the first purchase period and ``observation_end``;
    - ``monetary_value``: mean value of the repeat purchase periods (0 when frequency is 0).

    Only rows dated on or before ``observation_end`` are used. The unit is part of
    the column names, never implied.

    Parameters
    ----------
    transactions : table
        polars (eager or lazy), pandas or pyarrow table of transactions.
    observation_end : date or str, optional
        End of the observation period (inclusive). Defaults to the last transaction date.
    unit : {"days", "weeks", "calendar_months", "mean_months"}
        Unit of recency and T. ``mean_months`` is 30.4375 days.
    period : {"days", "weeks", "calendar_months"}, optional
        Granularity at which purchases collapse. Defaults to ``"days"``
        (``"calendar_months"`` when ``unit="calendar_months"``).
    customer_col, time_col, value_col : str
        Column names. ``value_col=None`` omits ``monetary_value``.
    output : {"polars", "pandas"}

    Returns
    -------
    DataFrame
        One row per customer with at least one purchase by ``observation_end``,
        sorted by customer id.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> tx = pl.DataFrame({"customer_id": ["a", "a", "a", "b"],
    ...                    "timestamp": [dt.date(2024, 1, 1), dt.date(2024, 1, 1),
    ...                                  dt.date(2024, 1, 15), dt.date(2024, 1, 8)],
    ...                    "amount": [10.0, 5.0, 20.0, 7.0]})
    >>> rfm_summary(tx, observation_end="2024-01-29")
    shape: (2, 5)
    ┌─────────────┬───────────┬───────────────┬─────────┬────────────────┐
    │ customer_id ┆ frequency ┆ recency_weeks ┆ T_weeks ┆ monetary_value │
    │ ---         ┆ ---       ┆ ---           ┆ ---     ┆ ---            │
    │ str         ┆ i64       ┆ f64           ┆ f64     ┆ f64            │
    ╞═════════════╪═══════════╪═══════════════╪═════════╪════════════════╡
    │ a           ┆ 1         ┆ 2.0           ┆ 4.0     ┆ 20.0           │
    │ b           ┆ 0         ┆ 0.0           ┆ 3.0     ┆ 0.0            │
    └─────────────┴───────────┴───────────────┴─────────┴────────────────┘
    """
    owner = "rfm_summary"
    period = _check_units(unit, period, owner)
    frame = _prepare(transactions, customer_col, time_col, value_col, owner).collect()
    end = _observation_end(frame.lazy(), time_col, observation_end, owner)
    summary = _collect_in_shards(
        frame, customer_col,
        lambda part: _summarise(part, customer_col, time_col, value_col, end, unit, period))
    # a fixed row order: the same input gives the same output, byte for byte
    return to_output(summary.sort(customer_col), output)


_SHARD_ROWS = 500_000
"""Rows per internal shard of :func:`rfm_summary`; bounds the memory of its group-bys."""


def _collect_in_shards(frame: pl.DataFrame, customer_col: str, build) -> pl.DataFrame:
    # Measured on 10M transactions (benchmarks/results/rfm.md): the two group-bys over
    # all rows at once peak at ~1.2 GB above the input and take ~4.4 s CPU; in shards of
    # 500k rows they peak at ~0.15 GB and take ~2.7 s (smaller hash tables stay in cache).
    # Every customer's rows fall in one shard, so the result is unchanged. polars' own
    # hash is fine here: the split is internal, unlike shard_filter's stable CRC-32.
    n_shards = -(-frame.height // _SHARD_ROWS)
    if n_shards <= 1:
        return build(frame.lazy()).collect()
    # Hash once: filtering by a precomputed shard number costs 2.5x less than rehashing.
    shard = frame.select((pl.col(customer_col).hash(0) % n_shards).cast(pl.UInt32)).to_series()
    return pl.concat([build(frame.filter(shard == i).lazy()).collect() for i in range(n_shards)])


def _observation_end(lf: pl.LazyFrame, time_col: str, observation_end: Any, owner: str) -> dt.date:
    if observation_end is not None:
        return check_date(observation_end, "observation_end", owner)
    last = lf.select(pl.col(time_col).max().cast(pl.Date)).collect().item()
    if last is None:
        raise ValueError(f"{owner}: the transactions table is empty; give observation_end.")
    return last


def _summarise(lf: pl.LazyFrame, customer_col: str, time_col: str, value_col: str | None,
               end: dt.date, unit: str, period: str) -> pl.LazyFrame:
    end_period = pl.lit(end).pipe(period_start, period)
    per_period = (
        lf.filter(pl.col(time_col).cast(pl.Date) <= end)
        .group_by(customer_col, period_start(pl.col(time_col), period).alias("_p"))
        .agg(exact_sum(pl.col(value_col)).alias("_v")) if value_col else
        lf.filter(pl.col(time_col).cast(pl.Date) <= end)
        .select(customer_col, period_start(pl.col(time_col), period).alias("_p")).unique()
    )
    aggs = [pl.col("_p").min().alias("_first"), pl.col("_p").max().alias("_last"),
            pl.len().alias("_n")]
    if value_col:
        aggs += [exact_sum(pl.col("_v")).alias("_total"),
                 _value_at_first(pl.col("_v"), pl.col("_p")).alias("_first_v")]
    per_customer = per_period.group_by(customer_col).agg(aggs)
    frequency = (pl.col("_n") - 1).cast(pl.Int64)
    out = [
        pl.col(customer_col),
        frequency.alias("frequency"),
        _span(pl.col("_last"), pl.col("_first"), unit).alias(f"recency_{unit}"),
        _span(end_period, pl.col("_first"), unit).alias(f"T_{unit}"),
    ]
    if value_col:
        out.append(
            pl.when(pl.col("_n") > 1)
            .then((pl.col("_total") - pl.col("_first_v")) / (pl.col("_n") - 1))
            .otherwise(0.0)
            .alias("monetary_value")
        )
    return per_customer.select(out)


def _value_at_first(value: pl.Expr, by: pl.Expr) -> pl.Expr:
    # min_by is a fast-path aggregation (~1.5x faster than get(arg_min) per group-by,
    # measured on 1.25M rows); older polars lacks it.
    if hasattr(value, "min_by"):
        return value.min_by(by)
    return value.get(by.arg_min())


def rfm_unit(columns: Any) -> str:
    """Return the time unit of an RFM summary from its column names.

    Parameters
    ----------
    columns : table or sequence of str
        An RFM summary (or its column names) as made by :func:`rfm_summary`.

    Examples
    --------
    >>> rfm_unit(["customer_id", "frequency", "recency_weeks", "T_weeks"])
    'weeks'
    """
    names = list(getattr(columns, "columns", columns))
    found = [u for u in UNITS if f"recency_{u}" in names and f"T_{u}" in names]
    if len(found) != 1:
        raise SchemaError(
            "An RFM summary needs exactly one pair of duration columns 'recency_<unit>' and "
            f"'T_<unit>' with unit one of {', '.join(UNITS)}; got columns {', '.join(names)}. "
            "Make it with crmkit.features.rfm_summary(..., unit=...)."
        )
    return found[0]


def calibration_holdout_split(
    transactions: Any,
    *,
    calibration_end: dt.date | str,
    observation_end: dt.date | str | None = None,
    unit: str = "weeks",
    period: str | None = None,
    customer_col: str = "customer_id",
    time_col: str = "timestamp",
    value_col: str | None = "amount",
    output: Output = "polars",
):
    """RFM summary of a calibration period and purchase counts in the following holdout.

    The calibration part has :func:`rfm_summary`'s columns with a ``_cal`` infix
    (``frequency_cal``, ``recency_cal_<unit>``, ``T_cal_<unit>``,
    ``monetary_value_cal``), computed up to ``calibration_end`` inclusive. The
    holdout part counts purchase periods in ``(calibration_end, observation_end]``
    (``frequency_holdout``), their mean value (``monetary_value_holdout``, 0 when
    none) and the holdout length ``duration_holdout_<unit>``. Only customers whose
    first purchase is in the calibration period appear, as in lifetimes'
    ``calibration_and_holdout_data``.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> tx = pl.DataFrame({"customer_id": ["a", "a", "a", "b"],
    ...                    "timestamp": [dt.date(2024, 1, 1), dt.date(2024, 1, 8),
    ...                                  dt.date(2024, 2, 5), dt.date(2024, 2, 1)],
    ...                    "amount": [10.0, 5.0, 20.0, 7.0]})
    >>> out = calibration_holdout_split(tx, calibration_end="2024-01-28",
    ...                                 observation_end="2024-02-25")
    >>> out.select("customer_id", "frequency_cal", "frequency_holdout",
    ...            "duration_holdout_weeks").row(0)
    ('a', 1, 1, 4.0)
    """
    owner = "calibration_holdout_split"
    period = _check_units(unit, period, owner)
    lf = _prepare(transactions, customer_col, time_col, value_col, owner)
    cal_end = check_date(calibration_end, "calibration_end", owner)
    end = _observation_end(lf, time_col, observation_end, owner)
    if end <= cal_end:
        raise ValueError(
            f"The 'observation_end' parameter of {owner} must be after calibration_end "
            f"{cal_end.isoformat()}. Got {end.isoformat()} instead."
        )
    cal = _summarise(lf, customer_col, time_col, value_col, cal_end, unit, period)
    cal = cal.rename({c: (f"{c}_cal" if c in ("frequency", "monetary_value") else
                          c.replace("_", "_cal_", 1)) for c in
                      cal.collect_schema().names() if c != customer_col})
    day = pl.col(time_col).cast(pl.Date)
    hold_rows = lf.filter((day > cal_end) & (day <= end))
    hold_periods = hold_rows.group_by(customer_col, period_start(pl.col(time_col), period).alias("_p"))
    if value_col:
        hold = hold_periods.agg(exact_sum(pl.col(value_col)).alias("_v")).group_by(customer_col).agg(
            pl.len().cast(pl.Int64).alias("frequency_holdout"),
            (exact_sum(pl.col("_v")) / pl.len()).alias("monetary_value_holdout"))
    else:
        hold = hold_periods.agg().group_by(customer_col).agg(
            pl.len().cast(pl.Int64).alias("frequency_holdout"))
    out = cal.join(hold, on=customer_col, how="left").with_columns(
        pl.col("frequency_holdout").fill_null(0),
        _span(pl.lit(end).pipe(period_start, period), pl.lit(cal_end).pipe(period_start, period),
              unit).alias(f"duration_holdout_{unit}"),
    )
    if value_col:
        out = out.with_columns(pl.col("monetary_value_holdout").fill_null(0.0))
    return to_output(out.sort(customer_col).collect(), output)
