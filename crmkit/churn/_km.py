"""Kaplan-Meier baseline per segment: the yardstick a covariate model must beat."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crmkit._estimator import NONE, STR_LIST, STRING
from crmkit.churn._base import _TIME_CONSTRAINTS, SurvivalModel

__all__ = ["KaplanMeierBaseline"]

_FLOOR = 1e-300  # S = 0 after the last event when everybody churned: cap the hazard


class KaplanMeierBaseline(SurvivalModel):
    """Kaplan-Meier survival curve per segment (no covariates).

    Every customer of a segment gets the segment's Kaplan-Meier curve (lifelines'
    ``KaplanMeierFitter``, late entry supported); a segment not seen in fit gets
    the pooled curve. Useful as the baseline a covariate model must beat on the
    integrated Brier score, and as a transparent model per tier or stage.

    Parameters
    ----------
    segments : str or list of str, optional
        Columns of X defining the segments; None for one pooled curve. All other
        columns of X are ignored.
    unit, horizons, rmst_horizon
        As in :class:`CoxPH` (``time_unit``, ``horizons_days``, ``rmst_horizon_days``:
        deprecated names).

    Examples
    --------
    >>> import polars as pl
    >>> from crmkit.churn import KaplanMeierBaseline, make_y
    >>> X = pl.DataFrame({"tier": ["gold", "gold", "gold", "base", "base", "base"]})
    >>> y = make_y([10, 20, 30, 5, 6, 40], [1, 1, 0, 1, 1, 0])
    >>> km = KaplanMeierBaseline(unit="days", segments="tier").fit(X, y)
    >>> km.predict_survival(pl.DataFrame({"tier": ["gold", "base"]}), [15]).round(3).tolist()
    [[0.667], [0.333]]
    """

    _parameter_constraints = {**_TIME_CONSTRAINTS, "segments": [NONE, STRING, STR_LIST]}

    def __init__(self, *, unit: str | None = None, horizons: Any = None, segments: Any = None,
                 rmst_horizon: float | None = None, time_unit: str | None = None,
                 horizons_days: Any = None, rmst_horizon_days: float | None = None):
        self.unit = unit
        self.horizons = horizons
        self.segments = segments
        self.rmst_horizon = rmst_horizon
        self.time_unit = time_unit
        self.horizons_days = horizons_days
        self.rmst_horizon_days = rmst_horizon_days

    _EXTRA_STATE = ("n_events_", "n_samples_", "segment_sizes_")
    _USES_COVARIATES = False

    def fit(self, X: Any, y: Any) -> KaplanMeierBaseline:
        """Fit one Kaplan-Meier curve per segment (and a pooled one); returns self."""
        from lifelines import KaplanMeierFitter

        frame, names, M, duration, event, entry, keys = self._prepare_fit(X, y, self.segments)
        self.covariates_ = []
        self.coef_ = np.zeros(0)
        self.means_ = np.zeros(0)
        self.n_samples_ = int(duration.size)
        self.n_events_ = int(event.sum())
        groups = np.asarray(keys, dtype=object)
        curves = {}
        sizes = {}
        labels = sorted(set(keys)) if self.strata_columns_ else []
        for k in [*labels, "__all__"]:
            m = np.ones(duration.size, bool) if k == "__all__" else groups == k
            km = KaplanMeierFitter().fit(duration[m], event[m],
                                         entry=None if entry is None else entry[m])
            s = km.survival_function_.iloc[:, 0]
            curves[k] = -np.log(np.maximum(s, _FLOOR))
            sizes[k] = int(m.sum())
        bch = pd.DataFrame(curves).sort_index().ffill().fillna(0.0)
        times = bch.index.to_numpy(dtype=float)
        keep = times > 0
        self.baseline_times_ = times[keep]
        self.baseline_cumhaz_ = np.maximum.accumulate(bch.to_numpy(dtype=float).T[:, keep], axis=1)
        self.strata_keys_ = list(bch.columns)
        self.segment_sizes_ = sizes
        self.baseline_kind_ = "step"
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Risk score: cumulative hazard of the customer's segment at the longest
        default horizon (higher = churns sooner)."""
        lp, sidx = self._prepare_predict(X)
        t = np.full(lp.size, max(h for h, _ in self.horizons_))
        return self._baseline_cumhaz(t, sidx)
