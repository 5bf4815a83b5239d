"""Screening of covariates before a survival fit.

lifelines halts with a cryptic message (singular matrix, delta contains NaN) or
runs to absurd coefficients when a covariate is constant, near-constant,
collinear with others, non-finite, or perfectly orders the events (monotone
likelihood, the survival form of separation). These checks run first, name the
columns, and either repair the problem (drop or penalise, recorded in the
report) or raise with the fix.
"""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl

from crmkit.exceptions import DataWarning

__all__ = ["ScreenResult", "find_separation", "screen_covariates"]

_COLLINEAR_TOL = 1e-8  # 1 - R^2 below this: the column is a linear combination of others


class ScreenResult:
    """Outcome of :func:`screen_covariates`: kept columns, per-column penalty, report."""

    def __init__(self, keep: list[int], penalized: list[int], rows: list[dict]):
        self.keep = keep
        self.penalized = penalized
        self.rows = rows

    def report(self) -> pl.DataFrame:
        """The findings as a frame: column, problem, action."""
        return pl.DataFrame(self.rows, schema={"column": pl.String, "problem": pl.String,
                                               "action": pl.String})


def _raise_nonfinite(X: np.ndarray, names: list[str], owner: str) -> None:
    bad = ~np.isfinite(X)
    if not bad.any():
        return
    counts = bad.sum(axis=0)
    listed = ", ".join(f"{names[j]} ({int(counts[j])} rows)" for j in np.flatnonzero(counts))
    raise ValueError(
        f"{owner}: Input X contains NaN or infinity in {listed}. Impute them (for example "
        "sklearn.impute.SimpleImputer in a Pipeline, or a 0 plus a missing-indicator column) "
        "or drop those rows before fitting."
    )


def find_separation(x: np.ndarray, duration: np.ndarray, event: np.ndarray,
                    strata: np.ndarray | None = None, *, order: np.ndarray | None = None) -> int:
    """Return +1/-1 when ``x`` orders every event first in its risk set, else 0.

    Monotone likelihood (Bryson & Johnson 1981): when at each event time the
    customer who churns has the largest value of ``x`` in the risk set (+1) or the
    smallest (-1), the Cox partial likelihood increases forever in that direction
    and the coefficient runs to infinity. ``order`` (the stable argsort of
    ``duration``) may be passed to avoid sorting again for every column.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.array([1.0, 2, 3, 4]); e = np.array([True, True, False, False])
    >>> find_separation(np.array([1.0, 1, 0, 0]), t, e), find_separation(np.array([0.0, 1, 0, 1]), t, e)
    (1, 0)
    """
    groups = [slice(None)] if strata is None else [strata == s for s in np.unique(strata)]
    found = {1: True, -1: True}
    strict = {1: False, -1: False}
    for g in groups:
        if strata is None and order is not None:
            xs, ts, es = x[order], duration[order], event[order]
        else:
            xs, ts, es = x[g], duration[g], event[g]
            srt = np.argsort(ts, kind="stable")
            xs, ts, es = xs[srt], ts[srt], es[srt]
        if not es.any():
            continue
        # risk set of an event at time t: every row with duration >= t, i.e. from the
        # first row carrying that time to the end of the sorted order
        first = np.searchsorted(ts, ts, side="left")
        suf_max = np.maximum.accumulate(xs[::-1])[::-1][first]
        suf_min = np.minimum.accumulate(xs[::-1])[::-1][first]
        xe, mx, mn = xs[es], suf_max[es], suf_min[es]
        if not np.all(xe >= mx):
            found[1] = False
        elif np.any(xe > mn):
            strict[1] = True
        if not np.all(xe <= mn):
            found[-1] = False
        elif np.any(xe < mx):
            strict[-1] = True
    if found[1] and strict[1]:
        return 1
    if found[-1] and strict[-1]:
        return -1
    return 0


