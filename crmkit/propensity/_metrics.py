"""How good the propensities are, and how much customers hold: metrics and backtests.

Lift, gain and Success@k treat tied scores fairly: rows with equal scores share
their positives in proportion, as if the ties were broken at random (expected
value), so a baseline that gives a whole tier one score is neither helped nor hurt
by the row order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from crmkit._frames import Output, to_output, to_polars
from crmkit._params import check_date, check_positive
from crmkit.propensity._calibration import expected_calibration_error
from crmkit.propensity._targets import (
    RETAIL_BANK_TIERS,
    build_training_set,
    split_training_set,
)

__all__ = [
    "PropensityBacktest",
    "backtest",
    "calibration_curve",
    "cross_sell_rate",
    "evaluate_propensities",
    "lift_table",
    "product_penetration",
    "success_at_k",
]


def _gain_at(y: np.ndarray, s: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Expected positives among the top ``fraction`` of rows by score, ties shared."""
    order = np.argsort(-s, kind="stable")
    ys, ss = y[order].astype(float), s[order]
    n = ys.size
    # tie groups: start index of each distinct score run
    brk = np.r_[True, ss[1:] != ss[:-1]]
    start = np.flatnonzero(brk)
    end = np.r_[start[1:], n]
    cum_before = np.r_[0.0, np.cumsum(ys)][start]
    grp_pos = np.add.reduceat(ys, start) if n else np.array([])
    out = []
    for f in fractions:
        cut = f * n
        g = np.searchsorted(end, cut, side="left")
        if g >= start.size:
            out.append(float(ys.sum()))
            continue
        size = end[g] - start[g]
        out.append(float(cum_before[g] + grp_pos[g] * (cut - start[g]) / size))
    return np.asarray(out)


def lift_table(y_true: Any, y_score: Any, *, n_bins: int = 10, output: Output = "polars"):
    """Lift and cumulative gain by score decile (or ``n_bins`` quantiles).

    Returns
    -------
    DataFrame
        ``bin`` (1 = highest scores), ``share`` (cumulative share of rows),
        ``positives`` (expected positives in the bin), ``rate``, ``lift`` (bin rate /
        overall rate), ``cumulative_gain`` (share of all positives in bins
        ``1..bin``), ``cumulative_lift``.

    Examples
    --------
    >>> lt = lift_table([1, 0, 1, 0, 0, 0, 0, 0, 0, 0], [.9, .8, .7, .1, .1, .1, .1, .1, .1, .1],
    ...                 n_bins=5)
    >>> lt["lift"].to_list()[:2]
    [2.5, 2.5]
    """
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(y_score, dtype=float)
    n_bins = int(check_positive(n_bins, "n_bins", "lift_table"))
    fr = np.arange(1, n_bins + 1) / n_bins
    cum = _gain_at(y, s, fr)
    total = y.sum()
    pos = np.diff(np.r_[0.0, cum])
    size = np.diff(np.r_[0.0, fr]) * y.size
    rate = total / y.size if y.size else float("nan")
    out = pl.DataFrame({
        "bin": np.arange(1, n_bins + 1), "share": fr, "positives": pos,
        "rate": pos / size, "lift": (pos / size) / rate if rate > 0 else np.nan,
        "cumulative_gain": cum / total if total > 0 else np.nan,
        "cumulative_lift": (cum / total) / fr if total > 0 else np.nan})
    return to_output(out, output)


def calibration_curve(y_true: Any, y_prob: Any, *, n_bins: int = 10, output: Output = "polars"):
    """Mean predicted probability against the observed rate in equal-frequency bins.

    Examples
    --------
    >>> cc = calibration_curve([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9], n_bins=2)
    >>> cc["observed"].to_list()
    [0.0, 1.0]
    """
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_prob, dtype=float)
    order = np.argsort(p, kind="stable")
    rows = []
    for i, chunk in enumerate(np.array_split(order, min(int(n_bins), max(y.size, 1)))):
        if chunk.size:
            rows.append((i + 1, chunk.size, float(p[chunk].mean()), float(y[chunk].mean())))
    out = pl.DataFrame(rows, schema={"bin": pl.Int64, "n": pl.Int64, "predicted": pl.Float64,
                                     "observed": pl.Float64}, orient="row")
    return to_output(out, output)


def _metrics(y: np.ndarray, s: np.ndarray) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score
    both = 0 < y.sum() < y.size
    return {
        "roc_auc": float(roc_auc_score(y, s)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, s)) if both else float("nan"),
        "top_decile_lift": float(lift_table(y, s)["lift"][0]) if y.sum() > 0 else float("nan"),
        "ece": expected_calibration_error(y, s),
    }


