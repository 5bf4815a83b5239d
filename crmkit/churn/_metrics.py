"""Metrics for survival churn models.

Sign convention (all concordance and AUC functions): the score is a **risk
score, higher = churns sooner** (``model.predict(X)``, or a churn probability).
A pair of customers is concordant when the one who churned first has the higher
risk score; 1.0 is a perfect ranking, 0.5 a random one. lifelines'
``concordance_index`` expects the opposite (predicted survival times, higher =
stays longer); pass ``-risk`` there to get the same number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from crmkit._frames import Output, to_output

__all__ = [
    "brier_score",
    "calibration_table",
    "censoring_survival",
    "concordance_index_harrell",
    "concordance_index_uno",
    "integrated_brier_score",
    "time_dependent_auc",
]


def _arrays(duration: Any, event: Any, *rest: Any):
    d = np.asarray(duration, dtype=float).ravel()
    e = np.asarray(event).ravel().astype(bool)
    if d.shape != e.shape:
        raise ValueError("duration and event must have the same length.")
    if (~np.isfinite(d)).any():
        raise ValueError("durations must be finite.")
    out = [d, e]
    for r in rest:
        a = np.asarray(r, dtype=float)
        if a.shape[0] != d.size:
            raise ValueError(f"scores have {a.shape[0]} rows but there are {d.size} durations.")
        if (~np.isfinite(a)).any():
            raise ValueError("scores contain NaN or infinity.")
        out.append(a)
    return out


def censoring_survival(duration: Any, event: Any):
    """Kaplan-Meier estimate ``G`` of the censoring distribution, as a function.

    Events are taken to happen before censorings at the same time, so ``G(t)``
    at an event time equals its left limit, the IPCW weight of Uno's C and of
    Graf's Brier score.

    Returns
    -------
    callable
        ``G(times, left=False) -> array``: the right-continuous step function (1
        before the first censoring, flat after the last time), or with
        ``left=True`` its left limit ``G(t-)``, the weight of an event at ``t``.

    Examples
    --------
    >>> G = censoring_survival([1, 2, 3, 4], [1, 0, 1, 0])
    >>> G([0.5, 2, 3.5]).round(3).tolist()
    [1.0, 0.667, 0.667]
    """
    d, e = _arrays(duration, event)
    times = np.unique(d[~e])
    if times.size == 0:
        return lambda t, left=False: np.ones(np.shape(t))
    at_risk = d.size - np.searchsorted(np.sort(d), times, side="left")
    n_cens = np.searchsorted(np.sort(d[~e]), times, side="right") - np.searchsorted(
        np.sort(d[~e]), times, side="left")
    surv = np.cumprod(1.0 - n_cens / at_risk)

    def G(t, left=False):
        t = np.asarray(t, dtype=float)
        pos = np.searchsorted(times, t, side="left" if left else "right") - 1
        return np.where(pos >= 0, surv[np.maximum(pos, 0)], 1.0)

    return G


def _pair_counts(d: np.ndarray, e: np.ndarray, r: np.ndarray):
    """For every event i: (#j comparable with risk_j < risk_i, # equal, # comparable).

    Comparable: ``T_j > T_i``, or ``T_j == T_i`` with j censored (R's and
    lifelines' convention). Encoded as a level ``L = 2 * (dense rank of time,
    latest first) + event``: j is comparable with event i exactly when
    ``L_j < L_i``. The counts of ``R_j < R_i`` among them are taken bit by bit of
    the dense risk rank R (``R_j < R_i`` iff at their first differing bit R_j has
    0): one sort per bit, so the whole is O(n log^2 n), vectorised, O(n) memory.
    """
    n = d.size
    _, t_rank = np.unique(-d, return_inverse=True)
    L = 2 * t_rank.astype(np.int64) + e.astype(np.int64)
    _, R = np.unique(r, return_inverse=True)
    R = R.astype(np.int64)
    span = int(L.max()) + 1 if n else 1

    def grouped_before(key: np.ndarray, ind: np.ndarray) -> np.ndarray:
        """For each i: sum of ind_j over j with key_j == key_i and L_j < L_i."""
        order = np.argsort(key * span + L, kind="stable")
        k, lv, w = key[order], L[order], ind[order].astype(np.int64)
        excl = np.cumsum(w) - w
        new_key = np.ones(n, bool)
        new_key[1:] = k[1:] != k[:-1]
        new_run = new_key.copy()
        new_run[1:] |= lv[1:] != lv[:-1]
        idx = np.arange(n)
        key_start = np.maximum.accumulate(np.where(new_key, idx, 0))
        run_start = np.maximum.accumulate(np.where(new_run, idx, 0))
        out = np.empty(n, np.int64)
        out[order] = excl[run_start] - excl[key_start]
        return out

    less = np.zeros(n, np.int64)
    nbits = max(1, int(R.max()).bit_length()) if n else 1
    for b in range(nbits):
        bit = (R >> b) & 1
        cnt = grouped_before(R >> (b + 1), bit == 0)
        less += np.where(bit == 1, cnt, 0)
    equal = grouped_before(R, np.ones(n, bool))
    comp = np.searchsorted(np.sort(L), L, side="left")
    ev = e.astype(bool)
    return (np.where(ev, less, 0).astype(float), np.where(ev, equal, 0).astype(float),
            np.where(ev, comp, 0).astype(float))


def concordance_index_harrell(duration: Any, event: Any, risk_score: Any) -> float:
    """Harrell's concordance index (higher risk score = churns sooner).

    Among comparable pairs (the customer who churned first, and one still there
    at that time), the share in which the first to churn has the higher score;
    tied scores count one half. Equals R's ``survival::concordance`` and
    lifelines' ``concordance_index(duration, -risk_score, event)``.

    Examples
    --------
    >>> concordance_index_harrell([1, 2, 3, 4], [1, 1, 1, 0], [4, 3, 2, 1])
    1.0
    >>> concordance_index_harrell([1, 2, 3, 4], [1, 1, 1, 0], [1, 2, 3, 4])
    0.0
    """
    d, e, r = _arrays(duration, event, risk_score)
    less, eq, comp = _pair_counts(d, e, r.ravel())
    total = comp.sum()
    if total == 0:
        raise ValueError("No comparable pairs: at least one customer must churn before "
                         "another one leaves observation.")
    return float((less.sum() + 0.5 * eq.sum()) / total)


def concordance_index_uno(duration: Any, event: Any, risk_score: Any, *,
                          train_duration: Any = None, train_event: Any = None,
                          tau: float | None = None) -> float:
    """Uno's IPCW concordance index, truncated at ``tau`` (Uno et al. 2011,
    Statistics in Medicine 30(10), eq. 5).

    Like Harrell's C but each pair is weighted by ``1 / G(T_i)^2``, with ``G`` the
    Kaplan-Meier censoring survival from the training target (or from the test
    target when no training target is given), which removes the dependence on
    the censoring distribution. Higher risk score = churns sooner.

    Examples
    --------
    >>> concordance_index_uno([1, 2, 3, 4, 5], [1, 0, 1, 1, 0], [5, 4, 3, 2, 1])
    1.0
    """
    d, e, r = _arrays(duration, event, risk_score)
    if train_duration is not None:
        G = censoring_survival(train_duration, train_event)
    else:
        G = censoring_survival(d, e)
    less, eq, comp = _pair_counts(d, e, r.ravel())
    g = G(d, left=True)
    w = np.zeros(d.size)
    ok = e & (g > 0)
    if tau is not None:
        ok &= d < tau
    w[ok] = 1.0 / g[ok] ** 2
    den = float(np.sum(w * comp))
    if den == 0:
        raise ValueError("No comparable pairs before tau; choose a larger tau.")
    return float(np.sum(w * (less + 0.5 * eq)) / den)


def time_dependent_auc(duration: Any, event: Any, risk_score: Any, times: Any, *,
                       train_duration: Any = None, train_event: Any = None):
    """Cumulative/dynamic AUC at each time (Uno et al. 2007; Hung & Chiang 2010).

    At time t the cases are customers who churned by t (weighted by 1/G(T_i)),
    the controls those still there after t; AUC(t) is the weighted share of
    (case, control) pairs where the case has the higher risk score.

    Parameters
    ----------
    risk_score : array of shape (n,) or (n, len(times))
        One score per customer, or one per customer and time (e.g. the churn
        probability by each time). Higher = churns sooner.
    times : array-like
        Evaluation times, in the unit of ``duration``.

    Returns
    -------
    auc : ndarray
        AUC at each time.
    mean_auc : float
        Mean AUC weighted by the Kaplan-Meier probability mass of each interval
        (the summary scikit-survival reports).

    Examples
    --------
    >>> auc, mean = time_dependent_auc([1, 2, 3, 4], [1, 1, 0, 0], [4, 3, 2, 1], [1.5, 2.5])
    >>> auc.tolist(), mean
    ([1.0, 1.0], 1.0)
    """
    d, e, r = _arrays(duration, event, risk_score)
    times = np.atleast_1d(np.asarray(times, dtype=float))
    G = censoring_survival(train_duration, train_event) if train_duration is not None \
        else censoring_survival(d, e)
    g = G(d, left=True)
    auc = np.full(times.size, np.nan)
    for k, t in enumerate(times):
        rk = r[:, k] if r.ndim == 2 else r
        cases = e & (d <= t) & (g > 0)
        controls = (d > t) | ((d == t) & ~e)  # still there at t (censored at t included)
        if not cases.any() or not controls.any():
            continue
        wc = 1.0 / g[cases]
        rc = np.sort(rk[controls])
        lo = np.searchsorted(rc, rk[cases], side="left")
        hi = np.searchsorted(rc, rk[cases], side="right")
        auc[k] = float(np.sum(wc * (lo + 0.5 * (hi - lo))) / (wc.sum() * rc.size))
    # KM of the test data for the weighting of the mean
    from crmkit.churn._plots import _km_curve
    km_t, km_s = _km_curve(d, e)
    pos = np.searchsorted(km_t, times, side="right") - 1
    S = np.where(pos >= 0, km_s[np.maximum(pos, 0)], 1.0) if km_t.size else np.ones(times.size)
    mass = -np.diff(np.concatenate([[1.0], S]))
    ok = np.isfinite(auc)
    if mass[ok].sum() > 0:
        mean = float(np.sum(auc[ok] * mass[ok]) / mass[ok].sum())
    else:
        mean = float(np.mean(auc[ok])) if ok.any() else float("nan")
    return auc, mean


def brier_score(duration: Any, event: Any, survival: Any, times: Any, *,
                train_duration: Any = None, train_event: Any = None) -> np.ndarray:
    """IPCW Brier score at each time (Graf et al. 1999, Statistics in Medicine 18).

    ``BS(t) = mean_i[ 1{T_i <= t, event} S_i(t)^2 / G(T_i-) + 1{T_i > t} (1 - S_i(t))^2 / G(t) ]``

    A customer censored exactly at ``t`` (the end of a backtest window) counts as
    still there at ``t``, weighted by ``G(t-)``; elsewhere this is Graf's formula.

    Parameters
    ----------
    survival : array of shape (n, len(times))
        Predicted survival probabilities ``S_i(t)`` (``model.predict_survival``).

    Examples
    --------
    >>> brier_score([1, 3], [1, 0], [[0.0], [1.0]], [2]).tolist()
    [0.0]
    """
    d, e = _arrays(duration, event)
    times = np.atleast_1d(np.asarray(times, dtype=float))
    S = np.asarray(survival, dtype=float).reshape(d.size, times.size)
    G = censoring_survival(train_duration, train_event) if train_duration is not None \
        else censoring_survival(d, e)
    g_T = G(d, left=True)
    out = np.empty(times.size)
    for k, t in enumerate(times):
        died = e & (d <= t)
        alive = (d > t) | ((d == t) & ~e)
        g_t = float(G(t, left=True))
        a = np.where(died & (g_T > 0), S[:, k] ** 2 / np.where(g_T > 0, g_T, 1.0), 0.0)
        b = np.where(alive, (1.0 - S[:, k]) ** 2 / g_t, 0.0) if g_t > 0 else 0.0
        out[k] = float(np.mean(a + b))
    return out


def integrated_brier_score(duration: Any, event: Any, survival: Any, times: Any, *,
                           train_duration: Any = None, train_event: Any = None) -> float:
    """Brier score integrated over ``times`` (trapezoid rule) and divided by the
    time span, so it stays on the Brier scale (0 perfect, 0.25 for a coin flip).

    Examples
    --------
    >>> integrated_brier_score([1, 3, 5], [1, 0, 1], [[0, 0], [1, 1], [1, 1]], [2, 4])
    0.0
    """
    times = np.atleast_1d(np.asarray(times, dtype=float))
    if times.size < 2:
        raise ValueError("integrated_brier_score needs at least two times.")
    bs = brier_score(duration, event, survival, times, train_duration=train_duration,
                     train_event=train_event)
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz
    return float(trapezoid(bs, times) / (times[-1] - times[0]))


def calibration_table(duration: Any, event: Any, churn_prob: Any, horizon: float, *,
                      n_bins: int = 10, output: Output = "polars"):
    """Predicted vs observed churn by the horizon, per bin (decile) of predicted risk.

    The observed churn share of each bin is ``1 - KM(horizon)``, the Kaplan-Meier
    estimate within the bin, so customers censored before the horizon are
    handled correctly (a plain share of churners would be biased low).

    Parameters
    ----------
    churn_prob : array-like
        Predicted probability of churning by ``horizon`` (same unit as duration).
    horizon : float
        In the unit of ``duration``.
    n_bins : int
        Number of equal-size bins of predicted risk.

    Returns
    -------
    DataFrame
        ``bin`` (1 = lowest risk), ``n``, ``predicted``, ``observed``,
        ``observed_lower``, ``observed_upper`` (95% Greenwood interval).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.05, 0.9, 2000)
    >>> t = np.where(rng.random(2000) < p, rng.uniform(0, 1, 2000), 2.0)
    >>> tab = calibration_table(t, t < 2, p, 1.0, n_bins=4)
    >>> bool(np.allclose(tab["predicted"], tab["observed"], atol=0.06))
    True
    """
    from crmkit.churn._plots import _km_curve
    d, e, p = _arrays(duration, event, churn_prob)
    n_bins = int(n_bins)
    if n_bins < 1:
        raise ValueError(f"The 'n_bins' parameter of calibration_table must be a positive "
                         f"integer. Got {n_bins!r} instead.")
    ranks = np.argsort(np.argsort(p, kind="stable"), kind="stable")
    bins = (ranks * n_bins) // d.size
    rows = []
    for b in range(n_bins):
        m = bins == b
        if not m.any():
            continue
        t, s, var = _km_curve(d[m], e[m], with_variance=True)
        pos = np.searchsorted(t, horizon, side="right") - 1
        surv = s[pos] if pos >= 0 else 1.0
        v = var[pos] if pos >= 0 else 0.0
        se = surv * np.sqrt(v)
        rows.append({"bin": b + 1, "n": int(m.sum()), "predicted": float(p[m].mean()),
                     "observed": float(1 - surv),
                     "observed_lower": float(max(0.0, 1 - surv - 1.96 * se)),
                     "observed_upper": float(min(1.0, 1 - surv + 1.96 * se))})
    return to_output(pl.DataFrame(rows), output)


# --------------------------------------------------------------------------- scorers
def _final_step(estimator: Any, X: Any):
    """(last estimator, X transformed by the steps before it) for a Pipeline or not."""
    steps = getattr(estimator, "steps", None)
    if not steps:
        return estimator, X
    Xt = X
    for _, step in steps[:-1]:
        if step is None or step == "passthrough":
            continue
        Xt = step.transform(Xt)
    return steps[-1][1], Xt


def concordance(estimator: Any, X: Any, y: Any) -> float:
    """scikit-learn scorer: Harrell's concordance of ``estimator.predict(X)`` with ``y``.

    Use as ``scoring=concordance`` in ``cross_val_score`` or ``GridSearchCV``
    (``scoring="roc_auc"`` does not apply to a survival target). Works on a bare
    crmkit survival estimator or a ``Pipeline`` ending in one. Higher is better.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import cross_val_score
    >>> from crmkit.churn import CoxPH, make_y
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 2))
    >>> y = make_y(rng.exponential(np.exp(-X[:, 0])) + 0.01, rng.random(300) < 0.8)
    >>> s = cross_val_score(CoxPH(unit="days"), X, y, cv=3, scoring=concordance)
    >>> bool((s > 0.6).all())
    True
    """
    from crmkit.churn._data import split_y
    d, e, _ = split_y(y, "concordance")
    return concordance_index_harrell(d, e, np.asarray(estimator.predict(X), dtype=float))


def integrated_brier(estimator: Any, X: Any, y: Any, times: Any = None) -> float:
    """scikit-learn scorer: the **negative** integrated Brier score (higher is better).

    As scikit-learn's ``neg_*`` scorers, the sign is flipped so that
    ``GridSearchCV`` maximises it; ``-integrated_brier(...)`` is the IPCW
    integrated Brier score of :func:`integrated_brier_score` (0 perfect, 0.25 a
    coin flip). ``times`` default to the 10th, 20th, ..., 90th percentiles of the
    observed event times of ``y`` (model time unit). Works through a ``Pipeline``.

    Examples
    --------
    >>> import numpy as np
    >>> from crmkit.churn import CoxPH, make_y
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 2))
    >>> y = make_y(rng.exponential(np.exp(-X[:, 0])) + 0.01, rng.random(300) < 0.8)
    >>> score = integrated_brier(CoxPH(unit="days").fit(X, y), X, y)
    >>> bool(-0.25 < score < 0)
    True
    """
    from crmkit.churn._data import split_y
    d, e, _ = split_y(y, "integrated_brier")
    if times is None:
        base = d[e] if e.any() else d
        times = np.unique(np.quantile(base, np.linspace(0.1, 0.9, 9)))
        times = times[times < d.max()]
    model, Xt = _final_step(estimator, X)
    S = model.predict_survival(Xt, times)
    return -integrated_brier_score(d, e, S, times)
