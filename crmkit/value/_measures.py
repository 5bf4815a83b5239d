"""Compare candidate value measures by how well each predicts next-period revenue.

A bank can measure customer value by revenue, by assets, by activity or by a CLV
model. :func:`compare_value_measures` scores each candidate column, known as of a date
D, against the revenue each customer actually brought in (D, D + h]
(:func:`next_period_revenue`), so the yardstick is chosen with evidence.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from crmkit._exprs import exact_sum
from crmkit._frames import Output, to_lazy, to_output, to_polars
from crmkit._params import check_choice, check_date, check_positive
from crmkit.exceptions import SchemaError

__all__ = ["compare_value_measures", "next_period_revenue", "plot_value_measures"]

_METRICS = ("spearman", "gini", "top_capture", "top_lift", "r2")


def next_period_revenue(transactions: Any, *, as_of: dt.date | str, horizon_days: int,
                        customers: Any = None, customer_col: str = "customer_id",
                        time_col: str = "timestamp", value_col: str = "amount",
                        output: Output = "polars"):
    """Revenue per customer in the ``horizon_days`` days after ``as_of``: (as_of, as_of + h].

    Parameters
    ----------
    transactions : table
        Canonical transactions (``customer_id``, ``timestamp``, ``amount``).
    as_of : date or str
        The last day of the past; its transactions are not counted.
    horizon_days : int
        Length of the future window in days.
    customers : table, optional
        Customers to report (``customer_col``); those without transactions in the window
        get 0. Default: customers with any transaction on or before ``as_of``.

    Returns
    -------
    DataFrame
        ``customer_col`` and ``revenue_next_<h>d``, sorted by customer.

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> tx = pl.DataFrame({"customer_id": ["a", "a", "b", "a"],
    ...                    "timestamp": [dt.date(2024, 1, 5), dt.date(2024, 2, 1),
    ...                                  dt.date(2024, 1, 9), dt.date(2024, 3, 2)],
    ...                    "amount": [10.0, 7.0, 3.0, 5.0]})
    >>> next_period_revenue(tx, as_of="2024-01-31", horizon_days=30).rows()
    [('a', 7.0), ('b', 0.0)]
    """
    owner = "next_period_revenue"
    as_of = check_date(as_of, "as_of", owner)
    if not isinstance(horizon_days, int) or isinstance(horizon_days, bool) or horizon_days < 1:
        raise ValueError(f"The 'horizon_days' parameter of {owner} must be a positive integer. "
                         f"Got {horizon_days!r} instead.")
    lf = to_lazy(transactions, "transactions")
    names = lf.collect_schema().names()
    missing = [c for c in (customer_col, time_col, value_col) if c not in names]
    if missing:
        raise SchemaError(f"{owner}: the transactions table has no column "
                          f"{', '.join(map(repr, missing))}; it has {', '.join(names)}. Name the "
                          f"columns with customer_col=, time_col=, value_col=.")
    day = pl.col(time_col).cast(pl.Date) if lf.collect_schema()[time_col] != pl.Date else pl.col(time_col)
    end = as_of + dt.timedelta(days=horizon_days)
    col = f"revenue_next_{horizon_days}d"
    lf = lf.select(pl.col(customer_col), day.alias("_day"), pl.col(value_col).cast(pl.Float64))
    future = (lf.filter((pl.col("_day") > as_of) & (pl.col("_day") <= end))
              .group_by(customer_col).agg(exact_sum(pl.col(value_col)).alias(col)))
    if customers is None:
        base = lf.filter(pl.col("_day") <= as_of).select(customer_col).unique()
    else:
        base = to_lazy(customers, "customers").select(pl.col(customer_col)).unique()
    out = (base.join(future, on=customer_col, how="left")
           .with_columns(pl.col(col).fill_null(0.0)).sort(customer_col))
    return to_output(out.collect(), output)


def _gains_curve(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative-gains curve: customers sorted by x (best first) against their share
    of total y. Tied x values are one group whose y is spread evenly (the expectation
    over random tie orders), i.e. one straight segment of the curve."""
    order = np.argsort(-x, kind="stable")
    xs, ys = x[order], y[order]
    starts = np.r_[0, np.flatnonzero(np.diff(xs) != 0) + 1]
    g_n = np.diff(np.r_[starts, len(xs)]).astype(float)
    g_y = np.add.reduceat(ys, starts)
    return np.r_[0.0, np.cumsum(g_n)] / len(xs), np.r_[0.0, np.cumsum(g_y)] / ys.sum()


def _gains(x: np.ndarray, y: np.ndarray, top_fraction: float) -> tuple[float, float]:
    """Area under the gains curve and the share of y captured by the top ``top_fraction``."""
    cn, cy = _gains_curve(x, y)
    area = float(np.sum(np.diff(cn) * (cy[1:] + cy[:-1]) / 2))
    return area, float(np.interp(top_fraction, cn, cy))


