"""The decomposed assignment (one solve per region or branch): hard constraints always hold,
the bound is a true lower bound, and independent groups give exactly the global optimum."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit.assign import ELIGIBILITY_PRESETS, RMAssigner, solve_assignment
from crmkit.exceptions import ConfigError, SchemaError

from .test_solver import LEVELS, TIERS, _check_hard

BRANCH_REGION = {"B1": "R1", "B2": "R1", "B3": "R2", "B4": "R3"}


@st.composite
def regional(draw, max_customers=14, max_managers=7, workload=False):
    """Random banks with four branches in three regions and managers of every level."""
    n_m = draw(st.integers(1, max_managers))
    n_c = draw(st.integers(1, max_customers))
    branches = list(BRANCH_REGION)
    mb = [draw(st.sampled_from(branches)) for _ in range(n_m)]
    cb = [draw(st.sampled_from(branches)) for _ in range(n_c)]
    mgr = pl.DataFrame({
        "manager_id": [f"M{j}" for j in range(n_m)],
        "branch_id": mb, "region": [BRANCH_REGION[b] for b in mb],
        "level": [draw(st.sampled_from(LEVELS)) for _ in range(n_m)],
        "capacity": [draw(st.integers(0, 5)) for _ in range(n_m)],
        "active": [draw(st.booleans()) or draw(st.booleans()) for _ in range(n_m)],
        "workload_capacity": [float(draw(st.integers(0, 8))) for _ in range(n_m)],
    })
    cust = pl.DataFrame({
        "customer_id": [f"C{i:02d}" for i in range(n_c)],
        "tier": [draw(st.sampled_from(TIERS)) for _ in range(n_c)],
        "branch_id": cb, "region": [BRANCH_REGION[b] for b in cb],
        "priority": [draw(st.sampled_from([0.0, 0.3, 0.6, 1.0])) for _ in range(n_c)],
        "workload": [float(draw(st.integers(1, 3))) if workload else 1.0 for _ in range(n_c)],
    })
    cur_m = [draw(st.one_of(st.none(), st.sampled_from(mgr["manager_id"].to_list()))) for _ in range(n_c)]
    current = pl.DataFrame({"customer_id": cust["customer_id"], "manager_id": cur_m}).drop_nulls()
    return cust, mgr, current


TERRITORIES = {
    "preset": {"private_banking": "anywhere", "wealth": "branch", "branch": "branch"},
    "region": {"private_banking": "anywhere", "wealth": "region", "branch": "region"},
    "all_region": {lvl: "region" for lvl in LEVELS},
    "anywhere": {lvl: "anywhere" for lvl in LEVELS},
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(regional(), st.sampled_from(["region", "branch"]), st.sampled_from(list(TERRITORIES)),
       st.sampled_from(["retail_bank", "retail_bank_senior"]), st.integers(1, 2))
def test_decomposed_never_exceeds_capacity_and_bound_holds(inst, key, territory, preset, team_size):
    cust, mgr, current = inst
    terr = TERRITORIES[territory]
    kw = dict(eligibility=preset, territory=terr, team_size=team_size)
    dec = solve_assignment(cust, mgr, current, decompose=key, **kw)
    _check_hard(dec, cust, mgr, ELIGIBILITY_PRESETS[preset], terr, team_size)
    # every customer's RM serves the customer's region when the rule says so
    a = dec.assignment.join(mgr.select("manager_id", pl.col("region").alias("mr")), on="manager_id").join(
        cust.select("customer_id", "region"), on="customer_id")
    assert a.filter(pl.col("level").replace_strict(terr) == "region").select(
        (pl.col("mr") == pl.col("region")).all()).item() in (True, None)
    glob = solve_assignment(cust, mgr, current, **kw)
    # feasible for the global problem, so never better than its optimum; the bound is below it
    assert dec.objective >= glob.objective - 1e-6
    assert dec.bound is not None and dec.bound <= glob.objective + 1e-6
    assert dec.gap == pytest.approx(max(0.0, (dec.objective - dec.bound) / dec.objective) if dec.objective else 0.0)
    assert (dec.status == "optimal") == (dec.gap == 0.0)
    if dec.status == "optimal":
        assert dec.objective == pytest.approx(glob.objective, abs=1e-9)
    col = {"region": "region", "branch": "branch_id"}[key]
    assert dec.n_parts == cust.filter(pl.col("tier").is_in(list(ELIGIBILITY_PRESETS[preset])))[col].n_unique()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(regional(workload=True), st.sampled_from(["region", "branch"]))
def test_decomposed_workload_capacity_never_exceeded(inst, key):
    cust, mgr, current = inst
    terr = TERRITORIES["preset"]
    res = solve_assignment(cust, mgr, current, capacity="both", eligibility="retail_bank_senior",
                           decompose=key, mip_rel_gap=0.0)
    _check_hard(res, cust, mgr, ELIGIBILITY_PRESETS["retail_bank_senior"], terr, workload=True)
    glob = solve_assignment(cust, mgr, current, capacity="both", eligibility="retail_bank_senior",
                            mip_rel_gap=0.0)
    assert res.bound <= glob.objective + 1e-6 <= res.objective + 2e-6


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(regional(), st.sampled_from(["retail_bank", "retail_bank_senior"]), st.integers(1, 2),
       st.sampled_from(["branch", "region"]))
def test_independent_groups_give_the_global_optimum(inst, preset, team_size, key):
    """No RM serves two groups (territory no wider than the group): the parts are the problem."""
    cust, mgr, current = inst
    terr = {lvl: key for lvl in LEVELS}
    kw = dict(eligibility=preset, territory=terr, team_size=team_size)
    glob = solve_assignment(cust, mgr, current, **kw)
    dec = solve_assignment(cust, mgr, current, decompose=key, **kw)
    assert dec.status == "optimal" and dec.gap == 0.0
    assert dec.objective == pytest.approx(glob.objective, abs=1e-9)
    # optima may tie (one customer kept with their RM at the price of another left
    # unplaced): the total is unique, its split into parts is not
    assert sum(dec.objective_parts.values()) == pytest.approx(dec.objective, abs=1e-9)
    assert dec.bound == pytest.approx(dec.objective, abs=1e-9)
    assert dec.unplaced.select("customer_id", "role").equals(glob.unplaced.select("customer_id", "role")) \
        or dec.unplaced.height == glob.unplaced.height
    _check_hard(dec, cust, mgr, ELIGIBILITY_PRESETS[preset], terr, team_size)


def test_independent_groups_same_books_without_ties():
    """One RM per level and branch, tight capacities, distinct priorities: the optimum is
    unique, so the decomposed books are the global books, row for row."""
    rng = np.random.default_rng(1)
    branches = [f"B{k}" for k in range(6)]
    mgr = pl.DataFrame({"manager_id": [f"M{j:02d}" for j in range(18)],
                        "branch_id": [branches[j % 6] for j in range(18)],
                        "region": [f"R{(j % 6) // 2}" for j in range(18)],
                        "level": ["branch"] * 6 + ["wealth"] * 6 + ["private_banking"] * 6,
                        "capacity": rng.integers(2, 9, 18).tolist()})
    n = 150
    cb = rng.integers(0, 6, n)
    cust = pl.DataFrame({"customer_id": [f"C{i:03d}" for i in range(n)],
                         "tier": rng.choice(["Gold", "Platinum", "Diamond", "Mass"], n).tolist(),
                         "branch_id": [branches[b] for b in cb], "region": [f"R{b // 2}" for b in cb],
                         "priority": rng.permutation(n) / n})
    current = pl.DataFrame({"customer_id": cust["customer_id"][::3],
                            "manager_id": rng.choice(mgr["manager_id"].to_numpy(), 50).tolist()})
    glob = solve_assignment(cust, mgr, current, territory="branch")
    dec = solve_assignment(cust, mgr, current, territory="branch", decompose="region")
    assert dec.status == "optimal" and dec.n_parts == 3 and glob.unplaced.height > 0
    assert dec.objective == glob.objective
    for name in ("assignment", "unplaced", "moves", "workload"):
        assert getattr(dec, name).equals(getattr(glob, name)), name


def test_shared_private_bankers_split_and_repair():
    """Two private bankers serving anywhere are split between regions by demand and their
    current customers; nobody who fits globally is left unplaced."""
    mgr = pl.DataFrame({"manager_id": ["P1", "P2", "W1", "W2"], "branch_id": ["B1", "B3", "B1", "B3"],
                        "region": ["R1", "R2", "R1", "R2"],
                        "level": ["private_banking", "private_banking", "wealth", "wealth"],
                        "capacity": [3, 3, 5, 5]})
    cust = pl.DataFrame({"customer_id": [f"C{i}" for i in range(8)],
                         "tier": ["Diamond"] * 5 + ["Diamond", "Platinum", "Platinum"],
                         "branch_id": ["B1"] * 5 + ["B3"] * 3, "region": ["R1"] * 5 + ["R2"] * 3})
    current = pl.DataFrame({"customer_id": ["C5"], "manager_id": ["P1"]})
    glob = solve_assignment(cust, mgr, current)
    dec = solve_assignment(cust, mgr, current, decompose="region")
    assert glob.unplaced.height == dec.unplaced.height == 0
    assert dec.status == ("optimal" if dec.gap == 0 else "feasible") and dec.n_parts == 2
    assert dec.bound <= glob.objective <= dec.objective
    load = dec.assignment.group_by("manager_id").len()
    assert dict(load.rows())["P1"] <= 3 and dict(load.rows())["P2"] <= 3
    # continuity: C5 keeps P1 although P1 is now needed in R1 too
    assert dec.assignment.filter(pl.col("customer_id") == "C5")["manager_id"].item() == "P1"
    nob = solve_assignment(cust, mgr, current, decompose="region", decompose_bound=False)
    assert nob.bound is None and nob.gap is None and nob.objective == dec.objective


def test_decompose_is_a_config_choice_and_checked():
    model = RMAssigner.from_config({"decompose": "branch", "decompose_bound": False})
    assert model.decompose == "branch" and model.decompose_bound is False
    with pytest.raises(ConfigError, match="decompose"):
        RMAssigner.from_config({"decompose": "country"})
    mgr = pl.DataFrame({"manager_id": ["B1"], "branch_id": ["X"], "level": ["branch"], "capacity": [3],
                        "region": ["N"]})
    cust = pl.DataFrame({"customer_id": ["a", "b"], "tier": ["Gold", "Gold"], "branch_id": ["X", "X"],
                         "region": ["N", None]})
    with pytest.raises(SchemaError, match=r"decompose='region' needs table 'customers' column 'region'.*\['b'\]"):
        solve_assignment(cust, mgr, decompose="region")
    with pytest.raises(SchemaError, match="has no column 'region'"):
        solve_assignment(cust.drop("region"), mgr, decompose="region")
    fitted = RMAssigner(decompose="branch").fit(cust.drop("region"), mgr)
    assert fitted.status_ == "optimal" and fitted.summary_["solver"].item() == "ortools_min_cost_flow per branch"
