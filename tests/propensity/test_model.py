"""The propensity estimator: contract, calibration, fallback, persistence."""

import json

import numpy as np
import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from crmkit.propensity import (
    PropensityModel,
    expected_calibration_error,
    load_model,
)


def _data(n=6000, seed=0, p_targets=2):
    rng = np.random.default_rng(seed)
    X = pl.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                      "c": rng.random(n) < 0.3, "tier_rank": rng.integers(0, 3, n)})
    logits = {"T1": -3.0 + 1.5 * X["a"].to_numpy() + 0.8 * X["c"].to_numpy(),
              "T2": -3.5 + 1.2 * X["b"].to_numpy() * (X["a"].to_numpy() > 0)}
    Y = {}
    for t, z in list(logits.items())[:p_targets]:
        y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
        y[rng.random(n) < 0.1] = np.nan  # held already: not eligible
        Y[t] = y
    groups = pl.Series([f"C{i // 2}" for i in range(n)])  # two rows per customer
    return X, pl.DataFrame(Y).fill_nan(None), groups


@pytest.mark.parametrize("backend", ["lightgbm", "sklearn", "logistic"])
def test_loaded_model_scores_identically(backend, tmp_path):
    X, Y, g = _data()
    m = PropensityModel(backend=backend, n_estimators=30).fit(X, Y, groups=g)
    path = tmp_path / "m.json"
    m.save(path)
    doc = json.loads(path.read_text())
    assert doc["format"] == "crmkit.propensity/1" and "pickle" not in path.read_text()
    loaded = load_model(path)
    a = m.predict_propensities(X)
    b = loaded.predict_propensities(X)
    assert a.equals(b)  # bit for bit
    assert load_model(doc).predict_propensities(X).equals(a)
    if backend != "sklearn":
        np.testing.assert_array_equal(m.contributions(X, "T1"), loaded.contributions(X, "T1"))


def test_own_tree_scorer_reproduces_scikit_learn():
    from sklearn.ensemble import HistGradientBoostingClassifier

    from crmkit.propensity._backends import _export_hgb, compile_state, margin
    X, Y, _ = _data()
    M = X.select(pl.all().cast(pl.Float64)).to_numpy()
    M[::7, 0] = np.nan  # missing values follow the stored side
    y = np.nan_to_num(Y["T1"].to_numpy())
    clf = HistGradientBoostingClassifier(max_iter=40, early_stopping=False).fit(M, y)
    mine = margin(compile_state({"kind": "sklearn", **_export_hgb(clf)}), M)
    np.testing.assert_allclose(mine, clf.decision_function(M), rtol=0, atol=1e-12)


def test_lightgbm_contributions_sum_to_the_margin():
    from crmkit.propensity._backends import margin
    X, Y, g = _data()
    m = PropensityModel(n_estimators=40).fit(X, Y, groups=g)
    c = m.contributions(X, "T1")
    M = X.select(pl.all().cast(pl.Float64)).to_numpy()
    np.testing.assert_allclose(c.sum(axis=1), margin(m._compiled["T1"], M), atol=1e-9)
    ex = m.explain(X.head(50), "T1", top=2)
    assert set(ex.columns) == {"row", "target", "rank", "feature", "value", "contribution"}
    assert (ex["contribution"] > 0).all()


ECE_TOLERANCE = 0.01
"""Calibrated propensities on held-out rows: expected calibration error (10
equal-frequency bins) at most 0.01 on rare events with base rates of 3-8%."""


@pytest.mark.parametrize("calibration", ["sigmoid", "isotonic"])
def test_calibrated_on_held_out_data(calibration):
    X, Y, g = _data(n=30_000, seed=1)
    Xt, Yt, _ = _data(n=30_000, seed=2)
    m = PropensityModel(class_weight="balanced", calibration=calibration,
                        n_estimators=40).fit(X, Y, groups=g)
    P = m.predict_propensities(Xt)
    for t in ("T1", "T2"):
        e = Yt[t].is_not_null().to_numpy()
        y, p = Yt[t].to_numpy()[e], P[f"p_{t}"].to_numpy()[e]
        # balanced weights inflate raw scores to ~50%; calibration brings them back
        assert abs(p.mean() - y.mean()) < 0.01
        assert expected_calibration_error(y, p) < ECE_TOLERANCE


