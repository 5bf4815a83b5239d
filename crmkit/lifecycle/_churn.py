"""One configurable churn definition, churn labels as of a date, and reason codes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import polars as pl

from crmkit._exprs import exact_sum
from crmkit._frames import Output, to_lazy, to_output
from crmkit._params import check_date
from crmkit.exceptions import SchemaError
from crmkit.lifecycle._config import ChurnDefinition, validate_churn_definition

__all__ = ["activity_summary", "churn_reason_counts", "label_churn"]

_SCHEMA = {"customer_id": pl.String, "churned": pl.Boolean, "churn_date": pl.Date,
           "reason": pl.String}


def _table(tables: Mapping[str, Any], name: str, columns: tuple[str, ...]) -> pl.LazyFrame | None:
    if name not in tables or tables[name] is None:
        return None
    lf = to_lazy(tables[name], name)
    have = lf.collect_schema().names()
    missing = [c for c in columns if c not in have]
    if missing:
        raise SchemaError(f"label_churn: the {name} table has no column "
                          f"{', '.join(map(repr, missing))}; it has {', '.join(have)}.")
    return lf


def label_churn(tables: Mapping[str, Any], *, as_of: dt.date | str,
                definition: ChurnDefinition | Mapping[str, Any] | str = "retail_bank",
                output: Output = "polars"):
    """Label every customer churned or not as of a date, with a reason code.

    Parameters
    ----------
    tables : dict of str to table
        Canonical tables. Contractual churn reads ``holdings`` (``customer_id``,
        ``opened``, ``closed``, optional ``close_reason``); non-contractual churn
        reads ``transactions``. ``customers`` (if given) sets the customers
        labelled; ``complaints``, ``balances`` and the ``channel`` of transactions
        feed the reason signals when present. Only rows dated on or before
        ``as_of`` are used (customers first seen after it are not labelled); an
        account closed after ``as_of`` counts as open. ``kind="silent"`` and
        ``"combined"`` read ``holdings`` and ``transactions`` (activity is a
        transaction or an account opening).
    as_of : date or str
    definition : ChurnDefinition, mapping or preset name
        ``kind="contractual"``: churned when the customer had at least one product
        and every one is closed; ``churn_date`` is the last closure.
        ``kind="non_contractual"``: churned when the last transaction is
        ``inactivity_days`` or more before ``as_of``; ``churn_date`` is the last
        transaction (or the day the inactivity reached ``inactivity_days`` with
        ``churn_date="confirmed"``).
        ``kind="silent"``: churned when the last activity is ``inactivity_days`` or
        more before ``as_of``, dated at the last activity (when the silence began).
        ``kind="combined"``: contractual or silent; a silence is the cause when it
        had lasted ``inactivity_days`` before the last closure.
    output : {"polars", "pandas"}

    Returns
    -------
    DataFrame
        ``customer_id``, ``churned`` (bool), ``churn_date`` (date, null when not
        churned), ``reason`` (str, null when not churned), and for the silent and
        combined kinds ``cause`` (``"closure"`` or ``"silence"``), sorted by customer.

    Notes
    -----
    ``reason`` is the closure reason of the last closed account where the data has
    one (renamed by ``closure_reason_map``, e.g. ``"fees"`` to ``"price"``);
    otherwise the first signal, in ``signal_order``, seen within
    ``reason_lookback_days`` before the churn date: ``"competitor_transfer"`` (a
    transaction on a ``transfer_out_channels`` channel), ``"price"`` (a complaint
    of a ``price_complaint_kinds`` kind), ``"complaint"`` (any other complaint),
    ``"falling_balance"`` (total balance fell by ``falling_balance_threshold`` or
    more, symmetric relative change); otherwise ``fallback_reason``.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> holdings = pl.DataFrame({
    ...     "account_id": ["A1", "A2", "A3"], "customer_id": ["a", "a", "b"],
    ...     "opened": [dt.date(2020, 1, 1)] * 3,
    ...     "closed": [dt.date(2024, 3, 1), dt.date(2024, 5, 2), None],
    ...     "close_reason": ["moved", "fees", None]})
    >>> label_churn({"holdings": holdings}, as_of="2024-12-31",
    ...             definition={"kind": "contractual"}).rows()
    [('a', True, datetime.date(2024, 5, 2), 'price'), ('b', False, None, None)]
    """
    as_of = check_date(as_of, "as_of", "label_churn")
    definition = validate_churn_definition(definition)
    tables = dict(tables)
    customers = _table(tables, "customers", ("customer_id",))
    with_cause = definition.kind in ("silent", "combined")
    if definition.kind == "contractual":
        churners, universe = _contractual(tables, as_of)
    elif definition.kind == "non_contractual":
        churners, universe = _non_contractual(tables, as_of, definition)
    else:
        churners, universe = _silent_or_combined(tables, as_of, definition)
    if customers is not None:
        if "first_seen" in customers.collect_schema().names():
            # a customer first seen after as_of does not exist yet on as_of
            customers = customers.filter(pl.col("first_seen").cast(pl.Date) <= as_of)
        universe = customers.select(pl.col("customer_id").cast(pl.String)).unique()
    churners = _reasons(churners, tables, as_of, definition, keep=("cause",) if with_cause else ())
    out = (
        universe.join(churners, on="customer_id", how="left")
        .select(
            "customer_id",
            pl.col("churn_date").is_not_null().alias("churned"),
            pl.col("churn_date").cast(pl.Date),
            pl.col("reason").cast(pl.String),
            *([pl.col("cause").cast(pl.String)] if with_cause else []),
        )
        .sort("customer_id")
        .collect()
    )
    return to_output(out, output)


def activity_summary(tables: Mapping[str, Any], as_of: dt.date,
                     owner: str = "activity_summary") -> pl.LazyFrame:
    """Per customer as of a date: products ever/open, last closure, last activity.

    Activity is a transaction or an account opening on or before ``as_of``
    (closures and bank-initiated contacts are not the customer being active).
    Columns: ``customer_id``, ``n_products_ever``, ``n_products_open``,
    ``last_close``, ``first_activity``, ``last_activity``; one row per customer
    with any holding or transaction, sorted by customer; lazy.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> h = pl.DataFrame({"account_id": ["A1"], "customer_id": ["a"],
    ...                   "opened": [dt.date(2024, 1, 5)], "closed": [None]})
    >>> tx = pl.DataFrame({"customer_id": ["a", "b"],
    ...                    "timestamp": [dt.datetime(2024, 3, 1), dt.datetime(2024, 2, 1)]})
    >>> activity_summary({"holdings": h, "transactions": tx}, dt.date(2024, 6, 30)).collect().rows()
    [('a', 1, 1, None, datetime.date(2024, 1, 5), datetime.date(2024, 3, 1)), ('b', 0, 0, None, datetime.date(2024, 2, 1), datetime.date(2024, 2, 1))]
    """
    holdings = _table(tables, "holdings", ("customer_id", "opened"))
    tx = _table(tables, "transactions", ("customer_id", "timestamp"))
    if holdings is None and tx is None:
        raise SchemaError(f"{owner}: needs a holdings table (customer_id, opened, closed) or a "
                          "transactions table (customer_id, timestamp); got neither.")
    days = []
    prod = None
    if holdings is not None:
        names = holdings.collect_schema().names()
        closed = pl.col("closed").cast(pl.Date) if "closed" in names else pl.lit(None, pl.Date)
        h = (holdings.select(pl.col("customer_id").cast(pl.String),
                             pl.col("opened").cast(pl.Date), closed.alias("closed"))
             .filter(pl.col("opened") <= as_of)
             .with_columns(pl.when(pl.col("closed") <= as_of).then(pl.col("closed"))
                           .alias("closed")))
        prod = h.group_by("customer_id").agg(
            pl.len().cast(pl.Int64).alias("n_products_ever"),
            pl.col("closed").is_null().sum().cast(pl.Int64).alias("n_products_open"),
            pl.col("closed").max().alias("last_close"))
        days.append(h.select("customer_id", pl.col("opened").alias("day")))
    if tx is not None:
        days.append(tx.select(pl.col("customer_id").cast(pl.String),
                              pl.col("timestamp").cast(pl.Date).alias("day"))
                    .filter(pl.col("day") <= as_of))
    act = pl.concat(days).group_by("customer_id").agg(
        pl.col("day").min().alias("first_activity"), pl.col("day").max().alias("last_activity"))
    if prod is None:
        out = act.with_columns(pl.lit(0, pl.Int64).alias("n_products_ever"),
                               pl.lit(0, pl.Int64).alias("n_products_open"),
                               pl.lit(None, pl.Date).alias("last_close"))
    else:
        out = (prod.join(act, on="customer_id", how="full", coalesce=True)
               .with_columns(pl.col("n_products_ever", "n_products_open").fill_null(0)))
    return out.select("customer_id", "n_products_ever", "n_products_open", "last_close",
                      "first_activity", "last_activity").sort("customer_id")


def _silent_or_combined(tables: dict, as_of: dt.date,
                        definition: ChurnDefinition) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Silent: no activity for inactivity_days, dated when the silence began (the last
    activity) and only when the silence has lasted inactivity_days by ``as_of`` (so a
    label as of D reads nothing after D). Combined: that or every product closed;
    the cause is "silence" when the silence had lasted inactivity_days before the
    last closure, else "closure" (dated at the closure)."""
    summ = activity_summary(tables, as_of, "label_churn")
    n = definition.inactivity_days
    cutoff = as_of - dt.timedelta(days=n)
    silent_date = pl.col("last_activity") if definition.churn_date == "last_activity" else \
        pl.col("last_activity") + pl.duration(days=n)
    silent = pl.when(pl.col("last_activity") <= cutoff).then(silent_date)
    if definition.kind == "combined":
        closure = pl.when((pl.col("n_products_ever") > 0) & (pl.col("n_products_open") == 0)) \
            .then(pl.col("last_close"))
    else:
        closure = pl.lit(None, pl.Date)
    framed = summ.with_columns(silent.alias("__silent"), closure.alias("__closure"))
    # a silence is the cause only when it had lasted inactivity_days before the last
    # closure: a customer who goes quiet and closes everything a month later closed
    by_silence = pl.col("__silent").is_not_null() & (
        pl.col("__closure").is_null()
        | (pl.col("last_activity") + pl.duration(days=n) <= pl.col("__closure")))
    churners = (
        framed.filter(pl.col("__silent").is_not_null() | pl.col("__closure").is_not_null())
        .select("customer_id",
                pl.when(by_silence).then(pl.col("__silent")).otherwise(pl.col("__closure"))
                .alias("churn_date"),
                pl.when(by_silence).then(pl.lit("silence")).otherwise(pl.lit("closure"))
                .alias("cause"))
    )
    if definition.kind == "combined" and "holdings" in tables and tables["holdings"] is not None:
        closure_reasons, _ = _contractual(tables, as_of)
        churners = churners.join(
            closure_reasons.select("customer_id", "close_reason"), on="customer_id", how="left"
        ).with_columns(pl.when(pl.col("cause") == "closure").then(pl.col("close_reason"))
                       .alias("close_reason"))
    else:
        churners = churners.with_columns(pl.lit(None, pl.String).alias("close_reason"))
    return churners, summ.select("customer_id")


