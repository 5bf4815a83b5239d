"""Pareto/NBD (Schmittlein, Morrison & Colombo 1987) with a numerically stable likelihood.

Schmittlein, D. C., Morrison, D. G. and Colombo, R. (1987), "Counting Your
Customers: Who Are They and What Will They Do Next?", Management Science 33(1),
1-24; likelihood as in Fader, Hardie & Lee (2005), "A Note on Deriving the
Pareto/NBD Model and Related Expressions" (eq. 19-22).

Stability: the term ``A0`` of the likelihood is a difference of two
hypergeometric terms ``F(t_x) - F(T)``. Each ``F`` is evaluated in log space
after Euler's transformation, which turns ``2F1(r+s+x, b; r+s+x+1; z)`` (whose
value overflows for heavy buyers) into ``(1-z)^(1-b) 2F1(1, c-b; c; z)``: the
power goes to log space and the remaining series has a first parameter of 1.
The difference is then taken as ``log F(t_x) + log1p(-exp(log F(T) - log F(t_x)))``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, expit, gammaln, hyp2f1

from crmkit.value._clv_base import RFMModel, _dot, _no_dropout_message, _register

__all__ = ["ParetoNBD"]

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(64)
_GLQ_NODES, _GLQ_WEIGHTS = np.polynomial.legendre.leggauss(64)


def _hyp2f1_a1(b, c, z):
    """2F1(1, b; c; z) for 0 <= z < 1 and c > b > 0.

    Where c - 1 - b is an integer and z > 0.5 scipy's hyp2f1 returns NaN or
    loses digits (1e-5); there the function (smooth in b) is taken as the mean
    of its values at b -/+ 1e-6 b, where scipy's general formula holds (error
    about 1e-10). A direct sum of the series is the last resort.
    """
    b, c, z = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (b, c, z)))
    h = np.array(hyp2f1(1.0, b, c, z), dtype=float, ndmin=1).reshape(b.shape)
    gap = c - b - 1.0
    bad = ~np.isfinite(h) | ((z > 0.5) & (np.abs(gap - np.round(gap)) < 1e-6))
    if bad.any():
        bb, cc, zz = b[bad], c[bad], z[bad]
        d = 1e-6 * np.maximum(bb, 1.0)
        est = 0.5 * (hyp2f1(1.0, bb - d, cc, zz) + hyp2f1(1.0, bb + d, cc, zz))
        still = ~np.isfinite(est)
        if still.any():
            b2, c2, z2 = bb[still], cc[still], zz[still]
            term = np.ones(b2.shape)
            total = np.ones(b2.shape)
            for k in range(20000):
                term = term * (b2 + k) / (c2 + k) * z2
                total += term
                if k % 64 == 0 and np.all(term < 1e-17 * total):
                    break
            est[still] = total
        h[bad] = est
    return h


def _log_F(r, alpha, s, beta, x, y):
    """log of 2F1(r+s+x, b; r+s+x+1; z(y)) / (max(alpha,beta) + y)^(r+s+x).

    Euler's transformation gives ``(1-z)^(1-b) 2F1(1, c-b; c; z)`` with
    ``c = r+s+x+1``; with a first parameter of 1 and ``0 <= z < 1``, scipy's
    series (with the fallbacks of :func:`_hyp2f1_a1`) agrees with mpmath to
    5e-9 relative for z <= 0.99 and 3e-7 for z <= 0.999 (r, s in (0.05, 5),
    x up to 600), where the forms with ``z/(z-1) <= -1`` lose all precision for
    heavy buyers. ``z = |alpha - beta| / (max(alpha, beta) + y)`` exceeds 0.999
    only when ``min(alpha, beta) + t_x`` is below a thousandth of
    ``|alpha - beta|``; accuracy degrades there.
    """
    hi, lo = max(alpha, beta), min(alpha, beta)
    bb = s + 1.0 if alpha >= beta else r + x
    c = r + s + x + 1.0
    z = (hi - lo) / (hi + y)
    with np.errstate(all="ignore"):
        h = _hyp2f1_a1(c - bb, c, z)
        log1mz = np.log(lo + y) - np.log(hi + y)
    return -(r + s + x) * np.log(hi + y) + (1.0 - bb) * log1mz + np.log(h)


def _log_A0_hyp(r, alpha, s, beta, x, t_x, T):
    """log of s/(r+s+x) * A0 from the hypergeometric form (fast where z <= 0.99)."""
    def lf(xx, yy):
        return _log_F(r, alpha, s, beta, xx, yy)

    lf_tx = RFMModel._by_pattern(lf, x, t_x)
    lf_T = RFMModel._by_pattern(lf, x, T)
    with np.errstate(all="ignore"):
        d = lf_T - lf_tx
        out = lf_tx + np.log(-np.expm1(np.minimum(d, 0.0)))
    out = np.where((T - t_x) <= 0, -np.inf, out)
    return np.log(s) - np.log(r + s + x) + out


def _log_A0_quad(r, alpha, s, beta, x, t_x, T, grad=False):
    """The same term as the integral it is: ``s * I`` with
    ``I = int_{t_x}^{T} (alpha+tau)^-(r+x) (beta+tau)^-(s+1) dtau``
    (the customer bought x times by t_x and dropped out in (t_x, T]).

    Used where the hypergeometric series converge slowly (``z`` near 1, i.e. one of
    alpha, beta far larger than the other: near the no-dropout boundary scipy's
    hyp2f1 costs ~80 us per value). Computed in ``u = log(min(alpha, beta) + tau)``
    and then ``w = 1 - exp(-kappa (u - u0))`` with ``kappa`` the integrand's decay
    rate at ``t_x``, which leaves a bounded, monotone integrand for 64-point
    Gauss-Legendre. Where it is used (z > 0.99) it agrees with the hypergeometric
    form to 5e-8 relative in the log term (tests/test_estimator_api.py; the error
    falls with more points, so it is the quadrature's; 32 points give 1e-5).
    """
    m = min(alpha, beta)
    da, db = alpha - m, beta - m
    a1 = r + x
    a2 = s + 1.0
    e0 = m + t_x
    u0 = np.log(e0)
    with np.errstate(all="ignore"):
        L = np.log(m + T) - u0
        psi0 = -a1 * np.log(e0 + da) - a2 * np.log(e0 + db) + u0
        slope0 = -a1 * e0 / (da + e0) - a2 * e0 / (db + e0) + 1.0
        kappa = np.maximum(-slope0, 1.0)
        W = -np.expm1(-kappa * L)
        w = (W / 2.0)[:, None] * (_GLQ_NODES + 1.0)
        u = u0[:, None] - np.log1p(-w) / kappa[:, None]
        eu = np.exp(u)
        logq = (-a1[:, None] * np.log(eu + da) - a2 * np.log(eu + db) + u
                - psi0[:, None] + kappa[:, None] * (u - u0[:, None]))
        q = np.exp(logq)
        integral = W / 2.0 * (q @ _GLQ_WEIGHTS) / kappa
        out = np.log(s) + psi0 + np.log(integral)
    out = np.where(L > 0, out, -np.inf)
    if not grad:
        return out
    # d log(s I) / d(r, alpha, s, beta): expectations under the normalised integrand
    with np.errstate(all="ignore"):
        wq = q * _GLQ_WEIGHTS
        wq = wq / wq.sum(axis=1, keepdims=True)
        la = np.log(eu + da)   # log(alpha + tau)
        lb = np.log(eu + db)   # log(beta + tau)
        g = np.column_stack([
            -(wq * la).sum(axis=1),
            -a1 * (wq / (eu + da)).sum(axis=1),
            1.0 / s - (wq * lb).sum(axis=1),
            -a2 * (wq / (eu + db)).sum(axis=1),
        ])
    return out, np.where((L > 0)[:, None], g, 0.0)


def _log_A0_term(r, alpha, s, beta, x, t_x, T):
    """log of s/(r+s+x) * A0 (the 'died in (t_x, T]' part of the likelihood)."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    hi, lo = max(alpha, beta), min(alpha, beta)
    slow = (hi - lo) / (hi + t_x) > 0.99
    if not slow.any():
        return _log_A0_hyp(r, alpha, s, beta, x, t_x, T)
    out = np.empty(x.shape)
    fast = ~slow
    if fast.any():
        out[fast] = _log_A0_hyp(r, alpha, s, beta, x[fast], t_x[fast], T[fast])
    out[slow] = _log_A0_quad(r, alpha, s, beta, x[slow], t_x[slow], T[slow])
    return out


def _nb_logpmf(k, r, alpha, t):
    with np.errstate(all="ignore"):
        return (gammaln(r + k) - gammaln(r) - gammaln(k + 1.0) + r * (np.log(alpha)
                - np.log(alpha + t)) + np.where(k > 0, k * (np.log(t) - np.log(alpha + t)), 0.0))


def pareto_pmf(k: int, r, alpha, s, beta, t):
    """P(X(t) = k) for a customer alive at 0 (vectorised over the parameters and t).

    ``P(tau > t) NB(k; r, alpha, t) + integral_0^t f(tau) NB(k; r, alpha, tau) dtau``
    with the Pareto (Lomax) lifetime density ``f``; the integral uses 64-point
    Gauss-Legendre on ``u = log(1 + tau/c)``, ``c = min(alpha, beta)``, where the
    integrand is smooth.
    """
    r, alpha, s, beta, t = np.broadcast_arrays(*(np.asarray(v, dtype=float)
                                                for v in (r, alpha, s, beta, t)))
    with np.errstate(all="ignore"):
        surv = np.exp(s * (np.log(beta) - np.log(beta + t)) + _nb_logpmf(k, r, alpha, t))
        c = np.minimum(alpha, beta)
        umax = np.log1p(t / c)
        u = (umax[..., None] / 2.0) * (_GL_NODES + 1.0)
        tau = c[..., None] * np.expm1(u)
        jac = c[..., None] * np.exp(u) * umax[..., None] / 2.0
        logf = (np.log(s[..., None]) - np.log(beta[..., None])
                + (s[..., None] + 1.0) * (np.log(beta[..., None]) - np.log(beta[..., None] + tau)))
        nb = _nb_logpmf(k, r[..., None], alpha[..., None], tau)
        nb = np.where(tau == 0, 0.0 if k == 0 else -np.inf, nb)
        integral = np.sum(_GL_WEIGHTS * jac * np.exp(logf + nb), axis=-1)
    out = surv + np.where(t > 0, integral, 0.0)
    return np.where(t == 0, float(k == 0), np.clip(out, 0.0, 1.0))


@_register
class ParetoNBD(RFMModel):
    """Pareto/NBD model (Schmittlein, Morrison & Colombo 1987).

    While alive, Poisson purchasing with ``lambda ~ Gamma(r, alpha)``; an
    exponential lifetime with ``mu ~ Gamma(s, beta)``. ``alpha`` and ``beta``
    are in the time unit of the data. Same input, hyperparameters and
    predictions as :class:`BetaGeo`.

    ``penalizer`` is on lifetimes' scale for this model, which differs from its
    BG/NBD: lifetimes' ``ParetoNBDFitter`` adds ``penalizer * sum(theta^2)`` (alpha
    and beta in time divided by the longest T) to the *summed* negative
    log-likelihood, not the mean, so the same number penalises N times less than
    in BG/NBD. crmkit follows it, so ``ParetoNBD(penalizer=0.01)`` gives lifetimes'
    ``ParetoNBDFitter(penalizer_coef=0.01)`` fit.

    Examples
    --------
    >>> import polars as pl
    >>> from crmkit.value import ParetoNBD
    >>> rfm = pl.DataFrame({"frequency": [0, 2, 5, 1, 0, 3, 0, 1, 4, 2, 0, 6],
    ...                     "recency_weeks": [0., 20, 30, 3, 0, 33, 0, 10, 12, 37, 0, 38],
    ...                     "T_weeks": [40., 38, 35, 30, 20, 36, 39, 25, 39, 38, 12, 39]})
    >>> m = ParetoNBD(penalizer=1).fit(rfm)
    >>> m.probability_alive(rfm)["p_alive"].round(2).to_list()[:4]
    [0.67, 0.89, 0.98, 0.67]
    >>> p = m.probability_alive(rfm)["p_alive"]
    >>> bool(((p >= 0) & (p <= 1)).all())
    True
    """

    _param_names = ("r", "alpha", "s", "beta")
    _scale_params = ("alpha", "beta")
    _penalty_on_sum = True
    _has_gradient = True

    def _total_loglik(self, p, data, weights):
        return float(_dot(weights, self._loglik(p, data)))

    def _total_loglik_grad(self, p, data, weights):
        """Log-likelihood and its gradient.

        Patterns whose dropout term is integrated by quadrature (z > 0.99, the
        slow ones) get the exact gradient (expectations under the integrand at the
        same nodes); the others, whose hypergeometric terms are cheap, a forward
        difference on those patterns alone. lifetimes differentiates with autograd;
        this keeps the number of slow evaluations to one per gradient.
        """
        r, alpha, s, beta = p
        x, t_x, T = data["x"], data["t_x"], data["T"]
        hi, lo = max(alpha, beta), min(alpha, beta)
        slow = (hi - lo) / (hi + t_x) > 0.99
        g = np.zeros(4)
        ll = 0.0
        fast = ~slow
        if fast.any():
            sub = {"x": x[fast], "t_x": t_x[fast], "T": T[fast]}
            wf = weights[fast]
            f0 = float(_dot(wf, self._loglik(p, sub)))
            ll += f0
            for i in range(4):  # forward differences: 4 cheap evaluations
                h = 1e-7 * p[i]
                up = p.copy()
                up[i] += h
                g[i] += (_dot(wf, self._loglik(up, sub)) - f0) / h
        if slow.any():
            xs, ts, Ts, ws = x[slow], t_x[slow], T[slow], weights[slow]
            died, gd = _log_A0_quad(r, alpha, s, beta, xs, ts, Ts, grad=True)
            alive = -(r + xs) * np.log(alpha + Ts) - s * np.log(beta + Ts)
            lse = np.logaddexp(alive, died)
            base = gammaln(r + xs) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
            ll += float(_dot(ws, base + lse))
            pi = np.exp(died - lse)
            pa = 1.0 - pi
            ga = np.column_stack([-np.log(alpha + Ts), -(r + xs) / (alpha + Ts),
                                  -np.log(beta + Ts), -s / (beta + Ts)])
            gb = np.column_stack([digamma(r + xs) - digamma(r) + np.log(alpha),
                                  np.full(xs.size, r / alpha), np.full(xs.size, np.log(beta)),
                                  np.full(xs.size, s / beta)])
            tot = gb + pa[:, None] * ga + pi[:, None] * gd
            g += np.multiply(ws[:, None], tot).sum(axis=0)
        return ll, g


    def _boundary_message(self, data, weights):
        """The no-dropout boundary: s -> 0 or beta -> inf (dropout rate -> 0),
        confirmed by a likelihood no better than the NBD's."""
        s, beta = self.params_["s"], self.params_["beta"]
        rate = s / beta * float(np.max(data["T"]))  # expected dropouts over the longest T
        if rate < 0.05 or beta > 1e4:
            gain = self._nbd_gain(data, weights)
            if gain < 3.0:
                return _no_dropout_message(
                    self._name, f"s = {s:.3g}, beta = {beta:.3g}",
                    f"mean dropout rate {s / beta:.2g} per {self.unit_.rstrip('s')}", gain)
        return None

    def _deep_in_boundary(self, params, data):
        # beta beyond 1e4 times the longest history and fewer than 1e-3 expected
        # dropouts over it: mu ~ Gamma(s, beta) is a point mass near 0 there
        s, beta = params[2], params[3]
        longest = float(np.max(data["T"]))
        return beta > 1e4 * longest and s / beta * longest < 1e-3

    def _init_from_scale(self, alpha):
        return [1.0, alpha, 1.0, alpha]

    def _parts(self, p, x, t_x, T):
        r, alpha, s, beta = p
        alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
        died = _log_A0_term(r, alpha, s, beta, x, t_x, T)
        return alive, died

    def _loglik(self, p, data):
        r, alpha, s, beta = p
        x = data["x"]
        alive, died = self._parts(p, x, data["t_x"], data["T"])
        return (gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
                + np.logaddexp(alive, died))

    def _p_alive(self, p, x, t_x, T):
        alive, died = self._parts(p, x, t_x, T)
        return expit(alive - died)

    def _cond_expected(self, p, x, t_x, T, t):
        # P(alive) * E[X(t)] of a fresh Pareto/NBD with posterior parameters
        r, alpha, s, beta = p
        return self._p_alive(p, x, t_x, T) * self._mean(r + x, alpha + T, s, beta + T, t)

    @staticmethod
    def _mean(r, alpha, s, beta, t):
        # r beta / (alpha (s-1)) [1 - (beta/(beta+t))^(s-1)], continuous at s = 1
        lq = np.log(beta) - np.log(beta + t)
        with np.errstate(all="ignore"):
            frac = np.where(np.abs(s - 1.0) < 1e-10, -lq, -np.expm1((s - 1.0) * lq) / (s - 1.0))
        return r * beta / alpha * frac

    def _uncond_expected(self, p, t):
        r, alpha, s, beta = p
        return self._mean(r, alpha, s, beta, t)

    def _uncond_pmf(self, p, k, t):
        r, alpha, s, beta = p
        return pareto_pmf(k, r, alpha, s, beta, t)

    def _cond_pmf(self, p, x, t_x, T, t, k):
        r, alpha, s, beta = p
        pa = self._p_alive(p, x, t_x, T)
        out = pa * pareto_pmf(k, r + x, alpha + T, s, beta + T, np.full_like(x, t, dtype=float))
        return out + (1.0 - pa) * (k == 0)