def evaluate_propensities(labels: Any, scores: Any, baseline: Any = None, *,
                          output: Output = "polars"):
    """Per target: ROC AUC, PR AUC, top-decile lift and expected calibration error.

    Parameters
    ----------
    labels : table
        One column per target: 1, 0, or null (not eligible; left out).
    scores : table
        ``p_<target>`` per target, rows aligned with ``labels``.
    baseline : table, optional
        The same for a baseline; adds ``baseline_*`` columns and ``beats_baseline``
        (higher ROC AUC and higher top-decile lift).

    Examples
    --------
    >>> lab = pl.DataFrame({"A": [1, 0, 0, 1, None]})
    >>> sc = pl.DataFrame({"p_A": [0.9, 0.2, 0.1, 0.6, 0.5]})
    >>> evaluate_propensities(lab, sc)["roc_auc"].to_list()
    [1.0]
    """
    lab = to_polars(labels, "labels")
    sc = to_polars(scores, "scores")
    base = to_polars(baseline, "baseline") if baseline is not None else None
    rows = []
    for t in lab.columns:
        if f"p_{t}" not in sc.columns:
            raise ValueError(f"scores has no column 'p_{t}' for the label column {t!r}.")
        e = lab[t].is_not_null().to_numpy()
        y = lab[t].to_numpy()[e].astype(float)
        row = {"target": t, "n": int(e.sum()), "positives": int(y.sum()),
               **_metrics(y, sc[f"p_{t}"].to_numpy()[e])}
        if base is not None:
            b = _metrics(y, base[f"p_{t}"].to_numpy()[e])
            row.update({f"baseline_{k}": v for k, v in b.items()})
            row["beats_baseline"] = bool(row["roc_auc"] > b["roc_auc"]
                                         and row["top_decile_lift"] > b["top_decile_lift"])
        rows.append(row)
    return to_output(pl.DataFrame(rows), output)


def success_at_k(labels: Any, scores: Any, *, k: int = 3) -> float:
    """Share of adopters whose top ``k`` eligible targets (by score) include one they took.

    Only customers who took up at least one eligible target count; a target is
    eligible when its label is not null. Ties are shared fairly.

    Examples
    --------
    >>> lab = pl.DataFrame({"A": [1, 0], "B": [0, None], "C": [0, 1]})
    >>> sc = pl.DataFrame({"p_A": [0.9, 0.3], "p_B": [0.5, 0.9], "p_C": [0.1, 0.2]})
    >>> success_at_k(lab, sc, k=1)
    0.5
    """
    lab = to_polars(labels, "labels")
    sc = to_polars(scores, "scores")
    L = lab.select(pl.all().cast(pl.Float64)).to_numpy()
    S = sc.select(f"p_{t}" for t in lab.columns).to_numpy().astype(float)
    elig = ~np.isnan(L)
    Lz = np.where(elig, L, 0.0)
    adopters = Lz.sum(axis=1) > 0
    if not adopters.any():
        return float("nan")
    S = np.where(elig, S, -np.inf)[adopters]
    Lz = Lz[adopters]
    hits = np.empty(S.shape[0])
    for i in range(S.shape[0]):  # exact expected hit rate under random tie-breaking
        s, y = S[i], Lz[i]
        kth = np.sort(s)[::-1][min(k, s.size) - 1]
        above = s > kth
        tied = s == kth
        slots = k - above.sum()
        if (y[above] > 0).any() or not np.isfinite(kth):
            hits[i] = float((y[above] > 0).any())
            continue
        n_t, p_t = tied.sum(), (y[tied] > 0).sum()
        # P(at least one of the p_t positives among `slots` drawn from n_t)
        from math import comb
        miss = comb(int(n_t - p_t), int(slots)) / comb(int(n_t), int(slots)) if slots > 0 else 1.0
        hits[i] = 1.0 - miss
    return float(hits.mean())


@dataclass
class PropensityBacktest:
    """Result of :func:`backtest`: per-target metrics against the popularity baseline,
    lift tables, calibration curves and Success@k, at one later as-of date."""

    as_of: dt.date
    metrics: pl.DataFrame
    lift: pl.DataFrame
    calibration: pl.DataFrame
    success: pl.DataFrame
    labels: pl.DataFrame
    scores: pl.DataFrame
    baseline_scores: pl.DataFrame


def backtest(model: Any, tables: Mapping[str, Any], *, as_of: dt.date | str, horizon: float,
             unit: str, ks: Sequence[int] = (1, 3), windows: Sequence[int] = (30, 90, 365),
             tiers: Sequence[tuple[str, float]] = RETAIL_BANK_TIERS,
             test_set: Any = None) -> PropensityBacktest:
    """Score a fitted model at a later date and compare it with popularity within tier.

    The test rows are :func:`build_training_set` at ``as_of`` (features as of
    ``as_of``, labels in ``(as_of, as_of + horizon]``); pass ``test_set`` to reuse
    rows already built. The baseline is the model's own popularity-within-tier
    rates from the training rows.
    """
    day = check_date(as_of, "as_of", "backtest")
    if test_set is None:
        test_set = build_training_set(tables, as_of=day, horizon=horizon, unit=unit,
                                      targets=list(model.targets_), windows=windows, tiers=tiers)
    X, Y, _ = split_training_set(test_set)
    Y = Y.select(model.targets_)
    P = to_polars(model.predict_propensities(X))
    B = to_polars(model.predict_propensities(X, baseline=True))
    metrics = evaluate_propensities(Y, P, B)
    lifts, cals = [], []
    for t in model.targets_:
        e = Y[t].is_not_null().to_numpy()
        y = Y[t].to_numpy()[e].astype(float)
        for name, S in (("model", P), ("baseline", B)):
            s = S[f"p_{t}"].to_numpy()[e]
            lifts.append(lift_table(y, s).with_columns(pl.lit(t).alias("target"),
                                                       pl.lit(name).alias("scorer")))
        cals.append(calibration_curve(y, P[f"p_{t}"].to_numpy()[e]).with_columns(
            pl.lit(t).alias("target")))
    success = pl.DataFrame([{"k": int(k), "model": success_at_k(Y, P, k=k),
                             "popularity_within_tier": success_at_k(Y, B, k=k)} for k in ks])
    return PropensityBacktest(day, metrics, pl.concat(lifts), pl.concat(cals), success, Y, P, B)