def _contractual(tables: dict, as_of: dt.date) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    holdings = _table(tables, "holdings", ("customer_id", "opened"))
    if holdings is None:
        raise SchemaError("label_churn: the contractual definition needs a holdings table "
                          "(customer_id, opened, closed); use kind='non_contractual' for "
                          "transaction-only data.")
    names = holdings.collect_schema().names()
    closed = pl.col("closed").cast(pl.Date) if "closed" in names else pl.lit(None, pl.Date)
    reason = pl.col("close_reason").cast(pl.String) if "close_reason" in names \
        else pl.lit(None, pl.String)
    h = (
        holdings.select(pl.col("customer_id").cast(pl.String),
                        pl.col("opened").cast(pl.Date).alias("opened"),
                        closed.alias("closed"), reason.alias("close_reason"))
        .filter(pl.col("opened") <= as_of)
        .with_columns(pl.when(pl.col("closed") <= as_of).then(pl.col("closed")).alias("closed"))
    )
    per = h.group_by("customer_id").agg(
        pl.col("closed").is_null().any().alias("any_open"),
        pl.col("closed").max().alias("churn_date"),
    )
    last_reason = (
        h.join(per.select("customer_id", "churn_date"), on="customer_id")
        .filter((pl.col("closed") == pl.col("churn_date")) & pl.col("close_reason").is_not_null())
        .group_by("customer_id", "close_reason").agg(pl.len().alias("n"))
        .sort("customer_id", "n", "close_reason", descending=[False, True, False])
        .group_by("customer_id", maintain_order=True).agg(pl.col("close_reason").first())
    )
    churners = (
        per.filter(~pl.col("any_open"))
        .select("customer_id", "churn_date")
        .join(last_reason, on="customer_id", how="left")
    )
    universe = h.select("customer_id").unique()
    return churners, universe


