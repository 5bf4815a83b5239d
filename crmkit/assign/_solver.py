"""The optimal assignment of customers to relationship managers.

The problem
-----------
Every customer of a tier that gets a named RM needs one primary RM (and, for core
customers with ``team_size > 1``, ``team_size - 1`` backup RMs, all different).
Hard constraints: an RM serves only the tiers its level may own (the eligibility
table), only inside its territory (same branch, same region or anywhere, per level),
only if active, never above capacity (a count, a workload weight, or both).

Each candidate pair (customer ``i``, RM ``j``, role ``r``) costs, in cost units::

    continuity * [j is not i's current primary]           (primary slot; a current backup
                                                           promoted to primary costs
                                                           continuity * (1 - backup_continuity))
    continuity * (1 - backup_continuity) * [j is not a current backup]   (backup slot)
  + level_weight * (1 + priority_i) * rank(level_j in eligibility[tier_i])
  + distance_weight * (0 same branch, 1 same region, 2 elsewhere)

and every RM pays a convex piecewise-linear workload penalty: each customer placed
beyond ``u_k`` of its capacity costs ``balance_weight * c_k`` (``balance_bands``).
A slot left unplaced costs more than any rearrangement of the others can save
(``(U + 1) * (n_managers + 2)`` with ``U`` the largest arc plus band cost, times
``1 + priority_i / max priority``; half that for a backup slot; plus ``continuity``
when the customer had an RM in that role), so the solver
places as many customers as the capacities allow, preferring high priority ones,
and only then optimises the soft terms.

Costs are rounded to integers in units of ``1 / cost_scale``; the solution is exactly
optimal for those integer costs.

With count capacities this is a min-cost flow (OR-Tools' network simplex-free cost
scaling solver); team coverage adds a node per (core customer, candidate RM) with
capacity 1 so that the primary and the backups are different people. With workload
weights it is a generalized assignment problem, solved as a MIP by HiGHS
(``scipy.optimize.milp``) with the relative gap reported.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from crmkit._frames import Output, to_output, to_polars
from crmkit.assign._config import (
    TERRITORY_PRESET,
    AssignConfig,
    _check_bands,
    resolve_eligibility,
    resolve_territory,
)
from crmkit.exceptions import SchemaError
from crmkit.schema import MANAGER_LEVELS

__all__ = ["AssignmentResult", "RMAssigner", "solve_assignment"]

_OWNER = "RMAssigner"


def _require(df: pl.DataFrame, cols: Sequence[str], table: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise SchemaError(f"{_OWNER}: table {table!r} has no column {', '.join(map(repr, missing))}; "
                          f"it has {', '.join(df.columns)}.")


def _unique_key(df: pl.DataFrame, key: str, table: str) -> None:
    if df[key].null_count():
        raise SchemaError(f"{_OWNER}: table {table!r} column {key!r} has {df[key].null_count()} null "
                          f"values; every row needs an id.")
    dup = df[key].filter(df[key].is_duplicated()).unique().sort()
    if dup.len():
        raise SchemaError(f"{_OWNER}: table {table!r} column {key!r} has {dup.len()} duplicated ids, "
                          f"e.g. {', '.join(map(str, dup.head(5).to_list()))}.")


def _check_numeric(df: pl.DataFrame, col: str, table: str, *, low: float = 0.0) -> None:
    s = df[col].cast(pl.Float64, strict=False)
    bad = df.filter(s.is_null() | s.is_nan() | s.is_infinite() | (s < low))
    if bad.height:
        ex = bad.head(5).select(bad.columns[0], col).rows()
        raise SchemaError(f"{_OWNER}: table {table!r} column {col!r} must hold finite numbers >= {low:g}; "
                          f"{bad.height} rows do not, e.g. {ex}.")


# ----------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------

def _prepare_managers(managers: Any, capacity_mode: str, need_region: bool) -> pl.DataFrame:
    m = to_polars(managers, "managers")
    _require(m, ["manager_id", "branch_id", "level", "capacity"], "managers")
    _unique_key(m, "manager_id", "managers")
    bad = m.filter(~pl.col("level").is_in(MANAGER_LEVELS) | pl.col("level").is_null())
    if bad.height:
        raise SchemaError(f"{_OWNER}: table 'managers' column 'level' must be one of "
                          f"{', '.join(MANAGER_LEVELS)}; {bad.height} rows are not, e.g. "
                          f"{bad.head(5).select('manager_id', 'level').rows()}.")
    _check_numeric(m, "capacity", "managers")
    if capacity_mode in ("workload", "both"):
        _require(m, ["workload_capacity"], "managers")
        _check_numeric(m, "workload_capacity", "managers")
    if need_region:
        _require(m, ["region"], "managers")
    cols = [pl.col("manager_id").cast(pl.String), pl.col("branch_id").cast(pl.String),
            pl.col("level").cast(pl.String), pl.col("capacity").cast(pl.Int64),
            (pl.col("active").cast(pl.Boolean).fill_null(False) if "active" in m.columns
             else pl.lit(True)).alias("active"),
            (pl.col("region").cast(pl.String) if "region" in m.columns
             else pl.lit(None, pl.String)).alias("region"),
            (pl.col("workload_capacity").cast(pl.Float64) if "workload_capacity" in m.columns
             else pl.col("capacity").cast(pl.Float64)).alias("workload_capacity")]
    if "skills" in m.columns:
        sk = pl.col("skills")
        if m.schema["skills"] == pl.String:
            sk = sk.str.split(",").list.eval(pl.element().str.strip_chars())
        cols.append(sk.alias("skills"))
    else:
        cols.append(pl.lit(None, pl.List(pl.String)).alias("skills"))
    return m.select(cols).sort("manager_id").with_row_index("j")


def _prepare_customers(customers: Any, need_region: bool) -> pl.DataFrame:
    c = to_polars(customers, "customers")
    _require(c, ["customer_id", "tier", "branch_id"], "customers")
    _unique_key(c, "customer_id", "customers")
    if need_region:
        _require(c, ["region"], "customers")
    for col in ("priority", "workload"):
        if col in c.columns:
            _check_numeric(c, col, "customers")
    return c.select(
        pl.col("customer_id").cast(pl.String), pl.col("tier").cast(pl.String),
        pl.col("branch_id").cast(pl.String),
        (pl.col("region").cast(pl.String) if "region" in c.columns else pl.lit(None, pl.String)).alias("region"),
        (pl.col("priority").cast(pl.Float64) if "priority" in c.columns else pl.lit(0.0)).alias("priority"),
        (pl.col("workload").cast(pl.Float64) if "workload" in c.columns else pl.lit(1.0)).alias("workload"),
        (pl.col("skill").cast(pl.String) if "skill" in c.columns else pl.lit(None, pl.String)).alias("skill"),
        *[pl.col(k).cast(pl.String) for k in ("current_manager_id", "current_backup_id") if k in c.columns],
    ).sort("customer_id")


def _current_table(current: Any, customers: pl.DataFrame) -> pl.DataFrame:
    """Current assignments as (customer_id, manager_id, role)."""
    if current is None:
        parts = []
        if "current_manager_id" in customers.columns:
            parts.append(customers.select("customer_id", pl.col("current_manager_id").alias("manager_id"),
                                          pl.lit("primary").alias("role")))
        if "current_backup_id" in customers.columns:
            parts.append(customers.select("customer_id", pl.col("current_backup_id").alias("manager_id"),
                                          pl.lit("backup").alias("role")))
        if not parts:
            return pl.DataFrame(schema={"customer_id": pl.String, "manager_id": pl.String, "role": pl.String})
        return pl.concat(parts).drop_nulls("manager_id")
    cur = to_polars(current, "current")
    _require(cur, ["customer_id", "manager_id"], "current")
    cur = cur.select(pl.col("customer_id").cast(pl.String), pl.col("manager_id").cast(pl.String),
                     (pl.col("role").cast(pl.String) if "role" in cur.columns
                      else pl.lit("primary")).alias("role")).drop_nulls("manager_id")
    bad = cur.filter(~pl.col("role").is_in(["primary", "backup"]))
    if bad.height:
        raise SchemaError(f"{_OWNER}: table 'current' column 'role' must be 'primary' or 'backup'; "
                          f"{bad.height} rows are not, e.g. {bad.head(5).rows()}.")
    dup = cur.filter(pl.col("role") == "primary").filter(pl.col("customer_id").is_duplicated())
    if dup.height:
        raise SchemaError(f"{_OWNER}: table 'current' has {dup['customer_id'].n_unique()} customers with "
                          f"more than one primary RM, e.g. {dup['customer_id'].unique().sort().head(5).to_list()}.")
    return cur.unique(maintain_order=True)


# ----------------------------------------------------------------------------------------
# the result
# ----------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class AssignmentResult:
    """Everything one solve produced.

    Attributes
    ----------
    assignment : polars.DataFrame
        ``customer_id``, ``role`` (primary/backup), ``manager_id``, ``level``,
        ``manager_branch_id``, ``tier``, ``branch_id``, ``cost``: one row per placed slot.
    unplaced : polars.DataFrame
        ``customer_id``, ``role``, ``tier``, ``branch_id``, ``reason``: every slot the
        solver could not fill, with the reason.
    moves : polars.DataFrame
        ``customer_id``, ``role``, ``from_manager_id``, ``to_manager_id``, ``reason``.
    workload : polars.DataFrame
        Per manager: ``n_customers``, ``workload``, ``capacity``, ``utilisation``.
    objective : float
        Total cost (cost units) of the solution, unplaced penalties included.
    objective_parts : dict
        ``continuity``, ``level``, ``distance``, ``balance``, ``unplaced``.
    status : str
        ``"optimal"`` or, for the MIP on a time limit, ``"time_limit"``.
    gap : float
        Relative optimality gap (0.0 when proven optimal).
    solver : str
        ``"ortools_min_cost_flow"`` or ``"highs_mip"``.
    n_arcs : int
        Candidate (customer, RM, role) pairs the solver considered.
    seconds : float
        Wall-clock time of the whole solve, input checks included.
    timings : dict
        Seconds spent building the network (``build``), in the solver (``solve``) and
        decoding the answer into tables (``decode``).
    """

    assignment: pl.DataFrame
    unplaced: pl.DataFrame
    moves: pl.DataFrame
    workload: pl.DataFrame
    objective: float
    objective_parts: dict
    status: str
    gap: float
    solver: str
    n_arcs: int
    seconds: float
    timings: dict = dataclasses.field(default_factory=dict)


# ----------------------------------------------------------------------------------------
# the estimator
# ----------------------------------------------------------------------------------------

class RMAssigner(BaseEstimator):
    """Optimal books of business: customers to relationship managers, solved exactly.

    Parameters
    ----------
    eligibility : str or dict, default "retail_bank"
        Tier -> RM levels that may own it, preferred first; a preset name
        (``"retail_bank"``: Diamond -> private_banking, Platinum -> wealth,
        Gold -> branch; ``"retail_bank_senior"`` also lets a more senior level serve).
        Tiers not listed get no named RM.
    territory : str or dict, default ``TERRITORY_PRESET``
        Per level: ``"branch"`` (same branch), ``"region"`` (same ``region`` column)
        or ``"anywhere"``.
    capacity : {"count", "workload", "both"}, default "count"
        Which capacity binds: ``managers.capacity`` (customers), ``managers.workload_capacity``
        against ``customers.workload``, or both. Workload makes the problem a
        generalized assignment problem, solved as a MIP.
    team_size : int, default 1
        RMs per core customer: ``team_size - 1`` backups, all different people.
    team_tiers : list of str, default ["Diamond", "Platinum"]
        The core tiers that get a team when ``team_size > 1``.
    continuity : float, default 20.0
        Cost of giving a customer a different RM than the current one.
    backup_continuity : float, default 0.75
        Share of ``continuity`` saved when a current backup becomes the primary; a
        change of backup costs ``continuity * (1 - backup_continuity)``. So when the
        primary leaves, the backup takes over and a new backup is found.
    level_weight, distance_weight, balance_weight : float, default 1.0
        Weights of the preferred-level, same-branch and workload-balance terms.
    balance_bands : list of (float, float)
        Convex workload penalty: each customer beyond utilisation ``u`` costs ``c``.
    keep_valid : bool, default False
        Hard continuity: a customer whose current RM is still active, eligible, in
        territory and within capacity keeps that RM.
    max_candidates : int, optional
        Keep only each slot's ``max_candidates`` cheapest RMs (plus the current one).
        The answer is then optimal for that restricted instance only.
    cost_scale : int, default 1000
        Costs are integers in units of ``1 / cost_scale``.
    solver : {"auto", "flow", "mip"}, default "auto"
        ``"auto"``: min-cost flow for count capacity, MIP otherwise.
    time_limit : float, default 60.0
        Seconds for the MIP.
    mip_rel_gap : float, default 1e-4
        Relative gap at which the MIP stops.

    Attributes
    ----------
    assignment_, unplaced_, moves_, workload_ : polars.DataFrame
        See :class:`AssignmentResult`.
    objective_ : float
    objective_parts_ : dict
    status_ : str
    gap_ : float
    result_ : AssignmentResult

    Examples
    --------
    >>> import polars as pl
    >>> managers = pl.DataFrame({"manager_id": ["PB1", "W1", "B1", "B2"],
    ...                          "branch_id": ["B01", "B01", "B01", "B02"],
    ...                          "level": ["private_banking", "wealth", "branch", "branch"],
    ...                          "capacity": [1, 2, 1, 1]})
    >>> customers = pl.DataFrame({"customer_id": ["a", "b", "c", "d", "e"],
    ...                           "tier": ["Diamond", "Platinum", "Gold", "Gold", "Mass"],
    ...                           "branch_id": ["B02", "B01", "B01", "B01", "B01"],
    ...                           "priority": [0.9, 0.5, 0.2, 0.4, 0.0]})
    >>> model = RMAssigner().fit(customers, managers)
    >>> model.assignment_.select("customer_id", "manager_id").rows()
    [('a', 'PB1'), ('b', 'W1'), ('d', 'B1')]
    >>> model.unplaced_.select("customer_id", "reason").rows()
    [('c', 'capacity: all 1 eligible RMs (branch in branch B01) are full')]
    >>> model.status_
    'optimal'
    """

    def __init__(self, *, eligibility="retail_bank", territory=None, capacity="count",
                 team_size=1, team_tiers=("Diamond", "Platinum"), continuity=20.0,
                 backup_continuity=0.75, level_weight=1.0, distance_weight=1.0,
                 balance_weight=1.0, balance_bands=((0.5, 1.0), (0.75, 2.0), (0.9, 4.0)),
                 keep_valid=False, max_candidates=None, cost_scale=1000, solver="auto",
                 time_limit=60.0, mip_rel_gap=1e-4):
        self.eligibility = eligibility
        self.territory = territory
        self.capacity = capacity
        self.team_size = team_size
        self.team_tiers = team_tiers
        self.continuity = continuity
        self.backup_continuity = backup_continuity
        self.level_weight = level_weight
        self.distance_weight = distance_weight
        self.balance_weight = balance_weight
        self.balance_bands = balance_bands
        self.keep_valid = keep_valid
        self.max_candidates = max_candidates
        self.cost_scale = cost_scale
        self.solver = solver
        self.time_limit = time_limit
        self.mip_rel_gap = mip_rel_gap

    @classmethod
    def from_config(cls, config: AssignConfig | Mapping[str, Any] | None = None) -> RMAssigner:
        """An assigner from an ``[assign]`` config section (a mapping or :class:`AssignConfig`)."""
        from crmkit._config import parse_config
        cfg = parse_config(AssignConfig, config or {}, "assign")
        return cls(**cfg.estimator_params())

    def _validated(self) -> dict:
        from crmkit._config import parse_config
        cfg = parse_config(AssignConfig, {
            k: (list(v) if isinstance(v, tuple) and k in ("team_tiers", "balance_bands") else v)
            for k, v in self.get_params().items() if not (k == "territory" and v is None)},
            _OWNER)
        _check_bands(cfg.balance_bands, _OWNER)
        return cfg.model_dump()

    def fit(self, customers: Any, managers: Any, current: Any = None) -> RMAssigner:
        """Solve the assignment.

        Parameters
        ----------
        customers : table
            One row per customer: ``customer_id``, ``tier``, ``branch_id``; optional
            ``region``, ``priority`` (>= 0; e.g. :func:`priority_score`), ``workload``
            (>= 0, default 1), ``skill`` (an RM must list it in ``managers.skills``),
            ``current_manager_id``/``current_backup_id`` (used when ``current`` is None).
        managers : table
            The ``managers`` table: ``manager_id``, ``branch_id``, ``level``,
            ``capacity``, ``active``; optional ``region``, ``workload_capacity``, ``skills``.
        current : table, optional
            The current ``assignments`` (``customer_id``, ``manager_id``, ``role``).

        Returns
        -------
        self
        """
        res = solve_assignment(customers, managers, current, **self._validated())
        self.result_ = res
        self.assignment_ = res.assignment
        self.unplaced_ = res.unplaced
        self.moves_ = res.moves
        self.workload_ = res.workload
        self.objective_ = res.objective
        self.objective_parts_ = res.objective_parts
        self.status_ = res.status
        self.gap_ = res.gap
        return self

    @property
    def summary_(self) -> pl.DataFrame:
        """One-row summary: status, gap, objective and its parts, counts, seconds."""
        check_is_fitted(self, "result_")
        r = self.result_
        return pl.DataFrame({
            "status": [r.status], "gap": [r.gap], "objective": [r.objective],
            **{f"objective_{k}": [v] for k, v in r.objective_parts.items()},
            "placed": [r.assignment.height], "unplaced": [r.unplaced.height],
            "moves": [r.moves.height], "arcs": [r.n_arcs], "solver": [r.solver],
            "seconds": [r.seconds]})

    def print_summary(self) -> None:
        """Print :attr:`summary_` as text."""
        with pl.Config(tbl_cols=-1, tbl_width_chars=200):
            print(self.summary_)

    def transform(self, customers: Any = None, *, output: Output = "polars"):
        """The fitted assignment (primary and backup rows) as a table."""
        check_is_fitted(self, "result_")
        return to_output(self.assignment_, output)


# ----------------------------------------------------------------------------------------
# the solve
# ----------------------------------------------------------------------------------------

def solve_assignment(customers: Any, managers: Any, current: Any = None, *,
                     config: AssignConfig | Mapping[str, Any] | None = None,
                     **params: Any) -> AssignmentResult:
    """Solve the RM assignment (the global ``assign`` step as a pure function).

    Parameters
    ----------
    customers, managers, current : table
        As in :meth:`RMAssigner.fit`.
    config : AssignConfig or mapping, optional
        The ``[assign]`` section; ``params`` override single fields.

    Returns
    -------
    AssignmentResult

    Examples
    --------
    >>> import polars as pl
    >>> managers = pl.DataFrame({"manager_id": ["B1", "B2"], "branch_id": ["X", "X"],
    ...                          "level": ["branch", "branch"], "capacity": [2, 2],
    ...                          "active": [False, True]})
    >>> customers = pl.DataFrame({"customer_id": ["a", "b"], "tier": ["Gold", "Gold"],
    ...                           "branch_id": ["X", "X"]})
    >>> current = pl.DataFrame({"customer_id": ["a", "b"], "manager_id": ["B1", "B2"]})
    >>> res = solve_assignment(customers, managers, current)
    >>> res.moves.select("customer_id", "from_manager_id", "to_manager_id", "reason").rows()
    [('a', 'B1', 'B2', 'rm_inactive')]
    """
    t0 = time.perf_counter()
    P = _build_problem(customers, managers, current, config, params)
    cfg, cust, cust_all, mgr, cur, arcs = P["cfg"], P["cust"], P["cust_all"], P["mgr"], P["cur"], P["arcs"]
    elig, terr, bands = P["elig"], P["terr"], P["bands"]
    unplaced_cost, n_slots_b = P["unplaced_cost"], P["n_slots_b"]
    t1 = time.perf_counter()
    mode = cfg["solver"]
    if mode == "auto":
        mode = "flow" if cfg["capacity"] == "count" else "mip"
    if mode == "flow" and cfg["capacity"] != "count":
        raise ValueError(f"The 'solver' parameter of {_OWNER} must be 'mip' or 'auto' when capacity is "
                         f"{cfg['capacity']!r} (a generalized assignment problem). Got 'flow' instead.")
    if mode == "flow":
        flow, loads, status, gap, segs = _solve_flow(arcs, cust, mgr, bands, unplaced_cost, n_slots_b)
        solver_name = "ortools_min_cost_flow"
    else:
        flow, loads, status, gap, segs = _solve_mip(arcs, cust, mgr, bands, unplaced_cost, n_slots_b, cfg)
        solver_name = "highs_mip"

    t2 = time.perf_counter()
    chosen = arcs.filter(pl.Series(flow > 0.5))
    scale = cfg["cost_scale"]
    # objective: arc costs + band costs + unplaced penalties, from the decoded solution
    placed_p = np.zeros(cust.height, dtype=np.int64)
    placed_b = np.zeros(cust.height, dtype=np.int64)
    ci = chosen["i"].to_numpy().astype(np.int64)
    is_p = (chosen["role"] == "primary").to_numpy()
    np.add.at(placed_p, ci[is_p], 1)
    np.add.at(placed_b, ci[~is_p], 1)
    miss_p = 1 - placed_p
    miss_b = n_slots_b - placed_b
    unplaced_total = int((miss_p * unplaced_cost[0]).sum() + (miss_b * unplaced_cost[1]).sum())
    band_total = _band_cost(loads, *segs)
    parts_int = {k: int(chosen[k].sum()) if chosen.height else 0
                 for k in ("c_continuity", "c_level", "c_distance")}
    total_int = sum(parts_int.values()) + band_total + unplaced_total
    parts = {"continuity": parts_int["c_continuity"] / scale, "level": parts_int["c_level"] / scale,
             "distance": parts_int["c_distance"] / scale, "balance": band_total / scale,
             "unplaced": unplaced_total / scale}

    m_info = mgr.select("j", "manager_id", "level", pl.col("branch_id").alias("manager_branch_id"))
    assignment = (chosen.join(m_info, on="j").join(cust.select("i", "customer_id", "tier", "branch_id"), on="i")
                  .select("customer_id", pl.col("role").cast(pl.String), "manager_id", "level", "manager_branch_id", "tier",
                          "branch_id", (pl.col("cost") / scale).alias("cost"))
                  .sort("customer_id", pl.col("role") != "primary", "manager_id"))
    unplaced = _unplaced(cust, mgr, arcs, miss_p, miss_b, elig, terr, cfg)
    from crmkit.assign._moves import compute_moves
    moves = compute_moves(cur, assignment, cust_all, mgr, elig, terr, unplaced)
    wl = _workload_table(mgr, assignment, cust_all)
    return AssignmentResult(
        assignment=assignment, unplaced=unplaced, moves=moves, workload=wl,
        objective=total_int / scale, objective_parts=parts, status=status, gap=gap,
        solver=solver_name, n_arcs=arcs.height, seconds=time.perf_counter() - t0,
        timings={"build": t1 - t0, "solve": t2 - t1, "decode": time.perf_counter() - t2})



def _build_problem(customers, managers, current, config, params) -> dict:
    """Validated inputs, candidate arcs and penalties: everything a solver needs."""
    from crmkit._config import parse_config
    base = parse_config(AssignConfig, config or {}, "assign").model_dump()
    base.update(params)
    cfg = parse_config(AssignConfig, base, "assign").model_dump()
    elig = resolve_eligibility(cfg["eligibility"])
    terr = resolve_territory(cfg["territory"])
    need_region = "region" in terr.values()
    mgr = _prepare_managers(managers, cfg["capacity"], need_region)
    cust_all = _prepare_customers(customers, need_region)
    cur = _current_table(current, cust_all)

    named = cust_all.filter(pl.col("tier").is_in(list(elig)))
    cust = named.with_row_index("i")
    team = cfg["team_size"] > 1
    cust = cust.with_columns(
        (pl.col("tier").is_in(cfg["team_tiers"]) & pl.lit(team)).alias("is_team"))

    cur_p = cur.filter(pl.col("role") == "primary").select("customer_id", pl.col("manager_id").alias("cur_primary"))
    cur_b = (cur.filter(pl.col("role") == "backup").group_by("customer_id")
             .agg(pl.col("manager_id").sort().alias("cur_backups")))
    cust = (cust.join(cur_p, on="customer_id", how="left").join(cur_b, on="customer_id", how="left")
            .sort("i"))

    arcs = _candidate_arcs(cust, mgr, elig, terr, cfg)
    if cfg["keep_valid"]:
        arcs = _keep_valid(arcs, cust, mgr)
    if cfg["max_candidates"]:
        arcs = _prune(arcs, cfg["max_candidates"])
    arcs = arcs.sort("i", "role", "j")

    n_mgr = mgr.height
    bands = _bands(mgr, cfg)
    unit_costs = arcs["cost"].to_numpy()
    max_unit = int(unit_costs.max()) if unit_costs.size else 0
    max_band = max((int(c) for _, c in bands), default=0)
    big = (max_unit + max_band + 1) * (n_mgr + 2)
    pr = cust["priority"].to_numpy()
    pmax = float(pr.max()) if pr.size and pr.max() > 0 else 1.0
    base = np.round(big * (1 + pr / pmax)).astype(np.int64)
    # a customer who loses the current RM to "unplaced" breaks continuity too
    full = int(round(cfg["cost_scale"] * cfg["continuity"]))
    has_p = cust["cur_primary"].is_not_null().to_numpy()
    has_b = cust["cur_backups"].is_not_null().to_numpy()
    part = int(round(cfg["cost_scale"] * cfg["continuity"] * (1 - cfg["backup_continuity"])))
    unplaced_cost = (base + full * has_p, base // 2 + part * has_b)
    n_slots_b = np.where(cust["is_team"].to_numpy(), cfg["team_size"] - 1, 0).astype(np.int64)

    return dict(cfg=cfg, elig=elig, terr=terr, mgr=mgr, cust_all=cust_all, cust=cust, cur=cur,
                arcs=arcs, bands=bands, unplaced_cost=unplaced_cost, n_slots_b=n_slots_b)

_ROLE = pl.Enum(["primary", "backup"])


def _candidate_arcs(cust: pl.DataFrame, mgr: pl.DataFrame, elig: dict, terr: dict,
                    cfg: dict) -> pl.DataFrame:
    """Every eligible (customer, RM, role) pair with its integer cost parts.

    Strings are turned into integer codes first, so the (possibly tens of millions of)
    candidate rows hold only small integers.
    """
    schema = {"i": pl.UInt32, "j": pl.UInt32, "role": _ROLE, "cost": pl.Int64, "c_continuity": pl.Int64,
              "c_level": pl.Int64, "c_distance": pl.Int64, "is_current": pl.Boolean}
    el = pl.DataFrame([(t, lvl, r) for t, lv in elig.items() for r, lvl in enumerate(lv)],
                      schema={"tier": pl.String, "level": pl.String, "level_rank": pl.Int32}, orient="row")
    # shared integer codes for branches and regions
    branches = pl.concat([cust["branch_id"], mgr["branch_id"]]).unique().sort()
    regions = pl.concat([cust["region"], mgr["region"]]).drop_nulls().unique().sort()
    bcode = {b: k for k, b in enumerate(branches.to_list())}
    rcode = {r: k for k, r in enumerate(regions.to_list())}
    mid_to_j = dict(zip(mgr["manager_id"].to_list(), mgr["j"].to_list()))

    def codes(col: pl.Expr, mapping: dict) -> pl.Expr:
        return col.replace_strict(mapping, default=None, return_dtype=pl.Int32)

    active = mgr.filter(pl.col("active") & (pl.col("capacity") > 0) & (pl.col("workload_capacity") > 0))
    use_skills = cust["skill"].null_count() < cust.height
    c = cust.select(
        "i", "tier", codes(pl.col("branch_id"), bcode).alias("b"), codes(pl.col("region"), rcode).alias("r"),
        "priority", "is_team",
        codes(pl.col("cur_primary"), mid_to_j).fill_null(-1).alias("cur_p"),
        pl.col("cur_backups").is_not_null().alias("has_b"),
        pl.col("cur_primary").is_not_null().alias("has_p"),
        *(["skill"] if use_skills else []),
    ).join(el, on="tier").drop("tier")
    cur_b = (cust.select("i", "cur_backups").drop_nulls().explode("cur_backups")
             .select("i", codes(pl.col("cur_backups"), mid_to_j).cast(pl.UInt32).alias("j"))
             .drop_nulls().with_columns(pl.lit(True).alias("_is_cur_b")))
    parts = []
    for lvl in MANAGER_LEVELS:
        cl = c.filter(pl.col("level") == lvl).drop("level")
        ml = active.filter(pl.col("level") == lvl).select(
            pl.col("j").cast(pl.UInt32), codes(pl.col("branch_id"), bcode).alias("mb"),
            codes(pl.col("region"), rcode).alias("mr"), *(["skills"] if use_skills else []))
        if cl.height == 0 or ml.height == 0:
            continue
        rule = terr[lvl]
        if rule == "branch":
            p = cl.join(ml, left_on="b", right_on="mb").with_columns(pl.col("b").alias("mb"))
        elif rule == "region":
            p = cl.join(ml, left_on="r", right_on="mr").with_columns(pl.col("r").alias("mr"))
        else:
            p = cl.join(ml, how="cross")
        if use_skills:
            p = p.filter(pl.col("skill").is_null()
                         | pl.col("skills").list.contains(pl.col("skill")).fill_null(False)).drop("skill", "skills")
        parts.append(p)
    if not parts:
        return pl.DataFrame(schema=schema)
    a = pl.concat(parts, how="diagonal_relaxed")
    scale = cfg["cost_scale"]
    cont, bshare = cfg["continuity"], cfg["backup_continuity"]
    full, part = int(round(scale * cont)), int(round(scale * cont * (1 - bshare)))
    dist = (pl.when(pl.col("mb") == pl.col("b")).then(0)
            .when(pl.col("r").is_not_null() & (pl.col("mr") == pl.col("r"))).then(1).otherwise(2))
    a = a.with_columns(
        (pl.lit(scale * cfg["level_weight"]) * (1 + pl.col("priority")) * pl.col("level_rank"))
        .round().cast(pl.Int64).alias("c_level"),
        (pl.lit(scale * cfg["distance_weight"]) * dist).round().cast(pl.Int64).alias("c_distance"),
    ).join(cur_b, on=["i", "j"], how="left").with_columns(pl.col("_is_cur_b").fill_null(False))
    is_p = pl.col("j").cast(pl.Int64) == pl.col("cur_p")
    prim = a.select(
        "i", "j", pl.lit("primary", _ROLE).alias("role"),
        pl.when(is_p).then(0).when(pl.col("_is_cur_b")).then(part)
        .when(pl.col("has_p") | pl.col("has_b")).then(full).otherwise(0).cast(pl.Int64).alias("c_continuity"),
        "c_level", "c_distance", is_p.alias("is_current"))
    outs = [prim]
    if cfg["team_size"] > 1:
        back = a.filter(pl.col("is_team")).select(
            "i", "j", pl.lit("backup", _ROLE).alias("role"),
            pl.when(pl.col("_is_cur_b")).then(0)
            .when(pl.col("has_b") | pl.col("has_p")).then(part).otherwise(0).cast(pl.Int64).alias("c_continuity"),
            "c_level", "c_distance", pl.col("_is_cur_b").alias("is_current"))
        outs.append(back)
    a = pl.concat(outs)
    return a.with_columns((pl.col("c_continuity") + pl.col("c_level") + pl.col("c_distance")).alias("cost")
                          ).select(*schema).cast(schema)


def _keep_valid(arcs: pl.DataFrame, cust: pl.DataFrame, mgr: pl.DataFrame) -> pl.DataFrame:
    """Hard continuity: a slot whose current RM is a candidate keeps only that arc, unless the
    RM's capacity no longer holds the customers it would keep this way."""
    keep = arcs.filter(pl.col("is_current"))
    load = keep.group_by("j").agg(pl.len().alias("_n")).join(mgr.select("j", "capacity"), on="j")
    fits = load.filter(pl.col("_n") <= pl.col("capacity"))["j"]
    fixed = keep.filter(pl.col("j").is_in(fits.implode())).select("i", "role", "j")
    fixed_slots = fixed.select("i", "role").unique()
    free = arcs.join(fixed_slots, on=["i", "role"], how="anti")
    held = arcs.join(fixed, on=["i", "role", "j"], how="semi")
    # a fixed primary's RM cannot also serve that customer as backup
    free = free.join(fixed.select("i", "j"), on=["i", "j"], how="anti")
    return pl.concat([held, free])


