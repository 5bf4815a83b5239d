"""The sectors' lifecycle presets: every customer gets exactly one stage, the rules the
sector pages state, the stage actions through the contact policy, and the pipeline
configs run the lifecycle step beside the sector step."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.exceptions import ConfigError
from crmkit.lifecycle import assign_stages, get_preset, playbook_actions

ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2025-12-31"

# the columns each preset reads, with a generator of plausible values (nulls included)
maybe_days = st.one_of(st.none(), st.integers(min_value=0, max_value=2000))
COLUMNS = {
    "insurer": {
        "n_products_ever": st.integers(min_value=0, max_value=4),
        "all_products_closed": st.one_of(st.none(), st.booleans()),
        "days_since_first_product": maybe_days,
        "policy_churned": st.one_of(st.none(), st.booleans()),
        "lapsed_365d": st.one_of(st.none(), st.integers(min_value=0, max_value=3)),
        "not_renewed_365d": st.one_of(st.none(), st.integers(min_value=0, max_value=3)),
        "days_to_renewal": st.one_of(st.none(), st.integers(min_value=1, max_value=400)),
    },
    "tobacco_retail": {
        "shop_churned": st.one_of(st.none(), st.booleans()),
        "tenure_days": st.integers(min_value=0, max_value=2000),
        "has_transacted": st.booleans(),
        "days_since_last_txn": maybe_days,
        "txn_count_prior_90d": st.integers(min_value=0, max_value=40),
        "txn_count_trend_90d": st.one_of(st.none(), st.floats(min_value=-1, max_value=1)),
    },
    "elderly_care": {
        "tenure_days": st.integers(min_value=0, max_value=2000),
        "has_transacted": st.booleans(),
        "days_since_last_txn": maybe_days,
        "care_priority": st.one_of(st.none(), st.sampled_from(["high", "medium", "low",
                                                              "standard"])),
        "days_since_last_contact": maybe_days,
        "txn_count_prior_90d": st.integers(min_value=0, max_value=40),
        "txn_count_trend_90d": st.one_of(st.none(), st.floats(min_value=-1, max_value=1)),
    },
}
DTYPES = {"txn_count_trend_90d": pl.Float64, "care_priority": pl.String,
          "all_products_closed": pl.Boolean, "policy_churned": pl.Boolean,
          "shop_churned": pl.Boolean, "has_transacted": pl.Boolean}


def frame(preset: str, rows: list[dict]) -> pl.DataFrame:
    cols = COLUMNS[preset]
    data = {"customer_id": [str(i) for i in range(len(rows))]}
    for c in cols:
        data[c] = [r.get(c) for r in rows]
    return pl.DataFrame(data, schema={"customer_id": pl.String,
                                      **{c: DTYPES.get(c, pl.Int64) for c in cols}})


def stages_of(preset: str, rows: list[dict]) -> list[str]:
    return assign_stages(frame(preset, rows), as_of=AS_OF, preset=preset)["stage"].to_list()


@pytest.mark.parametrize("preset", sorted(COLUMNS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_customer_gets_exactly_one_known_stage(preset, data):
    rows = data.draw(st.lists(st.fixed_dictionaries(COLUMNS[preset]), min_size=1, max_size=40))
    f = frame(preset, rows)
    out = assign_stages(f, as_of=AS_OF, preset=preset)
    cfg = get_preset(preset)
    assert out.height == f.height
    assert out["customer_id"].to_list() == f["customer_id"].to_list()
    assert out["stage"].null_count() == 0
    assert set(out["stage"]) <= set(cfg.stages)
    # the stage is the first rule that holds (a missing value holds nothing), else the
    # default: an independent reading of the rules the sector pages state
    assert out["stage"].to_list() == [REFERENCE[preset](r) for r in rows]


def _ge(a, b):
    return a is not None and b is not None and a >= b


def _le(a, b):
    return a is not None and b is not None and a <= b


def _insurer(r):
    if r["n_products_ever"] == 0:
        return "prospect"
    if r["policy_churned"]:
        return "lapsed"
    if r["all_products_closed"]:
        return "closed"
    if _le(r["days_since_first_product"], 90):
        return "onboarding"
    if r["lapsed_365d"] is not None and r["not_renewed_365d"] is not None \
            and r["lapsed_365d"] + r["not_renewed_365d"] > 0:
        return "lapsing"
    if _le(r["days_to_renewal"], 60):
        return "renewal_due"
    return "active"


def _tobacco(r):
    if r["shop_churned"]:
        return "closed"
    if r["tenure_days"] <= 90:
        return "new_shop"
    if _ge(r["days_since_last_txn"], 60) or not r["has_transacted"]:
        return "dormant"
    if r["txn_count_prior_90d"] >= 3 and _le(r["txn_count_trend_90d"], -0.33):
        return "declining"
    return "active"


def _care(r):
    if r["tenure_days"] <= 30:
        return "newly_registered"
    if _ge(r["days_since_last_txn"], 90) or not r["has_transacted"]:
        return "inactive"
    seen = r["days_since_last_contact"]
    if r["care_priority"] == "high" and (seen if seen is not None else r["tenure_days"]) >= 30:
        return "needs_review"
    if r["txn_count_prior_90d"] >= 3 and _le(r["txn_count_trend_90d"], -0.5):
        return "needs_review"
    return "active_care"


REFERENCE = {"insurer": _insurer, "tobacco_retail": _tobacco, "elderly_care": _care}


def test_insurer_rules():
    base = {"n_products_ever": 2, "all_products_closed": False, "days_since_first_product": 800,
            "policy_churned": False, "lapsed_365d": 0, "not_renewed_365d": 0,
            "days_to_renewal": 200}
    cases = [
        ({"n_products_ever": 0, "days_since_first_product": None}, "prospect"),
        ({"all_products_closed": True, "policy_churned": True, "days_to_renewal": None}, "lapsed"),
        # ended for another reason (a car sold): no policy, but not churn
        ({"all_products_closed": True, "policy_churned": False, "days_to_renewal": None},
         "closed"),
        ({"days_since_first_product": 90}, "onboarding"),
        ({"days_since_first_product": 91}, "active"),
        ({"lapsed_365d": 1, "days_to_renewal": 10}, "lapsing"),     # lapsing before renewal
        ({"not_renewed_365d": 1}, "lapsing"),
        ({"days_to_renewal": 60}, "renewal_due"),
        ({"days_to_renewal": 61}, "active"),
        ({}, "active"),
    ]
    got = stages_of("insurer", [{**base, **c} for c, _ in cases])
    assert got == [s for _, s in cases]


def test_tobacco_retail_rules():
    base = {"shop_churned": None, "tenure_days": 700, "has_transacted": True,
            "days_since_last_txn": 5, "txn_count_prior_90d": 12, "txn_count_trend_90d": 0.0}
    cases = [
        ({"shop_churned": True, "tenure_days": 10}, "closed"),          # closed wins
        ({"shop_churned": False}, "active"),
        ({"tenure_days": 90, "has_transacted": False, "days_since_last_txn": None}, "new_shop"),
        ({"tenure_days": 91, "has_transacted": False, "days_since_last_txn": None}, "dormant"),
        ({"days_since_last_txn": 60}, "dormant"),
        ({"days_since_last_txn": 59}, "active"),
        ({"txn_count_trend_90d": -0.34}, "declining"),
        ({"txn_count_trend_90d": -0.34, "txn_count_prior_90d": 2}, "active"),  # too few to judge
        ({"txn_count_trend_90d": -0.3}, "active"),
    ]
    got = stages_of("tobacco_retail", [{**base, **c} for c, _ in cases])
    assert got == [s for _, s in cases]


def test_elderly_care_rules():
    base = {"tenure_days": 700, "has_transacted": True, "days_since_last_txn": 3,
            "care_priority": "low", "days_since_last_contact": 40, "txn_count_prior_90d": 12,
            "txn_count_trend_90d": 0.0}
    cases = [
        ({"tenure_days": 30, "has_transacted": False, "days_since_last_txn": None},
         "newly_registered"),
        ({"tenure_days": 31, "has_transacted": False, "days_since_last_txn": None}, "inactive"),
        ({"days_since_last_txn": 90}, "inactive"),
        ({"care_priority": "high", "days_since_last_contact": 30}, "needs_review"),
        ({"care_priority": "high", "days_since_last_contact": 29}, "active_care"),
        # never contacted: counted from registration
        ({"care_priority": "high", "days_since_last_contact": None}, "needs_review"),
        ({"care_priority": "medium", "days_since_last_contact": 400}, "active_care"),
        ({"txn_count_trend_90d": -0.5}, "needs_review"),
        ({"txn_count_trend_90d": -0.5, "txn_count_prior_90d": 2}, "active_care"),
        ({}, "active_care"),
    ]
    got = stages_of("elderly_care", [{**base, **c} for c, _ in cases])
    assert got == [s for _, s in cases]


def test_a_rule_on_the_sector_table_without_it_is_an_error_naming_the_column():
    f = frame("insurer", [{"n_products_ever": 1}]).drop("days_to_renewal")
    with pytest.raises(ConfigError, match="days_to_renewal"):
        assign_stages(f, as_of=AS_OF, preset="insurer")


@pytest.mark.parametrize("preset", sorted(COLUMNS))
def test_every_stage_action_goes_through_the_contact_policy(preset):
    cfg = get_preset(preset)
    acting = sorted({e["stage"] for e in cfg.playbook})
    stages = pl.DataFrame({"customer_id": [f"c{i}" for i in range(len(acting))],
                           "stage": acting})
    # the first customer opted out of everything, the others of nothing
    customers = pl.DataFrame({"customer_id": stages["customer_id"],
                              "do_not_contact": [True] + [False] * (len(acting) - 1)})
    split = playbook_actions(stages, playbook=cfg.playbook, stage_names=cfg.stages,
                             as_of=AS_OF, customers=customers)
    assert split.suppressed["customer_id"].unique().to_list() == ["c0"]
    assert "c0" not in split.allowed["customer_id"].to_list()
    assert set(split.allowed["customer_id"]) == set(stages["customer_id"][1:])
    plan = {(e["stage"], e["action"]) for e in cfg.playbook}
    assert set(zip(split.allowed["stage"], split.allowed["action"], strict=True)) <= plan


def test_a_playbook_naming_an_unknown_stage_is_rejected_on_load():
    data = get_preset("tobacco_retail").model_dump()
    data["playbook"] = [*data["playbook"], {"stage": "maturre", "action": "x"}]
    with pytest.raises(ConfigError, match="maturre"):
        from crmkit.lifecycle import load_config
        load_config(data)


@pytest.mark.parametrize("sector", sorted(COLUMNS))
def test_the_sector_config_runs_the_lifecycle_step(sector, tmp_path):
    from crmkit.pipeline import run_pipeline

    shutil.copytree(ROOT / "data" / sector, tmp_path / "data" / sector)
    (tmp_path / "pipelines").mkdir()
    shutil.copy(ROOT / "pipelines" / f"{sector}.toml", tmp_path / "pipelines")
    res = run_pipeline(tmp_path / "pipelines" / f"{sector}.toml", as_of=AS_OF)
    out = res.outputs["lifecycle"]
    customers = pl.read_parquet(tmp_path / "data" / sector / "customers.parquet")
    stages = out["stages"]
    assert sorted(stages["customer_id"]) == sorted(customers["customer_id"])
    assert set(stages["stage"]) <= set(get_preset(sector).stages)
    # the sector step's table fed the rules, e.g. every closed shop / lapsed policyholder
    facts = res.manifest["steps"]["lifecycle"]
    assert facts["model_inputs_used"], facts
    plan = {(e["stage"], e["action"]) for e in get_preset(sector).playbook}
    assert set(zip(out["actions"]["stage"], out["actions"]["action"], strict=True)) <= plan
    assert out["actions"].height > 0
