"""Charts for the report: matplotlib figures as inline base64 PNG (no network, no files)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

__all__ = ["bar_chart", "histogram", "png"]

BLUE, GREY, RED, GREEN = "#2f6f9f", "#9aa5b1", "#b23b3b", "#3f8f4f"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def new_axes(width: float = 5.6, height: float = 3.2):
    """A fresh figure and axes in the report's size."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    return fig, ax


def png(fig_or_ax) -> str:
    """A ``data:image/png;base64,...`` URI of a figure (or of an axes' figure); closes it."""
    plt = _plt()
    fig = getattr(fig_or_ax, "figure", fig_or_ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def bar_chart(labels: Sequence[str], values: Sequence[float], *, title: str = "",
              xlabel: str = "", color: str = BLUE, ref: Sequence[float] | None = None,
              ref_label: str = "", value_fmt=None, width: float = 5.6) -> str:
    """Horizontal bars, largest at the top as given; optional reference ticks (capacity)."""
    fig, ax = new_axes(width, max(1.6, 0.32 * len(labels) + 0.9))
    y = list(range(len(labels)))
    ax.barh(y, values, color=color)
    if ref is not None:
        ax.scatter(ref, y, marker="|", s=260, color="#222", label=ref_label, zorder=3)
        ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.set_yticks(y, [str(v) for v in labels])
    ax.invert_yaxis()
    top = max([*values, *(ref or [])], default=0) or 1
    for yi, v in zip(y, values):
        ax.text(v + top * 0.01, yi, value_fmt(v) if value_fmt else f"{v:,.0f}", va="center",
                fontsize=8, color="#333")
    ax.set_xlim(0, top * 1.15)
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_xlabel(xlabel, fontsize=9)
    ax.tick_params(labelsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return png(fig)


def histogram(values, *, title: str, xlabel: str, log: bool = False, bins: int = 40) -> str:
    """Histogram of positive values, on a log axis when they span decades."""
    import numpy as np

    fig, ax = new_axes()
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if log:
        v = v[v > 0]
        if v.size > 100:  # the extreme 0.5% on each side would stretch the axis over decades
            lo, hi = np.quantile(v, [0.005, 0.995])
            v = v[(v >= lo) & (v <= hi)]
        edges = np.logspace(np.log10(v.min()), np.log10(v.max()), bins) if v.size else bins
        ax.set_xscale("log")
    else:
        edges = bins
    ax.hist(v, bins=edges, color=BLUE)
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel("customers", fontsize=9)
    ax.tick_params(labelsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return png(fig)
