"""The RM assignment solver: hard constraints on random instances, brute-force optimality,
stability, events and unplaced customers."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from crmkit.assign import (
    ELIGIBILITY_PRESETS,
    TERRITORY_PRESET,
    AssignConfig,
    RMAssigner,
    solve_assignment,
)
from crmkit.exceptions import ConfigError, SchemaError

LEVELS = ["private_banking", "wealth", "branch"]
TIERS = ["Diamond", "Platinum", "Gold", "Mass"]


@st.composite
def instances(draw, max_customers=10, max_managers=5, workload=False):
    n_m = draw(st.integers(1, max_managers))
    n_c = draw(st.integers(1, max_customers))
    branches = ["B1", "B2", "B3"][: draw(st.integers(1, 3))]
    mgr = pl.DataFrame({
        "manager_id": [f"M{j}" for j in range(n_m)],
        "branch_id": [draw(st.sampled_from(branches)) for _ in range(n_m)],
        "level": [draw(st.sampled_from(LEVELS)) for _ in range(n_m)],
        "capacity": [draw(st.integers(0, 4)) for _ in range(n_m)],
        "active": [draw(st.booleans()) or draw(st.booleans()) for _ in range(n_m)],
        "workload_capacity": [float(draw(st.integers(0, 6))) for _ in range(n_m)],
    })
    cust = pl.DataFrame({
        "customer_id": [f"C{i:02d}" for i in range(n_c)],
        "tier": [draw(st.sampled_from(TIERS)) for _ in range(n_c)],
        "branch_id": [draw(st.sampled_from(branches)) for _ in range(n_c)],
        "priority": [draw(st.sampled_from([0.0, 0.25, 0.5, 1.0])) for _ in range(n_c)],
        "workload": [float(draw(st.integers(1, 3))) if workload else 1.0 for _ in range(n_c)],
    })
    cur_m = [draw(st.one_of(st.none(), st.sampled_from(mgr["manager_id"].to_list()))) for _ in range(n_c)]
    current = pl.DataFrame({"customer_id": cust["customer_id"], "manager_id": cur_m}).drop_nulls()
    return cust, mgr, current


def _check_hard(res, cust, mgr, elig, terr, team_size=1, team_tiers=("Diamond", "Platinum"), workload=False,
                count=True):
    a = res.assignment
    m = {r["manager_id"]: r for r in mgr.iter_rows(named=True)}
    c = {r["customer_id"]: r for r in cust.iter_rows(named=True)}
    # capacity
    load = a.group_by("manager_id").len()
    for mid, n in load.iter_rows():
        assert not count or n <= m[mid]["capacity"], (mid, n)
    if workload:
        wl = a.join(cust.select("customer_id", "workload"), on="customer_id").group_by("manager_id").agg(
            pl.col("workload").sum())
        for mid, w in wl.iter_rows():
            assert w <= m[mid]["workload_capacity"] + 1e-9
    # eligibility, activity, territory
    for r in a.iter_rows(named=True):
        mm, cc = m[r["manager_id"]], c[r["customer_id"]]
        assert mm["active"]
        assert mm["level"] in elig[cc["tier"]]
        rule = terr[mm["level"]]
        if rule == "branch":
            assert mm["branch_id"] == cc["branch_id"]
    # one primary per customer, distinct team members, every named slot placed or explained
    assert not a.filter(pl.col("role") == "primary")["customer_id"].is_duplicated().any()
    assert not a.select("customer_id", "manager_id").is_duplicated().any()
    named = cust.filter(pl.col("tier").is_in(list(elig)))
    placed_p = set(a.filter(pl.col("role") == "primary")["customer_id"])
    unpl = res.unplaced
    assert unpl["reason"].null_count() == 0 and (unpl["reason"].str.len_chars() > 5).all()
    unpl_p = set(unpl.filter(pl.col("role") == "primary")["customer_id"])
    assert placed_p | unpl_p == set(named["customer_id"]) and not placed_p & unpl_p
    assert set(a["customer_id"]) <= set(named["customer_id"])
    if team_size > 1:
        for cid in named.filter(pl.col("tier").is_in(list(team_tiers)))["customer_id"]:
            nb = a.filter((pl.col("customer_id") == cid) & (pl.col("role") == "backup")).height
            nu = unpl.filter((pl.col("customer_id") == cid) & (pl.col("role") == "backup")).height
            assert nb + nu == team_size - 1 or (nb == team_size - 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(), st.sampled_from(["retail_bank", "retail_bank_senior"]), st.integers(1, 2),
       st.sampled_from(["branch", "anywhere", "preset"]))
def test_capacity_and_eligibility_never_violated(inst, preset, team_size, territory):
    cust, mgr, current = inst
    terr = dict(TERRITORY_PRESET) if territory == "preset" else {lvl: territory for lvl in LEVELS}
    res = solve_assignment(cust, mgr, current, eligibility=preset, team_size=team_size, territory=terr)
    _check_hard(res, cust, mgr, ELIGIBILITY_PRESETS[preset], terr, team_size)
    assert res.status == "optimal" and res.gap == 0.0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(workload=True), st.sampled_from(["workload", "both"]))
def test_workload_capacity_never_violated(inst, mode):
    cust, mgr, current = inst
    res = solve_assignment(cust, mgr, current, capacity=mode, eligibility="retail_bank_senior")
    _check_hard(res, cust, mgr, ELIGIBILITY_PRESETS["retail_bank_senior"], TERRITORY_PRESET, workload=True,
                count=mode == "both")
    assert res.solver == "highs_mip"


# ---------------------------------------------------------------------------------------
# brute force: the documented cost model, computed independently and minimised by enumeration
# ---------------------------------------------------------------------------------------

def _brute_force(cust, mgr, current, *, elig, terr, team_size=1, team_tiers=("Diamond", "Platinum"),
                 continuity=20.0, backup_continuity=0.75, level_weight=1.0, distance_weight=1.0,
                 balance_weight=1.0, bands=((0.5, 1.0), (0.75, 2.0), (0.9, 4.0)), scale=1000,
                 capacity="count"):
    cur = {r["customer_id"]: r["manager_id"] for r in current.iter_rows(named=True)}
    mgrs = mgr.to_dicts()
    named = [r for r in cust.to_dicts() if r["tier"] in elig]
    pmax = max([r["priority"] for r in named] + [0.0]) or 1.0

    def arc_cost(c, m, role):
        lvls = elig[c["tier"]]
        if not m["active"] or m["capacity"] <= 0 or m["workload_capacity"] <= 0 or m["level"] not in lvls:
            return None
        if terr[m["level"]] == "branch" and m["branch_id"] != c["branch_id"]:
            return None
        cp = cur.get(c["customer_id"])
        if role == "primary":
            cont = 0 if m["manager_id"] == cp else (continuity if cp is not None else 0.0)
        else:
            cont = continuity * (1 - backup_continuity) if cp is not None else 0.0
        c_cont = round(scale * cont)
        c_lvl = round(scale * level_weight * (1 + c["priority"]) * lvls.index(m["level"]))
        c_dist = round(scale * distance_weight * (0 if m["branch_id"] == c["branch_id"] else 2))
        return c_cont + c_lvl + c_dist

    team = team_size > 1
    options = []  # per customer: list of (cost, [(manager index, role)])
    all_arcs = []
    for c in named:
        prim = [(j, arc_cost(c, m, "primary")) for j, m in enumerate(mgrs)]
        prim = [(j, x) for j, x in prim if x is not None]
        all_arcs += [x for _, x in prim]
        opts = [(j, x) for j, x in prim]
        if team and c["tier"] in team_tiers:
            back = [(j, arc_cost(c, mgrs[j], "backup")) for j, _ in prim]
            all_arcs += [x for _, x in back]
            options.append(("team", opts, back))
        else:
            options.append(("single", opts, None))
    band_costs = [round(scale * balance_weight * b) for _, b in bands]
    # the largest arc cost the rules allow (not the largest present), so that every part of a
    # decomposed solve prices an unplaced slot alike
    max_rank = max(len(v) - 1 for v in elig.values())
    max_unit = (round(scale * continuity) + round(scale * level_weight * (1 + pmax) * max_rank)
                + round(scale * distance_weight * 2))
    assert max(all_arcs, default=0) <= max_unit
    big = (max_unit + max(band_costs, default=0) + 1) * (len(mgrs) + 2)

    def unpl(c):
        return round(big * (1 + c["priority"] / pmax))

    def unpl_p(c):
        return unpl(c) + (round(scale * continuity) if cur.get(c["customer_id"]) else 0)

    def band(load, cap):
        edges = [0.0] + [u for u, _ in bands] + [1.0]
        costs = [0] + band_costs
        prev, total, rest = 0.0, 0.0, load
        for k in range(1, len(edges)):
            upto = np.floor(cap * edges[k] + 1e-9) if k < len(edges) - 1 else float(cap)
            w = max(upto - prev, 0.0)
            prev = max(prev, upto)
            take = min(rest, w)
            total += take * costs[k - 1]
            rest -= take
        return total

    per_customer = []
    for c, (kind, opts, back) in zip(named, options):
        choices = [(unpl_p(c), ())] + [(x, ((j, "p"),)) for j, x in opts]
        if kind == "team":
            bmap = dict(back)
            ext = []
            for cost, sel in choices:
                used = {j for j, _ in sel}
                ext.append((cost + unpl(c) // 2, sel))
                for j, x in bmap.items():
                    if j not in used:
                        ext.append((cost + x, sel + ((j, "b"),)))
            choices = ext
        per_customer.append(choices)
    best = None
    for combo in itertools.product(*per_customer):
        load = [0] * len(mgrs)
        for _, sel in combo:
            for j, _ in sel:
                load[j] += 1
        if any(load[j] > mgrs[j]["capacity"] for j in range(len(mgrs))):
            continue
        total = sum(x for x, _ in combo) + sum(band(load[j], mgrs[j]["capacity"]) for j in range(len(mgrs)))
        if best is None or total < best:
            best = total
    return best / scale


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(max_customers=5, max_managers=3), st.sampled_from(["retail_bank", "retail_bank_senior"]),
       st.sampled_from(["branch", "anywhere"]))
def test_objective_equals_brute_force_optimum(inst, preset, territory):
    cust, mgr, current = inst
    terr = {lvl: territory for lvl in LEVELS}
    res = solve_assignment(cust, mgr, current, eligibility=preset, territory=terr)
    expect = _brute_force(cust, mgr, current, elig=ELIGIBILITY_PRESETS[preset], terr=terr)
    assert res.objective == pytest.approx(expect, abs=1e-9)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(max_customers=3, max_managers=3))
def test_team_objective_equals_brute_force_optimum(inst):
    cust, mgr, current = inst
    terr = {lvl: "anywhere" for lvl in LEVELS}
    res = solve_assignment(cust, mgr, current, eligibility="retail_bank_senior", territory=terr,
                           team_size=2, team_tiers=["Diamond", "Platinum", "Gold"])
    expect = _brute_force(cust, mgr, current, elig=ELIGIBILITY_PRESETS["retail_bank_senior"], terr=terr,
                          team_size=2, team_tiers=("Diamond", "Platinum", "Gold"))
    assert res.objective == pytest.approx(expect, abs=1e-9)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(max_customers=8, max_managers=4), st.integers(1, 2))
def test_flow_and_mip_agree(inst, team_size):
    cust, mgr, current = inst
    kw = dict(eligibility="retail_bank_senior", team_size=team_size)
    flow = solve_assignment(cust, mgr, current, solver="flow", **kw)
    mip = solve_assignment(cust, mgr, current, solver="mip", mip_rel_gap=0.0, **kw)
    assert flow.objective == pytest.approx(mip.objective, rel=1e-9, abs=1e-6)
    assert mip.status == "optimal"


# ---------------------------------------------------------------------------------------
# stability and events
# ---------------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(), st.integers(1, 2))
def test_unchanged_inputs_rerun_moves_nobody(inst, team_size):
    cust, mgr, current = inst
    first = RMAssigner(eligibility="retail_bank_senior", team_size=team_size).fit(cust, mgr, current)
    again = RMAssigner(eligibility="retail_bank_senior", team_size=team_size).fit(
        cust, mgr, first.assignment_)
    assert again.moves_.height == 0, again.moves_
    cols = ["customer_id", "role", "manager_id"]
    assert again.assignment_.select(cols).equals(first.assignment_.select(cols))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(), st.integers(0, 4), st.integers(1, 2))
def test_rm_leaving_moves_only_their_customers(inst, which, team_size):
    cust, mgr, current = inst
    model = RMAssigner(keep_valid=True, team_size=team_size)
    first = clone(model).fit(cust, mgr, current)
    leaver = mgr["manager_id"][which % mgr.height]
    after = mgr.with_columns(pl.when(pl.col("manager_id") == leaver).then(False)
                             .otherwise(pl.col("active")).alias("active"))
    second = clone(model).fit(cust, after, first.assignment_)
    moved = second.moves_
    assert (moved["from_manager_id"] == leaver).all(), moved
    assert set(moved["reason"]) <= {"rm_inactive"}
    booked = first.assignment_.filter(pl.col("manager_id") == leaver)
    assert set(zip(moved["customer_id"], moved["role"])) == set(zip(booked["customer_id"], booked["role"]))


def _bank_instance():
    from crmkit.datasets import make_bank
    from crmkit.features import build_features
    from crmkit.value import assign_tiers
    bank = make_bank(3000, seed=3)
    feats = build_features(bank, as_of="2025-12-31")
    return bank, assign_tiers(feats, keep=["branch_id"])


def test_leaver_on_sample_bank_soft_continuity():
    bank, tiers = _bank_instance()
    mgr = bank["managers"].with_columns(pl.lit(True).alias("active"),
                                        (pl.col("capacity") * 2).alias("capacity"))
    first = RMAssigner(eligibility="retail_bank_senior").fit(tiers, mgr, bank["assignments"])
    busiest = first.workload_.sort("n_customers", "manager_id", descending=[True, False])["manager_id"][0]
    leaving = mgr.with_columns((pl.col("active") & (pl.col("manager_id") != busiest)).alias("active"))
    second = RMAssigner(eligibility="retail_bank_senior").fit(tiers, leaving, first.assignment_)
    assert second.moves_.height == first.assignment_.filter(pl.col("manager_id") == busiest).height > 0
    assert (second.moves_["from_manager_id"] == busiest).all()
    assert set(second.moves_["reason"]) == {"rm_inactive"}


def test_leaver_customers_go_first_to_their_backup():
    mgr = pl.DataFrame({"manager_id": ["W1", "W2", "W3"], "branch_id": ["B"] * 3, "level": ["wealth"] * 3,
                        "capacity": [5, 5, 5], "active": [False, True, True]})
    cust = pl.DataFrame({"customer_id": ["a"], "tier": ["Platinum"], "branch_id": ["B"]})
    current = pl.DataFrame({"customer_id": ["a", "a"], "manager_id": ["W1", "W3"], "role": ["primary", "backup"]})
    res = solve_assignment(cust, mgr, current, team_size=2)
    rows = res.assignment.select("role", "manager_id").rows()
    assert rows == [("primary", "W3"), ("backup", "W2")]
    assert res.moves.select("role", "from_manager_id", "to_manager_id", "reason").rows() == [
        ("primary", "W1", "W3", "rm_inactive"), ("backup", "W3", "W2", "rebalanced")]
    # with the primary still there, nothing changes
    again = solve_assignment(cust, mgr.with_columns(pl.lit(True).alias("active")), current, team_size=2)
    assert again.moves.height == 0


def test_capacity_change_and_tier_upgrade_reasons():
    mgr = pl.DataFrame({"manager_id": ["B1", "B2", "W1"], "branch_id": ["X"] * 3,
                        "level": ["branch", "branch", "wealth"], "capacity": [1, 5, 5]})
    cust = pl.DataFrame({"customer_id": ["a", "b", "c", "d"], "tier": ["Gold", "Gold", "Platinum", "Gold"],
                         "branch_id": ["X"] * 4, "priority": [0.9, 0.1, 0.5, 0.5]})
    current = pl.DataFrame({"customer_id": ["a", "b", "c"], "manager_id": ["B1", "B1", "B2"]})
    res = solve_assignment(cust, mgr, current)
    got = {r[0]: r[1:] for r in res.moves.select("customer_id", "from_manager_id", "to_manager_id", "reason").rows()}
    assert got["c"] == ("B2", "W1", "tier_change")  # upgraded to Platinum: wealth RM now
    assert got["d"] == (None, "B2", "new_assignment")
    # B1 holds two customers but may now keep one: exactly one of a, b moves
    assert sorted(k for k in got if got[k][2] == "capacity_change") in (["a"], ["b"])


def test_mass_customer_released():
    mgr = pl.DataFrame({"manager_id": ["B1"], "branch_id": ["X"], "level": ["branch"], "capacity": [3]})
    cust = pl.DataFrame({"customer_id": ["a"], "tier": ["Mass"], "branch_id": ["X"]})
    res = solve_assignment(cust, mgr, pl.DataFrame({"customer_id": ["a"], "manager_id": ["B1"]}))
    assert res.moves.select("from_manager_id", "to_manager_id", "reason").rows() == [("B1", None, "released")]
    assert res.assignment.height == 0 and res.unplaced.height == 0


# ---------------------------------------------------------------------------------------
# infeasible instances
# ---------------------------------------------------------------------------------------

def test_infeasible_instances_report_unplaced_with_reasons():
    mgr = pl.DataFrame({"manager_id": ["B1", "B2", "W1", "W2"], "branch_id": ["X", "Y", "X", "X"],
                        "level": ["branch", "branch", "wealth", "wealth"], "capacity": [1, 3, 0, 2],
                        "active": [True, True, True, False]})
    cust = pl.DataFrame({"customer_id": ["a", "b", "c", "d", "e"],
                         "tier": ["Gold", "Gold", "Platinum", "Diamond", "Gold"],
                         "branch_id": ["X", "X", "X", "X", "Z"], "priority": [1.0, 0.0, 0.5, 0.5, 0.5]})
    res = solve_assignment(cust, mgr)
    reasons = dict(res.unplaced.select("customer_id", "reason").rows())
    assert res.assignment.select("customer_id", "manager_id").rows() == [("a", "B1")]
    assert reasons == {
        "b": "capacity: all 1 eligible RMs (branch in branch X) are full",
        "c": "capacity: every eligible RM (wealth in branch X) has capacity 0",
        "d": "no RM at level private_banking",
        "e": "no RM in territory (branch in branch Z)",
    }


def test_team_unplaced_backup_reason():
    mgr = pl.DataFrame({"manager_id": ["P1"], "branch_id": ["X"], "level": ["private_banking"], "capacity": [3]})
    cust = pl.DataFrame({"customer_id": ["a"], "tier": ["Diamond"], "branch_id": ["Y"]})
    res = solve_assignment(cust, mgr, team_size=2)
    assert res.unplaced.select("role", "reason").rows() == [
        ("backup", "team: only 1 eligible RMs (private_banking in any branch) for a team of 2")]


def test_skills_and_regions():
    mgr = pl.DataFrame({"manager_id": ["B1", "B2"], "branch_id": ["X", "Y"], "region": ["N", "N"],
                        "level": ["branch", "branch"], "capacity": [3, 3], "skills": ["en,zh", "zh"]})
    cust = pl.DataFrame({"customer_id": ["a", "b", "c"], "tier": ["Gold"] * 3, "branch_id": ["Y", "Y", "Y"],
                         "region": ["N", "N", "S"], "skill": ["en", None, None]})
    res = solve_assignment(cust, mgr, territory="region")
    assert res.assignment.select("customer_id", "manager_id").rows() == [("a", "B1"), ("b", "B2")]
    assert res.unplaced["reason"].to_list() == ["no RM in territory (branch in region S)"]


# ---------------------------------------------------------------------------------------
# contract and inputs
# ---------------------------------------------------------------------------------------

def test_estimator_contract():
    from sklearn.exceptions import NotFittedError
    m = RMAssigner(team_size=2, continuity=5.0)
    assert clone(m).get_params()["continuity"] == 5.0
    with pytest.raises(NotFittedError):
        m.summary_
    assert RMAssigner.from_config({"team_size": 3}).team_size == 3
    with pytest.raises(ConfigError, match="Did you mean 'team_size'"):
        RMAssigner.from_config({"teamsize": 3})
    with pytest.raises(ConfigError, match="Did you mean .retail_bank."):
        RMAssigner(eligibility="retail").fit(pl.DataFrame({"customer_id": ["a"], "tier": ["Gold"],
                                                           "branch_id": ["X"]}),
                                             pl.DataFrame({"manager_id": ["M"], "branch_id": ["X"],
                                                           "level": ["branch"], "capacity": [1]}))
    assert AssignConfig().continuity == 20.0


def test_bad_inputs_are_named():
    mgr = pl.DataFrame({"manager_id": ["M1", "M1"], "branch_id": ["X", "X"], "level": ["branch", "boss"],
                        "capacity": [1, 1]})
    cust = pl.DataFrame({"customer_id": ["a"], "tier": ["Gold"], "branch_id": ["X"]})
    with pytest.raises(SchemaError, match="'managers' column 'manager_id' has 1 duplicated ids, e.g. M1"):
        solve_assignment(cust, mgr)
    with pytest.raises(SchemaError, match="'level' must be one of"):
        solve_assignment(cust, mgr.with_columns(pl.Series("manager_id", ["M1", "M2"])))
    with pytest.raises(SchemaError, match="table 'customers' has no column 'tier'"):
        solve_assignment(cust.drop("tier"), mgr[:1])
    with pytest.raises(SchemaError, match="'priority' must hold finite numbers"):
        solve_assignment(cust.with_columns(pl.lit(-1.0).alias("priority")), mgr[:1])
    with pytest.raises(SchemaError, match="more than one primary"):
        solve_assignment(cust, mgr[:1], pl.DataFrame({"customer_id": ["a", "a"], "manager_id": ["M1", "M1"],
                                                      "role": ["primary", "primary"]}))


def test_every_input_type(as_input):
    mgr = pl.DataFrame({"manager_id": ["B1"], "branch_id": ["X"], "level": ["branch"], "capacity": [3]})
    cust = pl.DataFrame({"customer_id": ["a", "b"], "tier": ["Gold", "Gold"], "branch_id": ["X", "X"]})
    res = RMAssigner().fit(as_input(cust), as_input(mgr), None)
    assert res.assignment_.height == 2
    assert type(res.transform(output="pandas")).__name__ == "DataFrame"


def test_max_candidates_restricts_arcs():
    rng = np.random.default_rng(0)
    mgr = pl.DataFrame({"manager_id": [f"M{j}" for j in range(30)], "branch_id": ["X"] * 30,
                        "level": ["branch"] * 30, "capacity": rng.integers(1, 5, 30).tolist()})
    cust = pl.DataFrame({"customer_id": [f"C{i}" for i in range(40)], "tier": ["Gold"] * 40,
                         "branch_id": ["X"] * 40})
    full = solve_assignment(cust, mgr)
    cut = solve_assignment(cust, mgr, max_candidates=10)
    assert cut.n_arcs == 400 < full.n_arcs == 1200
    assert cut.objective >= full.objective - 1e-9


def test_a_solve_too_large_for_memory_is_refused_before_building_its_pairs():
    # two branches of 30 outlet RMs and 40 Gold customers each: 2,400 pairs in one
    # solve, 1,200 per branch. (A 10M-customer bank of 40 branches, 212 RMs each,
    # went from 1.6 to 21 GB in 40 s building its pairs in one solve.)
    mgr = pl.DataFrame({"manager_id": [f"M{j}" for j in range(60)],
                        "branch_id": ["X"] * 30 + ["Y"] * 30, "level": ["branch"] * 60,
                        "capacity": [2] * 60})
    cust = pl.DataFrame({"customer_id": [f"C{i}" for i in range(80)], "tier": ["Gold"] * 80,
                         "branch_id": ["X"] * 40 + ["Y"] * 40})
    with pytest.raises(ConfigError, match=r"about 2,400 eligible \(customer, RM\) pairs "
                                          r"(.|\n)*max_pairs=2,000(.|\n)*decompose='branch'"):
        solve_assignment(cust, mgr, max_pairs=2_000)
    whole = solve_assignment(cust, mgr)
    parts = solve_assignment(cust, mgr, max_pairs=2_000, decompose="branch")
    assert (whole.n_parts, parts.n_parts) == (1, 2)
    assert parts.objective == pytest.approx(whole.objective)
    assert solve_assignment(cust, mgr, max_pairs=None).n_arcs == whole.n_arcs == 2400
    with pytest.raises(ConfigError, match="max_pairs"):
        RMAssigner(max_pairs=1_000).fit(cust, mgr)


@st.composite
def crowded(draw):
    """Many managers of one level and branch (a pool), customers with and without a current RM."""
    n_m = draw(st.integers(2, 8))
    n_c = draw(st.integers(1, 14))
    mgr = pl.DataFrame({
        "manager_id": [f"M{j}" for j in range(n_m)],
        "branch_id": [draw(st.sampled_from(["B1", "B2"])) for _ in range(n_m)],
        "level": [draw(st.sampled_from(["branch", "wealth"])) for _ in range(n_m)],
        "capacity": [draw(st.integers(0, 4)) for _ in range(n_m)],
        "active": [draw(st.booleans()) or draw(st.booleans()) for _ in range(n_m)],
    })
    cust = pl.DataFrame({
        "customer_id": [f"C{i:02d}" for i in range(n_c)],
        "tier": [draw(st.sampled_from(["Gold", "Platinum"])) for _ in range(n_c)],
        "branch_id": [draw(st.sampled_from(["B1", "B2"])) for _ in range(n_c)],
        "priority": [draw(st.sampled_from([0.0, 0.5, 1.0])) for _ in range(n_c)],
    })
    ids = mgr["manager_id"].to_list()
    rows = []
    for cid in cust["customer_id"]:
        p = draw(st.one_of(st.none(), st.sampled_from(ids)))
        if p is not None:
            rows.append((cid, p, "primary"))
            b = draw(st.one_of(st.none(), st.sampled_from(ids)))
            if b is not None and b != p:
                rows.append((cid, b, "backup"))
    current = pl.DataFrame(rows, schema=["customer_id", "manager_id", "role"], orient="row")
    return cust, mgr, current


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(crowded(), st.integers(1, 2), st.sampled_from(["branch", "anywhere"]))
def test_pooled_network_has_the_same_optimum(inst, team_size, territory):
    """Arcs to the managers of one branch and level are pooled in the flow; a huge
    max_candidates keeps every arc but turns pooling off: the optimum must not change,
    and the MIP (no pooling) agrees."""
    cust, mgr, current = inst
    kw = dict(eligibility="retail_bank_senior", team_size=team_size, territory=territory)
    pooled = solve_assignment(cust, mgr, current, **kw)
    direct = solve_assignment(cust, mgr, current, max_candidates=10_000, **kw)
    assert pooled.n_arcs == direct.n_arcs
    assert pooled.objective == pytest.approx(direct.objective, abs=1e-9)
    mip = solve_assignment(cust, mgr, current, solver="mip", mip_rel_gap=0.0, **kw)
    assert pooled.objective == pytest.approx(mip.objective, rel=1e-9, abs=1e-6)
    _check_hard(pooled, cust, mgr, ELIGIBILITY_PRESETS["retail_bank_senior"],
                {lvl: territory for lvl in LEVELS}, team_size)
    again = solve_assignment(cust, mgr, pooled.assignment, **kw)
    assert again.moves.height == 0
