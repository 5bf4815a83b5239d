"""Plots: survival curves by group, calibration at a horizon, reason codes of a customer."""

from __future__ import annotations

from typing import Any

import numpy as np

from crmkit._frames import to_polars

__all__ = ["plot_calibration", "plot_reason_codes", "plot_survival_by_group"]


def _km_curve(duration: np.ndarray, event: np.ndarray, with_variance: bool = False):
    """Kaplan-Meier at the distinct event times: (times, survival[, Greenwood var/S^2])."""
    d = np.asarray(duration, dtype=float)
    e = np.asarray(event, dtype=bool)
    times = np.unique(d[e])
    if times.size == 0:
        empty = np.empty(0)
        return (empty, empty, empty) if with_variance else (empty, empty)
    sd = np.sort(d)
    at_risk = d.size - np.searchsorted(sd, times, side="left")
    se = np.sort(d[e])
    deaths = np.searchsorted(se, times, side="right") - np.searchsorted(se, times, side="left")
    surv = np.cumprod(1.0 - deaths / at_risk)
    if not with_variance:
        return times, surv
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(at_risk > deaths, deaths / (at_risk * (at_risk - deaths)), 0.0)
    return times, surv, np.cumsum(terms)


def _axes(ax):
    if ax is None:
        from crmkit._estimator import new_axes
        ax = new_axes(figsize=(6, 4))
    return ax


def plot_survival_by_group(duration: Any, event: Any, groups: Any, *, ax=None,
                           unit: str | None = None, name: str | None = None,
                           ci: float | None = 0.95, time_unit: str | None = None):
    """Kaplan-Meier retention curves, one per group (tier, lifecycle stage, ...).

    Parameters
    ----------
    duration, event : array-like
        Survival data (e.g. from :func:`build_survival_data`).
    groups : array-like
        Group label of each customer; a named series (polars or pandas) gives the
        legend its title (``fin = 0 (n=216)``).
    ax : matplotlib Axes, optional
    unit : str, optional
        Unit of ``duration``, for the axis label (``time_unit``: deprecated name).
    name : str, optional
        The grouping variable's name in the legend (default: the series name).
    ci : float or None
        Pointwise confidence band (Greenwood's variance on the log(-log S)
        scale, as lifelines draws it); None for none.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt, polars as pl
    >>> open_before = len(plt.get_fignums())
    >>> ax = plot_survival_by_group([1, 2, 3, 4], [1, 0, 1, 1],
    ...                             pl.Series("tier", ["a", "a", "b", "b"]))
    >>> len(ax.get_lines()), ax.get_legend().get_texts()[0].get_text()
    (2, 'tier = a (n=2)')
    >>> len(plt.get_fignums()) == open_before  # no figure left open in pyplot (batch backend)
    True
    """
    from scipy.stats import norm

    ax = _axes(ax)
    if name is None:
        name = getattr(groups, "name", None)
    d = np.asarray(duration, dtype=float)
    e = np.asarray(event).astype(bool)
    g = np.asarray(groups, dtype=object)
    z = norm.ppf(0.5 + ci / 2) if ci else None
    for label in sorted(set(g.tolist()), key=str):
        m = g == label
        t, s, v = _km_curve(d[m], e[m], with_variance=True)
        tt = np.concatenate([[0.0], t])
        text = f"{name} = {label}" if name else f"{label}"
        line, = ax.step(tt, np.concatenate([[1.0], s]), where="post",
                        label=f"{text} (n={int(m.sum())})")
        if z is not None and t.size:
            with np.errstate(divide="ignore", invalid="ignore"):
                ls = np.log(-np.log(s))
                half = z * np.sqrt(v) / np.abs(np.log(s))
                lo = np.exp(-np.exp(ls + half))
                hi = np.exp(-np.exp(ls - half))
            ok = np.isfinite(lo) & np.isfinite(hi)
            ax.fill_between(tt, np.concatenate([[1.0], np.where(ok, lo, s)]),
                            np.concatenate([[1.0], np.where(ok, hi, s)]), step="post",
                            alpha=0.2, color=line.get_color(), linewidth=0)
    if time_unit is not None:
        from crmkit._estimator import deprecated_alias
        deprecated_alias("plot_survival_by_group", "time_unit", "unit")
        unit = unit or time_unit
    ax.set_xlabel(f"time ({unit})" if unit else "time")
    ax.set_ylabel("share still a customer")
    ax.set_ylim(0, 1.02)
    title = f"{name}" + (f", {int(round(ci * 100))}% band" if ci else "") if name else None
    ax.legend(loc="lower left", fontsize="small", title=title)
    return ax


def plot_calibration(table: Any, *, ax=None, horizon_label: str = ""):
    """Predicted vs Kaplan-Meier observed churn per risk bin (from
    :func:`crmkit.churn.metrics.calibration_table`), with the diagonal.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import polars as pl
    >>> tab = pl.DataFrame({"bin": [1, 2], "n": [5, 5], "predicted": [.1, .5], "observed": [.12, .4],
    ...                     "observed_lower": [.0, .2], "observed_upper": [.3, .6]})
    >>> plot_calibration(tab).get_xlabel()
    'predicted churn probability'
    """
    ax = _axes(ax)
    tab = to_polars(table, "table")
    p, o = tab["predicted"].to_numpy(), tab["observed"].to_numpy()
    lo, hi = tab["observed_lower"].to_numpy(), tab["observed_upper"].to_numpy()
    top = float(max(p.max(), hi.max(), 0.05)) * 1.05
    ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1, label="perfect")
    ax.errorbar(p, o, yerr=[o - lo, hi - o], fmt="o", capsize=3, label="risk bins")
    ax.set_xlabel("predicted churn probability")
    ax.set_ylabel("observed (Kaplan-Meier)")
    ax.set_title(f"Calibration{' at ' + horizon_label if horizon_label else ''}")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def plot_reason_codes(reasons: Any, customer: Any = None, *, ax=None):
    """Horizontal bars of one customer's reason codes (hazard ratio per covariate).

    Parameters
    ----------
    reasons : table
        Output of ``model.reason_codes(X, ...)``.
    customer : id, optional
        ``customer_id`` (or ``row``) to show; default the first one in the table.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import polars as pl
    >>> r = pl.DataFrame({"row": [0, 0], "rank": [1, 2], "covariate": ["complaints", "idle_days"],
    ...                   "value": [3.0, 40.0], "contribution": [0.9, 0.2],
    ...                   "hazard_ratio": [2.46, 1.22]})
    >>> len(plot_reason_codes(r).patches)
    2
    """
    ax = _axes(ax)
    tab = to_polars(reasons, "reasons")
    key = "customer_id" if "customer_id" in tab.columns else "row"
    if customer is None and tab.height:
        customer = tab[key][0]
    sub = tab.filter(tab[key] == customer).sort("rank", descending=True)
    labels = [f"{c} = {v:g}" for c, v in zip(sub["covariate"], sub["value"])]
    ax.barh(labels, sub["contribution"].to_numpy(), color="tab:red")
    for y, (c, hr) in enumerate(zip(sub["contribution"], sub["hazard_ratio"])):
        ax.text(c, y, f"  x{hr:.2f}", va="center", fontsize="small")
    ax.set_xlabel("contribution to log hazard vs the average customer")
    ax.set_title(f"Why customer {customer} is at risk")
    return ax
