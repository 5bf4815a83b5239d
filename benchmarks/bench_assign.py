"""RM assignment: crmkit (OR-Tools min-cost flow) against scipy's HiGHS LP on the same instance.

Instance (synthetic, seeded): branches of 10 RMs each (8 branch-level, 2 wealth; one
private banker per 50 RMs, who serve anywhere), five branches to a region; customers
80% Gold, 18% Platinum, 2% Diamond, 70% with a current RM; capacities sized to 1.05
times each level's demand with +-15% noise (so some customers cannot be placed), the
"retail_bank_senior" eligibility (Gold may also go to a wealth RM, Platinum to a
private banker) except in the preset runs, default weights (continuity, level, distance, convex workload bands).

Runs (each in its own process, so peak RSS is per run):

  crmkit-full      territory "region" for wealth/branch RMs, every eligible RM a
                   candidate: the exact optimum of the real problem;
  crmkit-top10     the same instance restricted to each customer's 10 cheapest RMs
                   (``max_candidates=10``);
  scipy-top10      that restricted instance as an LP, ``scipy.optimize.linprog(method="highs")``
                   (the network matrix is totally unimodular, so the LP optimum is integral);
  crmkit-preset    the retail-bank preset (eligibility "retail_bank", outlet and wealth RMs
                   in their branch, private bankers anywhere), at 100k x 500 and 1M x 5,000;
  crmkit-preset-region / crmkit-preset-branch
                   the same, ``decompose="region"`` / ``"branch"`` (one solve per group;
                   the private bankers are shared, so their capacity is split, and the
                   gap is stated against the relaxation bound);
  crmkit-full-region
                   crmkit-full with ``decompose="region"`` (the private bankers serving
                   anywhere are the only RMs shared between regions): the loss of the
                   decomposition against the exact optimum of crmkit-full;
  scipy-lp-preset  the preset instance's network as an LP, ``linprog(method="highs")``: its
                   optimum is the global optimum (integral, totally unimodular matrix), so it
                   is the peer and the bound for the decomposed runs.

Usage: python benchmarks/bench_assign.py RUN N_CUSTOMERS N_MANAGERS
       python benchmarks/bench_assign.py all       (the table in RESULTS.md)
       python benchmarks/bench_assign.py quick     (the 100k runs only)
       flock /tmp/crmkit-heavy.lock python benchmarks/bench_assign.py big   (the 1M runs)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import cpu_seconds, reset_peak, status_kb  # noqa: E402


def instance(n_customers: int, n_managers: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_branches = max(1, n_managers // 10)
    n_pb = max(1, n_managers // 50)
    n_rest = n_managers - n_pb
    m_branch = np.concatenate([np.zeros(n_pb, int), rng.permutation(np.arange(n_rest) % n_branches)])
    m_level = np.array(["private_banking"] * n_pb + ["x"] * n_rest, dtype=object)
    # two wealth RMs per branch, the rest branch RMs
    rest = np.arange(n_pb, n_managers)
    first_two = pl.DataFrame({"k": rest, "b": m_branch[rest]}).with_columns(
        pl.int_range(pl.len()).over("b").alias("r"))
    m_level[rest] = np.where(first_two["r"].to_numpy() < 2, "wealth", "branch")
    c_tier = rng.choice(np.array(["Gold", "Platinum", "Diamond"]), n_customers, p=[0.80, 0.18, 0.02])
    c_branch = rng.integers(0, n_branches, n_customers)
    cap = np.zeros(n_managers, dtype=np.int64)
    for tier, level in (("Diamond", "private_banking"), ("Platinum", "wealth"), ("Gold", "branch")):
        idx = np.nonzero(m_level == level)[0]
        need = (c_tier == tier).sum() * 1.05 / max(len(idx), 1)
        cap[idx] = np.maximum(1, np.round(need * rng.uniform(0.85, 1.15, len(idx))))
    managers = pl.DataFrame({
        "manager_id": [f"M{j:05d}" for j in range(n_managers)],
        "branch_id": [f"B{b:04d}" for b in m_branch],
        "region": [f"R{b // 5:03d}" for b in m_branch],
        "level": m_level.astype(str), "capacity": cap, "active": rng.random(n_managers) > 0.02,
    })
    num = pl.Series(np.arange(n_customers)).cast(pl.String).str.zfill(7)
    br = pl.Series(c_branch)
    customers = pl.select(
        customer_id=pl.concat_str(pl.lit("C"), num),
        tier=pl.Series(c_tier),
        branch_id=pl.concat_str(pl.lit("B"), br.cast(pl.String).str.zfill(4)),
        region=pl.concat_str(pl.lit("R"), (br // 5).cast(pl.String).str.zfill(3)),
        priority=pl.Series(np.round(rng.random(n_customers), 3)),
    )
    # current RM: a random eligible RM of the customer's branch (or a PB) for 70% of customers
    has = rng.random(n_customers) < 0.7
    by_level_branch = {}
    for j, (lvl, b) in enumerate(zip(m_level, m_branch)):
        by_level_branch.setdefault((lvl, b if lvl != "private_banking" else 0), []).append(j)
    level_of = {"Gold": "branch", "Platinum": "wealth", "Diamond": "private_banking"}
    cur_j = np.full(n_customers, -1)
    for i in np.nonzero(has)[0]:
        lvl = level_of[c_tier[i]]
        pool = by_level_branch.get((lvl, c_branch[i] if lvl != "private_banking" else 0))
        if pool:
            cur_j[i] = pool[rng.integers(len(pool))]
    ok = cur_j >= 0
    current = pl.DataFrame({"customer_id": customers["customer_id"].filter(pl.Series(ok)),
                            "manager_id": managers["manager_id"].gather(cur_j[ok])})
    return customers, managers, current


TERR_REGION = {"private_banking": "anywhere", "wealth": "region", "branch": "region"}
TERR_BRANCH = {"private_banking": "anywhere", "wealth": "branch", "branch": "branch"}


def run(kind: str, n_c: int, n_m: int) -> dict:
    from crmkit.assign import solve_assignment
    customers, managers, current = instance(n_c, n_m)
    reset_peak()
    rss0 = status_kb("VmRSS")
    t0, c0 = time.perf_counter(), cpu_seconds()
    out = {"run": kind, "customers": n_c, "managers": n_m}
    kw = dict(eligibility="retail_bank_senior")
    if kind == "crmkit-full":
        res = solve_assignment(customers, managers, current, territory=TERR_REGION, **kw)
    elif kind == "crmkit-top10":
        res = solve_assignment(customers, managers, current, territory=TERR_REGION, max_candidates=10, **kw)
    elif kind == "crmkit-preset":
        res = solve_assignment(customers, managers, current)  # retail_bank eligibility and territory
    elif kind in ("crmkit-preset-region", "crmkit-preset-branch"):
        res = solve_assignment(customers, managers, current, decompose=kind.rsplit("-", 1)[1])
    elif kind == "crmkit-preset-region-nobound":
        res = solve_assignment(customers, managers, current, decompose="region", decompose_bound=False)
    elif kind == "crmkit-full-region":
        res = solve_assignment(customers, managers, current, territory=TERR_REGION, decompose="region", **kw)
    elif kind == "scipy-lp-preset":
        out.update(_scipy(customers, managers, current, {}, max_candidates=None))
        res = None
    elif kind == "scipy-top10":
        out.update(_scipy(customers, managers, current, dict(territory=TERR_REGION, **kw)))
        res = None
    else:
        raise SystemExit(f"unknown run {kind!r}")
    out["seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = cpu_seconds() - c0
    out["peak_rss_mb"] = status_kb("VmHWM") / 1024
    out["rss_before_mb"] = rss0 / 1024
    if res is not None:
        out.update(objective=res.objective, status=res.status, gap=res.gap, arcs=res.n_arcs,
                   placed=res.assignment.height, unplaced=res.unplaced.height, moves=res.moves.height,
                   timings={k: round(v, 2) for k, v in res.timings.items()}, bound=res.bound,
                   parts=res.n_parts, solver=res.solver)
    return out


def _scipy(customers, managers, current, kw, max_candidates=10) -> dict:
    """The crmkit network of an instance (by default restricted to each slot's 10 cheapest
    RMs), handed to scipy's HiGHS LP as it is."""
    from scipy.optimize import linprog
    from scipy.sparse import vstack

    from crmkit.assign._solver import _build_problem, _mip_matrices
    t0 = time.perf_counter()
    P = _build_problem(customers, managers, current, None,
                       dict(max_candidates=max_candidates, **kw))
    c, rows, lb, ub, _, _, _ = _mip_matrices(P["arcs"], P["cust"], P["mgr"], P["bands"], P["unplaced_cost"],
                                             P["n_slots_b"], P["cfg"])
    eq = [r for r in rows if np.array_equal(r.lb, r.ub)]
    ineq = [r for r in rows if not np.array_equal(r.lb, r.ub)]
    A_eq = vstack([r.A for r in eq]).tocsr()
    b_eq = np.concatenate([r.ub for r in eq])
    A_ub = vstack([r.A for r in ineq]).tocsr() if ineq else None
    b_ub = np.concatenate([r.ub for r in ineq]) if ineq else None
    t1, c1 = time.perf_counter(), cpu_seconds()
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=np.column_stack([lb, ub]),
                  method="highs")
    t2, c2 = time.perf_counter(), cpu_seconds()
    scale = P["cfg"]["cost_scale"]
    x = res.x[: P["arcs"].height]
    frac = int(((x > 1e-6) & (x < 1 - 1e-6)).sum())
    return {"objective": res.fun / scale, "status": res.message, "arcs": P["arcs"].height,
            "fractional_arcs": frac, "timings": {"build": round(t1 - t0, 2), "solve": round(t2 - t1, 2), "solve_cpu": round(c2 - c1, 2)}}


