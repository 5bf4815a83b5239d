"""Calibration maps from margins to probabilities, fitted on held-out rows, kept as arrays."""

from __future__ import annotations

import numpy as np

__all__ = ["apply_calibration", "expected_calibration_error", "fit_calibration"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # exact in relative terms for very negative z (0.5 * (1 + tanh(z / 2)) rounds every
    # z below about -37 to 0, tying the least likely customers)
    from scipy.special import expit
    return expit(z)


def _platt(m: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt's sigmoid by Newton's method with a backtracking line search, the
    algorithm of Lin, Lin and Weng (2007), "A note on Platt's probabilistic outputs
    for support vector machines", Machine Learning 68, algorithm 1.

    Platt's (1999) smoothed targets keep ``a`` and ``b`` finite when the held-out
    classes separate; the line search keeps the steps from overshooting (plain
    Newton steps diverged to ``a = 5.7e10`` on a product whose classes nearly
    separate, and the calibrated scores collapsed to two values).
    """
    n1, n0 = y.sum(), y.size - y.sum()
    t = np.where(y > 0, (n1 + 1.0) / (n1 + 2.0), 1.0 / (n0 + 2.0))

    def loss(a: float, b: float) -> float:
        f = a * m + b  # -log likelihood, written without overflow for any sign of f
        return float(np.sum(np.logaddexp(0.0, f) - t * f))

    a, b = 0.0, float(np.log((n1 + 1.0) / (n0 + 1.0)))
    fval = loss(a, b)
    for _ in range(100):
        p = _sigmoid(a * m + b)
        d1 = p - t
        d2 = p * (1.0 - p)
        g = np.array([np.sum(d1 * m), np.sum(d1)])
        if np.max(np.abs(g)) < 1e-5:
            break
        H = np.array([[np.sum(d2 * m * m), np.sum(d2 * m)], [np.sum(d2 * m), np.sum(d2)]])
        H += 1e-12 * np.eye(2)
        da, db = -np.linalg.solve(H, g)
        gd = g[0] * da + g[1] * db
        step = 1.0
        while step >= 1e-10:
            na, nb = a + step * da, b + step * db
            nf = loss(na, nb)
            if nf < fval + 1e-4 * step * gd:
                a, b, fval = na, nb, nf
                break
            step /= 2.0
        else:  # no decrease along the Newton direction: at the minimum to precision
            break
    if a < _MIN_SLOPE:
        a, b = _MIN_SLOPE, _intercept(m, t, _MIN_SLOPE, b)
    return float(a), float(b)


# A margin with no signal on the held-out rows (20 positives, a weak booster) can give
# a decreasing maximum-likelihood map, which would reverse the booster's ranking, or a
# flat one, which would tie everyone: the slope is kept at least this (the map is then
# nearly constant at the base rate, and still increasing)
_MIN_SLOPE = 1e-6


def _intercept(m: np.ndarray, t: np.ndarray, a: float, b: float) -> float:
    """The intercept minimising the smoothed log loss at a fixed slope ``a`` (Newton's
    method on one convex variable)."""
    for _ in range(100):
        p = _sigmoid(a * m + b)
        g, h = float(np.sum(p - t)), float(np.sum(p * (1.0 - p))) + 1e-12
        b -= g / h
        if abs(g) < 1e-8:
            break
    return b


def fit_calibration(m: np.ndarray, y: np.ndarray, method: str) -> dict:
    """Fit Platt's sigmoid ``p = 1 / (1 + exp(-(a m + b)))`` (maximum likelihood with
    Platt's smoothed targets, Newton steps with a line search) or an isotonic map
    (scikit-learn's ``IsotonicRegression``) of the held-out margins ``m`` to the
    labels ``y``."""
    m = np.asarray(m, dtype=float)
    y = np.asarray(y, dtype=float)
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(m, y)
        return {"method": "isotonic", "x": iso.X_thresholds_.tolist(),
                "y": iso.y_thresholds_.tolist()}
    a, b = _platt(m, y)
    return {"method": "sigmoid", "a": a, "b": b}


def apply_calibration(cal: dict, m: np.ndarray) -> np.ndarray:
    """Probabilities from margins through a fitted calibration map."""
    if cal["method"] == "isotonic":
        return np.interp(m, np.asarray(cal["x"]), np.asarray(cal["y"]))
    if cal["method"] == "identity":
        return _sigmoid(np.asarray(m, dtype=float))
    return _sigmoid(cal["a"] * np.asarray(m, dtype=float) + cal["b"])


def expected_calibration_error(y_true, y_prob, *, n_bins: int = 10) -> float:
    """Expected calibration error over equal-frequency bins of the predictions.

    ``sum_b (n_b / n) * |mean(y_prob in b) - mean(y_true in b)|`` with ``n_bins``
    bins of (about) equal size after sorting by ``y_prob``. Equal-frequency bins
    suit rare events: equal-width bins would put almost every row in the first bin.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0, 0.2, 200_000)
    >>> round(expected_calibration_error(rng.random(p.size) < p, p), 3)
    0.001
    """
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_prob, dtype=float)
    if y.size == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    err = 0.0
    for chunk in np.array_split(order, min(n_bins, y.size)):
        err += chunk.size * abs(p[chunk].mean() - y[chunk].mean())
    return float(err / y.size)
