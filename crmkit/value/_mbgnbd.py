"""MBG/NBD: the modified BG/NBD of Batislam, Denizel & Filiztekin (2007).

Batislam, E. P., Denizel, M. and Filiztekin, A. (2007), "Empirical validation and
comparison of models for customer base analysis", International Journal of
Research in Marketing 24(3), 201-209. Unlike BG/NBD, a customer may also drop
out right after the first purchase (time 0), so customers without repeat
purchases are not all alive.
"""

from __future__ import annotations

import numpy as np
from scipy.special import betaln, expit, gammaln

from crmkit.value._bgnbd import _BetaDropout, bg_expected, bg_pmf
from crmkit.value._clv_base import RFMModel, _register

__all__ = ["ModifiedBetaGeo"]


@_register
class ModifiedBetaGeo(_BetaDropout, RFMModel):
    """MBG/NBD model (Batislam, Denizel & Filiztekin 2007).

    Poisson purchasing with ``lambda ~ Gamma(r, alpha)``; at time 0 and after
    each purchase the customer drops out with ``p ~ Beta(a, b)``. Same input,
    hyperparameters and predictions as :class:`BetaGeo`.

    Examples
    --------
    >>> import polars as pl
    >>> from crmkit.value import ModifiedBetaGeo
    >>> rfm = pl.DataFrame({"frequency": [0, 2, 5, 1, 0], "recency_weeks": [0., 20, 30, 3, 0],
    ...                     "T_weeks": [40., 38, 35, 30, 20]})
    >>> m = ModifiedBetaGeo(penalizer=0.01).fit(rfm)
    >>> bool(m.probability_alive(rfm)["p_alive"][0] < 1.0)
    True
    """

    def _log_odds_dead(self, p, x, t_x, T):
        r, alpha, a, b = p
        return np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))

    def _loglik(self, p, data):
        r, alpha, a, b = p
        x, t_x, T = data["x"], data["t_x"], data["T"]
        base = (gammaln(r + x) - gammaln(r) + r * np.log(alpha)
                + betaln(a, b + x + 1.0) - betaln(a, b) - (r + x) * np.log(alpha + T))
        return base + np.logaddexp(0.0, self._log_odds_dead(p, x, t_x, T))

    def _p_alive(self, p, x, t_x, T):
        return expit(-self._log_odds_dead(p, x, t_x, T))

    def _cond_expected(self, p, x, t_x, T, t):
        r, alpha, a, b = p
        post = self._by_pattern(
            lambda xx, TT: bg_expected(r + xx, alpha + TT, a, b + xx + 1.0, t), x, T)
        return self._p_alive(p, x, t_x, T) * post

    def _uncond_expected(self, p, t):
        # survive the flip at time 0 (prob. b/(a+b), after which p ~ Beta(a, b+1)),
        # then a BG process: E[X(t)] = b/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b+1; a+b; .)]
        r, alpha, a, b = p
        return b / (a + b) * bg_expected(r, alpha, a, b + 1.0, t)

    def _uncond_pmf(self, p, k, t):
        r, alpha, a, b = p
        return b / (a + b) * bg_pmf(k, r, alpha, a, b + 1.0, t) + a / (a + b) * (k == 0)

    def _cond_pmf(self, p, x, t_x, T, t, k):
        r, alpha, a, b = p
        pa = self._p_alive(p, x, t_x, T)
        out = pa * bg_pmf(k, r + x, alpha + T, a, b + x + 1.0, np.full_like(x, t, dtype=float))
        return out + (1.0 - pa) * (k == 0)
