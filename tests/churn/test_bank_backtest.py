"""On the sample bank, a model trained on history ranks next-90-day leavers above stayers."""

from __future__ import annotations

import warnings

import pytest

from crmkit.churn import CoxPH, KaplanMeierBaseline, prepare_covariates
from crmkit.churn.metrics import backtest


@pytest.fixture(scope="module")
def bank():
    from crmkit.datasets import make_bank
    from crmkit.features import build_features
    from crmkit.lifecycle import label_churn
    tables = make_bank(4000, seed=0, as_of="2025-12-31")
    return (tables, lambda d: label_churn(tables, as_of=d),
            lambda d: prepare_covariates(build_features(tables, as_of=d)))


def test_cox_ranks_leavers_above_stayers_and_beats_km(bank):
    tables, churn, covariates = bank
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = backtest(CoxPH(unit="days", penalizer=0.01), tables, churn, covariates,
                       train_start="2024-07-01", test_start="2025-07-01", horizon_days=90)
        km = backtest(KaplanMeierBaseline(unit="days"), tables, churn, covariates,
                      train_start="2024-07-01", test_start="2025-07-01", horizon_days=90)
    leavers = int(res["scores"]["churned_in_horizon"].sum())
    assert leavers >= 15  # enough leavers for the AUC to mean something
    assert res["auc_horizon"] > 0.7
    assert km["auc_horizon"] == pytest.approx(0.5)
    assert res["integrated_brier"] <= km["integrated_brier"]
    # nobody churned on or before the test start is scored, nobody is scored twice
    assert res["scores"]["customer_id"].is_unique().all()