def _prepare(features, revenue, candidates, target_col, lower_is_better, id_col, top_fraction,
             owner):
    top_fraction = check_positive(top_fraction, "top_fraction", owner)
    if not top_fraction < 1:
        raise ValueError(f"The 'top_fraction' parameter of {owner} must be in (0, 1). "
                         f"Got {top_fraction!r} instead.")
    feats = to_polars(features, "features")
    if id_col not in feats.columns:
        raise SchemaError(f"{owner}: the features table has no column {id_col!r}; name it with id_col=.")
    if revenue is None:
        if target_col is None or target_col not in feats.columns:
            raise ValueError(f"The 'target_col' parameter of {owner} must name a column of features "
                             f"when revenue is not given. Got {target_col!r} instead.")
        data = feats
    else:
        rev = to_polars(revenue, "revenue")
        if id_col not in rev.columns:
            raise SchemaError(f"{owner}: the revenue table has no column {id_col!r}.")
        if target_col is None:
            others = [c for c in rev.columns if c != id_col]
            if len(others) != 1:
                raise ValueError(f"The 'target_col' parameter of {owner} must be given when revenue "
                                 f"has several columns ({', '.join(others)}). Got None instead.")
            target_col = others[0]
        if target_col not in rev.columns:
            raise SchemaError(f"{owner}: the revenue table has no column {target_col!r}.")
        if rev[id_col].is_duplicated().any():
            raise SchemaError(f"{owner}: the revenue table has duplicate {id_col!r}; pass one row per customer.")
        data = (feats.drop(target_col, strict=False)
                .join(rev.select(id_col, target_col), on=id_col, how="left"))
    data = data.with_columns(pl.col(target_col).cast(pl.Float64).fill_null(0.0))
    if candidates is None:
        candidates = [c for c, t in data.schema.items()
                      if c not in (id_col, target_col) and (t.is_numeric() or t == pl.Boolean)]
    missing = [c for c in candidates if c not in data.columns]
    if missing:
        raise SchemaError(f"{owner}: the features table has no column {', '.join(map(repr, missing))}.")
    if not candidates:
        raise ValueError(f"{owner}: no candidate measure to compare; pass candidates=[...].")
    stray = [c for c in lower_is_better if c not in candidates]
    if stray:
        raise ValueError(f"The 'lower_is_better' parameter of {owner} must name candidates. "
                         f"Got {stray!r} instead.")
    if not data[target_col].sum() > 0:
        raise ValueError(f"{owner}: the total of {target_col!r} is not positive; nothing to capture. "
                         f"Check the revenue window.")
    return data, list(candidates), target_col, top_fraction


def _candidate_values(data: pl.DataFrame, c: str, lower_is_better: Sequence[str]):
    s = data[c].cast(pl.Float64).fill_nan(None)
    if c in lower_is_better:
        s = -s
    lowest = s.min()
    return s.fill_null(lowest if lowest is not None else 0.0).to_numpy(), s.null_count()


