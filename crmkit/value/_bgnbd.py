"""BG/NBD: the beta-geometric / negative binomial model of Fader, Hardie & Lee (2005).

Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "'Counting Your Customers'
the Easy Way: An Alternative to the Pareto/NBD Model", Marketing Science 24(2),
275-284. Equation numbers below refer to that paper.
"""

from __future__ import annotations

import numpy as np
from scipy.special import betainc, betaln, digamma, expit, gammaln, hyp2f1

from crmkit.value._clv_base import RFMModel, _dot, _no_dropout_message, _register

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


class _BetaDropout:
    """What BG/NBD and MBG/NBD share: Gamma(r, alpha) purchase rates, Beta(a, b)
    dropout after a purchase, the starting point of the fit and the no-dropout
    boundary (the models differ in their likelihood and predictions only)."""

    _param_names = ("r", "alpha", "a", "b")
    _scale_params = ("alpha",)

    def _boundary_message(self, data, weights):
        """The no-dropout boundary: a -> 0 or b -> inf (dropout probability -> 0),
        confirmed by a likelihood no better than the NBD's."""
        a, b = self.params_["a"], self.params_["b"]
        q = a / (a + b)  # mean dropout probability after a purchase
        if a < 0.05 or b > 1e3 or q < 1e-3:
            gain = self._nbd_gain(data, weights)
            if gain < 3.0:
                return _no_dropout_message(self._name, f"a = {a:.3g}, b = {b:.3g}",
                                           f"mean dropout probability per purchase {q:.2g}",
                                           gain)
        return None

    def _init_from_scale(self, alpha):
        return [1.0, alpha, 1.0, 1.0]


@_register
class BetaGeo(_BetaDropout, RFMModel):
    """BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005).

    While alive, a customer buys as a Poisson process with rate ``lambda ~
    Gamma(r, alpha)``; after each purchase she drops out with probability
    ``p ~ Beta(a, b)``. ``alpha`` is in the time unit of the data (``unit_``).

    Parameters
    ----------
    penalizer : float, default 0
        L2 penalty ``penalizer * (r^2 + (alpha/max T)^2 + a^2 + b^2)`` added to the
        mean negative log-likelihood: lifetimes' ``penalizer_coef``, on its scale
        (alpha in time divided by the longest T); 0 is plain maximum likelihood.
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
    fingerprint_, at_boundary_ : fit results; see also :attr:`summary_`.
    penalizer_coef : float, optional
        Deprecated name of ``penalizer`` (warns).

    Examples
    --------
    >>> import polars as pl
    >>> from crmkit.value import BetaGeo
    >>> rfm = pl.DataFrame({"customer_id": ["a", "b", "c", "d", "e"],
    ...                     "frequency": [0, 2, 5, 1, 0], "recency_weeks": [0., 20, 30, 3, 0],
    ...                     "T_weeks": [40., 38, 35, 30, 20]})
    >>> m = BetaGeo(penalizer=0.01).fit(rfm)
    >>> m.unit_
    'weeks'
    >>> m.probability_alive(rfm)["p_alive"].round(3).to_list()
    [1.0, 0.852, 0.972, 0.412, 1.0]
    >>> m.expected_purchases(rfm, horizons=52).shape
    (5, 2)
    """

    _has_gradient = True

    # The log-likelihood (FHL 2005 eq. 6) in log-sum-exp form: everything that depends on x alone is computed once per
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
        r, alpha, a, b = p
        xu = data["x_u"]
        base = gammaln(r + xu) - gammaln(r) + r * np.log(alpha)
        _, _, _, lse, _ = self._fast_parts(p, data)
        return float(_dot(data["w_by_x"], base) + _dot(weights, lse))

    def _total_loglik_grad(self, p, data, weights):
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
