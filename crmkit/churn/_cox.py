"""Cox proportional hazards (penalised, stratified), fitted by lifelines."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from crmkit._estimator import NONE, STR_LIST, STRING, Interval
from crmkit.churn._base import _PENALTY_CONSTRAINTS, _TIME_CONSTRAINTS, SurvivalModel
from crmkit.churn._checks import screen_covariates
from crmkit.exceptions import ConvergenceWarning, CrmkitError

__all__ = ["CoxPH", "null_log_likelihood"]

_DUR, _EVT, _ENT, _STR = "__duration", "__event", "__entry", "__stratum"

# Newton step sizes tried, in order, when lifelines' fit lands below the null model
_SMALLER_STEPS = (0.5, 0.25)


def null_log_likelihood(duration: Any, event: Any, strata: Any = None) -> float:
    """Cox partial log-likelihood (Efron ties) at zero coefficients.

    Every risk-set member has hazard ratio 1, so a time with ``d`` churns among ``n``
    at risk adds ``-sum(log(n - l), l = 0 .. d-1)``; with ``strata`` the strata's
    values add up. A fitted Cox model's log-likelihood is never below it (zero is a
    feasible point, and a ridge penalty only lowers the penalised objective), so a
    fit that lands below has diverged.

    Examples
    --------
    >>> round(null_log_likelihood([1, 2, 3], [True, True, False]), 6)  # -log 3 - log 2
    -1.791759
    >>> round(null_log_likelihood([1, 2, 1, 2], [True] * 4, strata=["a", "a", "b", "b"]), 6)
    -1.386294
    """
    d = np.asarray(duration, dtype=float)
    e = np.asarray(event, dtype=bool)
    if strata is not None:
        keys = np.asarray(strata, dtype=object)
        return float(sum(null_log_likelihood(d[keys == k], e[keys == k])
                         for k in dict.fromkeys(keys.tolist())))
    times, counts = np.unique(d[e], return_counts=True)
    at_risk = d.size - np.searchsorted(np.sort(d), times, side="left")
    return float(-sum(np.log(n - np.arange(k)).sum() for n, k in zip(at_risk, counts)))


def _below_null(fitter, ll0: float | None) -> bool:
    """Whether a lifelines fit ended below the null model (diverged)."""
    if ll0 is None:
        return False
    ll = float(getattr(fitter, "log_likelihood_", np.nan))
    return not (np.isfinite(ll) and ll >= ll0 - 1e-9 * abs(ll0))


def _fit_lifelines(make_fitter, df: pd.DataFrame, fit_kwargs: dict, owner: str,
                   columns: list[str]):
    """Fit with lifelines; its warnings and failures come back with a remedy."""
    from lifelines.exceptions import ConvergenceError
    from lifelines.exceptions import ConvergenceWarning as LLConvergence

    remedy = ("raise the 'penalizer' parameter (e.g. 0.01-0.1), standardise the covariates, "
              "or drop the covariates named in screening_report_")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fitter = make_fitter(None).fit(df, **fit_kwargs)
            retried = False
        except (ConvergenceError, np.linalg.LinAlgError, ZeroDivisionError) as exc:
            retried = True
            first = exc
    if retried:
        opts = dict(fit_kwargs.get("fit_options") or {})
        opts["step_size"] = 0.25
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                fitter = make_fitter(0.01).fit(df, **dict(fit_kwargs, fit_options=opts))
            except (ConvergenceError, np.linalg.LinAlgError, ZeroDivisionError) as exc:
                raise CrmkitError(
                    f"{owner} did not converge ({type(first).__name__}: "
                    f"{str(first).splitlines()[0] if str(first) else ''}); a retry with a small "
                    f"penalty failed too. To fix: {remedy}. Covariates: {columns}."
                ) from exc
        warnings.warn(f"{owner} did not converge unpenalised ({type(first).__name__}); it was "
                      f"refitted with an extra ridge penalty of 0.01 and step size 0.25. To "
                      f"control this yourself: {remedy}.", ConvergenceWarning, stacklevel=3)
    converge_reported = False
    for w in caught:
        if issubclass(w.category, LLConvergence) or "converge" in str(w.message).lower():
            if not converge_reported:
                text = str(w.message).strip().splitlines()[0]
                warnings.warn(f"{owner}: lifelines reports a convergence problem ({text}). "
                              f"Remedy: {remedy}.", ConvergenceWarning, stacklevel=3)
                converge_reported = True
        elif not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning)):
            # anything else lifelines says (e.g. StatisticalWarning) is passed on as is
            warnings.warn(w.message, w.category, stacklevel=3)
    return fitter


@dataclass
class _FitInput:
    """What the lifelines-backed fits start from (see :func:`_screened_frame`)."""

    M: np.ndarray
    duration: np.ndarray
    event: np.ndarray
    entry: np.ndarray | None
    keys: Any
    screen: Any
    kept: list[str]
    df: pd.DataFrame
    kwargs: dict


def _screened_frame(model: SurvivalModel, X: Any, y: Any, strata: Any, name: str) -> _FitInput:
    """The common start of the lifelines-backed fits.

    Prepares ``X``/``y``, screens the covariates (recording ``screening_report_``,
    ``covariates_``, ``n_samples_``, ``n_events_`` on ``model``), refuses a target
    without events, and builds the lifelines input frame (covariates ``c0..``,
    duration, event, entry when given).
    """
    frame, names, M, duration, event, entry, keys = model._prepare_fit(X, y, strata)
    key_arr = np.asarray(keys, dtype=object) if getattr(model, "strata_columns_", None) else None
    screen = screen_covariates(M, names, duration, event, strata=key_arr,
                               on_separation=model.on_separation, owner=f"{name}.fit")
    model.screening_report_ = screen.report()
    kept = [names[j] for j in screen.keep]
    model.covariates_ = kept
    model.n_samples_ = int(duration.size)
    model.n_events_ = int(event.sum())
    if model.n_events_ == 0:
        raise ValueError(f"{name}.fit: y has no events (nobody churned), so there is "
                         "nothing to fit; widen the observation window.")
    df = pd.DataFrame(M[:, screen.keep], columns=[f"c{i}" for i in range(len(kept))])
    df[_DUR] = duration
    df[_EVT] = event.astype(int)
    kwargs: dict = {"duration_col": _DUR, "event_col": _EVT}
    if entry is not None:
        df[_ENT] = entry
        kwargs["entry_col"] = _ENT
    return _FitInput(M, duration, event, entry, keys, screen, kept, df, kwargs)


class CoxPH(SurvivalModel):
    """Cox proportional-hazards churn model (Efron ties), penalised and stratified.

    lifelines' ``CoxPHFitter`` does the fitting; crmkit screens the covariates
    first (constant, near-constant, collinear, non-finite, separating columns),
    then keeps only arrays: coefficients, centring means and the Breslow baseline
    cumulative hazard of each stratum on its time grid. Predictions and the saved
    model need no lifelines object.

    Parameters
    ----------
    penalizer : float
        Elastic-net penalty strength (lifelines' convention: 0.5 * penalizer *
        ||beta||^2 for ``l1_ratio=0``).
    l1_ratio : float
        Share of L1 in the elastic net, between 0 and 1.
    strata : str or list of str, optional
        Columns of X that define strata, each with its own baseline hazard and the
        coefficients shared (they are not covariates).
    unit : {"days", "weeks", "mean_months"}
        Unit of the durations in ``y``, of the horizons and of every time the
        model returns. Required in practice: fitting without it warns and takes
        days.
    horizons : float or tuple of float, optional
        Default horizons of :meth:`predict_churn`, in ``unit`` (default: a month,
        a quarter, half a year and a year: (30, 90, 180, 365) days, (4, 13, 26, 52)
        weeks or (1, 3, 6, 12) months).
    rmst_horizon : float, optional
        Restriction of the expected remaining lifetime, in ``unit`` (default a year).
    time_unit, horizons_days, rmst_horizon_days
        Deprecated names (warn): ``unit``, horizons in days, and the restriction in days.
    on_separation : {"penalize", "drop", "raise"}
        What to do with a covariate that perfectly orders the events.
    separation_penalizer : float
        Ridge penalty put on such a covariate with ``on_separation="penalize"``.
    step_size : float, optional
        First Newton step of lifelines' optimiser (lifelines' default, 0.95, when
        None). From a zero start the default step can overshoot (e.g. on stacked
        landmark data with piecewise-linear terms) and lifelines then stops, without
        a warning, at a point worse than the null model. So with ``step_size=None``
        a fit whose partial log-likelihood is below the null model's (which an
        optimum never is) is redone with steps 0.5, then 0.25; if it is still below,
        a ``ConvergenceWarning`` says so. A given ``step_size`` is used as is.

    Attributes
    ----------
    coef_ : ndarray
        Log hazard ratios of ``covariates_`` (per unit of each covariate).
    covariates_ : list of str
        Covariates kept after screening.
    summary_ : polars.DataFrame
        Coefficient table (coef, exp(coef), se, z, p, confidence interval).
    log_likelihood_ : float
        Partial log-likelihood at the optimum.
    concordance_index_ : float
        Harrell's concordance on the training data.
    screening_report_ : polars.DataFrame
        What screening found and did (column, problem, action).

    Examples
    --------
    >>> import numpy as np, polars as pl
    >>> from crmkit.churn import CoxPH, make_y
    >>> rng = np.random.default_rng(0)
    >>> X = pl.DataFrame({"complaints": rng.poisson(1, 300).astype(float),
    ...                   "assets": rng.normal(size=300)})
    >>> t = rng.exponential(200 / np.exp(0.5 * X["complaints"].to_numpy()))
    >>> y = make_y(np.minimum(t, 365) + 1, t < 365)
    >>> model = CoxPH(unit="days").fit(X, y)
    >>> round(float(model.coef_[0]), 1)
    0.5
    >>> model.predict_churn(X[:2], (30, 90), lifetime=False).columns
    ['churn_prob_30d', 'churn_prob_90d']
    """

    _parameter_constraints = {**_TIME_CONSTRAINTS, **_PENALTY_CONSTRAINTS,
                              "strata": [NONE, STRING, STR_LIST],
                              "step_size": [NONE, Interval(float, 0, 1, "right")]}

    def __init__(self, *, unit: str | None = None, horizons: Any = None,
                 penalizer: float = 0.0, l1_ratio: float = 0.0, strata: Any = None,
                 rmst_horizon: float | None = None, on_separation: str = "penalize",
                 separation_penalizer: float = 0.1, step_size: float | None = None,
                 time_unit: str | None = None, horizons_days: Any = None,
                 rmst_horizon_days: float | None = None):
        self.unit = unit
        self.horizons = horizons
        self.penalizer = penalizer
        self.l1_ratio = l1_ratio
        self.strata = strata
        self.rmst_horizon = rmst_horizon
        self.on_separation = on_separation
        self.separation_penalizer = separation_penalizer
        self.step_size = step_size
        self.time_unit = time_unit
        self.horizons_days = horizons_days
        self.rmst_horizon_days = rmst_horizon_days

    _EXTRA_STATE = ("summary_", "log_likelihood_", "concordance_index_", "screening_report_",
                    "n_events_", "n_samples_")

    def _fit_guarded(self, make, df, kwargs, owner, kept, duration, event, entry, keys):
        """lifelines' fit, redone with smaller Newton steps when it lands below the null
        model (the one place crmkit sets lifelines' step size; see ``step_size``)."""
        if self.step_size is not None:
            opts = dict(kwargs.get("fit_options") or {}, step_size=float(self.step_size))
            return _fit_lifelines(make, df, dict(kwargs, fit_options=opts), owner, kept)
        # the null log-likelihood is known in closed form without delayed entry
        ll0 = None if entry is not None else null_log_likelihood(
            duration, event, keys if self.strata_columns_ else None)
        fitter = _fit_lifelines(make, df, kwargs, owner, kept)
        for step in _SMALLER_STEPS:
            if not _below_null(fitter, ll0):
                return fitter
            opts = dict(kwargs.get("fit_options") or {}, step_size=step)
            with warnings.catch_warnings():
                # a diverged first attempt often warns too; only the retry's word counts
                warnings.simplefilter("ignore", ConvergenceWarning)
                retry = _fit_lifelines(make, df, dict(kwargs, fit_options=opts), owner, kept)
            if float(retry.log_likelihood_) > float(getattr(fitter, "log_likelihood_", -np.inf)) \
                    or not np.isfinite(float(getattr(fitter, "log_likelihood_", np.nan))):
                fitter = retry
        if _below_null(fitter, ll0):
            warnings.warn(f"{owner}: the partial log-likelihood ({fitter.log_likelihood_:.6g}) "
                          f"is below the null model's ({ll0:.6g}) even with Newton steps of "
                          f"{', '.join(map(str, _SMALLER_STEPS))}: the fit diverged. Remedy: raise "
                          "the 'penalizer' parameter or drop collinear covariates.",
                          ConvergenceWarning, stacklevel=4)
        return fitter

    def fit(self, X: Any, y: Any) -> CoxPH:
        """Fit on covariates ``X`` and survival target ``y`` (see :func:`make_y`).

        Returns
        -------
        self
        """
        name = type(self).__name__
        fit_in = _screened_frame(self, X, y, self.strata, name)
        M, duration, event, entry, keys = (fit_in.M, fit_in.duration, fit_in.event, fit_in.entry,
                                           fit_in.keys)
        screen, kept, df, kwargs = fit_in.screen, fit_in.kept, fit_in.df, fit_in.kwargs
        if self.strata_columns_:
            df[_STR] = keys
            kwargs["strata"] = [_STR]
        pen: float | np.ndarray = float(self.penalizer)
        if screen.penalized:
            pen = np.full(len(kept), float(self.penalizer))
            for j in screen.penalized:
                pen[screen.keep.index(j)] = max(pen[screen.keep.index(j)],
                                                float(self.separation_penalizer))

        if not kept:
            # no covariates left: a stratified Breslow/Nelson-Aalen baseline
            df["__zero"] = 0.0
        from lifelines import CoxPHFitter

        def make(extra):
            p = pen if extra is None else pen + extra
            return CoxPHFitter(penalizer=p, l1_ratio=float(self.l1_ratio))

        if kept:
            fitter = self._fit_guarded(make, df, kwargs, f"{name}.fit", kept, duration, event,
                                       entry, keys)
            params = fitter.params_.reindex([f"c{i}" for i in range(len(kept))]).to_numpy()
            self.coef_ = np.asarray(params, dtype=float)
            self.means_ = fitter._norm_mean.reindex(
                [f"c{i}" for i in range(len(kept))]).to_numpy(dtype=float)
            bch = fitter.baseline_cumulative_hazard_
            summ = fitter.summary.reset_index(drop=True)
            summ.insert(0, "covariate", kept)
            self.summary_ = pl.from_pandas(summ.drop(columns=["cmp to"], errors="ignore"))
            self.log_likelihood_ = float(fitter.log_likelihood_)
            # lifelines' own training concordance walks a Python b-tree per row (minutes
            # at 1M rows); the vectorised one gives the same number
            from crmkit.churn._metrics import concordance_index_harrell
            lp = (M[:, screen.keep] - self.means_) @ self.coef_
            self.concordance_index_ = concordance_index_harrell(duration, event, lp)
        else:
            from lifelines import NelsonAalenFitter
            self.coef_ = np.zeros(0)
            self.means_ = np.zeros(0)
            groups = keys if self.strata_columns_ else ["__all__"] * duration.size
            cols = {}
            for k in sorted(set(groups)):
                m = np.asarray(groups) == k
                naf = NelsonAalenFitter().fit(duration[m], event[m],
                                              entry=None if entry is None else entry[m])
                cols[k] = naf.cumulative_hazard_.iloc[:, 0]
            bch = pd.DataFrame(cols).sort_index().ffill().fillna(0.0)
            self.summary_ = pl.DataFrame(schema={"covariate": pl.String, "coef": pl.Float64})
            self.log_likelihood_ = float("nan")
            self.concordance_index_ = 0.5
        bch = bch.sort_index()
        times = bch.index.to_numpy(dtype=float)
        keep_t = times > 0
        self.baseline_times_ = times[keep_t]
        strata_keys = [str(c[0] if isinstance(c, tuple) and len(c) == 1 else c)
                       for c in bch.columns] if self.strata_columns_ else ["__all__"]
        self.strata_keys_ = strata_keys
        self.baseline_cumhaz_ = np.maximum.accumulate(
            bch.ffill().fillna(0.0).to_numpy(dtype=float).T[:, keep_t], axis=1)
        self.baseline_kind_ = "step"
        return self
