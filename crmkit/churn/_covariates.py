"""Model-ready churn covariates that mean what they say.

- A missing "days since" (the event never happened) is not filled with tenure: it
  becomes 0 with a ``<name>_missing`` indicator (1 where it was missing), so the
  model learns the effect of "never" on its own.
- Financial assets enter as ``log_financial_assets = log1p(max(assets, 0))``.
- A 90-day asset trend from zero assets is +1 whatever the amount (a new
  customer's first deposit): it is set to 0 there and flagged in
  ``financial_assets_from_zero`` instead.
- ``onboarding`` (first product less than 90 days old) is a 0/1 indicator.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from crmkit._frames import to_polars
from crmkit.exceptions import ConfigError
from crmkit.features._asof import ONBOARDING_DAYS

__all__ = ["CHURN_RISK_COVARIATES", "CHURN_RISK_KNOTS", "prepare_covariates"]

CHURN_RISK_COVARIATES = (
    "tenure_days", "age_years", "txn_count_30d", "txn_count_90d", "txn_count_365d",
    "txn_count_trend_90d", "txn_amount_trend_90d", "days_since_last_txn",
    "complaints_365d", "contacts_365d", "n_products_open", "n_products_closed_365d",
    "financial_assets", "financial_assets_trend_90d", "onboarding", "ipt_mean_days",
    "txn_gap_ratio",
)
"""Feature columns (of :func:`crmkit.features.build_features`) of the churn risk model."""

CHURN_RISK_KNOTS: dict[str, tuple[float, ...]] = {
    "days_since_last_txn": (30.0, 60.0, 90.0, 120.0),
    "financial_assets_trend_90d": (-0.2, -0.1, -0.05, 0.0),
    "txn_gap_ratio": (0.7, 1.1, 1.6),
}
"""Knots of the piecewise-linear terms of the churn risk model: silence and asset falls
act on churn far from linearly (a fall of 10% matters, a rise of 10% hardly)."""

_DERIVED = {
    "financial_assets_from_zero": ("financial_assets", "financial_assets_prior_90d"),
    "onboarding": ("days_since_first_product",),
    "txn_gap_ratio": ("days_since_last_txn", "ipt_mean_days"),
}


def _derived(f: pl.DataFrame, name: str) -> pl.Expr:
    if name == "txn_gap_ratio":
        # the current silence against the customer's usual gap between transaction days:
        # 60 quiet days mean little for a monthly customer and much for a daily one
        return (pl.col("days_since_last_txn").cast(pl.Float64)
                / pl.col("ipt_mean_days").cast(pl.Float64).clip(1.0)).log1p()
    if name == "financial_assets_from_zero":
        return (pl.col("financial_assets_prior_90d").fill_null(0.0) == 0) & (
            pl.col("financial_assets").fill_null(0.0) > 0)
    return (pl.col("days_since_first_product") < ONBOARDING_DAYS).fill_null(False)


def prepare_covariates(features: Any, columns: Any = CHURN_RISK_COVARIATES, *,
                       knots: dict[str, Any] | None = None) -> pl.DataFrame:
    """Model-ready covariates from a features table (one row per customer).

    Parameters
    ----------
    features : table
        :func:`crmkit.features.build_features` output (or any table with
        ``customer_id`` and the columns).
    columns : sequence of str
        Feature columns to use; default :data:`CHURN_RISK_COVARIATES`.
    knots : dict of str to sequence of float, optional
        Piecewise-linear terms: for a column ``c`` and knot ``k`` a column
        ``c_above_k`` = ``max(c - k, 0)`` (knots at or above 0) or ``c_below_k`` =
        ``max(k - c, 0)`` (knots below 0, for falls); a linear spline in ``c``. Default
        none; the churn risk model uses :data:`CHURN_RISK_KNOTS`.

    Returns
    -------
    polars.DataFrame
        ``customer_id`` then, per column: ``days_since_*`` as days with nulls as 0
        plus ``<name>_missing`` (0/1) (also ``ipt_mean_days`` and ``txn_gap_ratio`` =
        ``log1p(days_since_last_txn / ipt_mean_days)``, the silence against the usual
        gap); ``financial_assets`` as
        ``log_financial_assets``; ``financial_assets_trend_90d`` with the trend
        from zero set to 0, plus ``financial_assets_from_zero`` (0/1); booleans as
        0/1; other nulls (counts and trends with no history) as 0. Missing columns
        raise, naming them.

    Examples
    --------
    >>> import polars as pl
    >>> f = pl.DataFrame({"customer_id": ["a", "b"], "days_since_last_txn": [None, 12],
    ...                   "financial_assets": [0.0, 999.0], "financial_assets_prior_90d": [0.0, 0.0],
    ...                   "financial_assets_trend_90d": [0.0, 1.0]})
    >>> out = prepare_covariates(f, ["days_since_last_txn", "financial_assets",
    ...                              "financial_assets_trend_90d"])
    >>> out.columns
    ['customer_id', 'days_since_last_txn', 'days_since_last_txn_missing', 'log_financial_assets', 'financial_assets_trend_90d', 'financial_assets_from_zero']
    >>> out.row(1)
    ('b', 12.0, 0.0, 6.907755278982137, 0.0, 1.0)
    """
    f = to_polars(features, "features")
    columns = list(columns)
    need = ["customer_id"]
    for c in columns:
        if c in f.columns or c not in _DERIVED:
            need.append(c)
        else:
            need.extend(_DERIVED[c])
    if "financial_assets_trend_90d" in columns and "financial_assets_from_zero" not in f.columns:
        need.extend(_DERIVED["financial_assets_from_zero"])
    missing = sorted({c for c in need if c not in f.columns})
    if missing:
        raise ConfigError(f"The churn covariates need the columns {missing}, which are not in "
                          "the features table; choose from: " + ", ".join(f.columns))
    from_zero = pl.col("financial_assets_from_zero") if "financial_assets_from_zero" in f.columns \
        else _derived(f, "financial_assets_from_zero")
    exprs: list[pl.Expr] = [pl.col("customer_id").cast(pl.String)]
    for c in columns:
        src = pl.col(c) if c in f.columns else _derived(f, c)
        col = src.cast(pl.Float64)
        if c == "txn_gap_ratio":  # missing exactly when ipt_mean_days is: no second indicator
            exprs.append(col.fill_null(0.0).alias(c))
        elif c.startswith("days_since_") or c == "ipt_mean_days":
            exprs += [col.fill_null(0.0).alias(c), col.is_null().cast(pl.Float64).alias(f"{c}_missing")]
        elif c == "financial_assets":
            exprs.append(col.fill_null(0.0).clip(0.0).log1p().alias("log_financial_assets"))
        elif c == "financial_assets_trend_90d":
            exprs += [pl.when(from_zero.fill_null(False)).then(0.0).otherwise(col.fill_null(0.0))
                      .alias(c), from_zero.fill_null(False).cast(pl.Float64)
                      .alias("financial_assets_from_zero")]
        else:
            exprs.append(col.fill_null(0.0).fill_nan(0.0).alias(c))
    out = f.select(exprs)
    hinges = []
    for c, ks in (knots or {}).items():
        if c not in out.columns:
            raise ConfigError(f"The knots name the column {c!r}, which is not among the "
                              f"covariates: {', '.join(out.columns[1:])}.")
        for k in ks:
            k = float(k)
            tag = f"{abs(k):g}".replace(".", "_")
            if k >= 0:
                hinges.append((pl.col(c) - k).clip(0.0).alias(f"{c}_above_{tag}"))
            else:
                hinges.append((k - pl.col(c)).clip(0.0).alias(f"{c}_below_minus_{tag}"))
    return out.with_columns(hinges) if hinges else out