def _prune(arcs: pl.DataFrame, k: int) -> pl.DataFrame:
    ranked = arcs.sort("i", "role", "cost", "j").with_columns(
        pl.int_range(pl.len()).over(["i", "role"]).alias("_r"))
    return ranked.filter((pl.col("_r") < k) | pl.col("is_current")).drop("_r")


def _bands(mgr: pl.DataFrame, cfg: dict) -> list[tuple[float, int]]:
    scale = cfg["cost_scale"]
    return [(float(u), int(round(scale * cfg["balance_weight"] * c))) for u, c in cfg["balance_bands"]]


def _segments(cap: np.ndarray, bands: list[tuple[float, int]], integer: bool):
    """Per manager, the widths and unit costs of the convex workload segments."""
    edges = [0.0] + [u for u, _ in bands] + [1.0]
    costs = [0] + [c for _, c in bands]
    widths = []
    prev = np.zeros_like(cap, dtype=float)
    for k in range(1, len(edges)):
        upto = cap * edges[k]
        if integer:
            upto = np.floor(upto + 1e-9) if k < len(edges) - 1 else cap.astype(float)
        widths.append(np.maximum(upto - prev, 0.0))
        prev = np.maximum(prev, upto)
    return widths, costs


def _band_cost(loads: np.ndarray, widths, costs) -> int:
    """Cost of the convex workload penalty at the given loads (segments filled cheapest first)."""
    total = 0.0
    rest = np.asarray(loads, dtype=float).copy()
    for w, c in zip(widths, costs):
        take = np.minimum(rest, w)
        total += float((take * c).sum())
        rest -= take
    return int(round(total))


