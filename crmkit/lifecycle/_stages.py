"""The stage engine: ordered, declarative rules over as-of features."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import polars as pl

from crmkit._frames import Output, to_lazy, to_output, to_polars
from crmkit._params import check_date, check_positive
from crmkit.exceptions import ConfigError, SchemaError
from crmkit.lifecycle._config import PREVIOUS_STAGE, LifecycleConfig, load_config
from crmkit.lifecycle._expr import closest

__all__ = ["assign_stages", "lifecycle_features", "recent_gap_feature"]

GAP_FEATURE = "longest_gap_30d_days"

_FEATURE_SOURCES = {
    GAP_FEATURE: "crmkit.lifecycle.lifecycle_features(tables, as_of=...) adds it "
                 "(or crmkit.lifecycle.recent_gap_feature(transactions, as_of=...))",
    "p_alive": "a CLV model's P(alive), joined on customer_id",
    "churn_risk": "a churn model's risk score, joined on customer_id",
}


def _resolve(preset: Any, params: Mapping[str, Any] | None) -> LifecycleConfig:
    config = load_config(preset)
    return config.with_params(**params) if params else config


def assign_stages(
    features: Any,
    *,
    as_of: dt.date | str,
    previous: Any = None,
    preset: str | Mapping[str, Any] | LifecycleConfig = "retail_bank",
    params: Mapping[str, Any] | None = None,
    output: Output = "polars",
):
    """Give every customer exactly one lifecycle stage as of a date.

    The rules of ``preset`` are evaluated in order as one polars ``when/then``
    chain: the first rule whose condition holds sets the stage, and a customer no
    rule matches gets the preset's default stage (rule name ``"default"``). A
    condition that reads a missing value does not hold.

    Parameters
    ----------
    features : DataFrame or LazyFrame
        One row per customer as of ``as_of`` (``customer_id`` plus the columns the
        rules read), e.g. from :func:`lifecycle_features` or
        :func:`crmkit.features.build_features`; model outputs such as ``p_alive``
        or ``churn_risk`` may be joined in (rules on them are skipped when absent).
    as_of : date or str
        The date the features describe; written to the ``as_of`` column.
    previous : DataFrame, optional
        The previous run's stages (``customer_id``, ``stage``). Rules can read it as
        ``previous_stage``: the presets use it to call a customer active again after
        being ``dormant`` or ``churned`` *reactivated*. Without it ``previous_stage``
        is null and reactivation is recognised from the features alone (a purchase
        in the last 30 days after a gap longer than ``reactivation_gap_days``).
    preset : str, path, mapping or LifecycleConfig
        ``"retail_bank"`` (contractual), ``"retailer"`` (non-contractual), a TOML
        file, or a config (see :func:`load_config`).
    params : mapping, optional
        Threshold overrides, e.g. ``{"dormant_days": 120}``.
    output : {"polars", "pandas"}

    Returns
    -------
    DataFrame
        ``customer_id``, ``as_of``, ``stage``, ``stage_rule`` (the rule that fired).

    Raises
    ------
    ConfigError
        A rule reads a feature the frame lacks (each one named), or rules that share
        a priority match the same customer.
    SchemaError
        ``customer_id`` is missing or not unique.

    Examples
    --------
    >>> import polars as pl
    >>> cfg = {"kind": "non_contractual", "default_stage": "mature",
    ...        "rules": [{"name": "new", "stage": "onboarding", "when": "days_since_first_txn < 90"},
    ...                  {"name": "quiet", "stage": "dormant", "when": "days_since_last_txn >= 180"}],
    ...        "churn": {"kind": "non_contractual"}}
    >>> f = pl.DataFrame({"customer_id": ["a", "b", "c"], "days_since_first_txn": [10, 400, 400],
    ...                   "days_since_last_txn": [10, 200, 5]})
    >>> assign_stages(f, as_of="2025-01-31", preset=cfg).select("customer_id", "stage", "stage_rule")
    shape: (3, 3)
    ┌─────────────┬────────────┬────────────┐
    │ customer_id ┆ stage      ┆ stage_rule │
    │ ---         ┆ ---        ┆ ---        │
    │ str         ┆ str        ┆ str        │
    ╞═════════════╪════════════╪════════════╡
    │ a           ┆ onboarding ┆ new        │
    │ b           ┆ dormant    ┆ quiet      │
    │ c           ┆ mature     ┆ default    │
    └─────────────┴────────────┴────────────┘
    """
    as_of = check_date(as_of, "as_of", "assign_stages")
    config = _resolve(preset, params)
    lf = to_lazy(features, "features")
    names = lf.collect_schema().names()
    if "customer_id" not in names:
        raise SchemaError("assign_stages: the features have no 'customer_id' column"
                          f"{closest('customer_id', names)}; give one row per customer.")
    if previous is not None:
        prev = to_lazy(previous, "previous")
        pnames = prev.collect_schema().names()
        if not {"customer_id", "stage"} <= set(pnames):
            raise SchemaError("assign_stages: 'previous' needs columns customer_id and stage; "
                              f"it has {', '.join(pnames)}.")
        prev = prev.select(pl.col("customer_id").cast(pl.String),
                           pl.col("stage").cast(pl.String).alias(PREVIOUS_STAGE))
        if PREVIOUS_STAGE in names:
            lf = lf.drop(PREVIOUS_STAGE)
        lf = lf.with_columns(pl.col("customer_id").cast(pl.String)).join(
            prev, on="customer_id", how="left", maintain_order="left")
    elif PREVIOUS_STAGE not in names:
        lf = lf.with_columns(pl.lit(None, dtype=pl.String).alias(PREVIOUS_STAGE))
    available = set(names) | {PREVIOUS_STAGE}

    compiled, problems = [], []
    for key, rule in config.ordered_rules():
        cond = rule.compile(config.params)
        missing = sorted(cond.features - available)
        if missing and rule.if_missing == "skip":
            continue
        for feat in missing:
            hint = _FEATURE_SOURCES.get(feat)
            problems.append(f"rule {rule.name!r} reads {feat!r}, which is not a column of the "
                            f"features.{closest(feat, available)}"
                            + (f" ({feat} comes from {hint}.)" if hint else ""))
        compiled.append((key, rule, cond))
    if problems:
        raise ConfigError(f"Lifecycle config {config.name!r}: " + "; ".join(problems))
    empty = lf.head(0)
    for _, rule, cond in compiled:  # types, checked on zero rows
        try:
            dtype = empty.select(cond.expr.alias("c")).collect().schema["c"]
        except pl.exceptions.PolarsError as exc:
            raise ConfigError(f"Lifecycle config {config.name!r}: rule {rule.name!r} cannot be "
                              f"evaluated on these features ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0]}).") from None
        if dtype not in (pl.Boolean, pl.Null):
            raise ConfigError(f"Lifecycle config {config.name!r}: the condition of rule "
                              f"{rule.name!r} is {dtype}, not true/false; compare it with "
                              "something (e.g. 'x > 0').")

    _check_ties(lf, compiled)

    default = pl.lit(len(compiled), dtype=pl.UInt16)
    if compiled:
        chain = pl.when(compiled[0][2].expr).then(pl.lit(0, dtype=pl.UInt16))
        for i, (_, _, cond) in enumerate(compiled[1:], start=1):
            chain = chain.when(cond.expr).then(pl.lit(i, dtype=pl.UInt16))
        index = chain.otherwise(default)
    else:
        index = default
    stages = [r.stage for _, r, _ in compiled] + [config.default_stage]
    rules = [r.name for _, r, _ in compiled] + [config.default_rule]
    idx = pl.col("__rule")
    out = (
        lf.select(pl.col("customer_id").cast(pl.String), index.alias("__rule"))
        .select(
            "customer_id",
            pl.lit(as_of, dtype=pl.Date).alias("as_of"),
            idx.replace_strict(list(range(len(stages))), stages, return_dtype=pl.String)
            .alias("stage"),
            idx.replace_strict(list(range(len(rules))), rules, return_dtype=pl.String)
            .alias("stage_rule"),
        )
        .collect()
    )
    if not _unique(out["customer_id"]):
        where = "the features"
        ids = to_lazy(features, "features").select(pl.col("customer_id").cast(pl.String))
        if previous is not None and ids.select(pl.len() == pl.col("customer_id").n_unique()) \
                .collect().item():
            where, ids = "'previous'", to_lazy(previous, "previous").select(
                pl.col("customer_id").cast(pl.String))
        dups = (ids.filter(pl.col("customer_id").is_duplicated()).unique().sort("customer_id")
                .collect()["customer_id"])
        raise SchemaError(f"assign_stages: customer_id is not unique in {where} "
                          f"({dups.len()} ids repeated, e.g. {', '.join(dups.head(5))}); "
                          "give one row per customer.")
    return to_output(out, output)


def _unique(ids: pl.Series) -> bool:
    """Whether ids are unique; a strictly increasing column (build_features sorts by
    customer) is checked in one pass instead of hashing a million strings."""
    if ids.len() < 2:
        return True
    if (ids.slice(1) > ids.slice(0, ids.len() - 1)).all():
        return True
    return not ids.is_duplicated().any()


def _check_ties(lf: pl.LazyFrame, compiled: list) -> None:
    """Rules sharing a priority must never match the same customer."""
    groups: dict[Any, list] = defaultdict(list)
    for key, rule, cond in compiled:
        groups[key].append((rule, cond))
    pairs = []
    for key, members in groups.items():
        for i in range(len(members)):
            for j in range(i + 1, len(members)):
                pairs.append((key, members[i], members[j]))
    if not pairs:
        return
    exprs = []
    for n, (_, (_, ca), (_, cb)) in enumerate(pairs):
        both = (ca.expr & cb.expr).fill_null(False)
        exprs.append(both.sum().alias(f"n{n}"))
        exprs.append(pl.col("customer_id").filter(both).first().alias(f"e{n}"))
    row = lf.select(exprs).collect().row(0)
    problems = []
    for n, (key, (ra, _), (rb, _)) in enumerate(pairs):
        count, example = row[2 * n], row[2 * n + 1]
        if count:
            problems.append(f"rules {ra.name!r} ({ra.stage}) and {rb.name!r} ({rb.stage}) share "
                            f"priority {key} and both match {count} customer(s), e.g. "
                            f"{example!r}")
    if problems:
        raise ConfigError("Overlapping rules without an order: " + "; ".join(problems)
                          + ". Give them different priorities.")


def recent_gap_feature(transactions: Any, *, as_of: dt.date | str, window_days: int = 30,
                       output: Output = "polars"):
    """Longest inactivity gap that ended within the last ``window_days``.

    For each customer, the gaps (in days) between consecutive distinct transaction
    days on or before ``as_of`` are taken, and the longest gap whose later day falls
    in ``(as_of - window_days, as_of]`` is returned as ``longest_gap_30d_days``
    (the name keeps the default window). Customers without a transaction in the
    window, or without an earlier one, get null. Used to recognise reactivation.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> tx = pl.DataFrame({"customer_id": ["a", "a", "a", "b"],
    ...                    "timestamp": [dt.datetime(2024, 1, 5), dt.datetime(2024, 12, 20),
    ...                                  dt.datetime(2024, 12, 28), dt.datetime(2024, 12, 1)]})
    >>> recent_gap_feature(tx, as_of="2024-12-31").sort("customer_id")["longest_gap_30d_days"].to_list()
    [350, None]
    """
    as_of = check_date(as_of, "as_of", "recent_gap_feature")
    window_days = int(check_positive(window_days, "window_days", "recent_gap_feature"))
    lf = to_lazy(transactions, "transactions")
    start = as_of - dt.timedelta(days=window_days)
    days = (lf.select(pl.col("customer_id").cast(pl.String),
                      pl.col("timestamp").cast(pl.Date).alias("day"))
            .filter(pl.col("day") <= as_of))
    # only the window's days are sorted (a few percent of a long history); the gap
    # before the first of them runs from the customer's last day before the window
    before = days.group_by("customer_id").agg(
        pl.col("day").filter(pl.col("day") <= start).max().alias("before"))
    gaps = (
        days.filter(pl.col("day") > start).unique()
        .sort("customer_id", "day")
        .with_columns(pl.col("day").shift(1).over("customer_id").alias("previous"))
        .join(before, on="customer_id", how="left")
        .group_by("customer_id")
        .agg((pl.col("day") - pl.coalesce("previous", "before")).dt.total_days().max()
             .alias(GAP_FEATURE))
    )
    out = (before.select("customer_id").join(gaps, on="customer_id", how="left")
           .with_columns(pl.col(GAP_FEATURE).cast(pl.Int64))
           .sort("customer_id"))
    return to_output(out, output)


def lifecycle_features(tables: Mapping[str, Any], *, as_of: dt.date | str,
                       windows: tuple[int, ...] = (30, 90, 365), output: Output = "polars",
                       **kwargs: Any):
    """As-of features for the stage engine: :func:`crmkit.features.build_features`
    plus ``longest_gap_30d_days`` (see :func:`recent_gap_feature`).

    Only rows dated on or before ``as_of`` are used. When ``tables`` has no
    ``customers`` table (a transactions-only history such as CDNOW) one is derived
    from the transactions, each customer first seen at their first transaction.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> tx = pl.DataFrame({"customer_id": ["a", "a"], "amount": [5.0, 7.0],
    ...                    "timestamp": [dt.datetime(2024, 1, 5), dt.datetime(2024, 12, 20)]})
    >>> f = lifecycle_features({"transactions": tx}, as_of="2024-12-31")
    >>> f["longest_gap_30d_days"].to_list()
    [350]
    """
    from crmkit.features import build_features

    as_of = check_date(as_of, "as_of", "lifecycle_features")
    tables = dict(tables)
    if "customers" not in tables:
        if "transactions" not in tables:
            raise SchemaError("lifecycle_features: give at least a customers or a transactions "
                              "table.")
        tables["customers"] = _customers_from_transactions(tables["transactions"], as_of)
    feats = to_polars(build_features(tables, as_of=as_of, windows=windows, **kwargs))
    if GAP_FEATURE in feats.columns:  # build_features may provide it one day
        return to_output(feats, output)
    if "transactions" in tables:
        gaps = recent_gap_feature(tables["transactions"], as_of=as_of)
    else:
        gaps = pl.DataFrame(schema={"customer_id": pl.String, GAP_FEATURE: pl.Int64})
    out = feats.join(gaps, on="customer_id", how="left", maintain_order="left")
    return to_output(out, output)


def _customers_from_transactions(transactions: Any, as_of: dt.date) -> pl.DataFrame:
    return (
        to_lazy(transactions, "transactions")
        .filter(pl.col("timestamp").cast(pl.Date) <= as_of)
        .group_by("customer_id")
        .agg(pl.col("timestamp").min().cast(pl.Date).alias("first_seen"))
        .select(pl.col("customer_id").cast(pl.String), pl.lit(None, pl.String).alias("branch_id"),
                "first_seen")
        .sort("customer_id")
        .collect()
    )
