"""Calibration maps from margins to probabilities, fitted on held-out rows, kept as arrays."""

from __future__ import annotations

import numpy as np

__all__ = ["apply_calibration", "expected_calibration_error", "fit_calibration"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def fit_calibration(m: np.ndarray, y: np.ndarray, method: str) -> dict:
    """Fit Platt's sigmoid ``p = 1 / (1 + exp(-(a m + b)))`` (maximum likelihood,
    Newton steps) or an isotonic map (scikit-learn's ``IsotonicRegression``) of the
    held-out margins ``m`` to the labels ``y``."""
    m = np.asarray(m, dtype=float)
    y = np.asarray(y, dtype=float)
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(m, y)
        return {"method": "isotonic", "x": iso.X_thresholds_.tolist(),
                "y": iso.y_thresholds_.tolist()}
    # Platt scaling with Platt's (1999) smoothed targets, which keep a and b finite
    # when the held-out classes separate.
    n1, n0 = y.sum(), y.size - y.sum()
    t = np.where(y > 0, (n1 + 1.0) / (n1 + 2.0), 1.0 / (n0 + 2.0))
    a, b = 1.0, float(np.log((n1 + 1.0) / (n0 + 1.0)) - np.mean(m))
    for _ in range(100):
        p = _sigmoid(a * m + b)
        g = np.array([np.sum((p - t) * m), np.sum(p - t)])
        wgt = p * (1 - p) + 1e-12
        H = np.array([[np.sum(wgt * m * m), np.sum(wgt * m)], [np.sum(wgt * m), np.sum(wgt)]])
        H += 1e-9 * np.eye(2)
        step = np.linalg.solve(H, g)
        a, b = a - step[0], b - step[1]
        if np.max(np.abs(step)) < 1e-10:
            break
    return {"method": "sigmoid", "a": float(a), "b": float(b)}


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