def _solve_flow(arcs, cust, mgr, bands, unplaced_cost, n_slots_b):
    from ortools.graph.python import min_cost_flow

    n_c, n_m = cust.height, mgr.height
    cap = mgr["capacity"].to_numpy().astype(float)
    widths, costs = _segments(cap, bands, integer=True)
    ai = arcs["i"].to_numpy().astype(np.int64)
    aj = arcs["j"].to_numpy().astype(np.int64)
    ac = arcs["cost"].to_numpy().astype(np.int64)
    is_p = (arcs["role"] == "primary").to_numpy()
    is_team = cust["is_team"].to_numpy()
    # nodes: P_i = i; B_i = n_c + i; managers = 2 n_c + j; sink = 2 n_c + n_m; X nodes after
    node_m = 2 * n_c
    sink = 2 * n_c + n_m
    team_arc = is_team[ai]
    n_x = int(team_arc.sum())
    # X nodes: one per distinct (i, j) among team arcs
    tx = np.nonzero(team_arc)[0]
    pair = ai[tx] * (n_m + 1) + aj[tx]
    uniq, inv = np.unique(pair, return_inverse=True)
    x_node = sink + 1 + inv
    n_nodes = sink + 1 + uniq.size

    tails, heads, caps_, costs_ = [], [], [], []
    # customer slot -> manager (non-team primary)
    nt = ~team_arc
    tails.append(ai[nt]); heads.append(node_m + aj[nt])
    caps_.append(np.ones(nt.sum(), np.int64)); costs_.append(ac[nt])
    # team: slot -> X node -> manager
    tails.append(np.where(is_p[tx], ai[tx], n_c + ai[tx])); heads.append(x_node)
    caps_.append(np.ones(tx.size, np.int64)); costs_.append(ac[tx])
    ux_i, ux_j = uniq // (n_m + 1), uniq % (n_m + 1)
    tails.append(sink + 1 + np.arange(uniq.size)); heads.append(node_m + ux_j)
    caps_.append(np.ones(uniq.size, np.int64)); costs_.append(np.zeros(uniq.size, np.int64))
    # unplaced arcs
    tails.append(np.arange(n_c)); heads.append(np.full(n_c, sink))
    caps_.append(np.ones(n_c, np.int64)); costs_.append(unplaced_cost[0])
    hb = np.nonzero(n_slots_b > 0)[0]
    tails.append(n_c + hb); heads.append(np.full(hb.size, sink))
    caps_.append(n_slots_b[hb]); costs_.append(unplaced_cost[1][hb])
    # manager -> sink segments
    for w, c in zip(widths, costs):
        wi = w.astype(np.int64)
        ok = wi > 0
        tails.append(node_m + np.nonzero(ok)[0]); heads.append(np.full(ok.sum(), sink))
        caps_.append(wi[ok]); costs_.append(np.full(ok.sum(), c, np.int64))
    n_arc_main = int(nt.sum())
    smcf = min_cost_flow.SimpleMinCostFlow()
    t = np.concatenate(tails).astype(np.int32)
    h = np.concatenate(heads).astype(np.int32)
    all_idx = smcf.add_arcs_with_capacity_and_unit_cost(t, h, np.concatenate(caps_), np.concatenate(costs_))
    supplies = np.zeros(n_nodes, np.int64)
    supplies[:n_c] = 1
    supplies[n_c:2 * n_c] = n_slots_b
    supplies[sink] = -int(supplies.sum())
    smcf.set_nodes_supplies(np.arange(n_nodes, dtype=np.int32), supplies)
    st = smcf.solve()
    if st != smcf.OPTIMAL:
        raise RuntimeError(f"{_OWNER}: the min-cost flow solver returned status {st!r}; "
                           f"this is a bug in crmkit's network (every slot has an unplaced arc).")
    flows = smcf.flows(all_idx)
    flow = np.zeros(arcs.height)
    flow[np.nonzero(nt)[0]] = flows[:n_arc_main]
    flow[tx] = flows[n_arc_main:n_arc_main + tx.size]
    loads = np.zeros(n_m)
    np.add.at(loads, aj, flow)
    return flow, loads, "optimal", 0.0, (widths, costs)


