"""Survival estimators: recovery of known effects, predictions, persistence, sklearn use."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from crmkit.churn import CoxPH, KaplanMeierBaseline, WeibullAFT, load_model, make_y


def _synthetic(n=1500, seed=0, censor=400.0):
    rng = np.random.default_rng(seed)
    X = pl.DataFrame({"complaints": rng.poisson(1.0, n).astype(float),
                      "assets": rng.normal(size=n),
                      "tier": rng.choice(["gold", "base"], n)})
    lp = 0.6 * X["complaints"].to_numpy() - 0.4 * X["assets"].to_numpy()
    scale = np.where(X["tier"].to_numpy() == "gold", 600.0, 200.0)
    t = scale * rng.exponential(size=n) / np.exp(lp)
    c = rng.uniform(50, censor, n)
    return X, make_y(np.minimum(t, c) + 0.5, t <= c), rng


@pytest.fixture(scope="module")
def data():
    return _synthetic()


@pytest.fixture(scope="module")
def cox(data):
    X, y, _ = data
    return CoxPH(unit="days", strata="tier").fit(X, y)


def test_cox_recovers_effects_with_strata(cox):
    np.testing.assert_allclose(cox.coef_, [0.6, -0.4], atol=0.08)
    assert cox.covariates_ == ["complaints", "assets"]
    assert sorted(cox.strata_keys_) == ["base", "gold"]


def test_conditional_churn_probability_matches_survival_ratio(cox, data):
    X, _, _ = data
    Xs = X[:50]
    a = np.linspace(0, 100, 50)
    out = cox.predict_churn(Xs, horizons_days=(30, 90), elapsed=a, lifetime=False)
    S = np.column_stack([np.diag(cox.predict_survival(Xs, a + h)) for h in (30, 90)])
    Sa = np.diag(cox.predict_survival(Xs, a))
    np.testing.assert_allclose(out.to_numpy(), 1 - S / Sa[:, None], rtol=1e-10, atol=1e-12)
    # unconditional probabilities grow with the horizon
    p = cox.predict_churn(Xs, lifetime=False).to_numpy()
    assert np.all(np.diff(p, axis=1) >= 0)


def test_restricted_mean_and_median_against_numerical_integration(cox, data):
    X, _, _ = data
    Xs, a = X[:20], np.full(20, 25.0)
    out = cox.predict_churn(Xs, elapsed=a)
    grid = np.linspace(25.0, 25.0 + 365, 36501)
    S = cox.predict_survival(Xs, grid, elapsed=a)
    rmst = np.sum(S[:, :-1] * np.diff(grid), axis=1)
    np.testing.assert_allclose(out["restricted_mean_days"].to_numpy(), rmst, rtol=2e-3)
    med = out["median_remaining_days"].to_numpy()
    for i in range(20):
        if np.isfinite(med[i]):
            assert cox.predict_survival(Xs[i], [25 + med[i]], elapsed=[25.0])[0, 0] <= 0.5
            assert cox.predict_survival(Xs[i], [25 + med[i] - 1e-6], elapsed=[25.0])[0, 0] > 0.5


def test_weibull_lifetime_closed_form():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 1))
    t = np.exp(4 + 0.3 * x[:, 0]) * rng.weibull(1.5, 600)
    m = WeibullAFT(rmst_horizon_days=200).fit(x, make_y(t, np.ones(600, bool)))
    lam = np.exp(m.intercept_ + m.aft_coef_[0] * x[:5, 0])
    rho = np.exp(-m.log_scale_)
    out = m.predict_churn(x[:5], horizons_days=(30,), elapsed=np.full(5, 10.0))
    S = lambda s: np.exp(-(s / lam) ** rho)  # noqa: E731
    np.testing.assert_allclose(out["churn_prob_30d"], 1 - S(40.0) / S(10.0), rtol=1e-9)
    med = lam * ((10 / lam) ** rho + np.log(2)) ** (1 / rho) - 10
    np.testing.assert_allclose(out["median_remaining_days"], med, rtol=1e-9)
    from scipy.integrate import quad
    rm = [quad(lambda s, i=i: S(s)[i] / S(10.0)[i], 10, 210)[0] for i in range(5)]
    np.testing.assert_allclose(out["restricted_mean_days"], rm, rtol=1e-8)


def test_reason_codes_are_the_largest_positive_contributions(cox, data):
    X, _, _ = data
    Xs = X[:30]
    rc = cox.reason_codes(Xs, top=2, ids=[f"c{i}" for i in range(30)])
    contrib = (Xs.select(cox.covariates_).to_numpy() - cox.means_) * cox.coef_
    for r in rc.iter_rows(named=True):
        i = int(r["customer_id"][1:])
        j = cox.covariates_.index(r["covariate"])
        assert r["contribution"] == pytest.approx(contrib[i, j])
        assert r["contribution"] > 0
        assert r["contribution"] == pytest.approx(np.sort(contrib[i])[::-1][r["rank"] - 1])
    assert rc["hazard_ratio"].to_numpy() == pytest.approx(np.exp(rc["contribution"].to_numpy()))


def test_save_and_crmkit_load_model_round_trip(cox, data, tmp_path):
    import crmkit
    X, _, _ = data
    path = cox.save(tmp_path / "m.json", training_window=("2024-01-01", "2024-12-31"),
                    metrics={"c_index": 0.7})
    doc = json.loads(path.read_text())  # strict JSON: no NaN or Infinity tokens
    assert doc["format"] == "crmkit.model/1" and doc["class"] == "CoxPH"
    assert doc["training_window"] == {"start": "2024-01-01", "end": "2024-12-31"}
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()
    loaded = crmkit.load_model(path)
    assert type(loaded) is CoxPH and loaded.get_params() == cox.get_params()
    assert loaded.metadata_["metrics"] == {"c_index": 0.7}
    a, b = loaded.predict_churn(X[:100]), cox.predict_churn(X[:100])
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), equal_nan=True)
    assert loaded.summary_.equals(cox.summary_)


def test_legacy_json_round_trip_and_tamper_detection(cox, data, tmp_path):
    X, _, _ = data
    path = tmp_path / "m.json"
    with pytest.warns(FutureWarning, match="'to_json' is deprecated"):
        cox.to_json(path)
    with pytest.warns(FutureWarning, match="crmkit.churn.load_model is deprecated"):
        loaded = load_model(path)
    assert loaded.get_params() == cox.get_params()
    a, b = loaded.predict_churn(X[:100]), cox.predict_churn(X[:100])
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), equal_nan=True)
    doc = json.loads(path.read_text())
    assert doc["versions"]["lifelines"] and len(doc["fingerprint"]) == 64
    doc["state"]["coef_"]["__array__"][0] = 9.0
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="fingerprint"), pytest.warns(FutureWarning):
        load_model(path)
    with pytest.raises(ValueError, match="not a WeibullAFT"), pytest.warns(FutureWarning):
        WeibullAFT.from_json(cox.to_json())


def test_unseen_stratum_is_refused_but_km_falls_back(cox, data):
    X, y, _ = data
    new = X[:2].with_columns(pl.lit("platinum").alias("tier"))
    with pytest.raises(ValueError, match="platinum"):
        cox.predict(new)
    km = KaplanMeierBaseline(unit="days", segments="tier").fit(X, y)
    pooled = KaplanMeierBaseline(unit="days").fit(X, y)
    np.testing.assert_allclose(km.predict_survival(new, [100.0]),
                               pooled.predict_survival(X[:2], [100.0]))


def test_late_entry_matches_lifelines():
    from lifelines import CoxPHFitter
    rng = np.random.default_rng(5)
    n = 800
    x = rng.normal(size=n)
    t = 100 * rng.exponential(size=n) / np.exp(0.5 * x)
    entry = rng.uniform(0, 30, n)
    keep = t > entry
    x, t, entry = x[keep], t[keep], entry[keep]
    c = entry + rng.uniform(20, 150, x.size)
    d, e = np.minimum(t, c), t <= c
    m = CoxPH(unit="days").fit(pl.DataFrame({"x": x}), make_y(d, e, entry))
    import pandas as pd
    ref = CoxPHFitter().fit(pd.DataFrame({"x": x, "d": d, "e": e, "s": entry}), "d", "e",
                            entry_col="s")
    assert m.coef_[0] == pytest.approx(ref.params_["x"], rel=1e-6)
    from lifelines import KaplanMeierFitter, WeibullAFTFitter
    frame = pd.DataFrame({"x": x, "d": d, "e": e, "s": entry})
    w = WeibullAFT(unit="days").fit(pl.DataFrame({"x": x}), make_y(d, e, entry))
    wref = WeibullAFTFitter().fit(frame, "d", "e", entry_col="s")
    assert w.aft_coef_[0] == pytest.approx(wref.params_[("lambda_", "x")], rel=1e-5)
    km = KaplanMeierBaseline(unit="days").fit(np.zeros((x.size, 1)), make_y(d, e, entry))
    kref = KaplanMeierFitter().fit(d, e, entry=entry)
    t = np.array([10.0, 50.0, 100.0])
    np.testing.assert_allclose(km.predict_survival(np.zeros((1, 1)), t)[0],
                               kref.survival_function_at_times(t).to_numpy(), rtol=1e-10)


def test_sklearn_clone_pipeline_cv_and_grid_search(data):
    X, y, _ = data
    Xn = X.drop("tier").to_numpy()
    est = CoxPH(unit="days", penalizer=0.1)
    assert clone(est).get_params() == est.get_params()
    pipe = make_pipeline(StandardScaler(), CoxPH(unit="days"))
    scores = cross_val_score(pipe, Xn, y, cv=KFold(3, shuffle=True, random_state=0))
    assert np.all(scores > 0.6)
    grid = GridSearchCV(CoxPH(unit="days"), {"penalizer": [0.0, 1.0]}, cv=3).fit(Xn, y)
    assert len(grid.cv_results_["mean_test_score"]) == 2 and grid.best_score_ > 0.6
    np.testing.assert_allclose(grid.best_estimator_.predict(Xn[:5]), grid.predict(Xn[:5]))
    with pytest.raises(Exception, match="not fitted"):
        CoxPH(unit="days").predict(Xn)


def test_bad_parameters_use_the_standard_message(data):
    X, y, _ = data
    with pytest.raises(ValueError, match=r"The 'penalizer' parameter of CoxPH must be a "
                                         r"float in the range \[0, inf\). Got -1 instead."):
        CoxPH(unit="days", penalizer=-1).fit(X.drop("tier"), y)
    with pytest.raises(ValueError, match="'unit' parameter of WeibullAFT must be None or a "
                                         "str among"):
        WeibullAFT(unit="months").fit(X.drop("tier"), y)
    with pytest.raises(ValueError, match="'time_unit' parameter of WeibullAFT"):
        WeibullAFT(time_unit="months").fit(X.drop("tier"), y)
    with pytest.raises(ValueError, match="must be numeric.*tier"):
        CoxPH(unit="days").fit(X, y)


def test_no_events_is_refused(data):
    X, y, _ = data
    y2 = y.copy()
    y2["event"] = False
    with pytest.raises(ValueError, match="no events"):
        CoxPH(unit="days").fit(X.drop("tier"), y2)


def test_extrapolation_warning_and_weibull_extrapolates(data):
    X, y, _ = data
    Xn = X.drop("tier")
    cox = CoxPH(unit="days").fit(Xn, y)
    with pytest.warns(UserWarning, match="beyond the longest duration"):
        cox.predict_churn(Xn[:3], horizons_days=(1000,))
    w = WeibullAFT(unit="days").fit(Xn, y)
    p = w.predict_churn(Xn[:3], horizons_days=(500, 1000), lifetime=False).to_numpy()
    assert np.all(p[:, 1] > p[:, 0])


def test_every_input_type(data, as_input):
    X, y, _ = data
    Xn = X.drop("tier")[:300]
    m = CoxPH(unit="days").fit(as_input(Xn), y[:300])
    ref = CoxPH(unit="days").fit(Xn, y[:300])
    np.testing.assert_allclose(m.predict(as_input(Xn)), ref.predict(Xn))


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 600), min_size=1, max_size=20),
       st.lists(st.floats(1, 900), min_size=1, max_size=4, unique=True))
def test_probabilities_are_valid_and_monotone(cox, data, elapsed, horizons):
    X, _, _ = data
    Xs = X[: len(elapsed)]
    hz = sorted(horizons)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = cox.predict_churn(Xs, horizons_days=hz, elapsed=np.asarray(elapsed))
    p = out.select([c for c in out.columns if c.startswith("churn_prob_")]).to_numpy()
    assert np.all((p >= 0) & (p <= 1))
    assert np.all(np.diff(p, axis=1) >= -1e-12)
    rm = out["restricted_mean_days"].to_numpy()
    assert np.all((rm >= 0) & (rm <= 365 + 1e-9))