def compare_value_measures(features: Any, revenue: Any = None, *,
                           candidates: Sequence[str] | None = None, target_col: str | None = None,
                           lower_is_better: Sequence[str] = (),
                           id_col: str = "customer_id", top_fraction: float = 0.1,
                           sort_by: str = "spearman", output: Output = "polars"):
    """Rank candidate value measures by how well each predicts next-period revenue.

    For each candidate column (known as of D) against the revenue in (D, D + h]:

    - ``spearman``: Spearman rank correlation (average ranks for ties);
    - ``gini``: normalised Gini of the cumulative-gains curve (customers sorted by the
      candidate, best first): 1 = the candidate orders customers as well as the revenue
      itself, 0 = no better than random;
    - ``top_capture``: share of total revenue brought by the top ``top_fraction`` of
      customers by the candidate, and ``top_lift = top_capture / top_fraction``;
    - ``r2``: R^2 of the least-squares line revenue ~ a + b * candidate.

    Tied candidate values are handled as a group whose revenue is spread evenly (the
    expectation over random tie orders), so a coarse measure is neither favoured nor
    penalised by row order. A null candidate counts as the worst observed value of
    that candidate (the lowest; the highest for ``lower_is_better``); a customer missing from ``revenue`` has revenue 0.

    Parameters
    ----------
    features : table
        One row per customer: ``id_col`` and the candidate columns.
    revenue : table, optional
        ``id_col`` and the target (e.g. :func:`next_period_revenue`). If omitted, the
        target column is read from ``features``.
    candidates : list of str, optional
        Columns to compare (default: every numeric column except the id and target).
    target_col : str, optional
        Default: the single non-id column of ``revenue``.
    lower_is_better : list of str
        Candidates where a smaller value means more value (e.g. days since the last
        purchase): they are negated before scoring, so their metrics read like the others.
    top_fraction : float, default 0.1
        Size of the top group (0.1 = top decile).
    sort_by : {"spearman", "gini", "top_capture", "top_lift", "r2"}
        Best first by this metric.

    Returns
    -------
    DataFrame
        ``measure``, ``direction`` (``"higher"`` or ``"lower"`` is better), ``spearman``,
        ``gini``, ``top_capture``, ``top_lift``, ``r2``, ``n_customers``, ``n_null``;
        one row per candidate, best first.

    Examples
    --------
    >>> import polars as pl
    >>> f = pl.DataFrame({"customer_id": list("abcdef"),
    ...                   "assets": [9.0, 7.0, 5.0, 3.0, 2.0, 1.0],
    ...                   "activity": [1, 1, 1, 1, 1, 1]})
    >>> r = pl.DataFrame({"customer_id": list("abcdef"), "revenue": [50.0, 30.0, 10.0, 5.0, 5.0, 0.0]})
    >>> out = compare_value_measures(f, r, top_fraction=0.5)
    >>> out.select("measure", "gini", "top_capture").rows()
    [('assets', 1.0, 0.9), ('activity', 0.0, 0.5)]
    """
    owner = "compare_value_measures"
    data, candidates, target_col, top_fraction = _prepare(
        features, revenue, candidates, target_col, lower_is_better, id_col, top_fraction, owner)
    check_choice(sort_by, _METRICS, "sort_by", owner)
    y = data[target_col].to_numpy()
    area_best, _ = _gains(y, y, top_fraction)
    rows = []
    for c in candidates:
        x, n_null = _candidate_values(data, c, lower_is_better)
        constant = bool(np.all(x == x[0]))
        with np.errstate(all="ignore"):
            rho = float("nan") if constant else float(stats.spearmanr(x, y).statistic)
            r = float("nan") if constant else float(np.corrcoef(x, y)[0, 1])
        area, capture = _gains(x, y, top_fraction)
        gini = (area - 0.5) / (area_best - 0.5) if area_best > 0.5 else float("nan")
        rows.append({"measure": c, "direction": "lower" if c in lower_is_better else "higher",
                     "spearman": 0.0 if constant else rho, "gini": gini,
                     "top_capture": capture, "top_lift": capture / top_fraction,
                     "r2": 0.0 if constant else r * r, "n_customers": len(x), "n_null": n_null})
    out = (pl.DataFrame(rows, schema={"measure": pl.String, "direction": pl.String, **{m: pl.Float64 for m in _METRICS},
                                      "n_customers": pl.Int64, "n_null": pl.Int64})
           .sort([sort_by, "measure"], descending=[True, False], nulls_last=True))
    return to_output(out, output)


def plot_value_measures(features: Any, revenue: Any = None, *,
                        candidates: Sequence[str] | None = None, target_col: str | None = None,
                        lower_is_better: Sequence[str] = (), id_col: str = "customer_id", ax=None):
    """Cumulative-gains curves of candidate value measures against next-period revenue.

    For each candidate: customers sorted by the candidate (best first) on the x axis,
    the share of the revenue they brought on the y axis; tied values are one straight
    segment. The revenue itself (perfect order) and random order are drawn for
    reference. Same inputs as :func:`compare_value_measures`.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import polars as pl
    >>> f = pl.DataFrame({"customer_id": list("abcd"), "assets": [4.0, 3.0, 2.0, 1.0]})
    >>> r = pl.DataFrame({"customer_id": list("abcd"), "revenue": [5.0, 3.0, 2.0, 0.0]})
    >>> ax = plot_value_measures(f, r)
    >>> [line.get_label() for line in ax.get_lines()]
    ['revenue (perfect)', 'random', 'assets']
    """
    import matplotlib.pyplot as plt

    data, candidates, target_col, _ = _prepare(features, revenue, candidates, target_col,
                                               lower_is_better, id_col, 0.1,
                                               "plot_value_measures")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    y = data[target_col].to_numpy()
    px, py = _gains_curve(y, y)
    ax.plot(px, py, color="black", linestyle=":", label=f"{target_col} (perfect)")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="random")
    for c in candidates:
        x, _ = _candidate_values(data, c, lower_is_better)
        cx, cy = _gains_curve(x, y)
        ax.plot(cx, cy, label=c)
    ax.set_xlabel("share of customers, best first by the measure")
    ax.set_ylabel(f"share of {target_col}")
    ax.set_xlim(0, 1)
    ax.set_title("Which value measure finds next period's revenue?")
    ax.legend(loc="lower right", fontsize="small")
    return ax