def _mip_matrices(arcs, cust, mgr, bands, unplaced_cost, n_slots_b, cfg):
    """The assignment as a (mixed-integer) linear program: costs, constraints, bounds."""
    from scipy.optimize import LinearConstraint
    from scipy.sparse import coo_matrix

    n_c, n_m, n_a = cust.height, mgr.height, arcs.height
    mode = cfg["capacity"]
    cap_count = mgr["capacity"].to_numpy().astype(float)
    cap_work = mgr["workload_capacity"].to_numpy().astype(float)
    bal_cap = cap_count if mode == "count" else cap_work
    widths, costs = _segments(bal_cap, bands, integer=(mode == "count"))
    ai = arcs["i"].to_numpy().astype(np.int64)
    aj = arcs["j"].to_numpy().astype(np.int64)
    is_p = (arcs["role"] == "primary").to_numpy()
    wl = cust["workload"].to_numpy()[ai] if n_a else np.zeros(0)
    hb = np.nonzero(n_slots_b > 0)[0]
    n_seg = len(widths)
    # variables: x (n_a) | u_primary (n_c) | u_backup (len hb) | s (n_m * n_seg)
    off_up, off_ub, off_s = n_a, n_a + n_c, n_a + n_c + hb.size
    n_var = off_s + n_m * n_seg
    c = np.concatenate([arcs["cost"].to_numpy().astype(float), unplaced_cost[0].astype(float),
                        unplaced_cost[1][hb].astype(float),
                        np.concatenate([np.full(n_m, float(cc)) for cc in costs])])
    lb = np.zeros(n_var)
    ub = np.concatenate([np.ones(n_a), np.ones(n_c), n_slots_b[hb].astype(float),
                         np.concatenate(widths)])
    integrality = np.concatenate([np.ones(n_a), np.zeros(n_var - n_a)])
    rows = []
    # slot rows: primary per customer, backup per team customer
    bpos = np.full(n_c, -1)
    bpos[hb] = np.arange(hb.size)
    r_p = coo_matrix((np.ones(n_a)[is_p], (ai[is_p], np.nonzero(is_p)[0])), shape=(n_c, n_var)).tocsr()
    r_p = r_p + coo_matrix((np.ones(n_c), (np.arange(n_c), off_up + np.arange(n_c))), shape=(n_c, n_var))
    rows.append(LinearConstraint(r_p, np.ones(n_c), np.ones(n_c)))
    if hb.size:
        ib = ~is_p
        r_b = coo_matrix((np.ones(ib.sum()), (bpos[ai[ib]], np.nonzero(ib)[0])), shape=(hb.size, n_var)).tocsr()
        r_b = r_b + coo_matrix((np.ones(hb.size), (np.arange(hb.size), off_ub + np.arange(hb.size))),
                               shape=(hb.size, n_var))
        nb = n_slots_b[hb].astype(float)
        rows.append(LinearConstraint(r_b, nb, nb))
        # distinct people: x_P(i,j) + x_B(i,j) <= 1
        key = ai * (n_m + 1) + aj
        kp = dict(zip(key[is_p].tolist(), np.nonzero(is_p)[0].tolist()))
        pr_, pc_ = [], []
        for r, (k, col) in enumerate((k, col) for k, col in zip(key[ib].tolist(), np.nonzero(ib)[0].tolist())
                                     if k in kp):
            pr_ += [r, r]; pc_ += [col, kp[k]]
        if pr_:
            nr = max(pr_) + 1
            rows.append(LinearConstraint(coo_matrix((np.ones(len(pr_)), (pr_, pc_)), shape=(nr, n_var)),
                                         -np.inf, np.ones(nr)))
    # load rows: sum(load x) - sum(s) = 0 on the balanced measure
    load_coef = np.ones(n_a) if mode == "count" else wl
    seg_cols = off_s + np.arange(n_m * n_seg)
    seg_rows = np.tile(np.arange(n_m), n_seg)
    lm = coo_matrix((np.concatenate([load_coef, -np.ones(n_m * n_seg)]),
                     (np.concatenate([aj, seg_rows]), np.concatenate([np.arange(n_a), seg_cols]))),
                    shape=(n_m, n_var))
    rows.append(LinearConstraint(lm, np.zeros(n_m), np.zeros(n_m)))
    if mode == "both":
        cm = coo_matrix((np.ones(n_a), (aj, np.arange(n_a))), shape=(n_m, n_var))
        rows.append(LinearConstraint(cm, -np.inf, cap_count))
    return c, rows, lb, ub, integrality, (widths, costs), load_coef