def _non_contractual(tables: dict, as_of: dt.date,
                     definition: ChurnDefinition) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    tx = _table(tables, "transactions", ("customer_id", "timestamp"))
    if tx is None:
        raise SchemaError("label_churn: the non-contractual definition needs a transactions "
                          "table (customer_id, timestamp).")
    last = (
        tx.select(pl.col("customer_id").cast(pl.String),
                  pl.col("timestamp").cast(pl.Date).alias("day"))
        .filter(pl.col("day") <= as_of)
        .group_by("customer_id").agg(pl.col("day").max().alias("last"))
    )
    cutoff = as_of - dt.timedelta(days=definition.inactivity_days)
    date = pl.col("last") if definition.churn_date == "last_activity" else \
        pl.col("last") + pl.duration(days=definition.inactivity_days)
    churners = last.filter(pl.col("last") <= cutoff).select(
        "customer_id", date.alias("churn_date"), pl.lit(None, pl.String).alias("close_reason"))
    return churners, last.select("customer_id")


def _reasons(churners: pl.LazyFrame, tables: dict, as_of: dt.date,
             definition: ChurnDefinition, keep: tuple[str, ...] = ()) -> pl.LazyFrame:
    """Reason = mapped closure reason, else the first signal in signal_order, else fallback."""
    lookback = pl.duration(days=definition.reason_lookback_days)
    win = churners.select("customer_id", "churn_date",
                          (pl.col("churn_date") - lookback).alias("start"))
    signals: dict[str, pl.LazyFrame] = {}

    tx = _table(tables, "transactions", ("customer_id", "timestamp"))
    if tx is not None and "channel" in tx.collect_schema().names():
        signals["competitor_transfer"] = (
            tx.select(pl.col("customer_id").cast(pl.String),
                      pl.col("timestamp").cast(pl.Date).alias("d"), pl.col("channel"))
            .filter(pl.col("channel").is_in(definition.transfer_out_channels)
                    & (pl.col("d") <= as_of))
            .join(win, on="customer_id")
            .filter((pl.col("d") > pl.col("start")) & (pl.col("d") <= pl.col("churn_date")))
            .select("customer_id").unique()
        )
    comp = _table(tables, "complaints", ("customer_id", "date", "kind"))
    if comp is not None:
        in_win = (
            comp.select(pl.col("customer_id").cast(pl.String), pl.col("date").cast(pl.Date),
                        pl.col("kind").cast(pl.String))
            .filter(pl.col("date") <= as_of)
            .join(win, on="customer_id")
            .filter((pl.col("date") > pl.col("start")) & (pl.col("date") <= pl.col("churn_date")))
        )
        is_price = pl.col("kind").is_in(definition.price_complaint_kinds)
        signals["price"] = in_win.filter(is_price).select("customer_id").unique()
        signals["complaint"] = in_win.filter(~is_price).select("customer_id").unique()
    bal = _table(tables, "balances", ("account_id", "date", "balance"))
    hold = _table(tables, "holdings", ("account_id", "customer_id"))
    if bal is not None and hold is not None:
        b = (
            bal.select("account_id", pl.col("date").cast(pl.Date), pl.col("balance").cast(pl.Float64))
            .filter(pl.col("date") <= as_of)
            .join(hold.select("account_id", pl.col("customer_id").cast(pl.String)), on="account_id")
            .join(win, on="customer_id")
        )

        def total_at(cond: pl.Expr, name: str) -> pl.LazyFrame:
            return (b.filter(cond).sort("date")
                    .group_by("customer_id", "account_id").agg(pl.col("balance").last())
                    .group_by("customer_id").agg(exact_sum(pl.col("balance")).alias(name)))

        start = total_at(pl.col("date") <= pl.col("start"), "b0")
        end = total_at(pl.col("date") < pl.col("churn_date"), "b1")
        change = (pl.col("b1") - pl.col("b0")) / (pl.col("b1").abs() + pl.col("b0").abs())
        signals["falling_balance"] = (
            start.join(end, on="customer_id", how="left")
            .with_columns(pl.col("b1").fill_null(0.0))
            .filter((pl.col("b0").abs() + pl.col("b1").abs() > 0)
                    & (change <= definition.falling_balance_threshold))
            .select("customer_id")
        )

    out = churners
    flags = []
    for name in definition.signal_order:
        if name in signals:
            col = f"__sig_{name}"
            out = out.join(signals[name].with_columns(pl.lit(True).alias(col)),
                           on="customer_id", how="left")
            flags.append((name, col))
    signal = pl.lit(None, pl.String)
    for name, col in reversed(flags):
        signal = pl.when(pl.col(col).fill_null(False)).then(pl.lit(name)).otherwise(signal)
    mapping = definition.closure_reason_map
    closure = pl.col("close_reason").replace(mapping) if mapping else pl.col("close_reason")
    return out.select(
        "customer_id", "churn_date",
        pl.coalesce(closure, signal, pl.lit(definition.fallback)).alias("reason"), *keep,
    )


