"""The value step of the nightly run on the sample bank: tables, refit schedule, determinism."""

from __future__ import annotations

import json

import polars as pl
import pytest

from crmkit.datasets import make_bank
from crmkit.exceptions import ConfigError
from crmkit.features import build_features
from crmkit.value import RFMScorer, TierScheme
from crmkit.value._tiers_step import ValueSettings, run_value_step


@pytest.fixture(scope="module")
def bank():
    tables = make_bank(1500, seed=3)
    return tables, build_features(tables, as_of="2025-11-30"), build_features(tables, as_of="2025-12-31")


def test_first_and_second_run(bank):
    tables, f1, f2 = bank
    r1 = run_value_step(f1, as_of="2025-11-30", transactions=tables["transactions"])
    assert set(r1.tables) == {"rfm_segments", "clv", "value_tiers", "tier_movement",
                              "tier_movement_summary", "hidden_vips"}
    assert r1.clv_refitted
    ids = f1["customer_id"].sort()
    for name in ("rfm_segments", "clv", "value_tiers", "tier_movement"):
        assert r1.tables[name]["customer_id"].to_list() == ids.to_list(), name
    assert r1.tables["rfm_segments"]["segment"].null_count() == 0
    assert set(r1.tables["tier_movement"]["movement"]) == {"new"}
    # prospects have no CLV; buyers do, and it is non-negative
    clv = r1.tables["clv"].join(f1.select("customer_id", "has_transacted"), on="customer_id")
    assert clv.filter(~pl.col("has_transacted"))["clv"].null_count() == clv.filter(
        ~pl.col("has_transacted")).height
    assert (clv["clv"].drop_nulls() >= 0).all()
    assert json.loads(r1.models["tier_scheme"])["tiers"][0]["name"] == "Mass"

    r2 = run_value_step(f2, as_of="2025-12-31", transactions=tables["transactions"],
                        previous_tiers=r1.tables["value_tiers"], previous_models=r1.models,
                        settings={"clv": {"refit_every_days": 60}})
    assert not r2.clv_refitted
    assert r2.models["clv_fitted_as_of"] == "2025-11-30"
    assert r2.models["clv_transaction_model"] == r1.models["clv_transaction_model"]
    mv = r2.tables["tier_movement"]
    new_ids = set(f2["customer_id"]) - set(f1["customer_id"])
    assert set(mv.filter(pl.col("movement") == "new")["customer_id"]) == new_ids
    summ = r2.tables["tier_movement_summary"]
    assert summ["current"].sum() == f2.height and summ["previous"].sum() == f1.height

    r3 = run_value_step(f2, as_of="2025-12-31", transactions=tables["transactions"],
                        previous_tiers=r1.tables["value_tiers"], previous_models=r1.models,
                        settings={"clv": {"refit_every_days": 30}})
    assert r3.clv_refitted and r3.models["clv_fitted_as_of"] == "2025-12-31"


def test_deterministic_and_persisted_models_reload(bank):
    tables, f1, _ = bank
    a = run_value_step(f1, as_of="2025-11-30", transactions=tables["transactions"])
    b = run_value_step(f1.sample(fraction=1.0, shuffle=True, seed=1), as_of="2025-11-30",
                       transactions=tables["transactions"])
    for name in a.tables:
        assert a.tables[name].equals(b.tables[name]), name
    # CLV model JSON carries a wall-clock 'fitted_at'; everything else must be identical
    def strip(models):
        out = dict(models)
        for k in ("clv_transaction_model", "clv_spend_model"):
            doc = json.loads(out[k])
            doc.pop("fitted_at", None)
            out[k] = doc
        return out
    assert strip(a.models) == strip(b.models)
    scorer = RFMScorer.from_json(a.models["rfm_scorer"])
    assert scorer.transform(f1).sort("customer_id").equals(a.tables["rfm_segments"])
    assert TierScheme.from_json(a.models["tier_scheme"]) == TierScheme.retail_bank()


def test_settings_are_validated():
    with pytest.raises(ConfigError, match="did you mean 'refit_every_days'"):
        ValueSettings.from_dict({"clv": {"refit_every_day": 7}})
    with pytest.raises(ConfigError, match="did you mean 'n_scores'"):
        ValueSettings.from_dict({"rfm": {"n_score": 4}})
    with pytest.raises(ConfigError, match="gap between"):
        ValueSettings.from_dict({"tiers": {"tiers": [{"name": "A", "upper": 1}, {"name": "B", "lower": 2}]}})
    s = ValueSettings.from_dict({"tiers": TierScheme.fixed([1e4], ["Low", "High"], vip=["High"]).model_dump()})
    assert s.scheme().names == ["Low", "High"]


def test_custom_scheme_and_no_clv(bank):
    _, f1, _ = bank
    scheme = TierScheme.fixed([50_000, 500_000], ["C", "B", "A"], vip=["B", "A"]).model_dump()
    r = run_value_step(f1, as_of="2025-11-30",
                       settings={"tiers": scheme, "hidden_vip_n": 5, "clv": {"enabled": False}})
    assert "clv" not in r.tables
    assert set(r.tables["value_tiers"]["tier"]) <= {"A", "B", "C"}
    hv = r.tables["hidden_vips"]
    assert (hv["financial_assets"] < 50_000).all() and hv.group_by("branch_id").len()["len"].max() <= 5