def _solve_mip(arcs, cust, mgr, bands, unplaced_cost, n_slots_b, cfg):
    from scipy.optimize import Bounds, milp

    n_a, n_m = arcs.height, mgr.height
    aj = arcs["j"].to_numpy().astype(np.int64)
    c, rows, lb, ub, integrality, (widths, costs), load_coef = _mip_matrices(
        arcs, cust, mgr, bands, unplaced_cost, n_slots_b, cfg)
    res = milp(c, constraints=rows, integrality=integrality, bounds=Bounds(lb, ub),
               options={"time_limit": cfg["time_limit"], "mip_rel_gap": cfg["mip_rel_gap"], "disp": False})
    if res.x is None:
        raise RuntimeError(f"{_OWNER}: HiGHS found no solution within time_limit={cfg['time_limit']} s "
                           f"({res.message}); raise time_limit.")
    x = np.round(res.x[:n_a])
    loads = np.zeros(n_m)
    np.add.at(loads, aj, x * load_coef)
    gap = float(getattr(res, "mip_gap", 0.0) or 0.0)
    status = "optimal" if res.status == 0 else "time_limit"
    return x, loads, status, gap, (widths, costs)


def _unplaced(cust, mgr, arcs, miss_p, miss_b, elig, terr, cfg) -> pl.DataFrame:
    rows_i = np.concatenate([np.nonzero(miss_p > 0)[0], np.nonzero(miss_b > 0)[0]])
    roles = ["primary"] * int((miss_p > 0).sum()) + ["backup"] * int((miss_b > 0).sum())
    schema = {"customer_id": pl.String, "role": pl.String, "tier": pl.String, "branch_id": pl.String,
              "reason": pl.String}
    if rows_i.size == 0:
        return pl.DataFrame(schema=schema)
    n_cand = arcs.group_by("i", "role").agg(pl.col("j").n_unique().alias("n"))
    cand = dict(zip(zip(n_cand["i"].to_list(), n_cand["role"].to_list()), n_cand["n"].to_list()))
    c = cust.select("customer_id", "tier", "branch_id", "region", "skill").rows()
    out = []
    for i, role in zip(rows_i.tolist(), roles):
        cid, tier, branch, region, skill = c[i]
        levels = elig[tier]
        n = cand.get((i, role), 0)
        where = "; ".join(f"{lvl} in " + ({"branch": f"branch {branch}", "region": f"region {region}",
                                            "anywhere": "any branch"}[terr[lvl]]) for lvl in levels)
        if n == 0:
            reason = _why_none(mgr, levels, terr, branch, region, skill, where)
        elif role == "backup" and n < cfg["team_size"]:
            reason = f"team: only {n} eligible RMs ({where}) for a team of {cfg['team_size']}"
        elif role == "backup":
            reason = f"capacity: all {n} eligible RMs ({where}) are full or already in the customer's team"
        else:
            reason = f"capacity: all {n} eligible RMs ({where}) are full"
        out.append((cid, role, tier, branch, reason))
    return pl.DataFrame(out, schema=schema, orient="row").sort("customer_id", "role")


