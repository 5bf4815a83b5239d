"""BG/NBD: the beta-geometric / negative binomial model of Fader, Hardie & Lee (2005).

Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "'Counting Your Customers'
the Easy Way: An Alternative to the Pareto/NBD Model", Marketing Science 24(2),
275-284. Equation numbers below refer to that paper.
"""

from __future__ import annotations

import numpy as np
from scipy.special import betainc, betaln, digamma, expit, gammaln, hyp2f1

from crmkit.value._clv_base import RFMModel, _dot, _register

__all__ = ["BetaGeo", "bg_expected", "bg_pmf"]


def bg_expected(r, alpha, a, b, t):
    """E[X(t)] of the BG process started alive at 0 (FHL 2005 eq. 9).

    Written with Euler's transformation of the Gaussian hypergeometric function,
    ``(1-z)^r 2F1(r, b; a+b-1; z) = (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b-1; z)``,
    whose series stays well conditioned when ``b`` is large (heavy buyers).
    """
    t = np.asarray(t, dtype=float)
    if abs(a - 1.0) < 5e-7:  # removable singularity at a = 1: mean of both sides
        return 0.5 * (bg_expected(r, alpha, 1.0 - 1e-6, b, t) + bg_expected(r, alpha, 1.0 + 1e-6, b, t))
    z = t / (alpha + t)
    c = a + b - 1.0
    with np.errstate(all="ignore"):
        core = np.exp((a - 1.0) * np.log1p(-z)) * hyp2f1(c - r, a - 1.0, c, z)
        out = c / (a - 1.0) * (1.0 - core)
    return np.where(t == 0, 0.0, out)


def bg_pmf(k: int, r, alpha, a, b, t):
    """P(X(t) = k) of the BG process started alive at 0 (FHL 2005 eq. 8).

    The sum of negative-binomial terms in eq. 8 is the NBD survival function,
    computed as a regularised incomplete beta function.
    """
    t = np.asarray(t, dtype=float)
    with np.errstate(all="ignore"):
        lz = np.log(t) - np.log(alpha + t)        # log(t / (alpha + t))
        l1z = np.log(alpha) - np.log(alpha + t)    # log(alpha / (alpha + t))
        first = (betaln(a, b + k) - betaln(a, b) + gammaln(r + k) - gammaln(r)
                 - gammaln(k + 1.0) + r * l1z + np.where(k > 0, k * lz, 0.0))
        out = np.exp(first)
        if k > 0:
            tail = betainc(float(k), r, np.exp(lz))  # P(NBD(r, alpha/(alpha+t)) >= k)
            out = out + np.exp(betaln(a + 1.0, b + k - 1.0) - betaln(a, b)) * tail
    return np.where(t == 0, float(k == 0), out)


