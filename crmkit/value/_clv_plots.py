"""Diagnostic plots of the CLV models (matplotlib; each takes ``ax=None`` and returns ``ax``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from crmkit._frames import to_polars
from crmkit.features import UNIT_DAYS, rfm_unit

__all__ = [
    "plot_calibration_holdout",
    "plot_frequency_fit",
    "plot_history_alive",
    "plot_probability_alive_matrix",
]


def _ax(ax):
    if ax is None:
        from crmkit._estimator import new_axes
        ax = new_axes(figsize=(7, 4.5))
    return ax


def plot_frequency_fit(model, rfm: Any, *, max_frequency: int = 7, ax=None):
    """Customers by number of repeat purchases: observed vs expected by the model.

    The expected counts use each customer's own observation length T (the exact
    P(X(T) = k) of the model, not a simulation), as in Fader, Hardie & Lee (2005), Fig. 3.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import polars as pl
    >>> from crmkit.value import BetaGeo, plot_frequency_fit
    >>> rfm = pl.DataFrame({"frequency": [0, 2, 5, 1, 0], "recency_weeks": [0., 20, 30, 3, 0],
    ...                     "T_weeks": [40., 38, 35, 30, 20]})
    >>> ax = plot_frequency_fit(BetaGeo(penalizer=0.01).fit(rfm), rfm)
    >>> len(ax.patches)
    16
    """
    model._check_fitted()
    frame = to_polars(rfm, "rfm")
    unit = rfm_unit(frame) if "T" not in frame.columns else model.unit_
    T = frame[f"T_{unit}" if "T" not in frame.columns else "T"].to_numpy()
    freq = frame["frequency"].to_numpy()
    observed = np.bincount(np.minimum(freq, max_frequency).astype(int),
                           minlength=max_frequency + 1)
    expected = model.expected_frequency_counts(T, max_frequency)
    ax = _ax(ax)
    pos = np.arange(max_frequency + 1)
    ax.bar(pos - 0.2, observed, width=0.4, label="observed", color="0.3")
    ax.bar(pos + 0.2, expected, width=0.4, label=f"{type(model).__name__}", color="tab:blue")
    ax.set_xticks(pos, [str(i) for i in range(max_frequency)] + [f"{max_frequency}+"])
    ax.set_xlabel("repeat purchases in the calibration period")
    ax.set_ylabel("customers")
    ax.set_title("Frequency of repeat purchases: observed vs expected")
    ax.legend()
    return ax


def _plot_by_frequency(table: pl.DataFrame, metrics: dict | None, unit: str, ax):
    ax = _ax(ax)
    labels = table["frequency_cal"].to_list()
    pos = np.arange(len(labels))
    ax.plot(pos, table["actual_mean"].to_numpy(), "o-", color="0.3", label="actual")
    ax.plot(pos, table["predicted_mean"].to_numpy(), "s--", color="tab:blue", label="predicted")
    if "baseline_mean" in table.columns and table["baseline_mean"].is_not_nan().any():
        ax.plot(pos, table["baseline_mean"].to_numpy(), "^:", color="tab:orange",
                label="naive baseline (calibration rate x holdout)")
    ax.set_xticks(pos, labels)
    ax.set_xlabel("repeat purchases in the calibration period")
    ax.set_ylabel("mean purchases in the holdout")
    title = "Calibration vs holdout"
    if metrics:
        title += f" (MAE {metrics['mae']:.3f}, total error {metrics['total_error_pct']:+.1f}%"
        if "baseline_mae" in metrics:
            title += f"; naive MAE {metrics['baseline_mae']:.3f}"
        title += ")"
    ax.set_title(title)
    ax.legend()
    return ax


def plot_calibration_holdout(model, split: Any, *, max_frequency: int = 7, ax=None):
    """Mean holdout purchases, actual vs predicted, by calibration frequency.

    ``split`` is the output of :func:`crmkit.features.calibration_holdout_split`
    in the model's time unit; ``model`` was fitted on its calibration part.
    """
    from crmkit.value._backtest import _by_frequency

    model._check_fitted()
    frame = to_polars(split, "split")
    u = model.unit_
    rfm = frame.select(pl.col("frequency_cal").alias("frequency"),
                       pl.col(f"recency_cal_{u}").alias(f"recency_{u}"),
                       pl.col(f"T_cal_{u}").alias(f"T_{u}"))
    horizon = float(frame[f"duration_holdout_{u}"][0])
    pred = model.expected_purchases(rfm, horizons=horizon, output="polars")[
        "expected_purchases"].to_numpy()
    actual = frame["frequency_holdout"].to_numpy().astype(float)
    table = _by_frequency(frame["frequency_cal"].to_numpy(), actual, pred, max_frequency)
    metrics = {"mae": float(np.mean(np.abs(pred - actual))),
               "total_error_pct": float(100 * (pred.sum() - actual.sum())
                                        / max(actual.sum(), 1e-12))}
    return _plot_by_frequency(table, metrics, u, ax)


def plot_probability_alive_matrix(model, *, max_frequency: int | None = None,
                                  max_recency: float | None = None, T: float | None = None,
                                  ax=None):
    """Heat map of P(alive) by frequency and recency for customers observed for ``T``.

    Defaults: ``T`` = 52 weeks (or the same span in the model's unit), frequency
    up to 2 * the expected purchases of a new customer in T (at least 10).
    """
    model._check_fitted()
    unit = model.unit_
    if T is None:
        T = 12.0 if unit == "calendar_months" else 364.0 / UNIT_DAYS[unit]
    if max_recency is None:
        max_recency = T
    if max_frequency is None:
        max_frequency = int(max(10, np.ceil(2 * model.expected_purchases_new_customer(T))))
    rec = np.linspace(0, max_recency, 101)
    f = np.arange(max_frequency + 1)
    F, R = np.meshgrid(f, rec, indexing="ij")
    p = model._p_alive(model._param_array(), F.ravel().astype(float), R.ravel(),
                       np.full(F.size, float(T))).reshape(F.shape)
    p[0, 1:] = np.nan  # frequency 0 implies recency 0
    ax = _ax(ax)
    im = ax.imshow(p, origin="lower", aspect="auto", vmin=0, vmax=1, cmap="viridis",
                   extent=(0, max_recency, -0.5, max_frequency + 0.5))
    ax.figure.colorbar(im, ax=ax, label="P(alive)")
    ax.set_xlabel(f"recency ({unit})")
    ax.set_ylabel("frequency (repeat purchases)")
    ax.set_title(f"P(alive) for customers observed {T:g} {unit}")
    return ax


def plot_history_alive(model, timestamps: Any, *, end: Any, ax=None):
    """A customer's P(alive) over time, from the first purchase to ``end``.

    ``timestamps`` are that customer's purchase dates (purchases on the same
    day count once, as in ``rfm_summary`` with daily periods). The model's unit
    must be of fixed length (days, weeks, mean_months).
    """
    import datetime as dt

    from crmkit._params import check_date

    model._check_fitted()
    if model.unit_ not in UNIT_DAYS:
        raise ValueError("plot_history_alive needs a model fitted in days, weeks or mean_months "
                         f"(fixed-length units); this one is in {model.unit_!r}.")
    days = sorted({check_date(t, "timestamps", "plot_history_alive") for t in
                   (timestamps.to_list() if hasattr(timestamps, "to_list") else timestamps)})
    if not days:
        raise ValueError("plot_history_alive: the customer has no purchases.")
    end = check_date(end, "end", "plot_history_alive")
    first = days[0]
    offs = np.array([(d - first).days for d in days], dtype=float)
    grid = np.arange(0, (end - first).days + 1, dtype=float)
    n_before = np.searchsorted(offs, grid, side="right")
    x = (n_before - 1).astype(float)
    t_x = offs[n_before - 1]
    scale = UNIT_DAYS[model.unit_]
    p = model._p_alive(model._param_array(), x, t_x / scale, grid / scale)
    ax = _ax(ax)
    dates = [first + dt.timedelta(days=int(g)) for g in grid]
    ax.plot(dates, p, color="tab:blue", label="P(alive)")
    for d in days:
        ax.axvline(d, color="0.5", ls=":", lw=1)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("P(alive)")
    ax.set_title("P(alive) history (dotted: purchases)")
    return ax
