"""Calibration/holdout backtest of a CLV purchase model in one call."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import clone

from crmkit.features import calibration_holdout_split
from crmkit.value._bgnbd import BetaGeo
from crmkit.value._clv_base import RFMModel

__all__ = ["BacktestResult", "backtest_clv"]


@dataclass
class BacktestResult:
    """Outcome of :func:`backtest_clv`.

    Attributes
    ----------
    model : fitted model (on the calibration period)
    predictions : polars.DataFrame
        One row per customer: calibration ``frequency_cal``, ``recency_cal_<unit>``,
        ``T_cal_<unit>``, actual ``frequency_holdout``, ``predicted_holdout``, ``p_alive``
        and ``baseline_holdout`` (the naive forecast, below).
    metrics : dict
        ``n_customers``, ``holdout_<unit>``, ``mae``, ``rmse``, ``actual_total``,
        ``predicted_total``, ``total_error_pct`` (100 * (predicted - actual) / actual),
        ``correlation`` (Pearson, per customer); the same for the naive baseline
        (``baseline_mae``, ``baseline_rmse``, ``baseline_total``,
        ``baseline_total_error_pct``, ``baseline_correlation``) and the model's gain
        over it, ``mae_gain_pct`` and ``rmse_gain_pct`` (100 * (baseline - model) /
        baseline: positive when the model is better), ``beats_baseline``.
    by_frequency : polars.DataFrame
        Mean actual, predicted and baseline holdout purchases per calibration
        frequency (the last row pools ``max_frequency`` and above).

    Notes
    -----
    The naive baseline predicts each customer's calibration purchase rate times
    the holdout length: ``frequency_cal / T_cal * holdout`` (lifetimes #299: a
    model that does not beat it does not earn its keep). When the model's MAE is
    not below the baseline's, :func:`backtest_clv` warns.
    """

    model: Any
    predictions: pl.DataFrame
    metrics: dict
    by_frequency: pl.DataFrame
    unit: str = field(default="weeks")

    def plot(self, ax=None):
        """Mean holdout purchases, actual vs predicted, by calibration frequency."""
        from crmkit.value._clv_plots import _plot_by_frequency

        return _plot_by_frequency(self.by_frequency, self.metrics, self.unit, ax)


def _by_frequency(freq: np.ndarray, actual: np.ndarray, pred: np.ndarray,
                  max_frequency: int, baseline: np.ndarray | None = None) -> pl.DataFrame:
    capped = np.minimum(freq, max_frequency).astype(np.int64)
    frame = pl.DataFrame({"frequency_cal": capped, "actual": actual.astype(float),
                          "predicted": pred,
                          "baseline": pred * np.nan if baseline is None else baseline})
    out = (frame.group_by("frequency_cal")
           .agg(pl.len().alias("n_customers"), pl.col("actual").mean().alias("actual_mean"),
                pl.col("predicted").mean().alias("predicted_mean"),
                pl.col("baseline").mean().alias("baseline_mean"))
           .sort("frequency_cal"))
    return out.with_columns(pl.col("n_customers").cast(pl.Int64),
                            pl.col("frequency_cal").cast(pl.String).alias("frequency_cal")
                            ).with_columns(
        pl.when(pl.col("frequency_cal") == str(max_frequency))
        .then(pl.lit(f"{max_frequency}+")).otherwise(pl.col("frequency_cal"))
        .alias("frequency_cal"))


def backtest_clv(
    transactions: Any,
    *,
    calibration_end: dt.date | str,
    observation_end: dt.date | str | None = None,
    model: RFMModel | None = None,
    unit: str = "weeks",
    period: str | None = None,
    customer_col: str = "customer_id",
    time_col: str = "timestamp",
    max_frequency: int = 7,
) -> BacktestResult:
    """Fit a purchase model on a calibration period and score it on the holdout.

    Splits ``transactions`` with :func:`crmkit.features.calibration_holdout_split`,
    fits a clone of ``model`` on the calibration RFM summary, predicts each
    customer's purchases in ``(calibration_end, observation_end]`` and compares
    them with what happened.

    Parameters
    ----------
    transactions : table
        Transactions with ``customer_col`` and ``time_col``.
    calibration_end, observation_end : date or str
        End of the calibration period (inclusive) and of the holdout (defaults to
        the last transaction).
    model : BetaGeo, ModifiedBetaGeo or ParetoNBD, optional
        Unfitted template (cloned); ``BetaGeo()`` by default.
    unit, period : str
        Time unit of the summary and purchase-collapsing granularity, as in
        :func:`crmkit.features.rfm_summary`.
    max_frequency : int
        Calibration frequencies at or above it are pooled in ``by_frequency``.

    Returns
    -------
    BacktestResult

    Examples
    --------
    >>> from crmkit.datasets import load_cdnow
    >>> from crmkit.value import backtest_clv
    >>> res = backtest_clv(load_cdnow("master"), calibration_end="1997-09-30",
    ...                    observation_end="1998-06-30")  # doctest: +SKIP
    >>> round(res.metrics["total_error_pct"], 1)  # doctest: +SKIP
    -14.3
    """
    template = BetaGeo() if model is None else model
    if not isinstance(template, RFMModel):
        raise TypeError("The 'model' parameter of backtest_clv must be a BetaGeo, "
                        f"ModifiedBetaGeo or ParetoNBD. Got {type(template).__name__} instead.")
    split = calibration_holdout_split(
        transactions, calibration_end=calibration_end, observation_end=observation_end,
        unit=unit, period=period, customer_col=customer_col, time_col=time_col, value_col=None)
    rec, Tc, dur = f"recency_cal_{unit}", f"T_cal_{unit}", f"duration_holdout_{unit}"
    split = split.filter(pl.col(Tc) > 0)
    rfm = split.select(pl.col(customer_col).alias("customer_id"),
                       pl.col("frequency_cal").alias("frequency"),
                       pl.col(rec).alias(f"recency_{unit}"), pl.col(Tc).alias(f"T_{unit}"))
    fitted = clone(template).fit(rfm)
    horizon = float(split[dur][0])
    pred = fitted.expected_purchases(rfm, horizons=horizon, output="polars")[
        "expected_purchases"].to_numpy()
    palive = fitted.probability_alive(rfm, output="polars")["p_alive"].to_numpy()
    base = (split["frequency_cal"].cast(pl.Float64) / split[Tc]).to_numpy() * horizon
    actual = split["frequency_holdout"].to_numpy().astype(float)
    predictions = split.select(customer_col, "frequency_cal", rec, Tc, "frequency_holdout"
                               ).with_columns(pl.Series("predicted_holdout", pred),
                                              pl.Series("p_alive", palive),
                                              pl.Series("baseline_holdout", base))
    err = pred - actual
    berr = base - actual
    metrics = {
        "n_customers": int(len(actual)),
        f"holdout_{unit}": horizon,
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "actual_total": float(actual.sum()),
        "predicted_total": float(pred.sum()),
        "total_error_pct": float(100 * (pred.sum() - actual.sum()) / max(actual.sum(), 1e-12)),
        "correlation": _corr(pred, actual),
        "baseline_mae": float(np.mean(np.abs(berr))),
        "baseline_rmse": float(np.sqrt(np.mean(berr**2))),
        "baseline_total": float(base.sum()),
        "baseline_total_error_pct": float(100 * (base.sum() - actual.sum())
                                          / max(actual.sum(), 1e-12)),
        "baseline_correlation": _corr(base, actual),
    }
    metrics["mae_gain_pct"] = float(100 * (metrics["baseline_mae"] - metrics["mae"])
                                    / max(metrics["baseline_mae"], 1e-12))
    metrics["rmse_gain_pct"] = float(100 * (metrics["baseline_rmse"] - metrics["rmse"])
                                     / max(metrics["baseline_rmse"], 1e-12))
    metrics["beats_baseline"] = bool(metrics["mae"] < metrics["baseline_mae"])
    if not metrics["beats_baseline"]:
        import warnings

        from crmkit.exceptions import DataWarning
        warnings.warn(
            f"backtest_clv: {type(fitted).__name__} does not beat the naive baseline (each "
            f"customer's calibration purchase rate times the holdout length): MAE "
            f"{metrics['mae']:.4g} vs {metrics['baseline_mae']:.4g}. Check the calibration "
            "length and the model's fit before using its forecasts.", DataWarning, stacklevel=2)
    table = _by_frequency(split["frequency_cal"].to_numpy(), actual, pred, max_frequency, base)
    return BacktestResult(model=fitted, predictions=predictions, metrics=metrics,
                          by_frequency=table, unit=unit)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])
