"""The cross-sell propensity estimator: one calibrated binary model per target.

For every target (a product or a category) :class:`PropensityModel` fits a binary
classifier on the rows eligible for it (a label, not null), calibrates its margins on
out-of-fold predictions (customers never on both sides: folds are drawn by the
CRC-32 of the group id), and refits on all eligible rows, as scikit-learn's
``CalibratedClassifierCV(ensemble=False)`` does. A target with too few positives
is not modelled: its propensity is the popularity-within-tier rate (the take-up
rate of the target among eligible customers of the same tier in the training
rows), and ``summary_`` says so.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from crmkit._frames import Output, to_output, to_polars
from crmkit._params import check_choice, check_positive
from crmkit._persist import document_fingerprint, json_text_from, library_versions, save_json_text
from crmkit.propensity._backends import (
    BACKENDS,
    compile_state,
    contributions,
    fit_backend,
    margin,
    truncate,
)
from crmkit.propensity._calibration import (
    apply_calibration,
    expected_calibration_error,
    fit_calibration,
)

__all__ = ["PropensityModel", "load_model"]

_FORMAT = "crmkit.propensity/1"
_SMOOTHING = 20.0  # pseudo-rows pulling a small tier's rate towards the overall rate
# eligible (row, target) cells from which LightGBM targets are fitted in worker
# processes: starting one costs about a second, so small fits stay in line
_PROCESS_MIN_CELLS = 200_000


def _is_table(X: Any) -> bool:
    return isinstance(X, (pl.DataFrame, pl.LazyFrame, dict)) or hasattr(X, "columns") or \
        type(X).__module__.split(".")[0] == "pyarrow"


class PropensityModel(ClassifierMixin, BaseEstimator):
    """Calibrated cross-sell propensity per product: gradient boosting or logistic regression.

    Parameters
    ----------
    backend : {"lightgbm", "sklearn", "logistic"}, default "lightgbm"
        ``"lightgbm"``: LightGBM gradient boosting (exact per-customer contributions,
        saved as LightGBM's model text); ``"sklearn"``: scikit-learn's
        HistGradientBoostingClassifier (no extra dependency; trees saved as arrays;
        no contributions); ``"logistic"``: L2-penalised logistic regression on
        standardised features, the interpretable option.
    n_estimators : int, default 100
        Boosting rounds (tree backends); with ``early_stopping``, the most.
    early_stopping : bool, default True
        Choose the number of boosting rounds on the customer folds: each fold's
        fit records its held-out log loss after every round (LightGBM stops
        20 rounds after its best), the rounds minimising the loss summed over
        the folds are kept, for the out-of-fold margins and for the refit on all
        rows. Without it every fit grows ``n_estimators`` trees, which overfit
        the rarer products of the sample bank (backtest AUC 0.869 with 100 trees
        against 0.873 with 25 on one of them). ``params_`` and ``summary_`` give
        the rounds kept (``n_trees``).
    learning_rate : float, default 0.1
    num_leaves : int, default 31
        Leaves per tree.
    max_bin : int, default 255
        Histogram bins per feature (tree backends; scikit-learn caps it at 255).
    min_child_samples : int, default 100
        Minimum rows per leaf.
    penalizer : float, default 1.0
        L2 penalty: on leaf values (tree backends) or ``1 / C`` (logistic).
    class_weight : {None, "balanced"}, default None
        ``"balanced"`` weights each class by ``n / (2 n_class)`` in the fit. The
        calibration map undoes the shift either way.
    calibration : {"sigmoid", "isotonic"}, default "sigmoid"
        Platt scaling keeps the booster's ranking (AUC, lift) unchanged; isotonic
        is more flexible but ties scores.
    cv : int, default 3
        Folds (by group) for the out-of-fold margins the calibration is fitted on.
    min_positives : int, default 50
        A target needs this many positive rows (and negatives) to be modelled;
        otherwise it falls back to the popularity-within-tier baseline.
    max_negatives_per_positive : int, optional
        Subsample the negatives of a target to at most this many per positive in
        every fit (weighted back by the inverse sampling rate when
        ``class_weight`` is None), for speed on large, imbalanced data. The
        calibration still sees every out-of-fold row.
    baseline_by : str or None, default "tier_rank"
        Column of X that defines the tiers of the popularity baseline; None for the
        overall take-up rate.
    random_state : int, default 0
    n_jobs : int, default 1
        Targets fitted at once, each booster on one thread, so the fitted model is
        the same for any ``n_jobs``: the logistic backend in threads, LightGBM in
        ``n_jobs`` worker processes (two threads in lib_lightgbm at once crashed it)
        when the fit has at least 200,000 eligible row-target cells (starting a
        worker costs about a second; smaller fits stay in line).
        A single target's booster gets ``n_jobs`` OpenMP threads instead (on a
        machine shared with other jobs, OpenMP threads that wait for busy cores made
        a fit 8x slower, measured). The scikit-learn backend runs one target at a time
        (its OpenMP threads are its own).
    output : {"polars", "pandas"}, default "polars"
        Type of the tables returned (also set by :meth:`set_output`).

    Attributes
    ----------
    targets_ : list of str
    feature_names_in_ : ndarray of str (when fitted on a table)
    n_features_in_ : int
    params_ : dict
        Per target: the model kind, the calibration map and the counts.
    summary_ : polars.DataFrame
        Per target: model (or the baseline it fell back to, and why), rows,
        positives, out-of-fold ROC AUC, PR AUC and expected calibration error.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(3000, 3)); y = (rng.random(3000) < 1 / (1 + np.exp(2 - 2 * X[:, 0])))
    >>> m = PropensityModel(backend="logistic", baseline_by=None).fit(X, y.astype(int))
    >>> m.predict_proba(X).shape
    (3000, 2)
    >>> float(m.summary_["cv_roc_auc"][0]) > 0.8
    True
    >>> np.array_equal(load_model(m.to_json()).predict_proba(X), m.predict_proba(X))
    True
    """

    def __init__(self, *, backend: str = "lightgbm", n_estimators: int = 100,
                 early_stopping: bool = True, learning_rate: float = 0.1,
                 num_leaves: int = 31, max_bin: int = 255, min_child_samples: int = 100,
                 penalizer: float = 1.0, class_weight: str | None = None,
                 calibration: str = "sigmoid", cv: int = 3, min_positives: int = 50,
                 max_negatives_per_positive: int | None = None,
                 baseline_by: str | None = "tier_rank", random_state: int = 0,
                 n_jobs: int = 1, output: Output = "polars"):
        self.backend = backend
        self.n_estimators = n_estimators
        self.early_stopping = early_stopping
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_bin = max_bin
        self.min_child_samples = min_child_samples
        self.penalizer = penalizer
        self.class_weight = class_weight
        self.calibration = calibration
        self.cv = cv
        self.min_positives = min_positives
        self.max_negatives_per_positive = max_negatives_per_positive
        self.baseline_by = baseline_by
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.output = output

    # ------------------------------------------------------------------ parameters
    def _check_params(self) -> None:
        name = type(self).__name__
        check_choice(self.backend, BACKENDS, "backend", name)
        check_choice(self.class_weight, (None, "balanced"), "class_weight", name)
        check_choice(self.calibration, ("sigmoid", "isotonic"), "calibration", name)
        check_choice(self.output, ("polars", "pandas"), "output", name)
        check_choice(self.early_stopping, (True, False), "early_stopping", name)
        for p in ("n_estimators", "num_leaves", "max_bin", "min_child_samples", "cv",
                  "min_positives", "n_jobs"):
            v = getattr(self, p)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"The {p!r} parameter of {name} must be a positive integer. "
                                 f"Got {v!r} instead.")
        if self.cv < 2:
            raise ValueError(f"The 'cv' parameter of {name} must be an integer >= 2. "
                             f"Got {self.cv!r} instead.")
        check_positive(self.learning_rate, "learning_rate", name)
        check_positive(self.penalizer, "penalizer", name, allow_zero=True)
        r = self.max_negatives_per_positive
        if r is not None:
            check_positive(r, "max_negatives_per_positive", name)

    def set_output(self, *, transform: str | None = None) -> PropensityModel:
        """Choose the table type of the outputs (scikit-learn's API): ``"polars"``,
        ``"pandas"``, or ``"default"`` / None for the ``output`` parameter."""
        if transform not in (None, "default", "polars", "pandas"):
            raise ValueError("The 'transform' parameter of set_output must be one of "
                             f"'default', 'polars', 'pandas'. Got {transform!r} instead.")
        self._output_override = None if transform in (None, "default") else transform
        return self

    @property
    def _out(self) -> str:
        return getattr(self, "_output_override", None) or self.output

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # ------------------------------------------------------------------ inputs
    def _matrix(self, X: Any, fitting: bool) -> tuple[np.ndarray, pl.DataFrame | None]:
        name = type(self).__name__
        if _is_table(X):
            frame = to_polars(X, "X")
            if fitting:
                bad = [c for c, t in frame.schema.items()
                       if not (t.is_numeric() or t == pl.Boolean) and c != self.baseline_by]
                if bad:
                    raise ValueError(f"{name}: X columns must be numeric or boolean; {len(bad)} "
                                     f"are not: {bad[:5]}. Drop ids and dates (see "
                                     "split_training_set) or encode them.")
                cols = [c for c, t in frame.schema.items()
                        if t.is_numeric() or t == pl.Boolean]
                self.feature_names_in_ = np.asarray(cols, dtype=object)
            else:
                cols = list(getattr(self, "feature_names_in_", []))
                if not cols:
                    raise ValueError(f"{name} was fitted on an array; pass an array to predict.")
                missing = [c for c in cols if c not in frame.columns]
                if missing:
                    raise ValueError(f"{name}: X is missing {len(missing)} column(s) seen in "
                                     f"fit: {missing[:5]}.")
            M = frame.select(pl.col(c).cast(pl.Float64) for c in cols).to_numpy()
        else:
            if not fitting and hasattr(self, "feature_names_in_"):
                raise ValueError(f"{name} was fitted on a table with named columns; pass a "
                                 "table with those columns.")
            M = np.asarray(X, dtype=float)
            if M.ndim != 2:
                raise ValueError(f"{name}: X must be 2-dimensional; got shape {M.shape}.")
            frame = None
            if fitting and hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        if fitting:
            self.n_features_in_ = M.shape[1]
        elif M.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {M.shape[1]} features, but {name} is expecting "
                             f"{self.n_features_in_} features as input.")
        if np.isinf(M).any():
            raise ValueError(f"{name}: X contains infinity in column(s) "
                             f"{self._names()[np.isinf(M).any(axis=0)][:5].tolist()}.")
        return M, frame

    def _names(self) -> np.ndarray:
        if hasattr(self, "feature_names_in_"):
            return np.asarray(self.feature_names_in_, dtype=object)
        return np.asarray([f"x{i}" for i in range(self.n_features_in_)], dtype=object)

    @staticmethod
    def _targets_of(y: Any) -> tuple[np.ndarray, list[str]]:
        if _is_table(y):
            frame = to_polars(y, "y")
            Y = frame.select(pl.col(c).cast(pl.Float64) for c in frame.columns).to_numpy()
            return Y, list(frame.columns)
        if isinstance(y, pl.Series):
            return y.cast(pl.Float64).to_numpy().reshape(-1, 1), [y.name or "target"]
        arr = np.asarray(y, dtype=float)
        if arr.ndim == 1:
            name = getattr(y, "name", None) or "target"
            return arr.reshape(-1, 1), [str(name)]
        return arr, [f"target{j}" for j in range(arr.shape[1])]

    def _levels(self, X: Any, frame: pl.DataFrame | None, n: int) -> np.ndarray:
        if self.baseline_by is None:
            return np.full(n, "all", dtype=object)
        if frame is None or self.baseline_by not in frame.columns:
            raise ValueError(f"{type(self).__name__}: baseline_by={self.baseline_by!r} is not a "
                             "column of X; pass a table with it or baseline_by=None.")
        return np.asarray(frame[self.baseline_by].cast(pl.String).fill_null("<null>").to_list(),
                          dtype=object)

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any, groups: Any = None) -> PropensityModel:
        """Fit one calibrated model per target (column of ``y``).

        Parameters
        ----------
        X : table or 2-D array
            Numeric or boolean features (NaN allowed: the trees route it, the
            logistic backend uses the training median).
        y : 1-D array-like or table
            One column per target: 1 (took it up), 0 (did not), null/NaN (not
            eligible, e.g. already held); a 1-D ``y`` is a single target.
        groups : array-like, optional
            Customer ids: rows of a customer stay in one fold. Default: each row is
            its own group (folds drawn with ``random_state``).

        Returns
        -------
        self
        """
        self._check_params()
        M, frame = self._matrix(X, fitting=True)
        Y, names = self._targets_of(y)
        n = M.shape[0]
        if Y.shape[0] != n:
            raise ValueError(f"{type(self).__name__}.fit: X has {n} rows but y has "
                             f"{Y.shape[0]}; they must describe the same rows in the same order.")
        finite = Y[~np.isnan(Y)]
        bad = finite[(finite != 0) & (finite != 1)]
        if bad.size:
            raise ValueError(f"{type(self).__name__}.fit: labels must be 0, 1 or null; found "
                             f"{bad.size} other value(s), e.g. {np.unique(bad)[:5].tolist()}.")
        levels = self._levels(X, frame, n)
        fold = self._folds(groups, n)
        hp = {"n_estimators": int(self.n_estimators), "learning_rate": float(self.learning_rate),
              "num_leaves": int(self.num_leaves), "max_bin": int(self.max_bin),
              "min_child_samples": int(self.min_child_samples),
              "penalizer": float(self.penalizer), "random_state": int(self.random_state),
              "n_jobs": self.n_jobs}
        self.targets_ = names
        self._models: dict[str, dict] = {}
        self._compiled: dict[str, Any] = {}
        self.params_ = {}
        # Several LightGBM targets: each booster on one thread (its trees change with
        # its thread count), the targets spread over worker processes. Not threads:
        # two Python threads in lib_lightgbm at once crashed it (a segfault in 2 of 18
        # demo runs: one thread building a validation Dataset while the other
        # predicted). A single target's booster gets n_jobs threads.
        workers = min(int(self.n_jobs), len(names))
        one = dict(hp, n_jobs=1) if len(names) > 1 else hp
        if workers > 1 and self.backend == "logistic":
            # logistic targets at once, one thread each: the same fit for any n_jobs
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                fitted = list(pool.map(
                    lambda j: self._fit_target(j, M, Y, fold, levels, one), range(len(names))))
        elif workers > 1 and self.backend == "lightgbm" \
                and int((~np.isnan(Y)).sum()) >= _PROCESS_MIN_CELLS:
            fitted = self._fit_in_processes(workers, M, Y, fold, levels, one)
        else:  # (n_jobs reaches only LightGBM's boosters)
            fitted = [self._fit_target(j, M, Y, fold, levels, one) for j in range(len(names))]
        rows = []
        for target, (entry, row, compiled) in zip(names, fitted, strict=True):
            if compiled is not None:
                self._compiled[target] = compiled
            self._models[target] = entry
            self.params_[target] = {k: v for k, v in entry.items() if k not in ("state",)}
            rows.append(row)
        self.summary_ = pl.DataFrame(rows).select(
            "target", "model", "n_eligible", "n_positive", "positive_rate", "n_trees",
            "cv_roc_auc", "cv_pr_auc", "cv_ece", "note")
        return self

    def _fit_in_processes(self, workers: int, M: np.ndarray, Y: np.ndarray, fold: np.ndarray,
                          levels: np.ndarray, hp: dict) -> list[tuple[dict, dict, Any]]:
        """Every target fitted by :meth:`_fit_target` in ``workers`` new processes (the
        targets with most eligible rows handed out first); the same results as in line."""
        import warnings

        from crmkit._processes import WorkerStartError, map_in_processes
        from crmkit.exceptions import CrmkitWarning

        params = self.get_params()
        eligible = (~np.isnan(Y)).sum(axis=0)
        order = np.argsort(-eligible, kind="stable").tolist()
        try:
            done = map_in_processes(_fit_target_task, range(Y.shape[1]), workers=workers,
                                    shared=(params, list(self.targets_), M, Y, fold, levels,
                                            hp), order=order)
        except WorkerStartError as err:  # nothing ran: the same fit, in line
            warnings.warn(f"{type(self).__name__}.fit: {err}; fitting the "
                          f"{Y.shape[1]} targets in this process instead (set n_jobs=1 to "
                          f"not try).", CrmkitWarning, stacklevel=3)
            return [self._fit_target(j, M, Y, fold, levels, hp) for j in range(Y.shape[1])]
        return [(entry, row, compile_state(entry["state"]) if entry["kind"] == "model" else None)
                for entry, row in done]

    def _fit_target(self, j: int, M: np.ndarray, Y: np.ndarray, fold: np.ndarray,
                    levels: np.ndarray, hp: dict) -> tuple[dict, dict, Any]:
        """Target ``j``: its stored entry, its summary row and its compiled trees (None
        for the popularity baseline)."""
        from sklearn.metrics import average_precision_score, roc_auc_score

        target = self.targets_[j]
        elig = ~np.isnan(Y[:, j])
        yj = Y[elig, j].astype(np.int8)
        n_pos, n_el = int(yj.sum()), int(elig.sum())
        base = self._popularity(levels[elig], yj)
        entry: dict[str, Any] = {"baseline": base, "n_eligible": n_el, "n_positive": n_pos}
        row = {"target": target, "n_eligible": n_el, "n_positive": n_pos,
               "positive_rate": n_pos / n_el if n_el else float("nan"),
               "cv_roc_auc": float("nan"), "cv_pr_auc": float("nan"),
               "cv_ece": float("nan"), "n_trees": None}
        if min(n_pos, n_el - n_pos) < self.min_positives:
            entry["kind"] = "baseline"
            by = self.baseline_by or "all rows"
            row["model"] = f"baseline: popularity within {by}"
            row["note"] = (f"{n_pos} positives and {n_el - n_pos} negatives; fewer than "
                           f"min_positives={self.min_positives}, so not modelled")
            return entry, row, None
        Xj, fj = M[elig], fold[elig]
        oof = np.empty(n_el)
        stop = self.early_stopping and self.backend != "logistic"
        states, curves = [], []
        for k in range(self.cv):
            tr, te = fj != k, fj == k
            state, curve = self._fit_one(Xj[tr], yj[tr], hp, j,
                                         (Xj[te], yj[te]) if stop else None)
            states.append(state)
            curves.append((curve, int(te.sum())))
        n_trees = self._rounds(curves) if stop else None
        for k, state in enumerate(states):
            te = fj == k
            if n_trees is not None:
                state = truncate(state, n_trees)
            oof[te] = margin(compile_state(state), Xj[te])
        del states
        cal = fit_calibration(oof, yj, self.calibration)
        hp_all = dict(hp, n_estimators=n_trees) if n_trees is not None else hp
        state, _ = self._fit_one(Xj, yj, hp_all, j)
        entry.update(kind="model", state=state, calibration=cal)
        if self.backend != "logistic":
            entry["n_trees"] = int(n_trees if n_trees is not None else hp["n_estimators"])
            row["n_trees"] = entry["n_trees"]
        p = apply_calibration(cal, oof)
        row.update(model=self.backend, note="",
                   cv_roc_auc=float(roc_auc_score(yj, oof)),
                   cv_pr_auc=float(average_precision_score(yj, p)),
                   cv_ece=expected_calibration_error(yj, p))
        return entry, row, compile_state(state)

    @staticmethod
    def _rounds(curves: list[tuple[np.ndarray, int]]) -> int:
        """The boosting rounds with the least held-out log loss summed over the folds
        (over the rounds every fold reached; each LightGBM fold ran 20 rounds past its
        own best, so the common rounds hold the minimum)."""
        n = min(c.size for c, _ in curves)
        total = sum(c[:n] * size for c, size in curves)
        return int(np.argmin(total)) + 1

    def _folds(self, groups: Any, n: int) -> np.ndarray:
        if groups is None:
            rng = np.random.default_rng(self.random_state)
            return rng.permutation(n) % self.cv
        g = groups.to_list() if isinstance(groups, pl.Series) else list(np.asarray(groups))
        if len(g) != n:
            raise ValueError(f"{type(self).__name__}.fit: groups has {len(g)} values but X has "
                             f"{n} rows.")
        salt = str(self.random_state).encode()
        return np.fromiter((zlib.crc32(salt + str(v).encode()) % self.cv for v in g),
                           dtype=np.int64, count=n)

    def _fit_one(self, X: np.ndarray, y: np.ndarray, hp: dict, j: int,
                 valid: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> tuple[dict, np.ndarray | None]:
        w = None
        r = self.max_negatives_per_positive
        if r is not None:
            n_pos = int(y.sum())
            n_neg = y.size - n_pos
            keep_rate = min(1.0, r * max(n_pos, 1) / max(n_neg, 1))
            if keep_rate < 1.0:
                rng = np.random.default_rng([self.random_state, j, y.size])
                keep = (y == 1) | (rng.random(y.size) < keep_rate)
                X, y = X[keep], y[keep]
                if self.class_weight is None:
                    w = np.where(y == 1, 1.0, 1.0 / keep_rate)
        if self.class_weight == "balanced":
            n_pos = max(int(y.sum()), 1)
            n_neg = max(y.size - n_pos, 1)
            w = np.where(y == 1, y.size / (2.0 * n_pos), y.size / (2.0 * n_neg))
        return fit_backend(self.backend, X, y, w, hp, valid)

    @staticmethod
    def _popularity(levels: np.ndarray, y: np.ndarray) -> dict:
        """Take-up rate per level, smoothed towards the overall rate."""
        overall = float(y.mean()) if y.size else 0.0
        rates = {}
        if y.size:
            frame = pl.DataFrame({"l": levels.astype(str), "y": y})
            for lvl, k, cnt in frame.group_by("l").agg(pl.col("y").sum(), pl.len()).sort("l") \
                    .iter_rows():
                rates[lvl] = (float(k) + _SMOOTHING * overall) / (cnt + _SMOOTHING)
        return {"overall": overall, "rates": rates}

    # ------------------------------------------------------------------ predictions
    def _check(self) -> None:
        check_is_fitted(self, "targets_")

    def _target(self, target: str | None) -> str:
        if target is None:
            if len(self.targets_) != 1:
                raise ValueError(f"{type(self).__name__} has {len(self.targets_)} targets; "
                                 "name one with target=.")
            return self.targets_[0]
        if target not in self.targets_:
            raise ValueError(f"Unknown target {target!r}; the model has {self.targets_[:10]}.")
        return target

    def _prob(self, target: str, M: np.ndarray, levels: np.ndarray | None) -> np.ndarray:
        entry = self._models[target]
        if entry["kind"] == "baseline":
            return self._baseline_prob(entry["baseline"], levels, M.shape[0])
        return apply_calibration(entry["calibration"], margin(self._compiled[target], M))

    @staticmethod
    def _baseline_prob(base: dict, levels: np.ndarray | None, n: int) -> np.ndarray:
        if levels is None:
            return np.full(n, base["overall"])
        rates = base["rates"]
        return np.array([rates.get(str(v), base["overall"]) for v in levels], dtype=float)

    def _predict_levels(self, frame: pl.DataFrame | None, n: int) -> np.ndarray | None:
        if self.baseline_by is None:
            return None
        if frame is None or self.baseline_by not in frame.columns:
            if any(e["kind"] == "baseline" for e in self._models.values()):
                raise ValueError(f"{type(self).__name__}: X needs the {self.baseline_by!r} "
                                 "column for the targets that use the popularity baseline.")
            return None
        uniq = frame[self.baseline_by].cast(pl.String).fill_null("<null>")
        return np.asarray(uniq.to_list(), dtype=object)

    def predict_proba(self, X: Any, target: str | None = None) -> np.ndarray:
        """Calibrated probabilities of one target as scikit-learn's ``(n, 2)`` array
        (columns: not taken up, taken up). ``target`` may be omitted with one target."""
        self._check()
        t = self._target(target)
        M, frame = self._matrix(X, fitting=False)
        p = self._prob(t, M, self._predict_levels(frame, M.shape[0]))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any, target: str | None = None) -> np.ndarray:
        """0/1 at probability 0.5 for one target (size call lists by rank instead)."""
        return (self.predict_proba(X, target)[:, 1] >= 0.5).astype(int)

    @property
    def classes_(self) -> np.ndarray:
        return np.array([0, 1])

    def predict_propensities(self, X: Any, *, ids: Any = None, baseline: bool = False):
        """Calibrated propensity of every target, one column ``p_<target>`` each.

        Parameters
        ----------
        X : table or array
        ids : array-like, optional
            Customer ids, returned as a first column ``customer_id``.
        baseline : bool
            Return the popularity-within-tier baseline instead of the models (for
            comparisons).
        """
        self._check()
        M, frame = self._matrix(X, fitting=False)
        levels = self._predict_levels(frame, M.shape[0])
        if baseline and levels is None and self.baseline_by is not None:
            raise ValueError(f"baseline=True needs the {self.baseline_by!r} column in X.")
        cols = {}
        for t in self.targets_:
            if baseline:
                cols[f"p_{t}"] = self._baseline_prob(self._models[t]["baseline"], levels,
                                                     M.shape[0])
            else:
                cols[f"p_{t}"] = self._prob(t, M, levels)
        out = pl.DataFrame(cols)
        if ids is not None:
            idcol = ids.cast(pl.String).alias("customer_id") if isinstance(ids, pl.Series) \
                else pl.Series("customer_id", list(ids), dtype=pl.String)
            out = out.insert_column(0, idcol)
        return to_output(out, self._out)

    def contributions(self, X: Any, target: str | None = None) -> np.ndarray:
        """Per-feature contributions to the margin (log-odds before calibration) of one
        target, shape ``(n, n_features + 1)``; the last column is the base value and each
        row sums to the margin. Exact TreeSHAP for LightGBM, ``coef * z`` for logistic;
        not available for HistGradientBoosting or a baseline target."""
        self._check()
        t = self._target(target)
        M, _ = self._matrix(X, fitting=False)
        if self._models[t]["kind"] == "baseline":
            raise ValueError(f"Target {t!r} uses the popularity baseline; it has no features "
                             "to explain it.")
        c = contributions(self._compiled[t], M)
        if c is None:
            raise ValueError("backend='sklearn' (HistGradientBoosting) gives no exact "
                             "contributions; use backend='lightgbm' or 'logistic' for reasons.")
        return c

    def explain(self, X: Any, target: str | None = None, *, top: int = 3, ids: Any = None):
        """The features that raise each row's score most (positive contributions only).

        Returns a long table: ``customer_id`` (or ``row``), ``target``, ``rank``,
        ``feature``, ``value``, ``contribution`` (log-odds).
        """
        t = self._target(target)
        c = self.contributions(X, t)[:, :-1]
        M, _ = self._matrix(X, fitting=False)
        top = int(check_positive(top, "top", "explain"))
        k = min(top, c.shape[1])
        order = np.argsort(-c, axis=1, kind="stable")[:, :k]
        cv = np.take_along_axis(c, order, axis=1)
        xv = np.take_along_axis(M, order, axis=1)
        keep = cv > 0
        n = c.shape[0]
        rid = np.repeat(np.arange(n), k).reshape(n, k)[keep]
        key = ("customer_id", pl.Series(np.asarray(list(ids), dtype=object)[rid].tolist(),
                                        dtype=pl.String)) if ids is not None else \
            ("row", pl.Series(rid, dtype=pl.Int64))
        out = pl.DataFrame({
            key[0]: key[1], "target": pl.Series([t] * int(keep.sum()), dtype=pl.String),
            "rank": np.tile(np.arange(1, k + 1), n).reshape(n, k)[keep].astype(np.int64),
            "feature": pl.Series(self._names()[order[keep]].tolist(), dtype=pl.String),
            "value": xv[keep], "contribution": cv[keep]})
        return to_output(out, self._out)

    def print_summary(self) -> None:
        """Print the per-target table (``summary_``)."""
        self._check()
        n_model = sum(e["kind"] == "model" for e in self._models.values())
        print(f"PropensityModel(backend={self.backend!r}, calibration={self.calibration!r}): "
              f"{len(self.targets_)} targets, {n_model} modelled, "
              f"{len(self.targets_) - n_model} on the popularity baseline")
        with pl.Config(tbl_rows=100, tbl_cols=12, fmt_str_lengths=60):
            print(self.summary_)

    # ------------------------------------------------------------------ persistence
    def to_json(self, path: str | Path | None = None) -> str:
        """The fitted model as a JSON document (data only, never a pickle).

        Envelope: ``format``, ``model`` (class), ``params`` (hyperparameters),
        ``feature_names``, ``state`` (per target: LightGBM model text, or the trees
        or coefficients as arrays, the calibration map, the popularity rates),
        ``summary``, a SHA-256 ``fingerprint`` of the body and library ``versions``.
        """
        self._check()
        body = {
            "format": _FORMAT, "model": type(self).__name__,
            "params": self.get_params(deep=False),
            "feature_names": self._names().tolist(),
            "named_features": hasattr(self, "feature_names_in_"),
            "targets": list(self.targets_),
            "state": self._models,
            "summary": self.summary_.with_columns(pl.selectors.float().fill_nan(None))
            .to_dict(as_series=False),
        }
        doc = dict(body, fingerprint=document_fingerprint(body),
                   versions=library_versions("lightgbm"))
        text = json.dumps(doc, allow_nan=False)
        if path is not None:
            save_json_text(text, path)
        return text

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_json` to ``path`` atomically; load it with :func:`load_model`."""
        self.to_json(path)


def _fit_target_task(shared: tuple, j: int) -> tuple[dict, dict]:
    """Target ``j`` of a fit, in a worker process: its entry and summary row."""
    params, targets, M, Y, fold, levels, hp = shared
    model = PropensityModel(**params)
    model.targets_ = targets
    entry, row, _ = model._fit_target(j, M, Y, fold, levels, hp)
    return entry, row


def load_model(source: str | Path) -> PropensityModel:
    """Load a :class:`PropensityModel` saved with ``save``/``to_json`` (a path, the JSON
    text, or the parsed document as a dict, e.g. a model-store payload).

    Reads data only: LightGBM model text is parsed by LightGBM, trees and
    coefficients are arrays; nothing from the file is executed. A document whose
    fingerprint does not match its content is refused.
    """
    doc = source if isinstance(source, dict) else json.loads(json_text_from(source))
    if doc.get("format") != _FORMAT:
        raise ValueError(f"Not a crmkit propensity model document (format {doc.get('format')!r}).")
    body = {k: doc[k] for k in ("format", "model", "params", "feature_names", "named_features",
                                "targets", "state", "summary")}
    if document_fingerprint(body) != doc.get("fingerprint"):
        raise ValueError("The model document's fingerprint does not match its content; the "
                         "file was changed after it was written. Refit and save it again.")
    if doc["model"] != "PropensityModel":
        raise ValueError(f"The document holds a {doc['model']}, not a PropensityModel.")
    model = PropensityModel(**doc["params"])
    model.targets_ = list(doc["targets"])
    model.n_features_in_ = len(doc["feature_names"])
    if doc["named_features"]:
        model.feature_names_in_ = np.asarray(doc["feature_names"], dtype=object)
    model._models = doc["state"]
    model._compiled = {t: compile_state(e["state"]) for t, e in model._models.items()
                       if e["kind"] == "model"}
    model.params_ = {t: {k: v for k, v in e.items() if k != "state"}
                     for t, e in model._models.items()}
    model.summary_ = pl.DataFrame(doc["summary"]).with_columns(
        pl.selectors.float().fill_null(float("nan")))
    return model

