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

import hashlib
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from crmkit._frames import Output, to_output, to_polars
from crmkit._params import check_choice, check_positive
from crmkit.churn._data import TIME_UNITS, split_y
from crmkit.exceptions import DataWarning
from crmkit.features._units import UNIT_DAYS
from crmkit._persist import json_text_from, save_json_text

__all__ = ["SurvivalModel", "load_model"]

_FORMAT = "crmkit.churn/1"
_REGISTRY: dict[str, type] = {}
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(64)


def _fingerprint(payload: dict) -> str:
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def _versions() -> dict:
    import sklearn

    import crmkit
    out = {"crmkit": crmkit.__version__, "numpy": np.__version__, "sklearn": sklearn.__version__}
    try:
        import lifelines
        out["lifelines"] = lifelines.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


class SurvivalModel(BaseEstimator):
    """Base class: prediction from stored proportional-hazards arrays.

    Subclasses implement ``fit`` and set the learned attributes listed in
    ``_STATE``; everything else (churn probabilities conditional on the time a
    customer has already stayed, restricted mean and median remaining lifetime,
    reason codes, persistence) lives here.
    """

    _STATE = ("covariates_", "coef_", "means_", "strata_keys_", "baseline_kind_",
              "baseline_times_", "baseline_cumhaz_", "weibull_rho_", "weibull_scale0_",
              "max_duration_", "n_features_in_", "feature_names_in_", "strata_columns_",
              "input_columns_")

    _USES_COVARIATES = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    # ------------------------------------------------------------------ sklearn glue
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.single_output = False
        tags.input_tags.allow_nan = False
        return tags

    def _check_common_params(self) -> None:
        name = type(self).__name__
        check_choice(self.time_unit, TIME_UNITS, "time_unit", name)
        hz = self.horizons_days
        if not isinstance(hz, (list, tuple)) or not hz:
            raise ValueError(f"The 'horizons_days' parameter of {name} must be a non-empty "
                             f"tuple of positive numbers. Got {hz!r} instead.")
        for h in hz:
            check_positive(h, "horizons_days", name)
        check_positive(self.rmst_horizon_days, "rmst_horizon_days", name)

    @property
    def _unit_days(self) -> float:
        return UNIT_DAYS[self.time_unit]

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

    def _horizons(self, horizons_days: Any) -> list[float]:
        hz = self.horizons_days if horizons_days is None else horizons_days
        hz = [hz] if isinstance(hz, (int, float)) else list(hz)
        return [check_positive(h, "horizons_days", type(self).__name__) for h in hz]

    def _warn_extrapolation(self, a: np.ndarray, reach: float) -> None:
        if self.baseline_kind_ == "step" and a.size and float(a.max()) + reach > self.max_duration_:
            n = int((a + reach > self.max_duration_).sum())
            warnings.warn(
                f"{n} predictions look beyond the longest duration seen in fit "
                f"({self.max_duration_:g} {self.time_unit}); the step baseline is flat there, "
                "so churn probabilities past it are too low. Fit on a longer history or use "
                "WeibullAFT to extrapolate.", DataWarning, stacklevel=3)

    # ------------------------------------------------------------------ predictions
    def predict(self, X: Any) -> np.ndarray:
        """Risk score: higher means churn sooner (log relative hazard vs the mean customer).

        This is the score that :meth:`score` and the concordance metrics rank by.
        """
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
        horizons_days: Any = None,
        *,
        elapsed: Any = None,
        lifetime: bool = True,
        ids: Any = None,
        output: Output = "polars",
    ):
        """Churn probability within each horizon, and remaining lifetime.

        Parameters
        ----------
        X : table or array
            Covariates (and strata columns) as in fit.
        horizons_days : float or sequence of float, optional
            Horizons in days (default: the estimator's ``horizons_days``).
        elapsed : array-like or str, optional
            Time each customer has already stayed, in the model's time unit (or the
            name of a column of X holding it). Probabilities are then conditional
            on the customer having stayed until today:
            ``P(churn in (a, a + h] | alive at a) = 1 - S(a + h) / S(a)``.
        lifetime : bool
            Also return ``restricted_mean_days`` (expected days active within the
            next ``rmst_horizon_days``) and ``median_remaining_days`` (null when the
            survival curve does not fall to one half within the fitted time range).
        ids : array-like, optional
            Customer ids, returned as a first column ``customer_id``.
        output : {"polars", "pandas"}

        Returns
        -------
        DataFrame
            ``churn_prob_<h>d`` per horizon (plus the lifetime columns).
        """
        lp, sidx = self._prepare_predict(X)
        a = self._elapsed(X, elapsed, lp.size)
        cols = self._churn_arrays(lp, sidx, a, self._horizons(horizons_days), lifetime)
        frame = _as_table(cols)
        if ids is not None:
            frame = frame.insert_column(0, pl.Series("customer_id", np.asarray(ids)).cast(pl.String))
        return to_output(frame, output)

    def _churn_arrays(self, lp, sidx, a, horizons_days, lifetime, warn=True) -> dict:
        ud = self._unit_days
        risk = np.exp(lp)
        Ha = self._baseline_cumhaz(a, sidx)
        if warn:
            self._warn_extrapolation(a, max(horizons_days) / ud)
        out: dict[str, np.ndarray] = {}
        for h in horizons_days:
            dH = self._baseline_cumhaz(a + h / ud, sidx) - Ha
            out[f"churn_prob_{_fmt(h)}d"] = -np.expm1(-np.maximum(dH, 0.0) * risk)
        if lifetime:
            out["restricted_mean_days"] = self._restricted_mean(lp, sidx, a, Ha) * ud
            med = self._median_remaining(lp, sidx, a, Ha) * ud
            out["median_remaining_days"] = med
        return out

    def _restricted_mean(self, lp, sidx, a, Ha) -> np.ndarray:
        """Expected time alive in (a, a + tau], tau = rmst_horizon_days, model unit."""
        tau = self.rmst_horizon_days / self._unit_days
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

    def reason_codes(self, X: Any, top: int = 3, *, ids: Any = None, output: Output = "polars"):
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
            return to_output(pl.DataFrame(schema=schema), output)
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
        return to_output(out, output)

    def print_summary(self) -> None:
        """Print the fit statistics and the coefficient table (``summary_``)."""
        check_is_fitted(self, "coef_")
        parts = [f"{type(self).__name__}: {getattr(self, 'n_samples_', '?')} customers, "
                 f"{getattr(self, 'n_events_', '?')} churned"]
        if hasattr(self, "log_likelihood_"):
            parts.append(f"log-likelihood {self.log_likelihood_:.2f}")
        if hasattr(self, "concordance_index_"):
            parts.append(f"concordance {self.concordance_index_:.3f}")
        print("; ".join(parts))
        if hasattr(self, "summary_"):
            with pl.Config(tbl_rows=100, tbl_cols=20):
                print(self.summary_)

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
        """Serialise the fitted model as JSON data (never a pickle).

        The document holds the hyperparameters, the learned arrays (coefficients,
        centring means, baseline cumulative hazard on its time grid or the Weibull
        shape/scale), covariate names, library versions and a SHA-256 fingerprint of
        the content. Returns the JSON text; also writes it when ``path`` is given.
        """
        params = {k: (list(v) if isinstance(v, tuple) else v)
                  for k, v in self.get_params(deep=False).items()}
        body = {"format": _FORMAT, "model": type(self).__name__, "params": params,
                "state": self._state()}
        doc = dict(body, fingerprint=_fingerprint(body), versions=_versions())
        text = json.dumps(doc, indent=1, allow_nan=True)
        if path is not None:
            save_json_text(text, path)
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> SurvivalModel:
        """Rebuild a fitted model from :meth:`to_json` output (text or path).

        Checks the fingerprint, so a file edited by hand is refused.
        """
        return load_model(source, expected=cls)