@_register
class BetaGeo(RFMModel):
    """BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005).

    While alive, a customer buys as a Poisson process with rate ``lambda ~
    Gamma(r, alpha)``; after each purchase she drops out with probability
    ``p ~ Beta(a, b)``. ``alpha`` is in the time unit of the data (``unit_``).

    Parameters
    ----------
    penalizer_coef : float, default 0
        L2 penalty on the parameters (lifetimes' convention: added to the mean
        negative log-likelihood); 0 is plain maximum likelihood.
    initial_params : dict, optional
        Starting values ``{"r", "alpha", "a", "b"}``; by default derived from the data.
    max_iter : int, default 500
        Iterations of L-BFGS-B (followed by a few Newton steps).

    Attributes
    ----------
    params_ : dict
        ``r, alpha, a, b``.
    unit_ : str
        Time unit of recency and T at fit; predictions require the same unit.
    log_likelihood_, n_customers_, n_patterns_, converged_, covariance_log_,
    fingerprint_ : fit results; see also :attr:`summary`.

    Examples
    --------
    >>> import polars as pl
    >>> from crmkit.value import BetaGeo
    >>> rfm = pl.DataFrame({"customer_id": ["a", "b", "c", "d", "e"],
    ...                     "frequency": [0, 2, 5, 1, 0], "recency_weeks": [0., 20, 30, 3, 0],
    ...                     "T_weeks": [40., 38, 35, 30, 20]})
    >>> m = BetaGeo(penalizer_coef=0.01).fit(rfm)
    >>> m.unit_
    'weeks'
    >>> m.probability_alive(rfm)["p_alive"].round(3).to_list()
    [1.0, 0.695, 0.929, 0.192, 1.0]
    >>> m.expected_purchases(rfm, horizon=52).shape
    (5, 2)
    """

    _param_names = ("r", "alpha", "a", "b")
    _has_gradient = True

    def _init_from_scale(self, alpha):
        return [1.0, alpha, 1.0, 1.0]

    # log-likelihood, FHL 2005 eq. 6, in log-sum-exp form
    def _terms(self, p, x, t_x, T):
        r, alpha, a, b = p
        base = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
        u = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + T)
        with np.errstate(all="ignore"):
            v = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1.0, 1e-300))
                         + betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + t_x),
                         -np.inf)
        return base, u, v

    def _loglik(self, p, data):
        base, u, v = self._terms(p, data["x"], data["t_x"], data["T"])
        return base + np.logaddexp(u, v)

    def _loglik_grad(self, p, data):
        r, alpha, a, b = p
        x, t_x, T = data["x"], data["t_x"], data["T"]
        base, u, v = self._terms(p, x, t_x, T)
        ll = base + np.logaddexp(u, v)
        wv = np.exp(v - np.logaddexp(u, v))  # weight of the second term
        wu = 1.0 - wv
        dab = digamma(a + b)
        dabx = digamma(a + b + x)
        la_T = np.log(alpha + T)
        la_tx = np.log(alpha + t_x)
        g = np.empty((x.size, 4))
        g[:, 0] = digamma(r + x) - digamma(r) + np.log(alpha) - wu * la_T - wv * la_tx
        g[:, 1] = r / alpha - wu * (r + x) / (alpha + T) - wv * (r + x) / (alpha + t_x)
        du_da = dab - dabx
        dv_da = digamma(a + 1.0) - digamma(a) + dab - dabx
        g[:, 2] = wu * du_da + wv * dv_da
        du_db = digamma(b + x) - dabx - digamma(b) + dab
        with np.errstate(all="ignore"):
            dv_db = np.where(x > 0, digamma(np.maximum(b + x - 1.0, 1e-300)), 0.0) - dabx \
                - digamma(b) + dab
        g[:, 3] = wu * du_db + wv * np.where(x > 0, dv_db, 0.0)
        return ll, g

    # Fast path for fitting: everything that depends on x alone is computed once per
    # distinct x, the logs once per distinct T and t_x; per pattern only gathers,
    # one log-sum-exp and weighted sums remain.
    def _prepare_data(self, data, weights):
        out = dict(data)
        for key in ("x", "t_x", "T"):
            u, inv = np.unique(data[key], return_inverse=True)
            out[f"{key}_u"], out[f"{key}_i"] = u, inv
        out["w_by_x"] = np.bincount(out["x_i"], weights=weights, minlength=len(out["x_u"]))
        return out

    def _fast_parts(self, p, data):
        r, alpha, a, b = p
        xu = data["x_u"]
        with np.errstate(all="ignore"):
            bx = betaln(a, b + xu) - betaln(a, b)
            cx = np.where(xu > 0, np.log(a) - np.log(np.maximum(b + xu - 1.0, 1e-300)), -np.inf)
        lT = np.log(alpha + data["T_u"])[data["T_i"]]
        ltx = np.log(alpha + data["t_x_u"])[data["t_x_i"]]
        rx = r + data["x"]
        bxi = bx[data["x_i"]]
        u = bxi - rx * lT
        v = bxi + cx[data["x_i"]] - rx * ltx
        lse = np.logaddexp(u, v)
        return lT, ltx, rx, lse, v

    def _total_loglik(self, p, data, weights):
        if "x_u" not in data:
            return super()._total_loglik(p, data, weights)
        r, alpha, a, b = p
        xu = data["x_u"]
        base = gammaln(r + xu) - gammaln(r) + r * np.log(alpha)
        _, _, _, lse, _ = self._fast_parts(p, data)
        return float(_dot(data["w_by_x"], base) + _dot(weights, lse))

    def _total_loglik_grad(self, p, data, weights):
        if "x_u" not in data:
            return super()._total_loglik_grad(p, data, weights)
        r, alpha, a, b = p
        xu, wx = data["x_u"], data["w_by_x"]
        lT, ltx, rx, lse, v = self._fast_parts(p, data)
        base = gammaln(r + xu) - gammaln(r) + r * np.log(alpha)
        ll = float(_dot(wx, base) + _dot(weights, lse))
        s = np.exp(v - lse)                  # weight of the 'dropped out after t_x' term
        ws = weights * s
        wu = weights - ws
        ws_by_x = np.bincount(data["x_i"], weights=ws, minlength=len(xu))
        dab, dabx = digamma(a + b), digamma(a + b + xu)
        g = np.empty(4)
        g[0] = (_dot(wx, digamma(r + xu) - digamma(r) + np.log(alpha))
                - _dot(wu, lT) - _dot(ws, ltx))
        g[1] = (wx.sum() * r / alpha - _dot(wu * rx, 1.0 / (alpha + data["T_u"])[data["T_i"]])
                - _dot(ws * rx, 1.0 / (alpha + data["t_x_u"])[data["t_x_i"]]))
        g[2] = _dot(wx, dab - dabx) + ws_by_x.sum() * (digamma(a + 1.0) - digamma(a))
        du_db = digamma(b + xu) - dabx - digamma(b) + dab
        with np.errstate(all="ignore"):
            dv_minus_du = np.where(xu > 0, -1.0 / np.maximum(b + xu - 1.0, 1e-300), 0.0)
        g[3] = _dot(wx, du_db) + _dot(ws_by_x, dv_minus_du)
        return ll, g

    # -------------------------------------------------------------- predictions
    def _log_odds_dead(self, p, x, t_x, T):
        r, alpha, a, b = p
        with np.errstate(all="ignore"):
            lo = (np.log(a) - np.log(np.maximum(b + x - 1.0, 1e-300))
                  + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)))
        return np.where(x > 0, lo, -np.inf)

    def _p_alive(self, p, x, t_x, T):
        # FHL 2005 eq. 11 as a logistic of the log-odds: no overflow for heavy buyers
        return expit(-self._log_odds_dead(p, x, t_x, T))

    def _cond_expected(self, p, x, t_x, T, t):
        # eq. 10 = P(alive) * E[X(t)] of a fresh BG process with the posterior
        # parameters (r + x, alpha + T, a, b + x)
        r, alpha, a, b = p
        post = self._by_pattern(lambda xx, TT: bg_expected(r + xx, alpha + TT, a, b + xx, t), x, T)
        return self._p_alive(p, x, t_x, T) * post

    def _uncond_expected(self, p, t):
        r, alpha, a, b = p
        return bg_expected(r, alpha, a, b, t)

    def _uncond_pmf(self, p, k, t):
        r, alpha, a, b = p
        return bg_pmf(k, r, alpha, a, b, t)

    def _cond_pmf(self, p, x, t_x, T, t, k):
        # Given alive at T, lambda ~ Gamma(r+x, alpha+T) and p ~ Beta(a, b+x), and
        # the process restarts as a fresh BG process; dead customers buy nothing.
        r, alpha, a, b = p
        pa = self._p_alive(p, x, t_x, T)
        out = pa * bg_pmf(k, r + x, alpha + T, a, b + x, np.full_like(x, t, dtype=float))
        return out + (1.0 - pa) * (k == 0)