def screen_covariates(
    X: np.ndarray,
    names: list[str],
    duration: np.ndarray,
    event: np.ndarray,
    *,
    strata: np.ndarray | None = None,
    on_separation: str = "penalize",
    min_minority_rows: int = 10,
    owner: str = "fit",
    warn: bool = True,
) -> ScreenResult:
    """Check covariates for a survival fit; drop or flag the troublesome ones.

    - NaN or infinity: raises ``ValueError`` naming the columns and the fix;
    - constant column: dropped;
    - near-constant column (fewer than ``min_minority_rows`` rows differ from the
      most common value): dropped, its coefficient could not be estimated;
    - column that is a linear combination of earlier kept columns
      (1 - R^2 < 1e-8): dropped, the report names the columns it duplicates;
    - column that perfectly orders events (:func:`find_separation`): penalised
      (``on_separation="penalize"``), dropped (``"drop"``) or raising (``"raise"``).

    Every action is returned in the report and, with ``warn=True``, in one
    :class:`crmkit.DataWarning`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.column_stack([rng.normal(size=50), np.ones(50)])
    >>> res = screen_covariates(X, ["a", "const"], rng.uniform(1, 5, 50), rng.random(50) < .5,
    ...                         warn=False)
    >>> res.keep, res.report()["action"].to_list()
    ([0], ['dropped'])
    """
    n, p = X.shape
    _raise_nonfinite(X, names, owner)
    rows: list[dict] = []
    keep: list[int] = []
    for j in range(p):
        col = X[:, j]
        if n == 0 or np.ptp(col) == 0:
            rows.append({"column": names[j], "problem": "constant", "action": "dropped"})
            continue
        limit = min(min_minority_rows, max(1, n // 10))
        # a value held by all but fewer than `limit` rows is the median (limit <= n/10),
        # so one O(n) median replaces a full sort of the column
        mode = float(np.median(col))
        minority = int(n - np.count_nonzero(col == mode))
        if minority < limit:
            rows.append({"column": names[j],
                         "problem": f"near-constant ({minority} of {n} rows differ from "
                                    f"{mode:g})",
                         "action": "dropped"})
            continue
        keep.append(j)

    if len(keep) > 1:
        Z = X[:, keep]
        Z = (Z - Z.mean(axis=0)) / Z.std(axis=0)
        # einsum, not Z.T @ Z: the BLAS syrk path costs seconds per call on small
        # thread-starved machines, einsum's loop is milliseconds for tens of columns
        C = np.einsum("ij,ik->jk", Z, Z) / n
        kept: list[int] = []
        for a, j in enumerate(keep):
            if kept:
                idx = [keep.index(k) for k in kept]
                Ckk = C[np.ix_(idx, idx)]
                r = C[idx, a]
                w = np.linalg.lstsq(Ckk, r, rcond=None)[0]
                resid = 1.0 - float(r @ w)
                if resid < _COLLINEAR_TOL:
                    big = [kept[i] for i in np.argsort(-np.abs(w)) if abs(w[i]) > 1e-6]
                    rows.append({"column": names[j],
                                 "problem": "collinear with " + ", ".join(names[k] for k in big),
                                 "action": "dropped"})
                    continue
            kept.append(j)
        keep = kept

    penalized: list[int] = []
    survivors: list[int] = []
    order = np.argsort(duration, kind="stable") if strata is None else None
    for j in keep:
        direction = find_separation(X[:, j], duration, event, strata, order=order)
        if direction == 0:
            survivors.append(j)
            continue
        problem = (f"perfectly orders the events (every churner has the "
                   f"{'largest' if direction > 0 else 'smallest'} value in its risk set); "
                   "its coefficient would run to infinity")
        if on_separation == "raise":
            raise ValueError(f"{owner}: column {names[j]!r} {problem}. Drop it, bin it, or pass "
                             "on_separation='penalize' (adds a ridge penalty on that column).")
        if on_separation == "drop":
            rows.append({"column": names[j], "problem": problem, "action": "dropped"})
            continue
        rows.append({"column": names[j], "problem": problem, "action": "penalized"})
        penalized.append(j)
        survivors.append(j)
    if warn and rows:
        listed = "; ".join(f"{r['column']}: {r['problem']} -> {r['action']}" for r in rows)
        warnings.warn(f"{owner}: covariate screening changed the model: {listed}. "
                      "See the estimator's screening_report_ for details.", DataWarning,
                      stacklevel=3)
    return ScreenResult(survivors, penalized, rows)
