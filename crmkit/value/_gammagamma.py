"""Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005; Fader & Hardie 2013).

Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "RFM and CLV: Using
Iso-Value Curves for Customer Base Analysis", Journal of Marketing Research
42(4), 415-430; Fader, P. S. and Hardie, B. G. S. (2013), "The Gamma-Gamma
Model of Monetary Value". Fitted on customers with at least one repeat
purchase, from their number of repeat purchases ``x`` and mean repeat spend
``zbar``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from scipy.special import digamma, gammaln

from crmkit._frames import Output, to_polars
from crmkit.exceptions import DataWarning, SchemaError
from crmkit.value._clv_base import (
    CLVModel,
    _dot,
    _fingerprint,
    _register,
    _strip_cal,
    _weighted_rows,
)

__all__ = ["GammaGamma"]


@_register
class GammaGamma(CLVModel):
    """Gamma-Gamma spend model: E[spend per transaction | history].

    Each transaction value is Gamma(p, nu) with ``nu ~ Gamma(q, v)`` across
    customers (v is called gamma in the 2005 paper). Spend is assumed
    independent of purchase frequency; ``frequency_spend_correlation_`` reports
    the correlation in the training data (a warning is raised above 0.3).

    Input: a table with ``frequency`` and ``monetary_value`` (mean value of the
    repeat purchases), e.g. :func:`crmkit.features.rfm_summary`'s output. Rows
    with frequency 0 are ignored by ``fit``; their prediction is the population
    mean ``p v / (q - 1)``.

    Examples
    --------
    >>> import polars as pl
    >>> from crmkit.value import GammaGamma
    >>> rfm = pl.DataFrame({"frequency": [1, 2, 5, 3, 0, 1, 4],
    ...                     "monetary_value": [20., 35, 18, 50, 0, 12, 25]})
    >>> gg = GammaGamma(penalizer=0.01).fit(rfm)
    >>> gg.expected_spend(rfm).columns
    ['expected_spend']
    """

    _param_names = ("p", "q", "v")
    _has_gradient = True

    def _read(self, frame: Any, weight_col: str | None, fitting: bool):
        frame = _strip_cal(to_polars(frame, "rfm"))
        missing = [c for c in ("frequency", "monetary_value") if c not in frame.columns]
        if missing:
            raise SchemaError(f"{self._name}: the input has no column "
                              f"{', '.join(map(repr, missing))}; it has {', '.join(frame.columns)}."
                              " Make it with crmkit.features.rfm_summary(..., value_col=...).")
        if weight_col is not None and weight_col not in frame.columns:
            raise SchemaError(f"{self._name}: weight_col={weight_col!r} is not a column.")
        x = frame["frequency"].cast(pl.Float64).to_numpy()
        m = frame["monetary_value"].cast(pl.Float64).to_numpy()
        w = frame[weight_col].cast(pl.Float64).to_numpy() if weight_col else np.ones(len(x))
        problems = []
        if (~np.isfinite(x)).any() or (~np.isfinite(m)).any():
            problems.append("missing or non-finite frequency/monetary_value")
        elif (x < 0).any() or (x != np.round(x)).any():
            problems.append("frequency must be a non-negative integer")
        elif ((x > 0) & (m <= 0)).any():
            problems.append(f"{int(((x > 0) & (m <= 0)).sum())} repeat buyers with "
                            "monetary_value <= 0 (the model needs positive spend; drop refunds "
                            "or zero-value rows first)")
        if problems:
            raise SchemaError(f"{self._name}: " + "; ".join(problems) + ".")
        ids = frame["customer_id"] if "customer_id" in frame.columns else None
        return ids, x, m, w

    def fit(self, rfm: Any, y: Any = None, *, weight_col: str | None = None):
        """Fit on the repeat buyers (frequency > 0) of ``rfm``; returns self."""
        _, x, m, w = self._read(rfm, weight_col, True)
        keep = x > 0
        if keep.sum() < 2:
            raise ValueError(f"{self._name}.fit needs at least 2 customers with frequency > 0; "
                             f"got {int(keep.sum())}.")
        x, m, w = x[keep], m[keep], w[keep]
        if np.std(x) > 0 and np.std(m) > 0:
            corr = float(np.corrcoef(x, m)[0, 1])
        else:
            corr = 0.0
        # spend is continuous, so (x, zbar) rows are nearly all distinct: no
        # compression; the terms that depend on x alone are computed per distinct x
        # (see _prepare_data). The fingerprint sorts each column so row order is moot.
        self._fit_patterns({"x": x, "m": m}, w,
                           _fingerprint(np.sort(x), np.sort(m), np.sort(w), np.sort(x * m)))
        self.frequency_spend_correlation_ = corr
        if abs(corr) > 0.3:
            import warnings
            warnings.warn(f"GammaGamma assumes spend is independent of purchase frequency, but "
                          f"their correlation in the data is {corr:.2f}; expected spend may be "
                          "biased. Consider segmenting customers or a spend model with "
                          "covariates.", DataWarning, stacklevel=2)
        return self

    def _initial_guess(self, data, weights):
        mean_m = float(_dot(weights, data["m"]) / weights.sum())
        return np.array([1.0, 2.0, max(mean_m, 1e-6)])

    def _loglik(self, params, data):
        return self._loglik_grad(params, data, grad=False)[0]

    def _loglik_grad(self, params, data, grad=True):
        p, q, v = params
        x, m = data["x"], data["m"]
        px = p * x
        lxm = np.log(x * m)
        lvxm = np.log(v + x * m)
        ll = (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
              + (px - 1.0) * lxm + np.log(x) - (px + q) * lvxm)
        if not grad:
            return ll, None
        g = np.empty((x.size, 3))
        dpq = digamma(px + q)
        g[:, 0] = x * (dpq - digamma(px) + lxm - lvxm)
        g[:, 1] = dpq - digamma(q) + np.log(v) - lvxm
        g[:, 2] = q / v - (px + q) / (v + x * m)
        return ll, g

    def _prepare_data(self, data, weights):
        out = dict(data)
        x, m = data["x"], data["m"]
        out["x_u"], out["x_i"] = np.unique(x, return_inverse=True)
        out["w_by_x"] = np.bincount(out["x_i"], weights=weights, minlength=len(out["x_u"]))
        out["xm"] = x * m
        lxm = np.log(x * m)
        out["S_lxm"] = float(_dot(weights, lxm))
        out["S_x_lxm"] = float(_dot(weights * x, lxm))
        out["S_lx"] = float(_dot(weights, np.log(x)))
        out["wx"] = weights * x
        return out

    def _total_loglik(self, params, data, weights):
        return self._total_loglik_grad(params, data, weights, grad=False)[0]

    def _total_loglik_grad(self, params, data, weights, grad=True):
        if "x_u" not in data:
            ll, g = self._loglik_grad(params, data, grad=grad)
            return float(_dot(weights, ll)), (_weighted_rows(weights, g) if grad else None)
        p, q, v = params
        xu, wx_u = data["x_u"], data["w_by_x"]
        W = wx_u.sum()
        pxu = p * xu
        lvxm = np.log(v + data["xm"])
        S_lv = float(_dot(weights, lvxm))
        S_x_lv = float(_dot(data["wx"], lvxm))
        ll = (_dot(wx_u, gammaln(pxu + q) - gammaln(pxu)) - W * gammaln(q) + W * q * np.log(v)
              + p * data["S_x_lxm"] - data["S_lxm"] + data["S_lx"] - p * S_x_lv - q * S_lv)
        if not grad:
            return float(ll), None
        dpq = digamma(pxu + q)
        g = np.empty(3)
        g[0] = _dot(wx_u * xu, dpq - digamma(pxu)) + data["S_x_lxm"] - S_x_lv
        g[1] = _dot(wx_u, dpq) - W * digamma(q) + W * np.log(v) - S_lv
        inv = 1.0 / (v + data["xm"])
        g[2] = W * q / v - p * _dot(data["wx"], inv) - q * _dot(weights, inv)
        return float(ll), g

    def _extra_state(self):
        return {"frequency_spend_correlation": self.frequency_spend_correlation_}

    def _load_extra_state(self, state):
        self.frequency_spend_correlation_ = state.get("frequency_spend_correlation")

    def population_mean_spend(self) -> float:
        """Mean spend per transaction across customers, ``p v / (q - 1)`` (inf if q <= 1)."""
        self._check_fitted()
        p, q, v = self._param_array()
        return float(p * v / (q - 1.0)) if q > 1 else float("inf")

    def _expected_spend(self, x, m):
        p, q, v = self._param_array()
        # (q-1)/(px+q-1) * population mean + px/(px+q-1) * zbar (FHL 2005 eq. 3)
        with np.errstate(all="ignore"):
            out = (v + x * m) * p / (p * x + q - 1.0)
        return np.where(x > 0, out, p * v / (q - 1.0))

    def expected_spend(self, rfm: Any, *, output: Output | None = None):
        """Expected mean spend per future transaction for each customer.

        Column ``expected_spend``; customers without repeat purchases get the
        population mean.
        """
        self._check_fitted()
        ids, x, m, _ = self._read(rfm, None, False)
        out = self._expected_spend(x, m)
        data = ({"customer_id": ids} if ids is not None else {}) | {"expected_spend": out}
        return self._to_output(pl.DataFrame(data), output)