def churn_reason_counts(labels: Any, *, freq: str = "1mo", output: Output = "polars"):
    """Churned customers per period and reason.

    Parameters
    ----------
    labels : DataFrame
        Output of :func:`label_churn`.
    freq : str
        Period as a polars duration string: ``"1mo"`` calendar months, ``"1q"``
        quarters, ``"1y"`` years, ``"1w"`` weeks.

    Returns
    -------
    DataFrame
        ``period`` (period start), ``reason``, ``count``, ``share`` (of the period's
        churners), sorted by period and descending count.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> labels = pl.DataFrame({"customer_id": ["a", "b", "c"], "churned": [True, True, False],
    ...                        "churn_date": [dt.date(2024, 5, 2), dt.date(2024, 5, 20), None],
    ...                        "reason": ["price", "price", None]})
    >>> churn_reason_counts(labels).rows()
    [(datetime.date(2024, 5, 1), 'price', 2, 1.0)]
    """
    lf = to_lazy(labels, "labels")
    out = (
        lf.filter(pl.col("churned"))
        .with_columns(pl.col("churn_date").cast(pl.Date).dt.truncate(freq).alias("period"))
        .group_by("period", "reason").agg(pl.len().cast(pl.Int64).alias("count"))
        .with_columns((pl.col("count") / pl.col("count").sum().over("period")).alias("share"))
        .sort(["period", "count", "reason"], descending=[False, True, False])
        .collect()
    )
    return to_output(out, output)
