"""BG/BB: the discrete-time beta-geometric / beta-Bernoulli model.

Fader, P. S., Hardie, B. G. S. and Shang, J. (2010), "Customer-Base Analysis in
a Discrete-Time Noncontractual Setting", Marketing Science 29(6), 1086-1108.
Data per customer: ``frequency`` x (periods with a transaction after the first,
out of ``n_periods`` opportunities), ``recency`` t_x (the last such period, 0
if none) and ``n_periods`` n.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
from scipy.special import betaln, gammaln, logsumexp

from crmkit._frames import Output, to_polars
from crmkit.exceptions import SchemaError
from crmkit.value._clv_base import (
    CLVModel,
    RFMModel,
    _fingerprint,
    _refuse_unused_weights,
    _register,
)

__all__ = ["BetaGeoBetaBinom"]


def _lchoose(n, k):
    return gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)


@_register
class BetaGeoBetaBinom(CLVModel):
    """BG/BB model for discrete transaction opportunities (Fader, Hardie & Shang 2010).

    While alive, a customer transacts in each period with probability
    ``p ~ Beta(alpha, beta)``; at the start of each period she dies with
    probability ``theta ~ Beta(gamma, delta)``.

    Input: one row per customer or per distinct pattern with columns
    ``frequency``, ``recency`` and ``n_periods`` (``periods`` is accepted too,
    as in :func:`crmkit.datasets.load_donations`); pass ``weight_col=`` when
    each row counts several customers. Horizons are numbers of future periods.

    Examples
    --------
    >>> import polars as pl
    >>> from crmkit.value import BetaGeoBetaBinom
    >>> d = pl.DataFrame({"frequency": [0, 1, 2, 3, 6, 2], "recency": [0, 1, 5, 6, 6, 3],
    ...                   "n_periods": [6] * 6, "count": [50, 20, 10, 8, 5, 7]})
    >>> m = BetaGeoBetaBinom().fit(d, weight_col="count")
    >>> m.expected_purchases(d, 5).shape
    (6, 1)
    """

    _param_names = ("alpha", "beta", "gamma", "delta")

    def _read(self, data: Any, weight_col: str | None):
        frame = to_polars(data, "data")
        names = frame.columns
        n_col = "n_periods" if "n_periods" in names else ("periods" if "periods" in names
                                                          else None)
        missing = [c for c in ("frequency", "recency") if c not in names]
        if n_col is None:
            missing.append("n_periods")
        if missing:
            raise SchemaError(f"{self._name}: the input has no column "
                              f"{', '.join(map(repr, missing))}; it needs frequency, recency, "
                              f"n_periods (and optionally a weight column); it has "
                              f"{', '.join(names)}.")
        if weight_col is not None and weight_col not in names:
            raise SchemaError(f"{self._name}: weight_col={weight_col!r} is not a column.")
        x = frame["frequency"].cast(pl.Float64).to_numpy()
        t_x = frame["recency"].cast(pl.Float64).to_numpy()
        n = frame[n_col].cast(pl.Float64).to_numpy()
        w = frame[weight_col].cast(pl.Float64).to_numpy() if weight_col else np.ones(len(x))
        bad = []
        arrs = np.concatenate([x, t_x, n])
        if (~np.isfinite(arrs)).any() or (arrs != np.round(arrs)).any() or (arrs < 0).any():
            bad.append("frequency, recency and n_periods must be non-negative integers")
        elif (x > t_x).any() or (t_x > n).any() or ((x > 0) & (t_x == 0)).any():
            bad.append("each row needs frequency <= recency <= n_periods (and recency >= 1 "
                       "when frequency > 0)")
        if (~np.isfinite(w)).any() or (w < 0).any():
            bad.append("weights must be non-negative")
        if bad:
            raise SchemaError(f"{self._name}: " + "; ".join(bad) + ".")
        ids = frame["customer_id"] if "customer_id" in names else None
        return ids, x, t_x, n, w

    def fit(self, data: Any, y: Any = None, *, weight_col: str | None = None):
        """Fit by maximum likelihood on the distinct (frequency, recency, n_periods) rows."""
        if weight_col is None:
            _refuse_unused_weights(to_polars(data, "data"), None, self._name)
        _, x, t_x, n, w = self._read(data, weight_col)
        (xu, tu, nu), wu = RFMModel._compress(x, t_x, n, weights=w)
        keep = wu > 0
        xu, tu, nu, wu = xu[keep], tu[keep], nu[keep], wu[keep]
        self._fit_patterns({"x": xu, "t_x": tu, "n": nu}, wu, _fingerprint(xu, tu, nu, wu))
        return self

    def _loglik(self, params, data):
        a, b, g, d = params
        x, t_x, n = data["x"], data["t_x"], data["n"]
        lba, lbg = betaln(a, b), betaln(g, d)
        alive = betaln(a + x, b + n - x) - lba + betaln(g, d + n) - lbg
        m = int(np.max(n - t_x)) if len(n) else 0
        if m == 0:
            return alive
        i = np.arange(m)[None, :]
        died = (betaln(a + x[:, None], b + t_x[:, None] - x[:, None] + i) - lba
                + betaln(g + 1.0, d + t_x[:, None] + i) - lbg)
        died = np.where(i < (n - t_x)[:, None], died, -np.inf)
        return logsumexp(np.column_stack([alive, died]), axis=1)

    # -------------------------------------------------------------- predictions
    def _pred_inputs(self, data):
        self._check_fitted()
        ids, x, t_x, n, _ = self._read(data, None)
        return ids, x, t_x, n

    def _out(self, ids, cols, output):
        d = ({"customer_id": ids} if ids is not None else {}) | cols
        return self._to_output(pl.DataFrame(d), output)

    @staticmethod
    def _check_periods(h, owner):
        if not isinstance(h, (int, np.integer)) or isinstance(h, bool) or h < 0:
            raise ValueError(f"The 'horizon' parameter of {owner} must be a non-negative "
                             f"integer number of periods. Got {h!r} instead.")
        return int(h)

    def _ll(self, x, t_x, n):
        return self._loglik(self._param_array(), {"x": x, "t_x": t_x, "n": n})

    def probability_alive(self, data: Any, *, output: Output | None = None):
        """P(alive in period n+1 | x, t_x, n) (FHS 2010 eq. 11): column ``p_alive``."""
        ids, x, t_x, n = self._pred_inputs(data)
        a, b, g, d = self._param_array()
        lp = (betaln(a + x, b + n - x) - betaln(a, b) + betaln(g, d + n + 1.0) - betaln(g, d)
              - self._ll(x, t_x, n))
        return self._out(ids, {"p_alive": np.exp(lp)}, output)

    def expected_purchases(self, data: Any, horizons: int | None = None, *,
                           output: Output | None = None, horizon: int | None = None):
        """Expected transactions in the next ``horizons`` periods (FHS 2010 eq. 13).

        ``horizons`` is a number of future periods; ``horizon`` is its deprecated name.
        """
        if horizon is not None:
            from crmkit._estimator import deprecated_alias
            deprecated_alias(f"{self._name}.expected_purchases", "horizon", "horizons")
            horizons = horizon if horizons is None else horizons
        if horizons is None:
            raise TypeError(f"{self._name}.expected_purchases needs horizons= (future periods).")
        h = self._check_periods(horizons, f"{self._name}.expected_purchases")
        ids, x, t_x, n = self._pred_inputs(data)
        a, b, g, d = self._param_array()
        lead = np.exp(betaln(a + x + 1.0, b + n - x) - betaln(a, b) - self._ll(x, t_x, n))
        k = gammaln(g + d) - gammaln(1.0 + d)
        bracket = (np.exp(k + gammaln(1.0 + d + n) - gammaln(g + d + n))
                   - np.exp(k + gammaln(1.0 + d + n + h) - gammaln(g + d + n + h)))
        if abs(g - 1.0) < 1e-10:  # limit gamma -> 1: delta * sum of 1/(delta + n + j)
            bracket = d * np.array([np.sum(1.0 / (d + nn + np.arange(1, h + 1))) for nn in n])
            e = lead * bracket
        else:
            e = lead * d / (g - 1.0) * bracket
        return self._out(ids, {"expected_purchases": e}, output)

    def probability_of_purchases(self, data: Any, *, k: int, horizon: int,
                                 output: Output | None = None):
        """P(exactly ``k`` transactions in the next ``horizon`` periods | history).

        Sum over the number J of future periods alive: the joint probability of
        the history and of J, k is
        ``C(J,k) B(alpha+x+k, beta+n-x+J-k)/B(alpha,beta) B(gamma+[J<h], delta+n+J)/B(gamma,delta)``,
        divided by the likelihood; customers who died before period n+1 add to k = 0.
        """
        h = self._check_periods(horizon, f"{self._name}.probability_of_purchases")
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0:
            raise ValueError(f"The 'k' parameter of {self._name}.probability_of_purchases must "
                             f"be a non-negative integer. Got {k!r} instead.")
        ids, x, t_x, n = self._pred_inputs(data)
        a, b, g, d = self._param_array()
        ll = self._ll(x, t_x, n)
        lba, lbg = betaln(a, b), betaln(g, d)
        terms = []
        for J in range(k, h + 1):
            terms.append(_lchoose(J, k) + betaln(a + x + k, b + n - x + J - k) - lba
                         + betaln(g + (1.0 if J < h else 0.0), d + n + J) - lbg)
        p = np.exp(logsumexp(np.column_stack(terms), axis=1) - ll) if terms else np.zeros(len(x))
        if k == 0:
            alive_n = betaln(a + x, b + n - x) - lba + betaln(g, d + n) - lbg
            p = p + (1.0 - np.exp(alive_n - ll))
        return self._out(ids, {f"p_purchases_{k}": np.clip(p, 0.0, 1.0)}, output)

    def expected_purchases_new_customer(self, n_periods: int) -> float:
        """E[X(n)] for a new customer over ``n_periods`` opportunities (FHS 2010 eq. 7)."""
        self._check_fitted()
        n = self._check_periods(n_periods, f"{self._name}.expected_purchases_new_customer")
        a, b, g, d = self._param_array()
        ratio = math.exp(gammaln(g + d) + gammaln(1 + d + n) - gammaln(g + d + n) - gammaln(1 + d))
        return float(a / (a + b) * d / (g - 1.0) * (1.0 - ratio))

    def probability_of_purchases_new_customer(self, k: int, n_periods: int) -> float:
        """P(X(n) = k) for a new customer over ``n_periods`` opportunities (FHS 2010 eq. 8)."""
        self._check_fitted()
        n = self._check_periods(n_periods, f"{self._name}.probability_of_purchases_new_customer")
        a, b, g, d = self._param_array()
        if k > n:
            return 0.0
        lba, lbg = betaln(a, b), betaln(g, d)
        out = math.exp(_lchoose(n, k) + betaln(a + k, b + n - k) - lba + betaln(g, d + n) - lbg)
        for i in range(k, n):
            out += math.exp(_lchoose(i, k) + betaln(a + k, b + i - k) - lba
                            + betaln(g + 1.0, d + i) - lbg)
        return float(out)
