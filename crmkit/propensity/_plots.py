"""Plots of propensity quality and holdings; each takes ``ax=None`` and returns ``ax``."""

from __future__ import annotations

from typing import Any

import polars as pl

from crmkit._frames import to_polars

__all__ = ["plot_auc_vs_baseline", "plot_calibration", "plot_gain", "plot_lift",
           "plot_penetration"]


def _ax(ax):
    if ax is None:
        import matplotlib.pyplot as plt
        _, ax = plt.subplots(figsize=(6, 4))
    return ax


def plot_lift(lift: Any, *, target: str, ax=None):
    """Lift by decile of one target, model against the popularity baseline
    (``PropensityBacktest.lift``)."""
    ax = _ax(ax)
    df = to_polars(lift, "lift").filter(pl.col("target") == target)
    width = 0.4
    for i, (name, sub) in enumerate(df.group_by("scorer", maintain_order=True)):
        ax.bar(sub["bin"].to_numpy() + (i - 0.5) * width, sub["lift"].to_numpy(), width,
               label=str(name[0]))
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("score decile (1 = highest)")
    ax.set_ylabel("lift")
    ax.set_title(f"Lift by decile: {target}")
    ax.legend()
    return ax


def plot_gain(lift: Any, *, target: str, ax=None):
    """Cumulative gain curve of one target, model and baseline."""
    ax = _ax(ax)
    df = to_polars(lift, "lift").filter(pl.col("target") == target)
    for name, sub in df.group_by("scorer", maintain_order=True):
        ax.plot([0, *sub["share"].to_list()], [0, *sub["cumulative_gain"].to_list()],
                marker="o", label=str(name[0]))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="random")
    ax.set_xlabel("share of customers contacted")
    ax.set_ylabel("share of take-ups reached")
    ax.set_title(f"Cumulative gain: {target}")
    ax.legend()
    return ax


def plot_calibration(calibration: Any, *, targets: list[str] | None = None, ax=None):
    """Observed take-up rate against predicted probability (``PropensityBacktest.calibration``)."""
    ax = _ax(ax)
    df = to_polars(calibration, "calibration")
    names = targets or df["target"].unique(maintain_order=True).to_list()
    top = 0.0
    for t in names:
        sub = df.filter(pl.col("target") == t)
        ax.plot(sub["predicted"], sub["observed"], marker="o", ms=3, label=t)
        top = max(top, float(sub["predicted"].max()), float(sub["observed"].max()))
    ax.plot([0, top], [0, top], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_title("Calibration (held-out, equal-frequency bins)")
    ax.legend(fontsize=7, ncol=2)
    return ax


def plot_auc_vs_baseline(metrics: Any, *, others: dict[str, Any] | None = None, ax=None):
    """ROC AUC per target: model, popularity within tier and optional other scorers
    (``others``: name -> mapping target -> AUC)."""
    ax = _ax(ax)
    df = to_polars(metrics, "metrics")
    t = df["target"].to_list()
    series = {"model": df["roc_auc"].to_list(),
              "popularity within tier": df["baseline_roc_auc"].to_list()}
    for name, vals in (others or {}).items():
        series[name] = [vals[x] for x in t]
    width = 0.8 / len(series)
    for i, (name, vals) in enumerate(series.items()):
        ax.bar([j + (i - (len(series) - 1) / 2) * width for j in range(len(t))], vals, width,
               label=name)
    ax.set_xticks(range(len(t)), t, rotation=45)
    ax.set_ylim(0.4, 1.0)
    ax.set_ylabel("ROC AUC")
    ax.set_title("Backtest ROC AUC by product")
    ax.legend(fontsize=8)
    return ax


def plot_penetration(penetration: Any, *, as_of: Any = None, ax=None):
    """Product penetration by tier as a heat map (``product_penetration`` output)."""
    import numpy as np
    ax = _ax(ax)
    df = to_polars(penetration, "penetration")
    if as_of is None:
        as_of = df["as_of"].max()
    df = df.filter(pl.col("as_of") == as_of)
    wide = df.pivot(on="product_id", index="tier", values="penetration").sort("tier")
    prods = [c for c in wide.columns if c != "tier"]
    img = ax.imshow(wide.select(prods).to_numpy(), aspect="auto", cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(prods)), prods, rotation=45)
    ax.set_yticks(range(wide.height), wide["tier"].to_list())
    for (i, j), v in np.ndenumerate(wide.select(prods).to_numpy()):
        ax.text(j, i, f"{v:.0%}", ha="center", va="center", fontsize=6)
    ax.figure.colorbar(img, ax=ax, label="share holding")
    ax.set_title(f"Product penetration by tier, {as_of}")
    return ax
