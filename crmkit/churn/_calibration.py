"""Recalibration of a horizon churn probability, and calibration by decile.

A survival model fitted on a few landmarks can rank well and still be off in
level (a squeezed top decile, an inflated middle). :class:`HorizonCalibrator` maps
the model's probability of churn within a horizon onto the rate observed on
held-out landmarks: isotonic regression (monotone, no shape assumed) or Platt
scaling (a logistic curve in the logit of the probability).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from crmkit._frames import Output, to_output
from crmkit._params import check_choice, check_positive

__all__ = ["HorizonCalibrator", "calibration_by_decile"]

_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _check_prob(p: Any, owner: str) -> np.ndarray:
    arr = np.asarray(p, dtype=float).ravel()
    bad = ~np.isfinite(arr) | (arr < 0) | (arr > 1)
    if bad.any():
        raise ValueError(f"{owner}: {int(bad.sum())} probabilities are not in [0, 1] "
                         f"(e.g. {arr[bad][:3].tolist()}).")
    return arr


class HorizonCalibrator(BaseEstimator):
    """Map a churn probability within a horizon onto the observed churn rate.

    Parameters
    ----------
    method : {"isotonic", "platt"}
        Isotonic regression (scikit-learn's, increasing, clipped at the ends) or
        Platt scaling, ``p' = 1 / (1 + exp(-(a * logit(p) + b)))``.

    Attributes
    ----------
    params_ : dict
        ``{"a": ..., "b": ...}`` (Platt) or ``{"x": [...], "y": [...]}`` (isotonic
        step knots; prediction interpolates linearly between them).
    n_samples_, n_events_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0, 0.5, 5000)
    >>> y = rng.random(5000) < np.clip(2 * p, 0, 1)  # the model is off by a factor 2
    >>> cal = HorizonCalibrator(method="platt").fit(p, y)
    >>> round(float(cal.predict([0.2])[0]), 1)
    0.4
    >>> HorizonCalibrator.from_dict(cal.to_dict()).predict([0.2]).round(6).tolist() == \\
    ...     cal.predict([0.2]).round(6).tolist()
    True
    """

    def __init__(self, *, method: str = "isotonic"):
        self.method = method

    def fit(self, prob: Any, observed: Any) -> HorizonCalibrator:
        """Fit on held-out probabilities and 0/1 outcomes within the same horizon."""
        check_choice(self.method, ("isotonic", "platt"), "method", "HorizonCalibrator")
        p = _check_prob(prob, "HorizonCalibrator.fit")
        y = np.asarray(observed).ravel().astype(float)
        if y.shape != p.shape:
            raise ValueError("HorizonCalibrator.fit: 'prob' and 'observed' must have the same "
                             f"length. Got {p.size} and {y.size} instead.")
        if not 0 < y.sum() < y.size:
            raise ValueError("HorizonCalibrator.fit needs both churners and stayers in the "
                             f"held-out outcomes; got {int(y.sum())} churners of {y.size}.")
        if self.method == "platt":
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(p)[:, None], y)
            self.params_ = {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}
        else:
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
            self.params_ = {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
        self.n_samples_ = int(p.size)
        self.n_events_ = int(y.sum())
        return self

    def predict(self, prob: Any) -> np.ndarray:
        """Calibrated probabilities."""
        check_is_fitted(self, "params_")
        p = _check_prob(prob, "HorizonCalibrator.predict")
        if self.method == "platt":
            z = self.params_["a"] * _logit(p) + self.params_["b"]
            return 1.0 / (1.0 + np.exp(-z))
        return np.interp(p, self.params_["x"], self.params_["y"])

    def to_dict(self) -> dict:
        """The fitted calibrator as plain data (JSON-safe)."""
        check_is_fitted(self, "params_")
        return {"class": "HorizonCalibrator", "method": self.method, "params": self.params_,
                "n_samples": self.n_samples_, "n_events": self.n_events_}

    @classmethod
    def from_dict(cls, data: dict) -> HorizonCalibrator:
        """Rebuild from :meth:`to_dict` output (plain data; nothing is executed)."""
        if data.get("class") != "HorizonCalibrator":
            raise ValueError("HorizonCalibrator.from_dict: not a HorizonCalibrator document "
                             f"(class {data.get('class')!r}).")
        cal = cls(method=data["method"])
        cal.params_ = {k: (list(map(float, v)) if isinstance(v, list) else float(v))
                       for k, v in data["params"].items()}
        cal.n_samples_, cal.n_events_ = int(data["n_samples"]), int(data["n_events"])
        return cal


def calibration_by_decile(prob: Any, observed: Any, *, n_bins: int = 10,
                          min_events: int = 20, output: Output = "polars"):
    """Predicted against observed churn rate per decile of predicted probability.

    Parameters
    ----------
    prob : array-like of float
        Predicted probability of churn within the horizon.
    observed : array-like of bool
        Churned within the horizon.
    n_bins : int
        Number of equal-count bins (10: deciles), 1 = lowest predicted.
    min_events : int
        Bins with at least this many churners are ``assessed``.

    Returns
    -------
    DataFrame
        ``decile``, ``n``, ``events``, ``predicted`` (mean), ``observed`` (rate),
        ``ratio`` (predicted / observed, null without events), ``assessed``.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.linspace(0.01, 0.5, 1000)
    >>> t = calibration_by_decile(p, np.random.default_rng(1).random(1000) < p)
    >>> t.height, t["n"].sum(), bool(t["predicted"].is_sorted())
    (10, 1000, True)
    """
    p = _check_prob(prob, "calibration_by_decile")
    y = np.asarray(observed).ravel().astype(bool)
    k = int(check_positive(n_bins, "n_bins", "calibration_by_decile"))
    if y.shape != p.shape:
        raise ValueError("calibration_by_decile: 'prob' and 'observed' must have the same length.")
    order = np.argsort(p, kind="stable")
    bins = np.empty(p.size, dtype=np.int64)
    bins[order] = np.arange(p.size) * k // max(p.size, 1) + 1
    out = (
        pl.DataFrame({"decile": bins, "p": p, "y": y})
        .group_by("decile").agg(pl.len().cast(pl.Int64).alias("n"),
                                pl.col("y").sum().cast(pl.Int64).alias("events"),
                                pl.col("p").mean().alias("predicted"),
                                pl.col("y").mean().alias("observed"))
        .sort("decile")
        .with_columns(pl.when(pl.col("events") > 0)
                      .then(pl.col("predicted") / pl.col("observed")).alias("ratio"),
                      (pl.col("events") >= min_events).alias("assessed"))
    )
    return to_output(out, output)
