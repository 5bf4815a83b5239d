"""Plots of lifecycle stages: distribution over time, transition heat map, flow between runs."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

from crmkit._frames import to_polars
from crmkit.lifecycle._config import STANDARD_STAGES
from crmkit.lifecycle._transitions import _history, transition_matrix

__all__ = ["plot_stage_distribution", "plot_stage_flow", "plot_transition_heatmap"]

_COLORS = {
    "prospect": "#bab0ac", "onboarding": "#4e79a7", "growth": "#59a14f", "mature": "#76b7b2",
    "decline": "#f28e2b", "dormant": "#edc948", "churned": "#e15759", "reactivated": "#b07aa1",
    "(new)": "#dddddd", "(gone)": "#888888",
}


def _ax(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(8, 4.5))
    return ax


def _order(seen: set[str], stages: list[str] | None) -> list[str]:
    base = list(stages) if stages is not None else [s for s in STANDARD_STAGES if s in seen]
    return base + sorted(s for s in seen if s not in base)


def _color(stage: str, i: int) -> str:
    import matplotlib

    return _COLORS.get(stage, matplotlib.colormaps["tab20"](i % 20))


def plot_stage_distribution(history: Any, *, normalize: bool = True,
                            stages: list[str] | None = None, ax=None):
    """Stacked area of the customers in each stage over runs.

    Parameters
    ----------
    history : DataFrame or dict
        Stacked :func:`assign_stages` outputs (``customer_id``, ``as_of``, ``stage``)
        or a dict ``{as_of: stages}``.
    normalize : bool
        Shares (True) or counts (False).
    stages : list of str, optional
        Stack order.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import polars as pl
    >>> runs = {"2025-01-31": pl.DataFrame({"customer_id": ["a", "b"], "stage": ["onboarding", "growth"]}),
    ...         "2025-02-28": pl.DataFrame({"customer_id": ["a", "b"], "stage": ["growth", "growth"]})}
    >>> plot_stage_distribution(runs).get_ylabel()
    'share of customers'
    """
    hist = _history(history, "plot_stage_distribution")
    counts = hist.group_by("as_of", "stage").agg(pl.len().alias("n"))
    order = _order(set(counts["stage"]), stages)
    wide = (counts.pivot(on="stage", index="as_of", values="n").fill_null(0).sort("as_of"))
    for s in order:
        if s not in wide.columns:
            wide = wide.with_columns(pl.lit(0).alias(s))
    x = wide["as_of"].to_list()
    y = wide.select(order).to_numpy().astype(float).T
    if normalize:
        y = y / np.maximum(y.sum(axis=0, keepdims=True), 1)
    ax = _ax(ax)
    ax.stackplot(x, y, labels=order, colors=[_color(s, i) for i, s in enumerate(order)])
    ax.set_ylabel("share of customers" if normalize else "customers")
    ax.set_xlabel("run date (as of)")
    ax.set_title("Lifecycle stages over time")
    ax.margins(x=0)
    if x and isinstance(x[0], dt.date):
        import matplotlib.dates as mdates

        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize="small")
    return ax


def plot_transition_heatmap(matrix: Any, current: Any = None, *, value: str = "rate",
                            stages: list[str] | None = None, annotate: bool = True, ax=None):
    """Heat map of a transition matrix (rows: previous stage, columns: current stage).

    Parameters
    ----------
    matrix : DataFrame
        Long output of :func:`transition_matrix`; or the previous run's stages, with
        the current run's stages in ``current``.
    value : {"rate", "count"}
    annotate : bool
        Write the values in the cells.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import polars as pl
    >>> prev = pl.DataFrame({"customer_id": ["a", "b"], "stage": ["growth", "mature"]})
    >>> cur = pl.DataFrame({"customer_id": ["a", "b"], "stage": ["decline", "mature"]})
    >>> plot_transition_heatmap(prev, cur).get_xlabel()
    'stage now'
    """
    m = to_polars(matrix, "matrix")
    if current is not None or "from_stage" not in m.columns:
        m = transition_matrix(m, current)
    froms = _order(set(m["from_stage"]), stages)
    tos = _order(set(m["to_stage"]), stages)
    froms = [s for s in froms if s in set(m["from_stage"])]
    tos = [s for s in tos if s in set(m["to_stage"])]
    grid = np.zeros((len(froms), len(tos)))
    fi = {s: i for i, s in enumerate(froms)}
    ti = {s: i for i, s in enumerate(tos)}
    for f, t, v in m.select("from_stage", "to_stage", value).iter_rows():
        grid[fi[f], ti[t]] = v
    ax = _ax(ax)
    im = ax.imshow(grid, cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(tos)), tos, rotation=45, ha="right")
    ax.set_yticks(range(len(froms)), froms)
    ax.set_xlabel("stage now")
    ax.set_ylabel("stage in previous run")
    ax.set_title("Stage transitions" + (" (share of row)" if value == "rate" else ""))
    if annotate:
        hi = grid.max() if grid.size else 0
        for i in range(len(froms)):
            for j in range(len(tos)):
                v = grid[i, j]
                if v:
                    txt = f"{v:.0%}" if value == "rate" else f"{int(v):,}"
                    ax.text(j, i, txt, ha="center", va="center", fontsize="x-small",
                            color="white" if v > 0.6 * hi else "black")
    ax.figure.colorbar(im, ax=ax, fraction=0.04)
    return ax


def plot_stage_flow(previous: Any, current: Any, *, stages: list[str] | None = None,
                    min_share: float = 0.0, ax=None):
    """Sankey-style flow of customers between the stages of two runs.

    Left bars are the previous run's stages, right bars the current run's; each band
    carries the customers who moved from one to the other, its width proportional
    to their number. Bands below ``min_share`` of all customers are not drawn.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import polars as pl
    >>> prev = pl.DataFrame({"customer_id": ["a", "b"], "stage": ["growth", "mature"]})
    >>> cur = pl.DataFrame({"customer_id": ["a", "b"], "stage": ["decline", "mature"]})
    >>> plot_stage_flow(prev, cur).get_title()
    'Stage flow between two runs'
    """
    from matplotlib.patches import PathPatch, Rectangle
    from matplotlib.path import Path

    m = transition_matrix(previous, current).filter(pl.col("count") > 0)
    total = float(m["count"].sum()) or 1.0
    left = _order(set(m["from_stage"]), stages)
    right = _order(set(m["to_stage"]), stages)
    gap = 0.02
    ax = _ax(ax)

    def positions(order, key):
        sizes = {s: m.filter(pl.col(key) == s)["count"].sum() / total for s in order}
        order = [s for s in order if sizes[s] > 0]
        span = 1.0 + gap * (len(order) - 1)
        pos, y = {}, span
        for s in order:
            pos[s] = [y - sizes[s], y]
            y -= sizes[s] + gap
        return order, pos

    left, lpos = positions(left, "from_stage")
    right, rpos = positions(right, "to_stage")
    lcur = {s: lpos[s][1] for s in left}
    rcur = {s: rpos[s][1] for s in right}
    x0, x1, w = 0.0, 1.0, 0.06
    rank_r = {s: i for i, s in enumerate(right)}
    rows = sorted(m.iter_rows(named=True),
                  key=lambda r: (left.index(r["from_stage"]), rank_r[r["to_stage"]]))
    for r in rows:
        h = r["count"] / total
        ya, yb = lcur[r["from_stage"]], rcur[r["to_stage"]]
        lcur[r["from_stage"]] -= h
        rcur[r["to_stage"]] -= h
        if h < min_share:
            continue
        xa, xb, xm = x0 + w, x1 - w, (x0 + x1) / 2
        verts = [(xa, ya), (xm, ya), (xm, yb), (xb, yb), (xb, yb - h), (xm, yb - h),
                 (xm, ya - h), (xa, ya - h), (xa, ya)]
        codes = [Path.MOVETO, Path.CURVE4, Path.CURVE4, Path.CURVE4, Path.LINETO,
                 Path.CURVE4, Path.CURVE4, Path.CURVE4, Path.CLOSEPOLY]
        ax.add_patch(PathPatch(Path(verts, codes), facecolor=_color(r["from_stage"], 0),
                               alpha=0.45, edgecolor="none"))
    for order, pos, x, ha, dx in ((left, lpos, x0, "right", -0.01), (right, rpos, x1 - w, "left",
                                                                       w + 0.01)):
        for i, s in enumerate(order):
            lo, hi = pos[s]
            ax.add_patch(Rectangle((x, lo), w, hi - lo, facecolor=_color(s, i), edgecolor="none"))
            share = hi - lo
            label = f"{share:.0%}" if share >= 0.01 else f"{share:.1%}"
            ax.text(x + dx, (lo + hi) / 2, f"{s} {label}", ha=ha, va="center",
                    fontsize="small")
    ax.set_xlim(-0.35, 1.35)
    ax.set_ylim(-0.02, 1.0 + gap * max(len(left), len(right)))
    ax.axis("off")
    ax.set_title("Stage flow between two runs")
    return ax