def main(argv: list[str]) -> None:
    if argv and argv[0] not in ("all", "quick", "big"):
        kind, n_c, n_m = argv[0], int(argv[1]), int(argv[2])
        print(json.dumps(run(kind, n_c, n_m)))
        return
    plan = [("crmkit-top10", 100_000, 500), ("scipy-top10", 100_000, 500), ("crmkit-full", 100_000, 500),
            ("crmkit-preset", 100_000, 500), ("scipy-lp-preset", 100_000, 500),
            ("crmkit-preset-region", 100_000, 500), ("crmkit-preset-branch", 100_000, 500),
            ("crmkit-full-region", 100_000, 500),
            ("crmkit-preset", 1_000_000, 5_000), ("crmkit-preset-region", 1_000_000, 5_000),
            ("crmkit-preset-region-nobound", 1_000_000, 5_000)]
    subset = argv[0] if argv else "all"
    if subset == "quick":      # the 100k runs
        plan = [p for p in plan if p[1] == 100_000]
    elif subset == "big":      # the 1M runs (run under flock /tmp/crmkit-heavy.lock)
        plan = [p for p in plan if p[1] == 1_000_000]
    results = []
    for kind, n_c, n_m in plan:
        load = os.getloadavg()
        p = subprocess.run([sys.executable, __file__, kind, str(n_c), str(n_m)], capture_output=True, text=True,
                           env={**os.environ, "POLARS_MAX_THREADS": os.environ.get("POLARS_MAX_THREADS", "2")})
        if p.returncode:
            print(p.stderr, file=sys.stderr)
            continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        r["load_before"] = [round(x, 2) for x in load]
        r["load_after"] = [round(x, 2) for x in os.getloadavg()]
        results.append(r)
        print(json.dumps(r), flush=True)
    Path(__file__).with_name("results").mkdir(exist_ok=True)
    name = "assign.json" if subset == "all" else f"assign_{subset}.json"
    Path(__file__).with_name("results").joinpath(name).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