def test_too_few_positives_fall_back_to_popularity_within_tier():
    X, Y, g = _data()
    Y = Y.with_columns(pl.when(pl.int_range(pl.len()) < 20).then(pl.col("T2")).otherwise(0.0)
                       .alias("T2"))
    m = PropensityModel(n_estimators=20, min_positives=30).fit(X, Y, groups=g)
    s = m.summary_.filter(pl.col("target") == "T2")
    assert s["model"][0] == "baseline: popularity within tier_rank"
    assert "fewer than min_positives=30" in s["note"][0]
    p = m.predict_propensities(X)["p_T2"]
    rates = m.params_["T2"]["baseline"]["rates"]
    assert set(np.round(p.unique().to_list(), 12)) <= set(np.round(list(rates.values()), 12))
    with pytest.raises(ValueError, match="popularity baseline"):
        m.contributions(X, "T2")


def test_estimator_contract():
    m = PropensityModel(backend="logistic", penalizer=0.5)
    assert clone(m).get_params() == m.get_params()
    with pytest.raises(TypeError):
        PropensityModel("logistic")  # keyword-only
    X, Y, g = _data(p_targets=1)
    assert m.fit(X, Y, groups=g) is m
    assert m.targets_ == ["T1"] and list(m.feature_names_in_) == X.columns
    assert m.predict_proba(X).shape == (X.height, 2)
    assert isinstance(m.set_output(transform="pandas").predict_propensities(X).iloc[:1],
                      object)
    assert type(m.predict_propensities(X)).__module__.startswith("pandas")
    m.print_summary()


def test_bad_input_messages():
    X, Y, g = _data()
    with pytest.raises(ValueError, match="The 'backend' parameter of PropensityModel"):
        PropensityModel(backend="xgb").fit(X, Y)
    with pytest.raises(ValueError, match="labels must be 0, 1 or null"):
        PropensityModel().fit(X, Y.with_columns(pl.col("T1") * 2))
    with pytest.raises(ValueError, match="must be numeric or boolean"):
        PropensityModel().fit(X.with_columns(pl.lit("x").alias("name")), Y)
    m = PropensityModel(n_estimators=5).fit(X, Y, groups=g)
    with pytest.raises(ValueError, match="missing 1 column"):
        m.predict_propensities(X.drop("b"))
    with pytest.raises(Exception, match="fingerprint"):
        doc = json.loads(m.to_json())
        doc["targets"] = ["T1"]
        load_model(doc)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.5, 40.0), rate=st.floats(0.005, 0.3))
@example(seed=775, scale=0.5, rate=0.005)  # no signal: the likelihood's slope was negative
def test_platt_keeps_the_ranking_even_when_classes_nearly_separate(seed, scale, rate):
    """Platt's map is increasing and computed without underflow, so it never ties or
    reorders scores: the calibrated AUC equals the margin's. (Plain Newton steps
    diverged to a = 5.7e10 on a nearly separable product and tied 14,632 of 15,379
    backtest customers at probability 0.)"""
    from sklearn.metrics import roc_auc_score

    from crmkit.propensity._calibration import apply_calibration, fit_calibration
    rng = np.random.default_rng(seed)
    y = (rng.random(4000) < rate).astype(float)
    y[:2] = [0.0, 1.0]
    m = rng.normal(size=4000) + scale * (y - 0.5) - 3.0
    cal = fit_calibration(m, y, "sigmoid")
    assert np.isfinite([cal["a"], cal["b"]]).all() and 0 < cal["a"] < 1e3
    p = apply_calibration(cal, m)
    order = np.argsort(m)
    assert (np.diff(p[order]) >= 0).all()
    assert np.unique(p).size == np.unique(m).size or p.max() == 1.0
    assert roc_auc_score(y, p) == pytest.approx(roc_auc_score(y, m), abs=1e-12)