def _holdings_on(tables: Mapping[str, Any], day: dt.date) -> pl.DataFrame:
    h = to_polars(tables["holdings"], "holdings")
    return h.filter((pl.col("opened") <= day)
                    & (pl.col("closed").is_null() | (pl.col("closed") > day)))


def _tiers_on(tables: Mapping[str, Any], day: dt.date, tiers) -> pl.DataFrame:
    from crmkit.propensity._targets import propensity_features
    f = propensity_features(tables, as_of=day, windows=(30,), tiers=tiers)
    return f.select("customer_id", "tier", "tier_rank")


def _dates(as_of) -> list[dt.date]:
    vals = [as_of] if isinstance(as_of, (str, dt.date)) else list(as_of)
    return [check_date(v, "as_of", "cross_sell_rate") for v in vals]


def cross_sell_rate(tables: Mapping[str, Any], *, as_of: Any,
                    tiers: Sequence[tuple[str, float]] = RETAIL_BANK_TIERS,
                    tier_table: Any = None, output: Output = "polars"):
    """Products per customer by tier, at one date or several (a trend).

    Counts open accounts of distinct products per customer with at least one open
    product on each date (prospects and customers who closed everything are not
    cross-sell candidates and are left out), by tier. ``tier_table``
    (``customer_id, tier``) overrides the tiers computed from financial assets.

    Returns
    -------
    DataFrame
        ``as_of, tier, customers, products_per_customer, share_multi_product``
        (share with two or more products), plus a row per date with tier ``"All"``.
    """
    rows = []
    for day in _dates(as_of):
        held = _holdings_on(tables, day).group_by("customer_id").agg(
            pl.col("product_id").n_unique().alias("n_products"))
        tt = to_polars(tier_table, "tier_table").select("customer_id", "tier") \
            if tier_table is not None else _tiers_on(tables, day, tiers)
        df = held.join(tt, on="customer_id", how="left").with_columns(
            pl.col("tier").fill_null("unknown"))
        agg = [pl.len().alias("customers"),
               pl.col("n_products").mean().alias("products_per_customer"),
               (pl.col("n_products") >= 2).mean().alias("share_multi_product")]
        per = df.group_by("tier").agg(agg)
        allr = df.select(pl.lit("All").alias("tier"), *agg)
        rows.append(pl.concat([per, allr]).with_columns(pl.lit(day).alias("as_of")))
    out = pl.concat(rows).select("as_of", "tier", pl.col("customers").cast(pl.Int64),
                                 "products_per_customer", "share_multi_product")
    return to_output(out.sort("as_of", "tier"), output)


def product_penetration(tables: Mapping[str, Any], *, as_of: Any,
                        tiers: Sequence[tuple[str, float]] = RETAIL_BANK_TIERS,
                        tier_table: Any = None, output: Output = "polars"):
    """Share of each tier's customers (with at least one open product) holding each product.

    Returns ``as_of, tier, product_id, customers, holders, penetration``.
    """
    rows = []
    for day in _dates(as_of):
        held = _holdings_on(tables, day).select("customer_id", "product_id").unique()
        tt = to_polars(tier_table, "tier_table").select("customer_id", "tier") \
            if tier_table is not None else _tiers_on(tables, day, tiers)
        base = held.select("customer_id").unique().join(tt, on="customer_id", how="left") \
            .with_columns(pl.col("tier").fill_null("unknown"))
        size = base.group_by("tier").agg(pl.len().alias("customers"))
        hold = held.join(base, on="customer_id").group_by("tier", "product_id") \
            .agg(pl.len().alias("holders"))
        prods = to_polars(tables["products"], "products").select("product_id")
        grid = size.join(prods, how="cross").join(hold, on=["tier", "product_id"], how="left") \
            .with_columns(pl.col("holders").fill_null(0))
        rows.append(grid.with_columns(pl.lit(day).alias("as_of")))
    out = pl.concat(rows).select(
        "as_of", "tier", "product_id", pl.col("customers").cast(pl.Int64),
        pl.col("holders").cast(pl.Int64),
        (pl.col("holders") / pl.col("customers")).alias("penetration"))
    return to_output(out.sort("as_of", "tier", "product_id"), output)
