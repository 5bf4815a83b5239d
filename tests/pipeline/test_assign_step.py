"""The assign step in nightly runs: the preset's rules, capacities, and stable reruns."""

from __future__ import annotations

import polars as pl

from crmkit.assign import ELIGIBILITY_PRESETS
from crmkit.datasets import make_bank
from crmkit.pipeline import run_pipeline
from crmkit.pipeline.steps.assign import STEP
from crmkit.pipeline.steps.value import STEP as VALUE


def test_assign_step_follows_the_preset_and_the_next_run_moves_nobody(tmp_path):
    cfg = {"run": {"output_dir": str(tmp_path / "runs"), "report": False, "n_shards": 3},
           "inputs": {"source": "sample", "sample_customers": 1500}}
    first = run_pipeline(cfg, as_of="2025-11-30", steps=[VALUE, STEP])
    facts = first.manifest["steps"]["assign"]
    assert facts["status"] == "optimal" and facts["unplaced"] == 0
    assignment = first.outputs["assign"]["assignment"]
    allowed = ELIGIBILITY_PRESETS["retail_bank"]
    for tier, level in assignment.select("tier", "level").unique().iter_rows():
        assert level in allowed[tier], (tier, level)
    managers = make_bank(1500, seed=0)["managers"]
    load = assignment.group_by("manager_id").len().join(managers, on="manager_id")
    assert (load["len"] <= load["capacity"]).all()
    tiers = first.outputs["value"]["value_tiers"]
    vip = tiers.filter(pl.col("tier").is_in(["Diamond", "Platinum", "Gold"]))
    assert set(assignment.filter(pl.col("role") == "primary")["customer_id"]) == set(
        vip["customer_id"])
    # a month later, with the previous run's books as the current ones: customers whose
    # tier did not change keep their RM
    second = run_pipeline(cfg, as_of="2025-12-31", steps=[VALUE, STEP])
    moves = second.outputs["assign"]["moves"]
    same_tier = second.outputs["value"]["tier_movement"].filter(pl.col("movement") == "same")
    assert moves.join(same_tier, on="customer_id").height == 0


def test_calls_step_lists_each_rms_top_customers_within_the_rules(tmp_path):
    from crmkit.pipeline import load_steps

    steps = [s for s in load_steps() if s.name in (
        "value", "clv", "churn", "lifecycle", "assign", "calls")]
    cfg = {"run": {"output_dir": str(tmp_path / "runs"), "report": False, "n_shards": 2},
           "inputs": {"source": "sample", "sample_customers": 1500}, "calls": {"top_n": 5}}
    res = run_pipeline(cfg, as_of="2025-12-31", steps=steps)
    calls = res.outputs["calls"]["call_list"]
    facts = res.manifest["steps"]["calls"]
    assert calls.height == facts["calls"] > 0
    assert calls.group_by("manager_id").len()["len"].max() <= 5
    customers = make_bank(1500, seed=0)["customers"]
    joined = calls.join(customers, on="customer_id")
    for channel in ("email", "sms", "phone"):
        assert joined.filter((pl.col("channel") == channel)
                             & pl.col(f"opt_out_{channel}")).height == 0
    assignment = res.outputs["assign"]["assignment"].filter(pl.col("role") == "primary")
    assert calls.join(assignment, on=["customer_id", "manager_id"]).height == calls.height


def test_assign_step_decomposed_by_branch(tmp_path):
    """decompose = "branch" in [assign]: one solve per branch, capacities hold, the
    private banker (who serves every branch) is split, and the manifest states the gap."""
    base = {"run": {"output_dir": str(tmp_path / "runs"), "report": False, "n_shards": 2},
            "inputs": {"source": "sample", "sample_customers": 1500}}
    glob = run_pipeline(base, as_of="2025-11-30", steps=[VALUE, STEP])
    cfg = {**base, "run": {**base["run"], "output_dir": str(tmp_path / "runs2")},
           "assign": {"decompose": "branch"}}
    dec = run_pipeline(cfg, as_of="2025-11-30", steps=[VALUE, STEP])
    g, d = glob.manifest["steps"]["assign"], dec.manifest["steps"]["assign"]
    assert d["solver"] == "ortools_min_cost_flow per branch" and d["parts"] > 1
    assert d["status"] == ("optimal" if d["gap"] == 0 else "feasible")
    assert d["unplaced"] == g["unplaced"] == 0
    assert d["bound"] <= g["objective"] + 1e-6 <= d["objective"] + 2e-6
    assert 0 <= d["gap"] < 0.01
    assignment = dec.outputs["assign"]["assignment"]
    managers = make_bank(1500, seed=0)["managers"]
    load = assignment.group_by("manager_id").len().join(managers, on="manager_id")
    assert (load["len"] <= load["capacity"]).all()
