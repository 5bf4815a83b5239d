"""Shared machinery of crmkit's survival estimators: input handling, scoring from
stored arrays, reason codes and JSON persistence.

Every crmkit survival model is stored in proportional-hazards form

    H(t | x) = H0_s(t) * exp(coef . (x - means))

with ``H0_s`` the baseline cumulative hazard of stratum ``s``: a step function on a
time grid (Cox, Kaplan-Meier) or a Weibull curve ``(t / scale0) ** rho`` (the
Weibull AFT is also a proportional-hazards model, with log-hazard coefficients
``-rho * beta``). Scoring reads only these arrays, so a model loaded from JSON
predicts without lifelines and without unpickling anything.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.utils.validation import check_is_fitted

from crmkit._estimator import (
    HORIZONS,
    NONE,
    CrmkitEstimator,
    Interval,
    Options,
    deprecated_alias,
)
from crmkit._frames import Output, to_output, to_polars
from crmkit._params import check_choice, check_positive
from crmkit.churn._data import TIME_UNITS, split_y
from crmkit.exceptions import DataWarning
from crmkit.features._units import UNIT_DAYS
from crmkit._persist import document_fingerprint, json_text_from, library_versions, save_json_text

__all__ = ["SurvivalModel", "load_model"]

DEFAULT_HORIZONS = {"days": (30, 90, 180, 365), "weeks": (4, 13, 26, 52),
                    "mean_months": (1, 3, 6, 12)}
"""Default horizons of ``predict_churn`` in each unit (one month, a quarter, half a year, a year)."""
DEFAULT_RMST = {"days": 365.0, "weeks": 52.0, "mean_months": 12.0}
UNIT_SUFFIX = {"days": "d", "weeks": "w", "mean_months": "m"}
"""Suffix of ``churn_prob_<h><suffix>`` columns: the horizon's unit."""

# declared once, checked when fit starts (every survival estimator shares these)
_TIME_CONSTRAINTS = {
    "unit": [NONE, Options(TIME_UNITS)],
    "horizons": [NONE, HORIZONS],
    "rmst_horizon": [NONE, Interval(float, 0, None, "neither")],
    "time_unit": [NONE, Options(TIME_UNITS)],
    "horizons_days": [NONE, HORIZONS],
    "rmst_horizon_days": [NONE, Interval(float, 0, None, "neither")],
}
_PENALTY_CONSTRAINTS = {
    "penalizer": [Interval(float, 0, None, "left")],
    "l1_ratio": [Interval(float, 0, 1, "both")],
    "on_separation": [Options(("penalize", "drop", "raise"))],
    "separation_penalizer": [Interval(float, 0, None, "neither")],
}

_FORMAT = "crmkit.churn/1"
_REGISTRY: dict[str, type] = {}
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(64)