def _why_none(mgr, levels, terr, branch, region, skill, where) -> str:
    m = mgr.filter(pl.col("level").is_in(levels))
    if m.height == 0:
        return f"no RM at level {' or '.join(levels)}"
    terr_ok = pl.lit(False)
    for lvl in levels:
        rule = terr[lvl]
        cond = {"branch": pl.col("branch_id") == pl.lit(branch, pl.String),
                "region": pl.col("region") == pl.lit(region, pl.String),
                "anywhere": pl.lit(True)}[rule]
        terr_ok = terr_ok | ((pl.col("level") == lvl) & cond.fill_null(False))
    m = m.filter(terr_ok)
    if m.height == 0:
        return f"no RM in territory ({where})"
    m = m.filter(pl.col("active"))
    if m.height == 0:
        return f"no active RM ({where})"
    m = m.filter((pl.col("capacity") > 0) & (pl.col("workload_capacity") > 0))
    if m.height == 0:
        return f"capacity: every eligible RM ({where}) has capacity 0"
    if skill is not None:
        return f"no eligible RM ({where}) with skill {skill!r}"
    return f"no candidate RM ({where}) after max_candidates/keep_valid"


def _workload_table(mgr: pl.DataFrame, assignment: pl.DataFrame, cust_all: pl.DataFrame) -> pl.DataFrame:
    wl = (assignment.join(cust_all.select("customer_id", "workload"), on="customer_id", how="left")
          .group_by("manager_id").agg(pl.len().alias("n_customers"),
                                      (pl.col("role") == "primary").sum().alias("n_primary"),
                                      pl.col("workload").sum().alias("workload")))
    return (mgr.select("manager_id", "branch_id", "level", "active", "capacity", "workload_capacity")
            .join(wl, on="manager_id", how="left")
            .with_columns(pl.col("n_customers").fill_null(0).cast(pl.Int64),
                          pl.col("n_primary").fill_null(0).cast(pl.Int64),
                          pl.col("workload").fill_null(0.0))
            .with_columns(pl.when(pl.col("capacity") > 0)
                          .then(pl.col("n_customers") / pl.col("capacity")).alias("utilisation"))
            .sort("manager_id"))
