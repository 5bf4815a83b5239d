"""Evaluation of a churn model on held-out data, and the period-to-period backtest."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from crmkit._frames import to_polars
from crmkit._params import check_date, check_positive
from crmkit.churn._data import build_backtest_data, build_survival_data, frame_to_xy, split_y
from crmkit.churn._metrics import (
    calibration_table,
    concordance_index_harrell,
    concordance_index_uno,
    integrated_brier_score,
    time_dependent_auc,
)

__all__ = ["backtest", "backtest_on", "evaluate"]


def evaluate(model: Any, X_test: Any, y_test: Any, *, horizons_days: Any = None,
             y_train: Any = None, n_grid: int = 50, calibration_bins: int = 10) -> dict:
    """Held-out metrics of a fitted survival model.

    Parameters
    ----------
    model : fitted crmkit survival model
    X_test, y_test : held-out covariates and survival target
    horizons_days : sequence of float, optional
        Times at which the time-dependent AUC is reported (default: the model's).
    y_train : survival target, optional
        The training target; its censoring distribution weights the IPCW metrics
        (Uno's C, time-dependent AUC, Brier). Default: the test target's.
    n_grid : int
        Number of times for the integrated Brier score, evenly spread from the
        first held-out churn to the largest horizon or the 90th percentile of the
        held-out durations, whichever is first (beyond it too few customers remain
        for a stable estimate).
    calibration_bins : int

    Returns
    -------
    dict
        ``c_index_harrell``, ``c_index_uno``, ``auc`` (dict horizon -> AUC),
        ``mean_auc``, ``integrated_brier``, ``brier_grid`` (times in the model
        unit), ``calibration`` (table at the largest horizon), ``horizon_units``.
    """
    d, e, _ = split_y(y_test, "evaluate")
    tr = split_y(y_train, "evaluate") if y_train is not None else None
    trd, tre = (tr[0], tr[1]) if tr else (None, None)
    ud = model._unit_days
    hz = model._horizons(horizons_days)
    h_units = np.asarray(hz) / ud
    risk = model.predict(X_test)
    out: dict = {
        "n": int(d.size), "n_events": int(e.sum()),
        "c_index_harrell": concordance_index_harrell(d, e, risk),
        "c_index_uno": concordance_index_uno(d, e, risk, train_duration=trd, train_event=tre,
                                             tau=float(np.quantile(d, 0.9))),
    }
    S_h = model.predict_survival(X_test, h_units)
    auc, mean_auc = time_dependent_auc(d, e, 1.0 - S_h, h_units, train_duration=trd,
                                       train_event=tre)
    out["auc"] = {float(h): float(a) for h, a in zip(hz, auc)}
    out["mean_auc"] = float(mean_auc)
    lo = float(d[e].min()) if e.any() else float(d.min())
    hi = min(float(h_units.max()), float(np.quantile(d, 0.9)))
    if hi <= lo:
        hi = min(float(h_units.max()), float(d.max()))
    grid = np.linspace(lo, hi, int(n_grid))
    S = model.predict_survival(X_test, grid)
    out["integrated_brier"] = integrated_brier_score(d, e, S, grid, train_duration=trd,
                                                     train_event=tre)
    out["brier_grid"] = grid
    out["calibration"] = calibration_table(d, e, 1.0 - S_h[:, -1], float(h_units[-1]),
                                           n_bins=calibration_bins)
    out["horizon_units"] = h_units
    return out


def backtest(model: Any, customers: Any, churn: Any, covariates: Any, *, train_start: Any,
             test_start: Any, horizon_days: float = 90, time_unit: str = "days",
             start_col: str = "first_seen") -> dict:
    """Fit on one period, score the next.

    Training data: customers at risk on ``train_start``, covariates as of
    ``train_start``, churn observed in ``(train_start, test_start]``. Test data:
    customers at risk on ``test_start``, covariates as of ``test_start``, churn
    observed in ``(test_start, test_start + horizon_days]``. The model (cloned, so
    the one given is untouched) is fitted on the first and scored on the second:
    the AUC of its ``horizon_days`` churn probability against who actually left,
    plus the survival metrics of :func:`evaluate`.

    Parameters
    ----------
    model : crmkit survival estimator (unfitted template)
    customers, churn : as in :func:`crmkit.churn.build_survival_data`
    covariates : callable
        ``f(date) -> table`` of covariates as of that date, keyed by customer_id
        (e.g. ``lambda d: build_features(tables, as_of=d)``); the id and any date or
        text columns are dropped before fitting.

    Returns
    -------
    dict
        ``auc_horizon`` (ROC AUC of churn in the horizon), ``base_rate``,
        ``c_index_harrell``, ``integrated_brier`` and the rest of :func:`evaluate`,
        ``model`` (the fitted clone), ``train_rows``, ``test_rows``.
    """
    tr0 = check_date(train_start, "train_start", "backtest")
    te0 = check_date(test_start, "test_start", "backtest")
    h = check_positive(horizon_days, "horizon_days", "backtest")
    if te0 <= tr0:
        raise ValueError("The 'test_start' parameter of backtest must be after 'train_start'.")
    train = build_survival_data(customers, churn, start=tr0, end=te0, covariates=covariates,
                                time_unit=time_unit, start_col=start_col)
    test = build_backtest_data(customers, churn, as_of=te0, horizon_days=h,
                               covariates=covariates, time_unit=time_unit, start_col=start_col)
    res = backtest_on(model, train, test, horizon_days=h, time_unit=time_unit)
    res.update({"train_start": tr0.isoformat(), "test_start": te0.isoformat()})
    return res


def backtest_on(model: Any, train: Any, test: Any, *, horizon_days: float = 90,
                time_unit: str = "days") -> dict:
    """Fit a clone of ``model`` on ``train`` and score ``test`` (tables already built).

    The second half of :func:`backtest`, for callers that build the two tables
    themselves (the nightly run builds them shard by shard on a sample of customers).

    Parameters
    ----------
    model : crmkit survival estimator (unfitted template)
    train : table
        :func:`crmkit.churn.build_survival_data` output with covariates.
    test : table
        :func:`crmkit.churn.build_backtest_data` output with the same covariates.
    horizon_days : float
    time_unit : str
        The unit of the tables' ``duration_<unit>`` column.

    Returns
    -------
    dict
        As :func:`backtest`, without the window dates.
    """
    from sklearn.base import clone
    from sklearn.metrics import roc_auc_score

    h = check_positive(horizon_days, "horizon_days", "backtest_on")
    train = to_polars(train, "train")
    test = to_polars(test, "test")
    dur = f"duration_{time_unit}"
    numeric = [c for c, t in train.schema.items()
               if (t.is_numeric() or t == pl.Boolean) and c not in (dur, "event")
               and not c.startswith("tenure_at_start")]
    Xtr, ytr = frame_to_xy(train.select([dur, "event", *numeric]), dur, "event")
    Xte, yte = frame_to_xy(test.select([dur, "event", *numeric]), dur, "event")
    fitted = clone(model).fit(Xtr, ytr)
    prob = fitted.predict_churn(Xte, horizons_days=(h,), lifetime=False).to_series(0).to_numpy()
    label = test["churned_in_horizon"].to_numpy()
    res = evaluate(fitted, Xte, yte, horizons_days=(h,), y_train=ytr) if label.any() else {}
    res.update({
        "auc_horizon": float(roc_auc_score(label, prob)) if 0 < label.sum() < label.size
        else float("nan"),
        "base_rate": float(label.mean()) if label.size else float("nan"),
        "horizon_days": h,
        "train_rows": int(Xtr.height), "test_rows": int(Xte.height), "model": fitted,
        "scores": pl.DataFrame({"customer_id": test["customer_id"], "churn_prob": prob,
                                "churned_in_horizon": label}),
    })
    return res