def load_model(source: str | Path, expected: type | None = None) -> SurvivalModel:
    """Load a survival model written by ``to_json`` (a path or the JSON text).

    Examples
    --------
    >>> import numpy as np
    >>> from crmkit.churn import CoxPH, make_y
    >>> rng = np.random.default_rng(1)
    >>> X = rng.normal(size=(80, 2)); y = make_y(rng.exponential(10, 80) + 0.1, rng.random(80) < .7)
    >>> m = CoxPH().fit(X, y)
    >>> np.allclose(load_model(m.to_json()).predict(X), m.predict(X))
    True
    """
    text = json_text_from(source)
    doc = json.loads(text)
    if doc.get("format") != _FORMAT:
        raise ValueError(f"Not a crmkit churn model document (format {doc.get('format')!r}).")
    body = {k: doc[k] for k in ("format", "model", "params", "state")}
    if _fingerprint(body) != doc.get("fingerprint"):
        raise ValueError("The model document's fingerprint does not match its content; the "
                         "file was changed after it was written. Refit and save it again.")
    cls = _REGISTRY.get(doc["model"])
    if cls is None:
        raise ValueError(f"Unknown model class {doc['model']!r} in the document.")
    if expected is not None and not issubclass(cls, expected):
        raise ValueError(f"The document holds a {doc['model']}, not a {expected.__name__}.")
    params = {k: (tuple(v) if isinstance(v, list) and k == "horizons_days" else v)
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
    return model


def _as_table(cols: dict) -> pl.DataFrame:
    """Churn arrays as a frame; a median that is never reached becomes null."""
    frame = pl.DataFrame(cols)
    if "median_remaining_days" in frame.columns:
        frame = frame.with_columns(pl.col("median_remaining_days").fill_nan(None))
    return frame


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
