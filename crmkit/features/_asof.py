"""Point-in-time customer features: one row per customer, computed as of a date.

Only rows dated on or before ``as_of`` are read; a holding closed after ``as_of``
counts as open; a customer first seen after ``as_of`` does not exist yet. So the
features as of D never change when rows dated after D are added.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from crmkit._exprs import exact_sum
from crmkit._frames import Output, to_lazy, to_output
from crmkit._params import check_date, check_positive
from crmkit.exceptions import SchemaError
from crmkit.features._shard import shard_filter
from crmkit.schema import PRODUCT_CATEGORIES, empty_table

__all__ = ["DEFAULT_ASSET_WEIGHTS", "build_features"]

DEFAULT_ASSET_WEIGHTS: dict[str, float] = {
    "deposit": 1.0,
    "fund": 1.0,
    "bond": 1.0,
    "wealth": 1.0,
    "loan": 0.5,
}
"""Financial assets of the retail-bank preset: deposits, funds, bonds and wealth
products in full, personal loans at 50%; other categories do not count."""

ONBOARDING_DAYS = 90
"""``onboarding`` is True when the first product is less than this many days old
(the retail-bank preset's ``onboarding_days``)."""


def _trend(current: str, prior: str) -> pl.Expr:
    """Symmetric relative change in [-1, 1]; 0 when both are 0."""
    cur, pri = pl.col(current), pl.col(prior)
    denom = cur.abs() + pri.abs()
    return pl.when(denom > 0).then((cur - pri) / denom).otherwise(0.0)


def build_features(
    tables: Mapping[str, Any],
    *,
    as_of: dt.date | str,
    windows: Sequence[int] = (30, 90, 365),
    asset_weights: Mapping[str, float] | None = None,
    shard: tuple[int, int] | None = None,
    output: Output = "polars",
):
    """Compute the as-of feature table: one row per customer known on ``as_of``.

    Parameters
    ----------
    tables : mapping of str to table
        Canonical tables (see :mod:`crmkit.schema`); ``customers`` is required,
        the others are optional (absent means none). Validate them first with
        :func:`crmkit.schema.validate`.
    as_of : date or str
        The point in time. Rows dated after it are ignored.
    windows : sequence of int
        Window lengths in days. For each ``w``: counts and sums in
        ``(as_of - w, as_of]``, the same in the prior window
        ``(as_of - 2w, as_of - w]``, and their trend
        ``(current - prior) / (|current| + |prior|)`` (0 when both are 0).
    asset_weights : mapping of str to float, optional
        Weight of each product category in ``financial_assets``; default
        :data:`DEFAULT_ASSET_WEIGHTS` (personal loans at 50%).
    shard : (int, int), optional
        ``(i, n)``: compute only the customers of shard ``i`` of ``n``
        (see :func:`crmkit.features.shard_filter`), for bounded memory.
    output : {"polars", "pandas"}

    Returns
    -------
    DataFrame
        Columns documented in ``docs/features.md``: identity (``customer_id``,
        ``branch_id``, ``risk_level``, ``age_years``, ``tenure_days``), transaction
        recency, windows and trends, inter-purchase times, contacts and complaints,
        holdings by category, ``financial_assets`` and its 90-day trend. Counts are
        0 for prospects; "days since" columns are null when the event never happened.

    Examples
    --------
    >>> from crmkit.datasets import make_bank
    >>> bank = make_bank(300, seed=3)
    >>> feats = build_features(bank, as_of="2025-12-31")
    >>> feats.height == bank["customers"].height, feats["customer_id"].is_unique().all()
    (True, True)
    >>> int(feats.filter(~pl.col("has_transacted"))["txn_count_total"].max())
    0
    """
    day = check_date(as_of, "as_of", "build_features")
    windows = sorted({int(check_positive(w, "windows", "build_features")) for w in windows})
    weights = dict(DEFAULT_ASSET_WEIGHTS if asset_weights is None else asset_weights)
    if "customers" not in tables:
        raise SchemaError("build_features needs a 'customers' table.")

    def table(name: str) -> pl.LazyFrame:
        lf = to_lazy(tables[name], name) if name in tables and tables[name] is not None \
            else empty_table(name).lazy()
        return lf

    customers = table("customers").filter(pl.col("first_seen") <= day)
    if shard is not None:
        customers = customers.filter(shard_filter(pl.col("customer_id"), *shard))
    keys = customers.select("customer_id")
    # Restricting the big tables to the shard's customers pays only when sharding;
    # otherwise the final left join onto the customers drops strays just as well.
    shard_keys = keys if shard is not None else None
    cust_names = customers.collect_schema().names()

    base = customers.select(
        "customer_id",
        "branch_id",
        (pl.col("risk_level").cast(pl.Int64) if "risk_level" in cust_names
         else pl.lit(None, pl.Int64)).alias("risk_level"),
        (pl.lit(day.year) - pl.col("birth_year").cast(pl.Int64) if "birth_year" in cust_names
         else pl.lit(None, pl.Int64)).alias("age_years"),
        (pl.lit(day) - pl.col("first_seen")).dt.total_days().cast(pl.Int64).alias("tenure_days"),
    )

    parts = [
        _transaction_features(table("transactions"), shard_keys, day, windows),
        _event_features(table("contacts"), keys, day, "contacts"),
        _event_features(table("complaints"), keys, day, "complaints"),
        _holding_features(table("holdings"), table("products"), keys, day),
        _asset_features(table("holdings"), table("products"), table("balances"), keys, day, weights),
    ]
    out = base
    for part in parts:
        out = out.join(part, on="customer_id", how="left")

    zero_int = [f"txn_count_{s}{w}d" for w in windows for s in ("", "prior_")] + [
        "txn_count_total", "contacts_365d", "complaints_365d", "n_products_open",
        "n_categories_open", "n_products_ever", "n_products_closed_365d"]
    zero_float = [f"txn_amount_{s}{w}d" for w in windows for s in ("", "prior_")] + [
        "txn_amount_total", "financial_assets", "financial_assets_prior_90d", "balance_total"]
    holds = [f"holds_{c}" for c in PRODUCT_CATEGORIES]
    out = out.with_columns(
        *[pl.col(c).fill_null(0).cast(pl.Int64) for c in zero_int],
        *[pl.col(c).fill_null(0.0) for c in zero_float],
        *[pl.col(c).fill_null(False) for c in holds],
    ).with_columns(
        pl.col("first_txn_date").is_not_null().alias("has_transacted"),
        ((pl.col("n_products_ever") > 0) & (pl.col("n_products_open") == 0)).alias("all_products_closed"),
        *[_trend(f"txn_count_{w}d", f"txn_count_prior_{w}d").alias(f"txn_count_trend_{w}d")
          for w in windows],
        *[_trend(f"txn_amount_{w}d", f"txn_amount_prior_{w}d").alias(f"txn_amount_trend_{w}d")
          for w in windows],
        _trend("financial_assets", "financial_assets_prior_90d").alias("financial_assets_trend_90d"),
        # a trend from zero is +1 whatever the amount: flag it so models can tell a new
        # customer's first deposit from growth of an existing relationship
        ((pl.col("financial_assets_prior_90d") == 0) & (pl.col("financial_assets") > 0))
        .alias("financial_assets_from_zero"),
        (pl.col("days_since_first_product") < ONBOARDING_DAYS).fill_null(False).alias("onboarding"),
    )
    order = (
        ["customer_id", "branch_id", "risk_level", "age_years", "tenure_days", "has_transacted",
         "first_txn_date", "last_txn_date", "days_since_first_txn", "days_since_last_txn"]
        + [f"txn_{k}_{s}{w}d" for w in windows for k in ("count", "amount")
           for s in ("", "prior_", "trend_")]
        + ["txn_count_total", "txn_amount_total", "ipt_mean_days", "ipt_std_days",
           "days_since_last_contact", "contacts_365d", "complaints_365d",
           "n_products_open", "n_categories_open", "n_products_ever", "n_products_closed_365d",
           *holds, "first_product_date", "days_since_first_product", "all_products_closed",
           "last_close_date", "financial_assets", "financial_assets_prior_90d",
           "financial_assets_trend_90d", "balance_total", "financial_assets_from_zero",
           "onboarding"]
    )
    return to_output(out.select(order).sort("customer_id").collect(), output)


def _days_before(day: dt.date, col: pl.Expr) -> pl.Expr:
    return (pl.lit(day) - col).dt.total_days().cast(pl.Int64)


def _transaction_features(tx: pl.LazyFrame, keys: pl.LazyFrame | None, day: dt.date,
                          windows: list[int]) -> pl.LazyFrame:
    """Recency, windowed counts and sums, totals and inter-purchase times in one pass.

    Amounts are summed as integer micro-units (see :func:`crmkit._exprs.exact_sum`),
    converted once per row, so window sums are masked integer additions.
    """
    rows = (
        tx.select("customer_id", pl.col("timestamp").cast(pl.Date).alias("_d"),
                  (pl.col("amount").cast(pl.Float64) * 1e6).round().cast(pl.Int64).alias("_m"))
        .filter(pl.col("_d") <= day)
    )
    if keys is not None:
        rows = rows.join(keys, on="customer_id", how="semi")
    rows = rows.with_columns(_days_before(day, pl.col("_d")).cast(pl.Int32).alias("_ago"))
    zero = pl.lit(0, pl.Int64)
    aggs = [
        pl.col("_d").min().alias("first_txn_date"),
        pl.col("_d").max().alias("last_txn_date"),
        pl.len().alias("txn_count_total"),
        (pl.col("_m").sum() / 1e6).alias("txn_amount_total"),
        pl.col("_d").n_unique().alias("_days"),
        # gaps between distinct purchase days, sorted within each customer only
        pl.col("_d").unique().sort().diff().dt.total_days().std().alias("_ipt_std"),
    ]
    for w in windows:
        cur = pl.col("_ago") < w
        prior = (pl.col("_ago") >= w) & (pl.col("_ago") < 2 * w)
        aggs += [
            cur.sum().alias(f"txn_count_{w}d"),
            (pl.when(cur).then(pl.col("_m")).otherwise(zero).sum() / 1e6).alias(f"txn_amount_{w}d"),
            prior.sum().alias(f"txn_count_prior_{w}d"),
            (pl.when(prior).then(pl.col("_m")).otherwise(zero).sum() / 1e6)
            .alias(f"txn_amount_prior_{w}d"),
        ]
    span = (pl.col("last_txn_date") - pl.col("first_txn_date")).dt.total_days()
    return rows.group_by("customer_id").agg(aggs).with_columns(
        _days_before(day, pl.col("first_txn_date")).alias("days_since_first_txn"),
        _days_before(day, pl.col("last_txn_date")).alias("days_since_last_txn"),
        # the mean of consecutive gaps telescopes to (last - first) / (days - 1)
        pl.when(pl.col("_days") >= 2).then(span / (pl.col("_days") - 1)).alias("ipt_mean_days"),
        pl.when(pl.col("_days") >= 3).then(pl.col("_ipt_std")).alias("ipt_std_days"),
    ).drop("_days", "_ipt_std")


def _event_features(events: pl.LazyFrame, keys: pl.LazyFrame, day: dt.date,
                    name: str) -> pl.LazyFrame:
    rows = events.select("customer_id", "date").filter(pl.col("date") <= day).join(
        keys, on="customer_id", how="semi")
    aggs = [(_days_before(day, pl.col("date")) < 365).sum().alias(f"{name}_365d")]
    if name == "contacts":
        aggs.append(_days_before(day, pl.col("date").max()).alias("days_since_last_contact"))
    return rows.group_by("customer_id").agg(aggs)


def _open_on(day: dt.date) -> pl.Expr:
    return (pl.col("opened") <= day) & (pl.col("closed").is_null() | (pl.col("closed") > day))


def _holding_features(holdings: pl.LazyFrame, products: pl.LazyFrame, keys: pl.LazyFrame,
                      day: dt.date) -> pl.LazyFrame:
    rows = (
        holdings.select("customer_id", "product_id", "opened", "closed")
        .filter(pl.col("opened") <= day)
        .join(keys, on="customer_id", how="semi")
        .join(products.select("product_id", "category"), on="product_id", how="left")
        .with_columns(_open_on(day).alias("_open"))
    )
    closed_by_now = pl.col("closed").is_not_null() & (pl.col("closed") <= day)
    aggs = [
        pl.col("_open").sum().alias("n_products_open"),
        pl.col("category").filter(pl.col("_open")).n_unique().alias("n_categories_open"),
        pl.len().alias("n_products_ever"),
        (closed_by_now & (_days_before(day, pl.col("closed")) < 365)).sum()
        .alias("n_products_closed_365d"),
        pl.col("opened").min().alias("first_product_date"),
        pl.col("closed").filter(closed_by_now).max().alias("last_close_date"),
        *[(pl.col("_open") & (pl.col("category") == c)).any().alias(f"holds_{c}")
          for c in PRODUCT_CATEGORIES],
    ]
    return rows.group_by("customer_id").agg(aggs).with_columns(
        _days_before(day, pl.col("first_product_date")).alias("days_since_first_product"))


def _asset_features(holdings: pl.LazyFrame, products: pl.LazyFrame, balances: pl.LazyFrame,
                    keys: pl.LazyFrame, day: dt.date, weights: dict[str, float]) -> pl.LazyFrame:
    accounts = (
        holdings.select("account_id", "customer_id", "product_id", "opened", "closed")
        .join(keys, on="customer_id", how="semi")
        .join(products.select("product_id", "category"), on="product_id", how="left")
        .with_columns(pl.col("category").replace_strict(weights, default=0.0,
                                                        return_dtype=pl.Float64).alias("_w"))
    )
    prior_day = day - dt.timedelta(days=90)

    def assets_on(on: dt.date, suffix: str) -> pl.LazyFrame:
        rows = balances.select("account_id", "date", "balance").filter(pl.col("date") <= on)
        # the latest snapshot per account by a max and a join (both hash-based, streamable)
        # rather than get(arg_max), which holds every account's group in memory
        latest = rows.join(rows.group_by("account_id").agg(pl.col("date").max()),
                           on=["account_id", "date"], how="semi").select("account_id", "balance")
        open_acc = accounts.filter(_open_on(on)).join(latest, on="account_id", how="inner")
        aggs = [exact_sum(pl.col("balance") * pl.col("_w")).alias(f"financial_assets{suffix}")]
        if not suffix:
            aggs.append(exact_sum(pl.col("balance")).alias("balance_total"))
        return open_acc.group_by("customer_id").agg(aggs)

    now = assets_on(day, "")
    before = assets_on(prior_day, "_prior_90d")
    return now.join(before, on="customer_id", how="full", coalesce=True)
