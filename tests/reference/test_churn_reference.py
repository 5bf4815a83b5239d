"""Survival churn models reproduce published results on real data.

- Cox PH on Rossi, ``Surv(week, arrest) ~ fin + age + race + wexp + mar + paro +
  prio``, Efron ties: coefficients -0.3794, -0.0574, 0.3139, -0.1498, -0.4337,
  -0.0849, 0.0915; partial log-likelihood -658.75; concordance 0.64 (R survival,
  ``coxph``; Fox & Weisberg, "Cox Proportional-Hazards Regression for Survival
  Data in R", appendix to An R Companion to Applied Regression).
- Weibull AFT on Rossi, R ``survreg(Surv(week, arrest) ~ ..., dist="weibull")``:
  (Intercept) 3.99, fin 0.272, age 0.0407, race -0.225, wexp 0.107, mar 0.311,
  paro 0.0588, prio -0.0658, Log(scale) -0.339; log-likelihood -679.9. These are
  survreg's published figures as quoted in the issue; they were checked
  independently here against lifelines' ``WeibullAFTFitter`` (which its docs show
  matching survreg on this data): lifelines gives 3.9901, 0.2722, 0.0407,
  -0.2248, 0.1066, 0.3113, 0.0588, -0.0658, rho_ intercept 0.3391 (= -Log(scale)),
  LL -679.917.
- IBM Telco (tenure in months, Churn): a Cox model on a held-out split beats a
  Kaplan-Meier-only baseline on the integrated Brier score.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from crmkit.churn import CoxPH, KaplanMeierBaseline, WeibullAFT, frame_to_xy, make_y
from crmkit.churn.metrics import concordance_index_harrell, evaluate

R_COX = {"fin": -0.3794, "age": -0.0574, "race": 0.3139, "wexp": -0.1498, "mar": -0.4337,
         "paro": -0.0849, "prio": 0.0915}
R_SURVREG = {"fin": 0.272, "age": 0.0407, "race": -0.225, "wexp": 0.107, "mar": 0.311,
             "paro": 0.0588, "prio": -0.0658}


@pytest.fixture(scope="module")
def rossi(reference_dir):
    from crmkit.datasets import load_rossi
    X, y = frame_to_xy(load_rossi(), "week", "arrest")
    return X.select(list(R_COX)), y


def test_cox_rossi_matches_r(rossi):
    X, y = rossi
    m = CoxPH(unit="weeks").fit(X, y)
    assert m.covariates_ == list(R_COX)
    np.testing.assert_allclose(m.coef_, list(R_COX.values()), atol=5e-5)
    assert m.log_likelihood_ == pytest.approx(-658.75, abs=5e-3)
    assert round(m.score(X, y), 2) == 0.64
    assert round(concordance_index_harrell(y["duration"], y["event"], m.predict(X)), 2) == 0.64
    assert m.screening_report_.height == 0
    # exp(coef) and standard errors (R: se(fin) = 0.1914, se(prio) = 0.02865)
    se = dict(zip(m.summary_["covariate"], m.summary_["se(coef)"]))
    assert se["fin"] == pytest.approx(0.1914, abs=1e-4)
    assert se["prio"] == pytest.approx(0.02865, abs=1e-5)


def test_cox_rossi_in_a_pipeline_and_cv(rossi):
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    X, y = rossi
    scores = cross_val_score(make_pipeline(StandardScaler(), CoxPH(unit="weeks")),
                             X.to_numpy(), y, cv=KFold(5, shuffle=True, random_state=0))
    assert scores.shape == (5,)
    assert 0.55 < scores.mean() < 0.7


def test_cox_rossi_saved_model_predicts_identically_without_lifelines(rossi, tmp_path):
    import subprocess
    import sys
    X, y = rossi
    m = CoxPH(unit="weeks").fit(X, y)
    path = m.save(tmp_path / "cox.json")
    X.write_parquet(tmp_path / "X.parquet")
    expected = m.predict_churn(X, (4, 13), elapsed=np.full(X.height, 4.0))
    code = (
        "import sys; sys.modules['lifelines'] = None\n"  # any lifelines import would fail
        "import numpy as np, polars as pl\n"
        "import crmkit\n"
        f"m = crmkit.load_model({str(path)!r})\n"
        f"X = pl.read_parquet({str(tmp_path / 'X.parquet')!r})\n"
        "out = m.predict_churn(X, (4, 13), elapsed=np.full(X.height, 4.0))\n"
        f"out.write_parquet({str(tmp_path / 'out.parquet')!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    got = pl.read_parquet(tmp_path / "out.parquet")
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-12)


def test_weibull_rossi_matches_survreg(rossi):
    X, y = rossi
    m = WeibullAFT(unit="weeks").fit(X, y)
    assert m.intercept_ == pytest.approx(3.99, abs=5e-3)
    for name, beta in zip(m.covariates_, m.aft_coef_):
        assert beta == pytest.approx(R_SURVREG[name], abs=5e-4 if abs(R_SURVREG[name]) < .1
                                     else 5e-3), name
    assert m.log_scale_ == pytest.approx(-0.339, abs=5e-4)
    assert m.log_likelihood_ == pytest.approx(-679.92, abs=5e-3)
    # its proportional-hazards form: coef_ = -beta / scale
    np.testing.assert_allclose(m.coef_, -m.aft_coef_ * np.exp(-m.log_scale_))


@pytest.fixture(scope="module")
def telco_split(reference_dir):
    from sklearn.model_selection import train_test_split

    from crmkit.datasets import load_telco
    t = load_telco().filter(pl.col("tenure") > 0)  # 11 customers with no time at risk yet
    cats = ["gender", "Partner", "Dependents", "PhoneService", "MultipleLines",
            "InternetService", "OnlineSecurity", "OnlineBackup", "DeviceProtection",
            "TechSupport", "StreamingTV", "StreamingMovies", "Contract", "PaperlessBilling",
            "PaymentMethod"]
    X = t.select(["SeniorCitizen", "MonthlyCharges", *cats]).to_dummies(cats, drop_first=True)
    y = make_y(t["tenure"].to_numpy(), t["churned"].to_numpy())
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y["event"])


def test_telco_cox_beats_kaplan_meier_on_heldout_brier(telco_split):
    Xtr, Xte, ytr, yte = telco_split
    horizons = (90, 180, 365, 730)
    with pytest.warns(Warning, match="collinear"):
        cox = CoxPH(unit="mean_months", penalizer=0.01).fit(Xtr, ytr)
    km = KaplanMeierBaseline(unit="mean_months").fit(Xtr, ytr)
    rc = evaluate(cox, Xte, yte, y_train=ytr, horizons_days=horizons)
    rk = evaluate(km, Xte, yte, y_train=ytr, horizons_days=horizons)
    assert rc["integrated_brier"] < 0.75 * rk["integrated_brier"]
    assert rc["c_index_harrell"] > 0.8 and rc["c_index_uno"] > 0.8
    assert all(a > 0.85 for a in rc["auc"].values())
    assert rk["c_index_harrell"] == pytest.approx(0.5)
    cal = rc["calibration"]
    assert cal.height == 10
    # calibrated within 0.1 in every risk decile at 730 days
    assert float((cal["predicted"] - cal["observed"]).abs().max()) < 0.1


def test_strata_and_penalty_match_lifelines_directly(rossi):
    """crmkit combines several strata columns into one key and penalises through
    lifelines; the fit must equal lifelines' own stratified / penalised fit."""
    from lifelines import CoxPHFitter
    X, y = rossi
    df = X.to_pandas()
    df["week"], df["arrest"] = y["duration"], y["event"].astype(int)
    ours = CoxPH(unit="weeks", strata=["wexp", "race"]).fit(X, y)
    ref = CoxPHFitter(strata=["wexp", "race"]).fit(df, "week", "arrest")
    np.testing.assert_allclose(ours.coef_, ref.params_[ours.covariates_].to_numpy(), rtol=1e-6)
    assert ours.log_likelihood_ == pytest.approx(ref.log_likelihood_, rel=1e-9)
    # survival of the first customer at week 30 (stratum baseline x relative hazard)
    s_ref = float(ref.predict_survival_function(df.iloc[[0]], times=[30.0]).iloc[0, 0])
    assert ours.predict_survival(X[:1], [30.0])[0, 0] == pytest.approx(s_ref, rel=1e-6)
    pen = CoxPH(unit="weeks", penalizer=0.1).fit(X, y)
    ref_pen = CoxPHFitter(penalizer=0.1).fit(df, "week", "arrest")
    np.testing.assert_allclose(pen.coef_, ref_pen.params_[pen.covariates_].to_numpy(), rtol=1e-6)
    s_ref = ref_pen.predict_survival_function(df.iloc[:5], times=[10.0, 40.0]).to_numpy().T
    np.testing.assert_allclose(pen.predict_survival(X[:5], [10.0, 40.0]), s_ref, rtol=1e-6)


def test_weibull_survival_matches_lifelines(rossi):
    from lifelines import WeibullAFTFitter
    X, y = rossi
    df = X.to_pandas()
    df["week"], df["arrest"] = y["duration"], y["event"].astype(int)
    ours = WeibullAFT(unit="weeks").fit(X, y)
    ref = WeibullAFTFitter().fit(df, "week", "arrest")
    times = [5.0, 26.0, 52.0, 104.0]
    np.testing.assert_allclose(ours.predict_survival(X[:10], times),
                               ref.predict_survival_function(df.iloc[:10], times=times)
                               .to_numpy().T, rtol=1e-6)
    np.testing.assert_allclose(ours.predict_churn(X[:10], lifetime=True)[
        "median_remaining_weeks"].to_numpy(), ref.predict_median(df.iloc[:10]).to_numpy(),
        rtol=1e-6)
    # lifelines' name gives lifelines' frame: rows are times, columns customers
    np.testing.assert_allclose(ours.predict_survival_function(X[:10], times).to_numpy(),
                               ref.predict_survival_function(df.iloc[:10], times=times)
                               .to_numpy(), rtol=1e-6)
