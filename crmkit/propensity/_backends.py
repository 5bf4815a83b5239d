"""Per-target scorers that live as plain data: fit with a library, predict from arrays.

Each backend turns a feature matrix into a *margin* (log-odds before calibration)
and, where the model allows it exactly, per-feature contributions that sum to that
margin:

- ``lightgbm``: the booster's own model text (``Booster.model_to_string``), loaded
  back with ``Booster(model_str=...)``, which parses numbers and executes nothing;
  contributions are LightGBM's exact TreeSHAP (``pred_contrib``).
- ``sklearn``: scikit-learn's ``HistGradientBoostingClassifier``; its trees are
  exported as JSON arrays (feature, threshold, missing-goes-left, children, leaf
  value) and scored by :func:`_tree_margin` below, which follows the same rule
  as scikit-learn (``x <= threshold`` goes left, NaN follows the stored side);
  no contributions.
- ``logistic``: scikit-learn's ``LogisticRegression`` on standardised features
  (missing values replaced by the training median); contributions are
  ``coef_j * z_j``, the change from the average customer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["BACKENDS", "PATIENCE", "contributions", "fit_backend", "margin", "truncate"]

BACKENDS = ("lightgbm", "sklearn", "logistic")


def _lightgbm():
    try:
        import lightgbm
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError("backend='lightgbm' needs LightGBM: pip install 'crmkit[propensity]', "
                          "or use backend='sklearn' (HistGradientBoosting) or 'logistic'.") from err
    return lightgbm


PATIENCE = 20  # boosting rounds without a better held-out loss before a fold fit stops


def _log_loss(y: np.ndarray, m: np.ndarray) -> float:
    return float(np.mean(np.logaddexp(0.0, m) - y * m))


def fit_backend(backend: str, X: np.ndarray, y: np.ndarray, w: np.ndarray | None,
                hp: dict[str, Any], valid: tuple[np.ndarray, np.ndarray] | None = None
                ) -> tuple[dict[str, Any], np.ndarray | None]:
    """Fit one target; return its state as JSON-ready data and, with ``valid`` (held-out
    rows and labels) and a tree backend, the held-out log loss after each boosting
    round (LightGBM stops ``PATIENCE`` rounds after the best one)."""
    if backend == "lightgbm":
        lgb = _lightgbm()
        params = {
            "objective": "binary", "learning_rate": hp["learning_rate"],
            "num_leaves": hp["num_leaves"], "min_data_in_leaf": hp["min_child_samples"],
            "lambda_l2": hp["penalizer"], "bagging_fraction": 1.0,
            "feature_fraction": 0.9,  # the figures in docs/propensity.md were fitted with it
            "max_bin": hp["max_bin"], "seed": hp["random_state"], "deterministic": True,
            "force_col_wise": True, "num_threads": hp["n_jobs"], "verbose": -1,
        }
        data = lgb.Dataset(X, label=y, weight=w, free_raw_data=True,
                           params={"max_bin": hp["max_bin"], "verbose": -1})
        if valid is None:
            booster = lgb.train(params, data, num_boost_round=hp["n_estimators"])
            return {"kind": "lightgbm", "model": booster.model_to_string()}, None
        record: dict = {}
        vdata = lgb.Dataset(valid[0], label=valid[1], reference=data)
        booster = lgb.train(
            dict(params, metric="binary_logloss"), data, num_boost_round=hp["n_estimators"],
            valid_sets=[vdata], valid_names=["held_out"],
            callbacks=[lgb.record_evaluation(record),
                       lgb.early_stopping(PATIENCE, first_metric_only=True, verbose=False)])
        curve = np.asarray(record["held_out"]["binary_logloss"], dtype=float)
        # every round grown (not only the fold's best): the rounds kept are chosen
        # over all folds
        return {"kind": "lightgbm", "model": booster.model_to_string(num_iteration=-1)}, curve
    if backend == "sklearn":
        from sklearn.ensemble import HistGradientBoostingClassifier
        clf = HistGradientBoostingClassifier(
            max_iter=hp["n_estimators"], learning_rate=hp["learning_rate"],
            max_leaf_nodes=hp["num_leaves"], min_samples_leaf=hp["min_child_samples"],
            l2_regularization=hp["penalizer"], max_bins=min(hp["max_bin"], 255),
            early_stopping=False,
            random_state=hp["random_state"])
        clf.fit(X, y, sample_weight=w)
        curve = None
        if valid is not None:
            curve = np.array([_log_loss(valid[1], np.ravel(m))
                              for m in clf.staged_decision_function(valid[0])])
        return {"kind": "sklearn", **_export_hgb(clf)}, curve
    from sklearn.linear_model import LogisticRegression
    med = np.nanmedian(X, axis=0) if X.shape[0] else np.zeros(X.shape[1])
    med = np.where(np.isfinite(med), med, 0.0)
    Xf = np.where(np.isnan(X), med, X)
    mean, scale = Xf.mean(axis=0), Xf.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    Z = (Xf - mean) / scale
    pen = hp["penalizer"]
    lr = LogisticRegression(C=1.0 / pen if pen > 0 else np.inf, max_iter=2000,
                            solver="lbfgs")
    lr.fit(Z, y, sample_weight=w)
    return {"kind": "logistic", "median": med.tolist(), "mean": mean.tolist(),
            "scale": scale.tolist(), "coef": lr.coef_[0].tolist(),
            "intercept": float(lr.intercept_[0])}, None


def truncate(state: dict[str, Any], n_trees: int) -> dict[str, Any]:
    """The state with its first ``n_trees`` boosting rounds only (tree backends)."""
    if state["kind"] == "lightgbm":
        booster = _lightgbm().Booster(model_str=state["model"])
        return {"kind": "lightgbm", "model": booster.model_to_string(num_iteration=n_trees)}
    if state["kind"] == "sklearn":
        return dict(state, trees=state["trees"][:n_trees])
    return state


def _export_hgb(clf) -> dict[str, Any]:
    trees = []
    for (pred,) in clf._predictors:
        nodes = pred.nodes
        if nodes["is_categorical"].any():  # pragma: no cover - we never pass categories
            raise ValueError("categorical splits are not exported")
        trees.append({
            "feature": nodes["feature_idx"].astype(int).tolist(),
            "threshold": nodes["num_threshold"].astype(float).tolist(),
            "missing_left": nodes["missing_go_to_left"].astype(bool).tolist(),
            "left": nodes["left"].astype(int).tolist(),
            "right": nodes["right"].astype(int).tolist(),
            "leaf": nodes["is_leaf"].astype(bool).tolist(),
            "value": nodes["value"].astype(float).tolist(),
        })
    return {"baseline": float(np.ravel(clf._baseline_prediction)[0]), "trees": trees}


class _Compiled:
    """Arrays (or a LightGBM booster) rebuilt from the state, cached per model."""

    def __init__(self, state: dict[str, Any]):
        self.kind = state["kind"]
        if self.kind == "lightgbm":
            self.booster = _lightgbm().Booster(model_str=state["model"])
        elif self.kind == "sklearn":
            self.baseline = state["baseline"]
            self.trees = [{k: np.asarray(v) for k, v in t.items()} for t in state["trees"]]
        else:
            self.median = np.asarray(state["median"], dtype=float)
            self.mean = np.asarray(state["mean"], dtype=float)
            self.scale = np.asarray(state["scale"], dtype=float)
            self.coef = np.asarray(state["coef"], dtype=float)
            self.intercept = float(state["intercept"])


def compile_state(state: dict[str, Any]) -> _Compiled:
    return _Compiled(state)


def _tree_margin(c: _Compiled, X: np.ndarray) -> np.ndarray:
    out = np.full(X.shape[0], c.baseline, dtype=float)
    rows = np.arange(X.shape[0])
    for t in c.trees:
        node = np.zeros(X.shape[0], dtype=np.int64)
        active = ~t["leaf"][node]
        while active.any():
            r, nd = rows[active], node[active]
            x = X[r, t["feature"][nd]]
            left = np.where(np.isnan(x), t["missing_left"][nd], x <= t["threshold"][nd])
            node[active] = np.where(left, t["left"][nd], t["right"][nd])
            active = ~t["leaf"][node]
        out += t["value"][node]
    return out


def margin(c: _Compiled, X: np.ndarray) -> np.ndarray:
    """Uncalibrated log-odds for each row of ``X``."""
    if c.kind == "lightgbm":
        return np.asarray(c.booster.predict(X, raw_score=True), dtype=float)
    if c.kind == "sklearn":
        return _tree_margin(c, X)
    Z = (np.where(np.isnan(X), c.median, X) - c.mean) / c.scale
    return Z @ c.coef + c.intercept


def contributions(c: _Compiled, X: np.ndarray) -> np.ndarray | None:
    """Per-feature contributions to the margin, last column the base value; rows sum
    to :func:`margin`. None for the HistGradientBoosting backend."""
    if c.kind == "lightgbm":
        return np.asarray(c.booster.predict(X, pred_contrib=True), dtype=float)
    if c.kind == "logistic":
        Z = (np.where(np.isnan(X), c.median, X) - c.mean) / c.scale
        return np.column_stack([Z * c.coef, np.full(X.shape[0], c.intercept)])
    return None