class SurvivalModel(CrmkitEstimator):
    """Base class: prediction from stored proportional-hazards arrays.

    Subclasses implement ``fit`` and set the learned attributes listed in
    ``_STATE``; everything else (churn probabilities conditional on the time a
    customer has already stayed, restricted mean and median remaining lifetime,
    reason codes, persistence) lives here.
    """

    _STATE = ("covariates_", "coef_", "means_", "strata_keys_", "baseline_kind_",
              "baseline_times_", "baseline_cumhaz_", "weibull_rho_", "weibull_scale0_",
              "max_duration_", "n_features_in_", "feature_names_in_", "strata_columns_",
              "input_columns_", "unit_", "horizons_", "rmst_horizon_", "legacy_days_")

    _USES_COVARIATES = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "coef_")

    # ------------------------------------------------------------------ sklearn glue
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.single_output = False
        tags.input_tags.allow_nan = False
        return tags

    def _check_common_params(self) -> None:
        self._validate_params()
        self._resolve_time()

    def _resolve_time(self, *, warn: bool = True) -> None:
        """Set ``unit_``, ``horizons_`` and ``rmst_horizon_`` from the parameters.

        ``unit`` is never defaulted silently: without it (or the deprecated
        ``time_unit``) the fit warns that it takes the durations as days.
        """
        name = type(self).__name__
        unit = self.unit
        legacy = any(getattr(self, p, None) is not None
                     for p in ("time_unit", "horizons_days", "rmst_horizon_days"))
        if self.time_unit is not None:
            if warn:
                deprecated_alias(name, "time_unit", "unit")
            if unit is not None and unit != self.time_unit:
                raise ValueError(f"{name}: unit={unit!r} and the deprecated "
                                 f"time_unit={self.time_unit!r} disagree; pass unit= only.")
            unit = self.time_unit
        if unit is None:
            if warn:
                warnings.warn(
                    f"{name} was fitted without unit=, so the durations of y are taken as "
                    "days. Say what they are: unit='days', 'weeks' or 'mean_months' (horizons "
                    "are in the same unit).", DataWarning, stacklevel=5)
            unit = "days"
        ud = UNIT_DAYS[unit]
        legacy_days = legacy and self.unit is None
        if self.horizons_days is not None or (legacy_days and self.horizons is None):
            if warn and self.horizons_days is not None:
                deprecated_alias(name, "horizons_days", "horizons",
                                 note=f" (in the estimator's unit, {unit!r})")
            if self.horizons is not None:
                raise ValueError(f"{name}: pass horizons= or the deprecated horizons_days=, "
                                 "not both.")
            days = DEFAULT_HORIZONS["days"] if self.horizons_days is None else self.horizons_days
            hz = [(float(h) / ud, f"{_fmt(h)}d") for h in _as_floats(days)]
        else:
            given = DEFAULT_HORIZONS[unit] if self.horizons is None else self.horizons
            hz = [(float(h), f"{_fmt(h)}{UNIT_SUFFIX[unit]}") for h in _as_floats(given)]
        if self.rmst_horizon_days is not None:
            if warn:
                deprecated_alias(name, "rmst_horizon_days", "rmst_horizon")
            rmst = float(self.rmst_horizon_days) / ud
        elif self.rmst_horizon is not None:
            rmst = float(self.rmst_horizon)
        elif legacy_days:
            rmst = DEFAULT_RMST["days"] / ud
        else:
            rmst = DEFAULT_RMST[unit]
        self.unit_ = unit
        self.horizons_ = [list(h) for h in hz]
        self.rmst_horizon_ = rmst
        # the deprecated day-based names keep their day-based output columns
        self.legacy_days_ = bool(legacy_days)

    @property
    def _unit_days(self) -> float:
        return UNIT_DAYS[self.unit_]

    # ------------------------------------------------------------------ inputs
    def _as_frame(self, X: Any, fitting: bool) -> pl.DataFrame:
        if _is_array_like(X):
            from sklearn.utils.validation import check_array
            arr = check_array(X, accept_sparse=False, dtype="numeric", ensure_all_finite=True,
                              input_name="X", ensure_min_samples=1)
            arr = arr.astype(float, copy=False)
            frame = pl.DataFrame(arr, schema=[f"x{i}" for i in range(arr.shape[1])],
                                 orient="row")
            if fitting:
                self._numpy_input = True
            return frame
        frame = to_polars(X, "X")
        if fitting:
            self._numpy_input = False
        return frame

    def _prepare_fit(self, X: Any, y: Any, strata_param: Any = None):
        """Return (frame, covariate names, matrix, duration, event, entry, strata keys)."""
        name = type(self).__name__
        self._check_common_params()
        frame = self._as_frame(X, fitting=True)
        duration, event, entry = split_y(y, f"{name}.fit")
        if frame.height != duration.size:
            raise ValueError(f"{name}.fit: X has {frame.height} rows but y has {duration.size}; "
                             "they must describe the same customers in the same order.")
        if frame.height < 2:
            raise ValueError(f"{name}.fit needs at least 2 samples; got n_samples="
                             f"{frame.height}.")
        strata_cols = _as_list(strata_param)
        missing = [c for c in strata_cols if c not in frame.columns]
        if missing:
            raise ValueError(f"{name}: strata column(s) {missing} are not in X "
                             f"(columns: {frame.columns[:10]}...). Strata need a frame input.")
        cov_names = [c for c in frame.columns if c not in strata_cols]
        if not self._USES_COVARIATES:
            cov_names = []
        bad = [c for c in cov_names if not (frame.schema[c].is_numeric()
                                            or frame.schema[c] == pl.Boolean)]
        if bad:
            raise ValueError(f"{name}: covariates must be numeric; {bad} are not. One-hot "
                             "encode them (sklearn OneHotEncoder in a ColumnTransformer), "
                             "pass them as strata, or drop them (ids do not belong in X).")
        matrix = (frame.select(cov_names).cast(pl.Float64).to_numpy()
                  if cov_names else np.empty((frame.height, 0)))
        keys = _strata_keys(frame, strata_cols)
        self.input_columns_ = list(frame.columns)
        self.n_features_in_ = len(frame.columns)
        if not self._numpy_input:
            self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.strata_columns_ = strata_cols
        self.max_duration_ = float(duration.max())
        return frame, cov_names, matrix, duration, event, entry, keys

    def _prepare_predict(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Return (linear predictor, stratum index) for each row of X."""
        check_is_fitted(self, "coef_")
        frame = self._predict_frame(X)
        lp = np.zeros(frame.height)
        if self.covariates_:
            Xc = frame.select(self.covariates_).cast(pl.Float64).to_numpy()
            bad = ~np.isfinite(Xc)
            if bad.any():
                cols = [self.covariates_[j] for j in np.flatnonzero(bad.any(axis=0))]
                raise ValueError(f"{type(self).__name__}: Input X contains NaN or infinity in "
                                 f"{cols}; impute "
                                 "them the way the training data were imputed.")
            # a row-wise sum, not BLAS: a customer's score must not depend on which
            # other customers share the batch (BLAS blocking changes the last bit)
            lp = ((Xc - self.means_) * self.coef_).sum(axis=1)
        sidx = self._stratum_index(frame)
        return lp, sidx

    def _predict_frame(self, X: Any) -> pl.DataFrame:
        """X at predict time, with the fit-time column names (extra columns allowed)."""
        name = type(self).__name__
        numpy_like = _is_array_like(X)
        frame = self._as_frame(X, fitting=False)
        if numpy_like:
            if frame.width != self.n_features_in_:
                raise ValueError(f"X has {frame.width} features, but {name} is expecting "
                                 f"{self.n_features_in_} features as input.")
            return frame.rename(dict(zip(frame.columns, self.input_columns_)))
        missing = [c for c in self.input_columns_ if c not in frame.columns]
        if missing:
            raise ValueError(f"{name}: X is missing the columns {missing} seen in fit "
                             "(check the feature names).")
        return frame

    def _stratum_index(self, frame: pl.DataFrame) -> np.ndarray:
        if not self.strata_columns_:
            return np.zeros(frame.height, dtype=np.int64)
        keys = pl.Series("k", _strata_keys(frame, self.strata_columns_), dtype=pl.String)
        lookup = {k: i for i, k in enumerate(self.strata_keys_)}
        idx = keys.replace_strict(lookup, default=-1, return_dtype=pl.Int64).to_numpy().copy()
        if (idx < 0).any():
            unknown = sorted(set(keys.filter(pl.Series(idx < 0)).to_list()))[:5]
            fallback = lookup.get("__all__")
            if fallback is None:
                raise ValueError(f"{type(self).__name__}: strata {unknown} were not seen in fit, "
                                 "so they have no baseline; refit with them or map them to a "
                                 "known stratum.")
            idx[idx < 0] = fallback
        return idx

    # ------------------------------------------------------------------ core evaluation
    def _baseline_cumhaz(self, t: np.ndarray, sidx: np.ndarray) -> np.ndarray:
        """H0_s(t) for an (n,) or (n, k) array of times in the model unit."""
        t = np.asarray(t, dtype=float)
        if self.baseline_kind_ == "weibull":
            return (np.maximum(t, 0.0) / self.weibull_scale0_) ** self.weibull_rho_
        pos = np.searchsorted(self.baseline_times_, t, side="right") - 1
        s = sidx if t.ndim == 1 else sidx[:, None]
        out = self.baseline_cumhaz_[s, np.maximum(pos, 0)]
        return np.where(pos >= 0, out, 0.0)

    def _elapsed(self, X: Any, elapsed: Any, n: int) -> np.ndarray:
        if elapsed is None:
            return np.zeros(n)
        if isinstance(elapsed, str):
            frame = to_polars(X, "X")
            if elapsed not in frame.columns:
                raise ValueError(f"elapsed={elapsed!r} is not a column of X.")
            a = frame[elapsed].cast(pl.Float64).to_numpy()
        else:
            a = np.broadcast_to(np.asarray(elapsed, dtype=float), (n,)).copy()
        if (~np.isfinite(a)).any() or (a < 0).any():
            raise ValueError("elapsed times must be finite and non-negative.")
        return a

    def _horizons(self, horizons: Any = None, horizons_days: Any = None) -> list:
        """[(horizon in the model unit, column label)] for a prediction call."""
        name = type(self).__name__
        if horizons_days is not None:
            deprecated_alias(name, "horizons_days", "horizons",
                             note=f" (in the model's unit, {self.unit_!r})")
            if horizons is not None:
                raise ValueError(f"{name}: pass horizons= or the deprecated horizons_days=, "
                                 "not both.")
            return [(check_positive(h, "horizons_days", name) / self._unit_days, f"{_fmt(h)}d")
                    for h in _as_floats(horizons_days)]
        if horizons is None:
            return [(float(h), lab) for h, lab in self.horizons_]
        return [(check_positive(h, "horizons", name), f"{_fmt(h)}{UNIT_SUFFIX[self.unit_]}")
                for h in _as_floats(horizons)]

    def _warn_extrapolation(self, a: np.ndarray, reach: float) -> None:
        if self.baseline_kind_ == "step" and a.size and float(a.max()) + reach > self.max_duration_:
            n = int((a + reach > self.max_duration_).sum())
            warnings.warn(
                f"{n} predictions look beyond the longest duration seen in fit "
                f"({self.max_duration_:g} {self.unit_}); the step baseline is flat there, "
                "so churn probabilities past it are too low. Fit on a longer history or use "
                "WeibullAFT to extrapolate.", DataWarning, stacklevel=3)

    # ------------------------------------------------------------------ predictions
    def predict(self, X: Any, horizons: Any = None, **churn_params: Any):
        """Risk score, or churn probabilities when ``horizons`` is given.

        Without ``horizons``: the risk score, higher means churn sooner (log
        relative hazard vs the mean customer), the score :meth:`score` and the
        concordance metrics rank by. With ``horizons`` (in the model's unit):
        :meth:`predict_churn` ``(X, horizons, lifetime=False, **churn_params)``, so
        the churn outputs come through a scikit-learn ``Pipeline`` too:
        ``make_pipeline(StandardScaler(), CoxPH(unit="weeks")).predict(X, horizons=[13])``.
        """
        if horizons is not None or churn_params:
            churn_params.setdefault("lifetime", False)
            return self.predict_churn(X, horizons, **churn_params)
        lp, sidx = self._prepare_predict(X)
        return lp

    def score(self, X: Any, y: Any) -> float:
        """Harrell's concordance of :meth:`predict` with ``y`` (higher is better).

        1.0: every customer who churned earlier had a higher risk score than the
        customers still there at that time; 0.5: random ordering.
        """
        from crmkit.churn._metrics import concordance_index_harrell
        duration, event, _ = split_y(y, f"{type(self).__name__}.score")
        return concordance_index_harrell(duration, event, self.predict(X))

    def predict_survival_function(self, X: Any, times: Any = None):
        """lifelines' name: survival curves as a pandas frame (rows: times, columns:
        customers), as ``CoxPHFitter.predict_survival_function`` returns them.

        ``times`` default to the model's horizons. For many customers prefer
        :meth:`predict_churn`, which never builds a (times x customers) matrix.
        """
        import pandas as pd
        ts = np.asarray([h for h, _ in self.horizons_] if times is None else
                        np.atleast_1d(times), dtype=float)
        S = self.predict_survival(X, ts)
        return pd.DataFrame(S.T, index=pd.Index(ts, name="timeline"))

    def predict_survival(self, X: Any, times: Any, elapsed: Any = None) -> np.ndarray:
        """Survival probabilities ``S(t | x)`` at ``times`` (model time unit), one row per
        customer; with ``elapsed`` they are conditional on survival to ``elapsed``
        (``S(t) / S(elapsed)`` for ``t >= elapsed``, 1 before).
        """
        lp, sidx = self._prepare_predict(X)
        times = np.atleast_1d(np.asarray(times, dtype=float))
        a = self._elapsed(X, elapsed, lp.size)
        T = np.broadcast_to(times, (lp.size, times.size))
        H = self._baseline_cumhaz(T, sidx) - self._baseline_cumhaz(a, sidx)[:, None]
        S = np.exp(-np.maximum(H, 0.0) * np.exp(lp)[:, None])
        return np.where(T >= a[:, None], S, 1.0)

    def predict_churn(
        self,
        X: Any,
        horizons: Any = None,
        *,
        elapsed: Any = None,
        lifetime: bool = True,
        ids: Any = None,
        output: Output | None = None,
        horizons_days: Any = None,
    ):
        """Churn probability within each horizon, and remaining lifetime.

        Parameters
        ----------
        X : table or array
            Covariates (and strata columns) as in fit.
        horizons : float or sequence of float, optional
            Horizons in the model's ``unit`` (default: the estimator's ``horizons``).
            Columns ``churn_prob_<h><u>`` with ``u`` = ``d``, ``w`` or ``m``.
        elapsed : array-like or str, optional
            Time each customer has already stayed, in the model's time unit (or the
            name of a column of X holding it). Probabilities are then conditional
            on the customer having stayed until today:
            ``P(churn in (a, a + h] | alive at a) = 1 - S(a + h) / S(a)``.
        lifetime : bool
            Also return ``restricted_mean_<unit>`` (expected time active within the
            next ``rmst_horizon``) and ``median_remaining_<unit>`` (null when the
            survival curve does not fall to one half within the fitted time range).
        ids : array-like, optional
            Customer ids, returned as a first column ``customer_id`` (the index of
            pandas output).
        output : {"polars", "pandas"}, optional
            Default: ``set_output`` or polars.
        horizons_days : sequence of float
            Deprecated: horizons in days (columns ``churn_prob_<h>d``).

        Returns
        -------
        DataFrame
        """
        lp, sidx = self._prepare_predict(X)
        a = self._elapsed(X, elapsed, lp.size)
        cols = self._churn_arrays(lp, sidx, a, self._horizons(horizons, horizons_days), lifetime)
        frame = _as_table(cols)
        if ids is not None:
            frame = frame.insert_column(0, pl.Series("customer_id", np.asarray(ids)).cast(pl.String))
        return self._to_output(frame, output)

    def _churn_arrays(self, lp, sidx, a, horizons, lifetime, warn=True) -> dict:
        """Churn columns; ``horizons`` is [(horizon in the model unit, label)]."""
        risk = np.exp(lp)
        Ha = self._baseline_cumhaz(a, sidx)
        if warn:
            self._warn_extrapolation(a, max(h for h, _ in horizons))
        out: dict[str, np.ndarray] = {}
        for h, label in horizons:
            dH = self._baseline_cumhaz(a + h, sidx) - Ha
            out[f"churn_prob_{label}"] = -np.expm1(-np.maximum(dH, 0.0) * risk)
        if lifetime:
            legacy = getattr(self, "legacy_days_", False)
            mult, unit = (self._unit_days, "days") if legacy else (1.0, self.unit_)
            out[f"restricted_mean_{unit}"] = self._restricted_mean(lp, sidx, a, Ha) * mult
            out[f"median_remaining_{unit}"] = self._median_remaining(lp, sidx, a, Ha) * mult
        return out

    def _restricted_mean(self, lp, sidx, a, Ha) -> np.ndarray:
        """Expected time alive in (a, a + tau], tau = rmst_horizon_, model unit."""
        tau = self.rmst_horizon_
        risk = np.exp(lp)
        if self.baseline_kind_ == "weibull":
            # smooth integrand: 64-point Gauss-Legendre on [a, a + tau] is exact to ~1e-12
            t = a[:, None] + tau * (_GL_NODES[None, :] + 1.0) / 2.0
            dH = self._baseline_cumhaz(t, sidx) - Ha[:, None]
            return (tau / 2.0) * (np.exp(-dH * risk[:, None]) * _GL_WEIGHTS).sum(axis=1)
        # exact integral of the step function: segments [b_k, b_k+1) with H0 = Hb_k
        out = np.empty(lp.size)
        grid = self.baseline_times_
        bounds = np.concatenate([[0.0], grid, [np.inf]])
        step = max(1, 4_000_000 // max(1, grid.size))  # bounded memory per block of rows
        for lo in range(0, lp.size, step):
            sl = slice(lo, lo + step)
            aa, end = a[sl, None], a[sl, None] + tau
            length = np.clip(np.minimum(bounds[None, 1:], end) - np.maximum(bounds[None, :-1], aa),
                             0.0, None)
            rows = sidx[sl]
            Hb = np.concatenate([np.zeros((rows.size, 1)), self.baseline_cumhaz_[rows]], axis=1)
            dH = np.maximum(Hb - Ha[sl, None], 0.0)
            out[sl] = np.sum(length * np.exp(-dH * risk[sl, None]), axis=1)
        return out

    def _median_remaining(self, lp, sidx, a, Ha) -> np.ndarray:
        """Time from a until S(t)/S(a) <= 1/2 (NaN when not reached), model unit."""
        target = Ha + math.log(2.0) * np.exp(-lp)
        if self.baseline_kind_ == "weibull":
            return self.weibull_scale0_ * target ** (1.0 / self.weibull_rho_) - a
        out = np.full(lp.size, np.nan)
        for s in np.unique(sidx):
            rows = np.flatnonzero(sidx == s)
            H = self.baseline_cumhaz_[s]
            pos = np.searchsorted(H, target[rows] - 1e-12, side="left")
            ok = pos < H.size
            out[rows[ok]] = self.baseline_times_[pos[ok]] - a[rows[ok]]
        return np.maximum(out, 0.0)

    def reason_codes(self, X: Any, top: int = 3, *, ids: Any = None,
                     output: Output | None = None):
        """The covariates that raise each customer's churn risk most.

        A covariate's contribution is ``coef_j * (x_j - mean_j)``: how much it moves
        this customer's log hazard away from the average customer's (exp of it is
        the hazard ratio it causes). Only positive contributions are reasons.

        Returns
        -------
        DataFrame
            Long format: ``customer_id`` (or ``row``), ``rank`` (1 = strongest),
            ``covariate``, ``value``, ``contribution``, ``hazard_ratio``.
        """
        check_is_fitted(self, "coef_")
        top = int(check_positive(top, "top", "reason_codes"))
        self._prepare_predict(X)  # validates X
        frame = self._predict_frame(X)
        n = frame.height
        key = ("customer_id", pl.String) if ids is not None else ("row", pl.Int64)
        schema = {key[0]: key[1], "rank": pl.Int64, "covariate": pl.String, "value": pl.Float64,
                  "contribution": pl.Float64, "hazard_ratio": pl.Float64}
        if not self.covariates_ or n == 0:
            return self._to_output(pl.DataFrame(schema=schema), output)
        Xc = frame.select(self.covariates_).cast(pl.Float64).to_numpy()
        contrib = (Xc - self.means_) * self.coef_
        k = min(top, contrib.shape[1])
        order = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
        c = np.take_along_axis(contrib, order, axis=1)
        v = np.take_along_axis(Xc, order, axis=1)
        keep = c > 0
        rid = np.repeat(np.arange(n), k).reshape(n, k)
        ident = np.asarray(ids)[rid[keep]] if ids is not None else rid[keep]
        names = np.asarray(self.covariates_, dtype=object)[order[keep]]
        out = pl.DataFrame({
            key[0]: pl.Series(ident).cast(key[1]),
            "rank": np.tile(np.arange(1, k + 1), n).reshape(n, k)[keep],
            "covariate": pl.Series(names.tolist(), dtype=pl.String),
            "value": v[keep], "contribution": c[keep], "hazard_ratio": np.exp(c[keep]),
        }, schema=schema)
        return self._to_output(out, output)

    def print_summary(self, decimals: int = 3, *, width: int = 100) -> None:
        """Print the fit statistics and the coefficient table (``summary_``).

        The table is plain fixed-width text: numbers never break across lines
        (columns that do not fit ``width`` go into a second block).
        """
        check_is_fitted(self, "coef_")
        parts = [f"{type(self).__name__}: {getattr(self, 'n_samples_', '?')} customers, "
                 f"{getattr(self, 'n_events_', '?')} churned, durations in {self.unit_}"]
        if hasattr(self, "log_likelihood_"):
            parts.append(f"log-likelihood {self.log_likelihood_:.2f}")
        if hasattr(self, "concordance_index_"):
            parts.append(f"concordance {self.concordance_index_:.3f}")
        print("; ".join(parts))
        summary = getattr(self, "summary_", None)
        if isinstance(summary, pl.DataFrame) and summary.height:
            from crmkit._estimator import format_table
            keep = [c for c in summary.columns if not c.startswith("-log2")]
            print(format_table(summary.select(keep), decimals=decimals, width=width))

    @property
    def params_(self) -> dict:
        """Fitted coefficients keyed by covariate (log hazard ratios)."""
        check_is_fitted(self, "coef_")
        return {str(k): float(v) for k, v in zip(self.covariates_, self.coef_)}

    def _get_state(self) -> dict:
        check_is_fitted(self, "coef_")
        state = {a: getattr(self, a) for a in self._STATE + tuple(getattr(self, "_EXTRA_STATE", ()))
                 if hasattr(self, a)}
        state["_numpy_input"] = bool(getattr(self, "_numpy_input", False))
        return state

    def _set_state(self, state: dict) -> None:
        state = dict(state)
        numpy_input = state.pop("_numpy_input", None)
        for attr, val in state.items():
            setattr(self, attr, val)
        if "summary_" in state and isinstance(state["summary_"], pl.DataFrame):
            pass
        self._numpy_input = (not hasattr(self, "feature_names_in_")) if numpy_input is None \
            else numpy_input

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict:
        check_is_fitted(self, "coef_")
        state = {}
        for attr in self._STATE + tuple(getattr(self, "_EXTRA_STATE", ())):
            if not hasattr(self, attr):
                continue
            val = getattr(self, attr)
            if isinstance(val, np.ndarray):
                val = {"__array__": val.tolist(), "dtype": str(val.dtype)} if val.dtype != object \
                    else {"__array__": val.tolist(), "dtype": "object"}
            elif isinstance(val, pl.DataFrame):
                val = {"__frame__": val.to_dict(as_series=False)}
            elif isinstance(val, (np.floating, np.integer)):
                val = val.item()
            state[attr] = val
        return state

    def to_json(self, path: str | Path | None = None) -> str:
        """Deprecated: use :meth:`save` and :func:`crmkit.load_model`.

        Serialise the fitted model as JSON data (never a pickle), in the previous
        ``crmkit.churn/1`` format.

        The document holds the hyperparameters, the learned arrays (coefficients,
        centring means, baseline cumulative hazard on its time grid or the Weibull
        shape/scale), covariate names, library versions and a SHA-256 fingerprint of
        the content. Returns the JSON text; also writes it when ``path`` is given.
        """
        deprecated_alias(type(self).__name__, "to_json", "save",
                         note=" (read with crmkit.load_model)")
        params = {k: (list(v) if isinstance(v, tuple) else v)
                  for k, v in self.get_params(deep=False).items()}
        body = {"format": _FORMAT, "model": type(self).__name__, "params": params,
                "state": self._state()}
        doc = dict(body, fingerprint=document_fingerprint(body),
                   versions=library_versions("lifelines"))
        text = json.dumps(doc, indent=1, allow_nan=True)
        if path is not None:
            save_json_text(text, path)
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> SurvivalModel:
        """Rebuild a fitted model from :meth:`to_json` output (text or path).

        Checks the fingerprint, so a file edited by hand is refused.
        """
        return _load_legacy(json.loads(json_text_from(source)), expected=cls)


def load_model(source: str | Path, expected: type | None = None) -> SurvivalModel:
    """Deprecated: use :func:`crmkit.load_model`, which reads every crmkit model.

    Loads a survival model written by ``to_json`` (a path or the JSON text).

    Examples
    --------
    >>> import numpy as np
    >>> from crmkit.churn import CoxPH, make_y
    >>> rng = np.random.default_rng(1)
    >>> X = rng.normal(size=(80, 2)); y = make_y(rng.exponential(10, 80) + 0.1, rng.random(80) < .7)
    >>> m = CoxPH(unit="days").fit(X, y)
    >>> import crmkit, tempfile, pathlib
    >>> path = m.save(pathlib.Path(tempfile.mkdtemp()) / "cox.json")
    >>> np.allclose(crmkit.load_model(path).predict(X), m.predict(X))
    True
    """
    warnings.warn("crmkit.churn.load_model is deprecated and will be removed in crmkit 0.3; "
                  "use crmkit.load_model instead.", FutureWarning, stacklevel=2)
    text = json_text_from(source)
    return _load_legacy(json.loads(text), expected=expected)


def _load_legacy(doc: dict, expected: type | None = None) -> SurvivalModel:
    """Read the previous ``crmkit.churn/1`` document (fingerprint checked)."""
    if doc.get("format") != _FORMAT:
        raise ValueError(f"Not a crmkit churn model document (format {doc.get('format')!r}).")
    body = {k: doc[k] for k in ("format", "model", "params", "state")}
    if document_fingerprint(body) != doc.get("fingerprint"):
        raise ValueError("The model document's fingerprint does not match its content; the "
                         "file was changed after it was written. Refit and save it again.")
    cls = _REGISTRY.get(doc["model"])
    if cls is None:
        raise ValueError(f"Unknown model class {doc['model']!r} in the document.")
    if expected is not None and not issubclass(cls, expected):
        raise ValueError(f"The document holds a {doc['model']}, not a {expected.__name__}.")
    params = {k: (tuple(v) if isinstance(v, list) and k in ("horizons_days", "horizons") else v)
              for k, v in doc["params"].items()}
    model = cls(**params)
    for attr, val in doc["state"].items():
        if isinstance(val, dict) and "__array__" in val:
            val = np.asarray(val["__array__"], dtype=object if val["dtype"] == "object"
                             else val["dtype"])
        elif isinstance(val, dict) and "__frame__" in val:
            val = pl.DataFrame(val["__frame__"])
        setattr(model, attr, val)
    model._numpy_input = not hasattr(model, "feature_names_in_")
    if not hasattr(model, "unit_"):  # written before unit_ existed: derive it quietly
        model._resolve_time(warn=False)
    return model


def _as_table(cols: dict) -> pl.DataFrame:
    """Churn arrays as a frame; a median that is never reached becomes null."""
    frame = pl.DataFrame(cols)
    med = [c for c in frame.columns if c.startswith("median_remaining_")]
    if med:
        frame = frame.with_columns(pl.col(med).fill_nan(None))
    return frame


def _as_floats(v: Any) -> list[float]:
    return [v] if isinstance(v, (int, float, np.integer, np.floating)) else list(v)


def _is_array_like(X: Any) -> bool:
    """True for numpy arrays, lists and sparse matrices; False for tables."""
    import scipy.sparse
    if scipy.sparse.issparse(X):
        return True
    if isinstance(X, (pl.LazyFrame, dict)) or hasattr(X, "columns"):
        return False
    return type(X).__module__.split(".")[0] != "pyarrow"


def _as_list(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    return list(v)


def _strata_keys(frame: pl.DataFrame, cols: list[str]) -> list[str]:
    if not cols:
        return ["__all__"] * frame.height
    expr = pl.concat_str([pl.col(c).cast(pl.String).fill_null("<null>") for c in cols],
                         separator="|")
    return frame.select(expr.alias("k"))["k"].to_list()


def _fmt(h: float) -> str:
    return str(int(h)) if float(h).is_integer() else f"{h:g}".replace(".", "_")