@pytest.mark.parametrize("backend", ["lightgbm", "sklearn"])
def test_rounds_chosen_on_the_customer_folds(backend):
    """With early stopping the rounds kept minimise the held-out loss summed over the
    folds (fewer than the maximum on this small, simple data), the refit has exactly
    that many, and the loaded model agrees; without it every fit grows them all."""
    X, Y, g = _data(n=4000, seed=3)
    m = PropensityModel(backend=backend, n_estimators=150, min_child_samples=20,
                        penalizer=0.0).fit(X, Y, groups=g)
    for t in ("T1", "T2"):
        n = m.params_[t]["n_trees"]
        assert 1 <= n < 150 and m.summary_.filter(pl.col("target") == t)["n_trees"][0] == n
        state = m._models[t]["state"]
        grown = (len(state["trees"]) if backend == "sklearn" else
                 state["model"].count("Tree="))
        assert grown == n
    again = load_model(m.to_json())
    assert again.predict_propensities(X).equals(m.predict_propensities(X))
    fixed = PropensityModel(backend=backend, n_estimators=30, early_stopping=False,
                            min_child_samples=20).fit(X, Y, groups=g)
    assert fixed.params_["T1"]["n_trees"] == 30


@pytest.mark.parametrize("backend,processes", [("lightgbm", False), ("lightgbm", True),
                                               ("logistic", False)])
def test_the_fit_does_not_depend_on_n_jobs(backend, processes, monkeypatch):
    # several targets: each booster on one thread (LightGBM targets spread over worker
    # processes on a fit large enough, logistic ones over threads), so any n_jobs must
    # give the same model to the last bit (a nightly run's outputs may not depend on
    # the cores of the machine that fitted it)
    import crmkit._processes
    import crmkit.propensity._model as model_module

    started = []
    real = crmkit._processes.map_in_processes
    monkeypatch.setattr(crmkit._processes, "map_in_processes",
                        lambda *a, **k: started.append(k["workers"]) or real(*a, **k))
    monkeypatch.setattr(model_module, "_PROCESS_MIN_CELLS", 1 if processes else 10**12)
    X, Y, g = _data(n=4000, seed=5)
    Y = Y.with_columns(T3=Y["T1"], T4=Y["T2"])
    one = PropensityModel(backend=backend, n_estimators=40, n_jobs=1).fit(X, Y, groups=g)
    many = PropensityModel(backend=backend, n_estimators=40, n_jobs=3).fit(X, Y, groups=g)
    assert started == ([3] if processes else [])
    assert json.loads(one.to_json())["state"] == json.loads(many.to_json())["state"]
    assert one.predict_propensities(X).equals(many.predict_propensities(X))
    assert one.summary_.equals(many.summary_)


def test_workers_that_cannot_start_leave_the_same_fit_in_line(monkeypatch):
    # a machine where no worker process starts: a warning, and the fit of n_jobs=1
    import crmkit._processes
    import crmkit.propensity._model as model_module
    from crmkit.exceptions import CrmkitWarning

    monkeypatch.setattr(model_module, "_PROCESS_MIN_CELLS", 1)
    X, Y, g = _data(n=2000, seed=7)
    one = PropensityModel(n_estimators=20, n_jobs=1).fit(X, Y, groups=g)
    monkeypatch.setattr(crmkit._processes.sys, "executable", "/nonexistent/python3")
    with pytest.warns(CrmkitWarning, match="could not start a worker process.*in this process"):
        two = PropensityModel(n_estimators=20, n_jobs=2).fit(X, Y, groups=g)
    assert json.loads(one.to_json())["state"] == json.loads(two.to_json())["state"]
