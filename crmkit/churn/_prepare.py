"""Model-ready churn covariates from the as-of features table."""

from __future__ import annotations

from typing import Any

import polars as pl

from crmkit._frames import to_polars
from crmkit.exceptions import ConfigError

__all__ = ["DEFAULT_COVARIATES", "prepare_covariates"]

DEFAULT_COVARIATES = (
    "tenure_days", "age_years", "txn_count_90d", "txn_count_trend_90d",
    "txn_amount_trend_90d", "days_since_last_txn", "complaints_365d", "contacts_365d",
    "n_products_open", "n_products_closed_365d", "financial_assets",
    "financial_assets_trend_90d",
)
"""Feature columns (of :func:`crmkit.features.build_features`) the churn step uses."""


def prepare_covariates(features: Any, columns: Any = DEFAULT_COVARIATES) -> pl.DataFrame:
    """Model-ready covariates from a features table (one row per customer).

    ``days_since_*`` columns that are null (no such event yet) become the
    customer's ``tenure_days``; ``financial_assets`` becomes
    ``log_financial_assets = log1p(max(assets, 0))`` (assets are heavy-tailed);
    booleans become 0/1; any other null becomes 0 (counts and trends with no
    history). Missing columns raise, naming them.

    Examples
    --------
    >>> import polars as pl
    >>> f = pl.DataFrame({"customer_id": ["a"], "tenure_days": [400], "days_since_last_txn": [None],
    ...                   "financial_assets": [999.0]})
    >>> prepare_covariates(f, ["tenure_days", "days_since_last_txn", "financial_assets"]).row(0)
    ('a', 400.0, 400.0, 6.907755278982137)
    """
    f = to_polars(features, "features")
    columns = list(columns)
    missing = [c for c in ["customer_id", *columns] if c not in f.columns]
    if missing:
        raise ConfigError(f"The churn covariates {missing} are not in the features table; "
                          "choose them from: " + ", ".join(f.columns))
    exprs = [pl.col("customer_id").cast(pl.String)]
    for c in columns:
        col = pl.col(c).cast(pl.Float64)
        if c.startswith("days_since_") and "tenure_days" in f.columns:
            col = col.fill_null(pl.col("tenure_days").cast(pl.Float64))
        if c == "financial_assets":
            exprs.append(col.fill_null(0.0).clip(0.0).log1p().alias("log_financial_assets"))
            continue
        exprs.append(col.fill_null(0.0).fill_nan(0.0).alias(c))
    return f.select(exprs)
