"""NBD: the gamma-Poisson purchase model without dropout (Ehrenberg 1959).

The model to use when the customers of a calibration period show no sign of
stopping (BG/NBD or Pareto/NBD then run to their no-dropout boundary): each
customer buys as a Poisson process with rate ``lambda ~ Gamma(r, alpha)`` and
never drops out. Likelihood of ``x`` repeat purchases in ``(0, T]`` (the purchase
times' density, as in the BG/NBD likelihood of Fader, Hardie & Lee 2005 with no
dropout): ``Gamma(r+x)/Gamma(r) alpha^r / (alpha+T)^(r+x)``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln

from crmkit.value._clv_base import RFMModel, _dot, _register

__all__ = ["NBD"]


def _nb_logpmf(k, r, alpha, t):
    with np.errstate(all="ignore"):
        return (gammaln(r + k) - gammaln(r) - gammaln(k + 1.0) + r * (np.log(alpha)
                - np.log(alpha + t)) + np.where(k > 0, k * (np.log(t) - np.log(alpha + t)), 0.0))


@_register
class NBD(RFMModel):
    """NBD (gamma-Poisson) repeat-purchase model without dropout.

    Same input, hyperparameters and predictions as :class:`BetaGeo`;
    ``probability_alive`` is 1 for everyone.

    Examples
    --------
    >>> import polars as pl
    >>> from crmkit.value import NBD
    >>> rfm = pl.DataFrame({"frequency": [0, 2, 5, 1, 0], "recency_weeks": [0., 20, 30, 3, 0],
    ...                     "T_weeks": [40., 38, 35, 30, 20]})
    >>> m = NBD().fit(rfm)
    >>> round(m.params_["r"] / m.params_["alpha"], 4)  # mean rate: purchases / week
    0.0478
    >>> m.expected_purchases(rfm, 10)["expected_purchases"].round(3).to_list()
    [0.194, 0.506, 1.013, 0.402, 0.276]
    """

    _param_names = ("r", "alpha")
    _scale_params = ("alpha",)
    _has_gradient = True

    def _init_from_scale(self, alpha):
        return [1.0, alpha]

    def _total_loglik(self, p, data, weights):
        return self._total_loglik_grad(p, data, weights)[0]

    def _total_loglik_grad(self, p, data, weights):
        r, alpha = p
        x, T = data["x"], data["T"]
        lT = np.log(alpha + T)
        ll = _dot(weights, gammaln(r + x) - gammaln(r) + r * np.log(alpha) - (r + x) * lT)
        g = np.array([
            _dot(weights, digamma(r + x) - digamma(r) + np.log(alpha) - lT),
            _dot(weights, r / alpha - (r + x) / (alpha + T)),
        ])
        return float(ll), g

    def _p_alive(self, p, x, t_x, T):
        return np.ones_like(np.asarray(x, dtype=float))

    def _cond_expected(self, p, x, t_x, T, t):
        r, alpha = p
        return (r + x) / (alpha + T) * t

    def _uncond_expected(self, p, t):
        r, alpha = p
        return r / alpha * np.asarray(t, dtype=float)

    def _uncond_pmf(self, p, k, t):
        r, alpha = p
        t = np.asarray(t, dtype=float)
        return np.where(t == 0, float(k == 0), np.exp(_nb_logpmf(k, r, alpha, t)))

    def _cond_pmf(self, p, x, t_x, T, t, k):
        r, alpha = p
        return np.exp(_nb_logpmf(k, r + x, alpha + T, np.full_like(x, t, dtype=float)))
