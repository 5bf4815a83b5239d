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
from crmkit.exceptions import ConfigError, SchemaError
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
        ``"optimal"``; ``"feasible"`` for a decomposed solve whose groups share RMs;
        ``"time_limit"`` when the MIP stopped on its time limit.
    gap : float or None
        Relative optimality gap, ``(objective - bound) / objective`` (0.0 when proven
        optimal; None for a decomposed solve without ``decompose_bound``).
    solver : str
        ``"ortools_min_cost_flow"`` or ``"highs_mip"`` (with `` per region`` or `` per branch``
        appended for a decomposed solve).
    n_arcs : int
        Candidate (customer, RM, role) pairs the solver considered.
    seconds : float
        Wall-clock time of the whole solve, input checks included.
    timings : dict
        Wall seconds spent building the network (``build``), in the solver (``solve``)
        and decoding the answer into tables (``decode``); ``*_cpu``: the same in CPU
        seconds of the process (all threads).
    bound : float or None
        A lower bound on the global optimum (cost units): the objective itself for an
        exact flow, HiGHS's dual bound for the MIP, and for a decomposed solve the
        relaxation described in :func:`solve_assignment` (None when not computed).
    n_parts : int
        Number of separate solves (1, or one per region/branch with ``decompose``).
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
    bound: float | None = None
    n_parts: int = 1


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
    max_pairs : int or None, default 25,000,000
        The most eligible (customer, RM) pairs one solve may hold (about 1 GB per 4M,
        so some 6 GB), counted before any is built; a larger solve raises a
        :class:`~crmkit.exceptions.ConfigError` naming the count and the remedies
        (``decompose``, a higher limit) instead of exhausting memory. None: no limit.
    cost_scale : int, default 1000
        Costs are integers in units of ``1 / cost_scale``.
    solver : {"auto", "flow", "mip"}, default "auto"
        ``"auto"``: min-cost flow for count capacity, MIP otherwise.
    time_limit : float, default 60.0
        Seconds for the MIP.
    mip_rel_gap : float, default 1e-4
        Relative gap at which the MIP stops.
    decompose : {"none", "region", "branch"}, default "none"
        ``"none"``: one global solve. ``"region"`` / ``"branch"``: one solve per
        region (or branch) of the customers, for banks too large for one solve. An RM
        whose territory lies inside one group serves only that group; an RM who can
        serve several groups (e.g. a private banker "anywhere") has its capacity split
        among them beforehand (room for its current customers first, the rest by a
        small aggregated flow of each group's slots), and customers left without an RM
        get the capacity the split left unused in a last solve. When no RM serves two
        groups the result is exactly the global optimum (``status_ == "optimal"``);
        otherwise it is feasible (``"feasible"``, or ``"optimal"`` when it meets the
        bound) and the gap is stated against a lower bound (``decompose_bound``).
    decompose_bound : bool, default True
        With ``decompose``, also solve each group with the whole capacity of every
        shared RM: the sum of these optima is a lower bound on the global optimum
        (the coupling capacity constraints are relaxed and the convex workload penalty
        is superadditive); so is the number of slots that must stay unplaced in an
        aggregated relaxation times the cheapest slot penalty. ``gap_`` against the
        larger bound bounds what the decomposition lost. Roughly doubles the time of
        the groups that have shared RMs.

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
                 keep_valid=False, max_candidates=None, max_pairs=25_000_000,
                 cost_scale=1000, solver="auto",
                 time_limit=60.0, mip_rel_gap=1e-4, decompose="none", decompose_bound=True):
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
        self.max_pairs = max_pairs
        self.cost_scale = cost_scale
        self.solver = solver
        self.time_limit = time_limit
        self.mip_rel_gap = mip_rel_gap
        self.decompose = decompose
        self.decompose_bound = decompose_bound

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
    clock = _Clock()
    S = _prepare(customers, managers, current, config, params)
    cfg, cust, cust_all, mgr, cur = S["cfg"], S["cust"], S["cust_all"], S["mgr"], S["cur"]
    elig, terr = S["elig"], S["terr"]
    clock.lap("build")
    mode = cfg["solver"]
    if mode == "auto":
        mode = "flow" if cfg["capacity"] == "count" else "mip"
    if mode == "flow" and cfg["capacity"] != "count":
        raise ValueError(f"The 'solver' parameter of {_OWNER} must be 'mip' or 'auto' when capacity is "
                         f"{cfg['capacity']!r} (a generalized assignment problem). Got 'flow' instead.")
    solver_name = "ortools_min_cost_flow" if mode == "flow" else "highs_mip"
    if cfg["decompose"] == "none":
        part = _solve_part(S, cust.with_columns(pl.col("i").alias("gi")),
                           mgr.with_columns(pl.col("j").alias("gj")), mode, clock)
        chosen, n_cand, n_arcs = part["chosen"], part["n_cand"], part["n_arcs"]
        status, gap, bound, n_parts = part["status"], part["gap"], part["bound"], 1
    else:
        D = _solve_decomposed(S, mode, clock)
        chosen, n_cand, n_arcs = D["chosen"], D["n_cand"], D["n_arcs"]
        status, gap, bound, n_parts = D["status"], D["gap"], D["bound"], D["n_parts"]
        solver_name += f" per {cfg['decompose']}"

    # objective: arc costs + band costs + unplaced penalties, from the decoded solution,
    # with the global capacities (also when the solve was split into parts)
    scale = cfg["cost_scale"]
    unplaced_cost, n_slots_b = _penalties(cust, S)
    placed_p = np.zeros(cust.height, dtype=np.int64)
    placed_b = np.zeros(cust.height, dtype=np.int64)
    ci = chosen["i"].to_numpy().astype(np.int64)
    cj = chosen["j"].to_numpy().astype(np.int64)
    is_p = (chosen["role"] == "primary").to_numpy()
    np.add.at(placed_p, ci[is_p], 1)
    np.add.at(placed_b, ci[~is_p], 1)
    miss_p = 1 - placed_p
    miss_b = n_slots_b - placed_b
    unplaced_total = int((miss_p * unplaced_cost[0]).sum() + (miss_b * unplaced_cost[1]).sum())
    band_total = _band_cost(_loads(cj, ci, cust, mgr, cfg), *_global_segments(mgr, S))
    parts_int = {k: int(chosen[k].sum()) if chosen.height else 0
                 for k in ("c_continuity", "c_level", "c_distance")}
    total_int = sum(parts_int.values()) + band_total + unplaced_total
    parts = {"continuity": parts_int["c_continuity"] / scale, "level": parts_int["c_level"] / scale,
             "distance": parts_int["c_distance"] / scale, "balance": band_total / scale,
             "unplaced": unplaced_total / scale}
    if bound is not None and gap is None:
        gap = max(0.0, (total_int - bound) / total_int) if total_int else 0.0
    if status == "feasible" and bound is not None and total_int <= bound:
        status, gap = "optimal", 0.0        # the bound proves the decomposed books optimal

    m_info = mgr.select("j", "manager_id", "level", pl.col("branch_id").alias("manager_branch_id"))
    assignment = (chosen.join(m_info, on="j").join(cust.select("i", "customer_id", "tier", "branch_id"), on="i")
                  .select("customer_id", pl.col("role").cast(pl.String), "manager_id", "level",
                          "manager_branch_id", "tier", "branch_id", (pl.col("cost") / scale).alias("cost"))
                  .sort("customer_id", pl.col("role") != "primary", "manager_id"))
    unplaced = _unplaced(cust, mgr, n_cand, miss_p, miss_b, elig, terr, cfg)
    from crmkit.assign._moves import compute_moves
    moves = compute_moves(cur, assignment, cust_all, mgr, elig, terr, unplaced)
    wl = _workload_table(mgr, assignment, cust_all)
    clock.lap("decode")
    return AssignmentResult(
        assignment=assignment, unplaced=unplaced, moves=moves, workload=wl,
        objective=total_int / scale, objective_parts=parts, status=status, gap=gap,
        solver=solver_name, n_arcs=n_arcs, seconds=clock.total(), timings=clock.timings(),
        bound=None if bound is None else bound / scale, n_parts=n_parts)


class _Clock:
    """Wall and CPU seconds per phase (CPU counts every thread of the process)."""

    def __init__(self):
        self._t0 = self._t = time.perf_counter()
        self._c = time.process_time()
        self._acc: dict[str, float] = {}

    def lap(self, name: str) -> None:
        t, c = time.perf_counter(), time.process_time()
        self._acc[name] = self._acc.get(name, 0.0) + t - self._t
        self._acc[name + "_cpu"] = self._acc.get(name + "_cpu", 0.0) + c - self._c
        self._t, self._c = t, c

    def total(self) -> float:
        return time.perf_counter() - self._t0

    def timings(self) -> dict:
        return dict(self._acc)


def _prepare(customers, managers, current, config, params) -> dict:
    """Validated inputs and the constants every part of the problem shares."""
    from crmkit._config import parse_config
    base = parse_config(AssignConfig, config or {}, "assign").model_dump()
    base.update(params)
    cfg = parse_config(AssignConfig, base, "assign").model_dump()
    elig = resolve_eligibility(cfg["eligibility"])
    terr = resolve_territory(cfg["territory"])
    need_region = "region" in terr.values() or cfg["decompose"] == "region"
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

    # The unplaced penalty must exceed what any rearrangement of the others can save.
    # It is computed from the rules (not from the candidate arcs), so that every part
    # of a decomposed solve prices an unplaced customer exactly as the global solve does.
    scale = cfg["cost_scale"]
    bands = _bands(mgr, cfg)
    pr = cust["priority"].to_numpy()
    pmax = float(pr.max()) if pr.size and pr.max() > 0 else 1.0
    max_rank = max((len(v) - 1 for v in elig.values()), default=0)
    max_unit = (int(round(scale * cfg["continuity"]))
                + int(round(scale * cfg["level_weight"] * (1 + pmax) * max_rank))
                + int(round(scale * cfg["distance_weight"] * 2)))
    max_band = max((int(c) for _, c in bands), default=0)
    big = (max_unit + max_band + 1) * (mgr.height + 2)
    return dict(cfg=cfg, elig=elig, terr=terr, mgr=mgr, cust_all=cust_all, cust=cust, cur=cur,
                bands=bands, pmax=pmax, big=big)


def _penalties(cust: pl.DataFrame, S: dict):
    """Per customer row: the unplaced costs (primary, backup slots) and the backup slots."""
    cfg = S["cfg"]
    pr = cust["priority"].to_numpy()
    base = np.round(S["big"] * (1 + pr / S["pmax"])).astype(np.int64)
    # a customer who loses the current RM to "unplaced" breaks continuity too
    full = int(round(cfg["cost_scale"] * cfg["continuity"]))
    part = int(round(cfg["cost_scale"] * cfg["continuity"] * (1 - cfg["backup_continuity"])))
    has_p = cust["cur_primary"].is_not_null().to_numpy()
    has_b = cust["cur_backups"].is_not_null().to_numpy()
    n_slots_b = np.where(cust["is_team"].to_numpy(), cfg["team_size"] - 1, 0).astype(np.int64)
    return (base + full * has_p, base // 2 + part * has_b), n_slots_b


def _arcs(cust: pl.DataFrame, mgr: pl.DataFrame, S: dict) -> pl.DataFrame:
    cfg = S["cfg"]
    arcs = _candidate_arcs(cust, mgr, S["elig"], S["terr"], cfg)
    if cfg["keep_valid"]:
        arcs = _keep_valid(arcs, cust, mgr)
    if cfg["max_candidates"]:
        arcs = _prune(arcs, cfg["max_candidates"])
    return arcs.sort("i", "role", "j")


def _build_problem(customers, managers, current, config, params) -> dict:
    """Validated inputs, candidate arcs and penalties of the undecomposed problem."""
    S = _prepare(customers, managers, current, config, params)
    arcs = _arcs(S["cust"], S["mgr"], S)
    unplaced_cost, n_slots_b = _penalties(S["cust"], S)
    return dict(S, arcs=arcs, unplaced_cost=unplaced_cost, n_slots_b=n_slots_b)


def _loads(cj, ci, cust, mgr, cfg) -> np.ndarray:
    """Per manager (global index), the load the balance bands are measured on."""
    w = np.ones(cj.size) if cfg["capacity"] == "count" else cust["workload"].to_numpy()[ci]
    loads = np.zeros(mgr.height)
    np.add.at(loads, cj, w)
    return loads


def _global_segments(mgr: pl.DataFrame, S: dict):
    mode = S["cfg"]["capacity"]
    cap = (mgr["capacity"] if mode == "count" else mgr["workload_capacity"]).to_numpy().astype(float)
    return _segments(cap, S["bands"], integer=(mode == "count"))


def _solve_part(S: dict, cust: pl.DataFrame, mgr: pl.DataFrame, mode: str, clock: _Clock) -> dict:
    """Solve the problem restricted to ``cust`` (local index ``i``, global ``gi``) and
    ``mgr`` (local ``j``, global ``gj``; capacities as given). Arcs come back global."""
    cfg = S["cfg"]
    arcs = _arcs(cust, mgr, S)
    unplaced_cost, n_slots_b = _penalties(cust, S)
    clock.lap("build")
    if mode == "flow":
        flow, loads, status, gap, segs = _solve_flow(arcs, cust, mgr, S["bands"], unplaced_cost, n_slots_b,
                                                     pools=not cfg["max_candidates"])
        bound = None
    else:
        flow, loads, status, gap, segs, bound = _solve_mip(arcs, cust, mgr, S["bands"], unplaced_cost,
                                                           n_slots_b, cfg)
    clock.lap("solve")
    chosen = arcs.filter(pl.Series(flow > 0.5))
    placed_p = np.zeros(cust.height, dtype=np.int64)
    placed_b = np.zeros(cust.height, dtype=np.int64)
    ci = chosen["i"].to_numpy().astype(np.int64)
    is_p = (chosen["role"] == "primary").to_numpy()
    np.add.at(placed_p, ci[is_p], 1)
    np.add.at(placed_b, ci[~is_p], 1)
    objective = (int(chosen["cost"].sum()) + _band_cost(loads, *segs)
                 + int(((1 - placed_p) * unplaced_cost[0]).sum() + ((n_slots_b - placed_b) * unplaced_cost[1]).sum()))
    gi = cust["gi"].to_numpy()
    gj = mgr["gj"].to_numpy()

    def to_global(df: pl.DataFrame) -> pl.DataFrame:
        out = df.with_columns(pl.Series("i", gi[df["i"].to_numpy()], pl.UInt32))
        if "j" in df.columns:
            out = out.with_columns(pl.Series("j", gj[df["j"].to_numpy()], pl.UInt32))
        return out

    n_cand = arcs.group_by("i", "role").agg(pl.col("j").n_unique().cast(pl.UInt32).alias("n"))
    out = dict(chosen=to_global(chosen), n_cand=to_global(n_cand), n_arcs=arcs.height, status=status,
               gap=gap, objective=objective, bound=objective if bound is None else bound)
    clock.lap("decode")
    return out


# ----------------------------------------------------------------------------------------
# decomposition by region or branch
# ----------------------------------------------------------------------------------------

def _largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers proportional to ``weights`` summing to ``total`` (zeros when no weight)."""
    w = np.asarray(weights, dtype=float)
    if total <= 0 or w.sum() <= 0:
        return np.zeros(w.size, dtype=np.int64)
    share = total * w / w.sum()
    out = np.floor(share).astype(np.int64)
    rest = int(total - out.sum())
    if rest:
        out[np.argsort(-(share - out), kind="stable")[:rest]] += 1
    return out


def _reach(S: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Which groups each usable manager can serve, and the demand there.

    Returns ``reach`` (``j``, ``g``, ``tier``, ``rank``, ``n``: eligible customers of
    that tier in the group) and ``slots`` (``g``, ``tier``, ``n``, ``slots``).
    """
    cfg, cust, mgr, elig, terr = S["cfg"], S["cust"], S["mgr"], S["elig"], S["terr"]
    demand = cust.group_by("g", "branch_id", "region", "tier").agg(pl.len().alias("n"))
    el = pl.DataFrame([(t, lvl, r) for t, lv in elig.items() for r, lvl in enumerate(lv)],
                      schema={"tier": pl.String, "level": pl.String, "rank": pl.Int64}, orient="row")
    usable = mgr.filter(pl.col("active") & (pl.col("capacity") > 0) & (pl.col("workload_capacity") > 0))
    parts = []
    for lvl in MANAGER_LEVELS:
        m = usable.filter(pl.col("level") == lvl).select("j", pl.col("branch_id").alias("mb"),
                                                          pl.col("region").alias("mr"))
        d = demand.join(el.filter(pl.col("level") == lvl), on="tier")
        if m.height == 0 or d.height == 0:
            continue
        rule = terr[lvl]
        if rule == "branch":
            p = d.join(m, left_on="branch_id", right_on="mb")
        elif rule == "region":
            p = d.join(m, left_on="region", right_on="mr")
        else:
            p = d.join(m, how="cross")
        parts.append(p.select("j", "g", "tier", "rank", "n"))
    schema = {"j": pl.UInt32, "g": pl.UInt32, "tier": pl.String, "rank": pl.Int64, "n": pl.UInt32}
    reach = (pl.concat(parts).group_by("j", "g", "tier", "rank").agg(pl.col("n").sum())
             if parts else pl.DataFrame(schema=schema)).cast(schema)
    slots = (cust.group_by("g", "tier").agg(pl.len().cast(pl.Int64).alias("n"),
                                            (1 + pl.col("is_team").cast(pl.Int64) * (cfg["team_size"] - 1))
                                            .sum().alias("slots")))
    return reach, slots


def _allocate(S: dict, reach: pl.DataFrame, slots: pl.DataFrame, shared: np.ndarray) -> tuple[pl.DataFrame, int]:
    """Split each shared manager's capacity among the groups it serves.

    First each group keeps room for the manager's current eligible customers there
    (continuity); the rest follows a small aggregated min-cost flow of slots per
    (group, tier) to local capacity per (group, level) and to the shared managers,
    preferred levels first, as many slots placed as the capacities allow; capacity the
    flow leaves unused is shared by eligible demand. Returns ``j``, ``g``, ``alloc`` and
    a lower bound on the number of slots any solution leaves unplaced.
    """
    from ortools.graph.python import min_cost_flow

    mgr, cust, cur = S["mgr"], S["cust"], S["cur"]
    cap = mgr["capacity"].to_numpy().astype(np.int64)
    sh = reach.filter(pl.col("j").is_in(pl.Series(np.nonzero(shared)[0]).cast(pl.UInt32).implode()))
    loc = reach.join(sh.select("j").unique(), on="j", how="anti")
    # continuity: the shared manager's current (eligible) customers in each group
    mid = mgr.select(pl.col("manager_id"), pl.col("j").cast(pl.UInt32))
    held = (cur.join(mid, on="manager_id").join(cust.select("customer_id", "g", "tier"), on="customer_id")
            .join(sh.select("j", "g", "tier").unique(), on=["j", "g", "tier"], how="semi")
            .group_by("j", "g", "tier").agg(pl.len().cast(pl.Int64).alias("held")).sort("j", "g", "tier"))
    reserve = []
    for (j,), grp in held.partition_by("j", as_dict=True, maintain_order=True).items():
        h = grp["held"].to_numpy()
        r = h if h.sum() <= cap[j] else _largest_remainder(int(cap[j]), h)
        reserve.append(grp.with_columns(pl.Series("r", r, pl.Int64)))
    reserve = (pl.concat(reserve) if reserve else
               pl.DataFrame(schema={"j": pl.UInt32, "g": pl.UInt32, "tier": pl.String, "held": pl.Int64,
                                    "r": pl.Int64}))
    rest_cap = cap.copy()
    rj = reserve.group_by("j").agg(pl.col("r").sum())
    rest_cap[rj["j"].to_numpy()] -= rj["r"].to_numpy()
    # local capacity per (group, level)
    lvl_of = mgr.select(pl.col("j").cast(pl.UInt32), "level", "capacity")
    pools = (loc.select("j", "g").unique().join(lvl_of, on="j").group_by("g", "level")
             .agg(pl.col("capacity").sum().alias("cap")).sort("g", "level").with_row_index("pool"))

    def flow(sup: pl.DataFrame, sh_cap: np.ndarray):
        """The aggregated flow: slots per (group, tier) to local capacity per (group,
        level) and to the shared managers; returns the flows to shared managers and the
        number of slots left unplaced."""
        sup = sup.filter(pl.col("s") > 0).with_row_index("node")
        n_sup, n_pool = sup.height, pools.height
        sh_j = np.unique(sh["j"].to_numpy())
        jnode = {int(j): n_sup + n_pool + k for k, j in enumerate(sh_j)}
        sink = n_sup + n_pool + sh_j.size
        el = pl.DataFrame([(t, lvl, r) for t, lv in S["elig"].items() for r, lvl in enumerate(lv)],
                          schema={"tier": pl.String, "level": pl.String, "rank": pl.Int64}, orient="row")
        to_pool = sup.join(el, on="tier").join(pools, on=["g", "level"])
        to_sh = sup.join(sh.select("j", "g", "tier", "rank"), on=["g", "tier"])
        t_, h_, c_, k_ = [], [], [], []
        t_.append(to_pool["node"].to_numpy()); h_.append(n_sup + to_pool["pool"].to_numpy())
        c_.append(to_pool["s"].to_numpy()); k_.append(2 * to_pool["rank"].to_numpy())
        t_.append(to_sh["node"].to_numpy()); h_.append(np.array([jnode[int(j)] for j in to_sh["j"]], dtype=np.int64))
        c_.append(to_sh["s"].to_numpy()); k_.append(2 * to_sh["rank"].to_numpy() + 1)   # local first
        t_.append(sup["node"].to_numpy()); h_.append(np.full(n_sup, sink))
        # leaving a slot out costs more than any augmenting path saves: the flow places
        # as many slots as the capacities allow
        max_arc = 2 * max((len(v) for v in S["elig"].values()), default=1) + 1
        c_.append(sup["s"].to_numpy()); k_.append(np.full(n_sup, (max_arc + 1) * (sink + 2)))
        t_.append(n_sup + pools["pool"].to_numpy()); h_.append(np.full(n_pool, sink))
        c_.append(pools["cap"].to_numpy()); k_.append(np.zeros(n_pool, np.int64))
        t_.append(np.array([jnode[int(j)] for j in sh_j], dtype=np.int64)); h_.append(np.full(sh_j.size, sink))
        c_.append(np.maximum(sh_cap[sh_j], 0)); k_.append(np.zeros(sh_j.size, np.int64))
        smcf = min_cost_flow.SimpleMinCostFlow()
        idx = smcf.add_arcs_with_capacity_and_unit_cost(
            np.concatenate(t_).astype(np.int32), np.concatenate(h_).astype(np.int32),
            np.concatenate(c_).astype(np.int64), np.concatenate(k_).astype(np.int64))
        supplies = np.zeros(sink + 1, np.int64)
        supplies[:n_sup] = sup["s"].to_numpy()
        supplies[sink] = -int(supplies.sum())
        smcf.set_nodes_supplies(np.arange(sink + 1, dtype=np.int32), supplies)
        if smcf.solve() != smcf.OPTIMAL:
            raise RuntimeError(f"{_OWNER}: the capacity allocation flow failed; this is a bug in crmkit.")
        fl = smcf.flows(idx)
        off = to_pool.height
        y = (to_sh.select("j", "g").with_columns(pl.Series("y", fl[off:off + to_sh.height], pl.Int64))
             .group_by("j", "g").agg(pl.col("y").sum()))
        unplaced = int(fl[off + to_sh.height:off + to_sh.height + n_sup].sum())
        return y, unplaced

    # supplies per (group, tier) after the reservations
    sup = (slots.join(reserve.group_by("g", "tier").agg(pl.col("r").sum()), on=["g", "tier"], how="left")
           .with_columns((pl.col("slots") - pl.col("r").fill_null(0)).clip(0).alias("s")))
    y, _ = flow(sup, rest_cap)
    # the same without reservations is a relaxation of the whole problem (territory inside
    # a group, skills and distinct team members ignored): at least this many slots stay
    # unplaced in any solution
    _, min_unplaced = flow(slots.with_columns(pl.col("slots").alias("s")), cap)
    alloc = (sh.group_by("j", "g").agg(pl.col("n").sum().cast(pl.Int64).alias("d"))
             .join(reserve.group_by("j", "g").agg(pl.col("r").sum()), on=["j", "g"], how="left")
             .join(y, on=["j", "g"], how="left")
             .with_columns((pl.col("r").fill_null(0) + pl.col("y").fill_null(0)).alias("alloc"))
             .sort("j", "g"))
    out = []
    for (j,), grp in alloc.partition_by("j", as_dict=True, maintain_order=True).items():
        a = grp["alloc"].to_numpy()
        left = int(cap[j] - a.sum())
        a = a + _largest_remainder(left, grp["d"].to_numpy())
        out.append(grp.select("j", "g").with_columns(pl.Series("alloc", a, pl.Int64)))
    return (pl.concat(out) if out else pl.DataFrame(schema={"j": pl.UInt32, "g": pl.UInt32, "alloc": pl.Int64}),
            min_unplaced)


def _solve_decomposed(S: dict, mode: str, clock: _Clock) -> dict:
    """One solve per region (or branch), shared managers' capacity split beforehand.

    The parts are priced with the global constants, so when no manager serves more
    than one group the parts' optima add up to the global optimum exactly. Otherwise
    the result is feasible and, with ``decompose_bound``, comes with a lower bound on
    the global optimum, the larger of (a) the sum of the groups' optima when every group
    may use each shared manager's whole capacity (a relaxation: the workload penalty is
    convex with zero at zero, hence superadditive) and (b) the minimum number of slots
    the aggregated relaxation leaves unplaced times the cheapest slot penalty.
    """
    cfg, mgr = S["cfg"], S["mgr"]
    key = {"region": "region", "branch": "branch_id"}[cfg["decompose"]]
    cust = S["cust"]
    nulls = cust.filter(pl.col(key).is_null())
    if nulls.height:
        raise SchemaError(f"{_OWNER}: decompose={cfg['decompose']!r} needs table 'customers' column {key!r} on every "
                          f"customer with a named RM; {nulls.height} rows are null, e.g. "
                          f"{nulls['customer_id'].head(5).to_list()}.")
    groups = cust[key].unique().sort()
    cust = cust.with_columns(pl.col(key).replace_strict(groups, pl.int_range(groups.len(), eager=True)
                                                        .cast(pl.UInt32)).alias("g"))
    S = dict(S, cust=cust)
    reach, slots = _reach(S)
    n_groups = reach.select("j", "g").unique().group_by("j").len()
    shared = np.zeros(mgr.height, dtype=bool)
    shared[n_groups.filter(pl.col("len") > 1)["j"].to_numpy()] = True
    home = (reach.join(n_groups.filter(pl.col("len") == 1).select("j"), on="j", how="semi")
            .select("j", "g").unique())
    alloc, min_unplaced = (_allocate(S, reach, slots, shared) if shared.any()
                           else (pl.DataFrame(schema={"j": pl.UInt32, "g": pl.UInt32, "alloc": pl.Int64}), 0))
    full = reach.filter(pl.col("j").is_in(pl.Series(np.nonzero(shared)[0]).cast(pl.UInt32).implode())
                        ).select("j", "g").unique()
    clock.lap("build")
    mgr_u = mgr.with_columns(pl.col("j").cast(pl.UInt32))
    chosen, n_cand, n_arcs, bound, statuses = [], [], 0, 0, set()
    by_g = cust.partition_by("g", as_dict=True)
    home_by_g = home.partition_by("g", as_dict=True)
    alloc_by_g = alloc.filter(pl.col("alloc") > 0).partition_by("g", as_dict=True)
    full_by_g = full.partition_by("g", as_dict=True)
    empty = pl.DataFrame(schema={"j": pl.UInt32, "g": pl.UInt32, "alloc": pl.Int64})

    def sub_mgr(local: pl.DataFrame | None, share: pl.DataFrame | None, scale_cap: bool) -> pl.DataFrame:
        parts = []
        if local is not None:
            parts.append(mgr_u.join(local.select("j"), on="j", how="semi"))
        if share is not None:
            s = mgr_u.join(share.select("j", *(["alloc"] if scale_cap else [])), on="j")
            if scale_cap:
                s = s.with_columns(
                    (pl.col("workload_capacity") * pl.col("alloc") / pl.col("capacity")).alias("workload_capacity"),
                    pl.col("alloc").alias("capacity")).drop("alloc")
            parts.append(s)
        m = pl.concat(parts) if parts else mgr_u.clear()
        return m.sort("j").rename({"j": "gj"}).with_row_index("j")

    for (g,), cg in sorted(by_g.items()):
        sub_c = cg.rename({"i": "gi"}).with_row_index("i")
        local = home_by_g.get((g,))
        sm = sub_mgr(local, alloc_by_g.get((g,), empty), True)
        part = _solve_part(S, sub_c, sm, mode, clock)
        chosen.append(part["chosen"]); n_cand.append(part["n_cand"]); n_arcs += part["n_arcs"]
        statuses.add(part["status"])
        if (g,) not in full_by_g:
            bound += part["bound"]          # no shared manager here: this part is exact
        elif cfg["decompose_bound"]:
            relaxed = _solve_part(S, sub_c, sub_mgr(local, full_by_g[(g,)], False), mode, clock)
            bound += relaxed["bound"]
            statuses.add(relaxed["status"])
    if not chosen:   # no customer with a named RM
        chosen = [pl.DataFrame(schema=_ARC_SCHEMA)]
        n_cand = [pl.DataFrame(schema={"i": pl.UInt32, "role": _ROLE, "n": pl.UInt32})]
    chosen = pl.concat(chosen)
    n_cand = pl.concat(n_cand)
    # repair: customers left without any RM get the capacity the split left unused
    cj = chosen["j"].to_numpy().astype(np.int64)
    ci = chosen["i"].to_numpy().astype(np.int64)
    cnt = np.bincount(cj, minlength=mgr.height)
    wl = np.zeros(mgr.height)
    np.add.at(wl, cj, cust["workload"].to_numpy()[ci])
    res_c = mgr["capacity"].to_numpy() - cnt
    res_w = mgr["workload_capacity"].to_numpy() - wl
    placed = np.zeros(cust.height, dtype=bool)
    placed[ci[(chosen["role"] == "primary").to_numpy()]] = True
    n_repaired = 0
    if shared.any() and (~placed).any():
        room = mgr_u.with_columns(pl.Series("capacity", res_c, pl.Int64),
                                  pl.Series("workload_capacity", res_w, pl.Float64)).filter(
            (pl.col("capacity") > 0) & (pl.col("workload_capacity") > 1e-9))
        if room.height:
            sub_c = cust.filter(pl.Series(~placed)).rename({"i": "gi"}).with_row_index("i")
            part = _solve_part(S, sub_c, room.rename({"j": "gj"}).with_row_index("j"), mode, clock)
            n_repaired = part["chosen"].filter(pl.col("role") == "primary").height
            chosen = pl.concat([chosen, part["chosen"]])
            got = part["n_cand"].select("i", "role")
            n_cand = pl.concat([n_cand.join(got, on=["i", "role"], how="anti"),
                                n_cand.join(got, on=["i", "role"], how="semi").join(
                                    part["n_cand"], on=["i", "role"]).select(
                                    "i", "role", (pl.col("n") + pl.col("n_right")).alias("n"))])
            n_arcs += part["n_arcs"]
            statuses.add(part["status"])
    exact = not shared.any()
    if not exact and cfg["decompose_bound"]:
        # a second bound: every solution pays at least min_unplaced of the cheapest slot penalty
        pen, n_b = _penalties(cust, S)
        cheapest = int(pen[0].min()) if not n_b.any() else int(min(pen[0].min(), pen[1][n_b > 0].min()))
        bound = max(bound, min_unplaced * cheapest)
    status = "time_limit" if "time_limit" in statuses else ("optimal" if exact and mode == "flow" else "feasible")
    if exact and mode == "mip" and status != "time_limit":
        status = "optimal"
    return dict(chosen=chosen, n_cand=n_cand, n_arcs=n_arcs, status=status,
                gap=0.0 if exact and mode == "flow" else None,
                bound=bound if (cfg["decompose_bound"] or exact) else None,
                n_parts=len(by_g), n_repaired=n_repaired)


_ROLE = pl.Enum(["primary", "backup"])
_ARC_SCHEMA = {"i": pl.UInt32, "j": pl.UInt32, "role": _ROLE, "cost": pl.Int64, "c_continuity": pl.Int64,
               "c_level": pl.Int64, "c_distance": pl.Int64, "is_current": pl.Boolean}


def _check_pairs(levels: list[tuple[str, pl.DataFrame, pl.DataFrame]], terr: dict,
                 limit: int | None) -> None:
    """Refuse a solve whose eligible (customer, RM) pairs would pass ``limit``, counted
    from group sizes before any pair is built (an upper bound: skills and validity
    filters come later). Measured: a 10M-customer bank of 40 branches, 212 RMs each,
    grew from 1.6 to 21 GB in 40 s building its pairs in one solve."""
    if limit is None:
        return
    total = 0
    for lvl, cl, ml in levels:
        rule = terr[lvl]
        if rule == "anywhere":
            total += cl.height * ml.height
            continue
        key = "b" if rule == "branch" else "r"
        mkey = "mb" if rule == "branch" else "mr"
        total += int(cl.group_by(key).len().join(ml.group_by(mkey).len(), left_on=key,
                                                    right_on=mkey)
                     .select((pl.col("len").cast(pl.Int64) * pl.col("len_right"))
                             .sum()).item() or 0)
    if total > limit:
        raise ConfigError(
            f"{_OWNER}: one solve would hold about {total:,} eligible (customer, RM) pairs "
            f"(about {total / 4e6:.0f} GB), over max_pairs={limit:,}. Solve in groups with "
            f"decompose='branch' (or 'region'), keep fewer candidates with max_candidates, "
            f"or raise max_pairs where the memory is there.")


def _candidate_arcs(cust: pl.DataFrame, mgr: pl.DataFrame, elig: dict, terr: dict,
                    cfg: dict) -> pl.DataFrame:
    """Every eligible (customer, RM, role) pair with its integer cost parts.

    Strings are turned into integer codes first, so the (possibly tens of millions of)
    candidate rows hold only small integers.
    """
    schema = _ARC_SCHEMA
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
    levels = []
    for lvl in MANAGER_LEVELS:
        cl = c.filter(pl.col("level") == lvl).drop("level")
        ml = active.filter(pl.col("level") == lvl).select(
            pl.col("j").cast(pl.UInt32), codes(pl.col("branch_id"), bcode).alias("mb"),
            codes(pl.col("region"), rcode).alias("mr"), *(["skills"] if use_skills else []))
        levels.append((lvl, cl, ml))
    _check_pairs(levels, terr, cfg["max_pairs"])
    parts = []
    for lvl, cl, ml in levels:
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


_BATCH_ARCS = 50_000
"""Connected components of the candidate graph are solved separately (exact: the parts
share only the sink), small ones batched together up to this many arcs. OR-Tools' cost
scaling grows faster than linearly with the network, so this is faster than one solve."""


def _remap(values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` for integers in ``[0, size)``, in O(n)."""
    mark = np.zeros(size + 1, dtype=bool)
    mark[values] = True
    kept = np.flatnonzero(mark)
    return kept, (np.cumsum(mark) - 1)[values]


def _dense_unique(keys: np.ndarray, size: int) -> np.ndarray:
    """Sorted distinct keys in ``[0, size)``: a mark array when small, else a sort."""
    if size <= 50_000_000:
        mark = np.zeros(size, dtype=bool)
        mark[keys] = True
        return np.flatnonzero(mark)
    return np.unique(keys)


def _solve_flow(arcs, cust, mgr, bands, unplaced_cost, n_slots_b, *, pools=True):
    """The min-cost flow, one connected component (or batch of small ones) at a time,
    with equal-cost arcs to the managers of one branch and level pooled (``pools``; not
    with skills, which make managers of a pool differ)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_c, n_m = cust.height, mgr.height
    cap = mgr["capacity"].to_numpy().astype(float)
    ai = arcs["i"].to_numpy().astype(np.int64)
    aj = arcs["j"].to_numpy().astype(np.int64)
    ac = arcs["cost"].to_numpy().astype(np.int64)
    is_p = (arcs["role"] == "primary").to_numpy()
    is_team = cust["is_team"].to_numpy()
    flow = np.zeros(ai.size)
    loads = np.zeros(n_m)
    pool = np.full(ai.size, -1, dtype=np.int64)
    if ai.size and pools and cust["skill"].null_count() == n_c:
        pid = (mgr.select(pl.struct("branch_id", "level").rank("dense")).to_series().to_numpy()
               .astype(np.int64) - 1)[aj]
        # level and distance costs are the same for every RM of a pool; the continuity cost
        # is too, except on the current primary (0) and a current backup (cheaper): those
        # stay direct arcs. So a customer's other arcs into one pool all cost the same.
        cont = arcs["c_continuity"].to_numpy()
        c_any = np.zeros(n_c, dtype=np.int64)
        np.maximum.at(c_any, ai, cont)        # the customer's highest continuity cost
        ok = is_p & ~is_team[ai] & ~arcs["is_current"].to_numpy() & (cont == c_any[ai])
        pool[ok] = pid[ok]
    if ai.size:
        g = coo_matrix((np.ones(ai.size, np.int8), (ai, n_c + aj)), shape=(n_c + n_m, n_c + n_m))
        _, label = connected_components(g, directed=False)
        comp = label[ai]                      # an arc's component is its customer's
        order = np.argsort(comp, kind="stable")
        bounds = np.flatnonzero(np.diff(comp[order])) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [ai.size]])
        batch: list[np.ndarray] = []
        size = 0
        for k, (a, b) in enumerate(zip(starts, ends)):
            batch.append(order[a:b])
            size += b - a
            if size >= _BATCH_ARCS or k == len(starts) - 1:
                # in arc order (sorted by customer, role, manager), which the pool decoding uses
                sel = np.sort(np.concatenate(batch)) if len(batch) > 1 else np.sort(batch[0])
                ci, inv_i = _remap(ai[sel], n_c)
                cj, inv_j = _remap(aj[sel], n_m)
                ps = pool[sel]
                if (ps >= 0).any():
                    ps = ps.copy()
                    ps[ps >= 0] = _remap(ps[ps >= 0], n_m)[1]
                f, ld = _solve_flow_arrays(inv_i, inv_j, ac[sel], is_p[sel], is_team[ci], cap[cj], bands,
                                           (unplaced_cost[0][ci], unplaced_cost[1][ci]), n_slots_b[ci], ps)
                flow[sel] = f
                loads[cj] += ld
                batch, size = [], 0
    widths, costs = _segments(cap, bands, integer=True)
    return flow, loads, "optimal", 0.0, (widths, costs)


def _solve_flow_arrays(ai, aj, ac, is_p, is_team, cap, bands, unplaced_cost, n_slots_b, pool=None):
    """One OR-Tools min-cost flow on arrays: arcs (customer ``ai``, manager ``aj``, cost
    ``ac``, primary or not), per customer ``is_team``, per manager ``cap``.

    ``pool`` (per arc, -1 for none) routes arcs through a pool node: a customer's arcs
    to the managers of one pool (same branch and level) that cost the same become one
    arc to the pool, and the pool has an uncapacitated arc to each of its managers. The
    optimum is the same (every path costs what the direct arc cost); the network has
    about as many arcs as customers times pools instead of customers times managers.
    """
    from ortools.graph.python import min_cost_flow

    n_c, n_m = is_team.size, cap.size
    pooled = np.zeros(ai.size, dtype=bool) if pool is None else pool >= 0
    widths, costs = _segments(cap, bands, integer=True)
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
    # pool nodes after the X nodes: arcs (customer, pool) and (pool, manager)
    px = np.nonzero(pooled)[0]
    ip_all = ai[px] * (n_m + 1) + pool[px]
    ip_key = _dense_unique(ip_all, n_c * (n_m + 1))
    ip_cost = np.zeros(0, np.int64)
    if px.size:     # every arc of a (customer, pool) costs the same: any one gives the cost
        ip_cost = np.empty(ip_key.size, np.int64)
        ip_cost[np.searchsorted(ip_key, ip_all)] = ac[px]
    pj_key = _dense_unique(pool[px] * (n_m + 1) + aj[px], (n_m + 1) * (n_m + 1))
    n_pools = int(pool[px].max()) + 1 if px.size else 0      # pool ids are 0..n_pools-1
    pool_node = sink + 1 + uniq.size + np.arange(n_pools)
    n_nodes = sink + 1 + uniq.size + n_pools

    tails, heads, caps_, costs_ = [], [], [], []
    # customer slot -> manager (non-team primary, not pooled)
    nt = ~team_arc & ~pooled
    tails.append(ai[nt]); heads.append(node_m + aj[nt])
    caps_.append(np.ones(nt.sum(), np.int64)); costs_.append(ac[nt])
    # customer slot -> pool -> manager
    tails.append(ip_key // (n_m + 1)); heads.append(pool_node[ip_key % (n_m + 1)])
    caps_.append(np.ones(ip_key.size, np.int64)); costs_.append(ip_cost)
    tails.append(pool_node[pj_key // (n_m + 1)]); heads.append(node_m + pj_key % (n_m + 1))
    caps_.append(np.full(pj_key.size, max(n_c, 1), np.int64)); costs_.append(np.zeros(pj_key.size, np.int64))
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
    flow = np.zeros(ai.size)
    flow[np.nonzero(nt)[0]] = flows[:n_arc_main]
    o = n_arc_main
    f_ip = flows[o:o + ip_key.size]
    f_pj = flows[o + ip_key.size:o + ip_key.size + pj_key.size]
    o += ip_key.size + pj_key.size
    flow[tx] = flows[o:o + tx.size]
    if px.size:
        # the customers who entered a pool, in order, meet the pool's managers' flows, in order
        ent = ip_key[f_ip > 0]                                       # sorted by (customer, pool)
        ent_i, ent_p = ent // (n_m + 1), ent % (n_m + 1)
        by_pool = np.lexsort((ent_i, ent_p))
        out = np.repeat(pj_key, f_pj.astype(np.int64))               # sorted by (pool, manager)
        assert out.size == ent.size, "pool flow not conserved"
        mi, mj = ent_i[by_pool], out % (n_m + 1)
        # the matched pairs are candidate arcs (every manager of a pool is a candidate of
        # each customer with an arc to it); find them among the non-team primary arcs
        cand = np.nonzero(~team_arc)[0]
        key = ai[cand] * (n_m + 1) + aj[cand]                       # non-team arcs are primary:
        srt = (np.arange(key.size) if key.size < 2 or (np.diff(key) >= 0).all()   # in arc order,
               else np.argsort(key, kind="stable"))                  # sorted already
        pos = np.searchsorted(key[srt], mi * (n_m + 1) + mj)
        hit = cand[srt[pos]]
        assert np.array_equal(ai[hit], mi) and np.array_equal(aj[hit], mj), "pooled pair is no candidate"
        flow[hit] = 1
    loads = np.zeros(n_m)
    np.add.at(loads, aj, flow)
    return flow, loads


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
    bound = getattr(res, "mip_dual_bound", None)
    bound = float(res.fun) if bound is None or not np.isfinite(bound) else float(bound)
    return x, loads, status, gap, (widths, costs), bound


def _unplaced(cust, mgr, n_cand, miss_p, miss_b, elig, terr, cfg) -> pl.DataFrame:
    """Every slot left unfilled, with the reason (computed once per tier, branch, region
    and skill, not once per customer)."""
    schema = {"customer_id": pl.String, "role": pl.String, "tier": pl.String, "branch_id": pl.String,
              "reason": pl.String}
    ip, ib = np.nonzero(miss_p > 0)[0], np.nonzero(miss_b > 0)[0]
    if ip.size + ib.size == 0:
        return pl.DataFrame(schema=schema)
    miss = pl.DataFrame({"i": np.concatenate([ip, ib]).astype(np.uint32),
                         "role": ["primary"] * ip.size + ["backup"] * ib.size})
    rows = (miss.join(cust.select(pl.col("i").cast(pl.UInt32), "customer_id", "tier", "branch_id", "region",
                                  "skill"), on="i")
            .join(n_cand.select("i", pl.col("role").cast(pl.String), "n"), on=["i", "role"], how="left")
            .with_columns(pl.col("n").fill_null(0)))
    keys = rows.select("tier", "branch_id", "region", "skill",
                       (pl.col("n") == 0).alias("none")).unique()
    out_keys = []
    for tier, branch, region, skill, none in keys.rows():
        levels = elig[tier]
        where = "; ".join(f"{lvl} in " + ({"branch": f"branch {branch}", "region": f"region {region}",
                                            "anywhere": "any branch"}[terr[lvl]]) for lvl in levels)
        why = _why_none(mgr, levels, terr, branch, region, skill, where) if none else None
        out_keys.append((tier, branch, region, skill, none, where, why))
    keyed = pl.DataFrame(out_keys, orient="row", schema={
        "tier": pl.String, "branch_id": pl.String, "region": pl.String, "skill": pl.String,
        "none": pl.Boolean, "_where": pl.String, "_why": pl.String})
    rows = rows.with_columns((pl.col("n") == 0).alias("none")).join(
        keyed, on=["tier", "branch_id", "region", "skill", "none"], how="left", nulls_equal=True)
    n, where = pl.col("n").cast(pl.String), pl.col("_where")
    reason = (pl.when(pl.col("none")).then(pl.col("_why"))
              .when((pl.col("role") == "backup") & (pl.col("n") < cfg["team_size"]))
              .then(pl.format("team: only {} eligible RMs ({}) for a team of {}", n, where,
                              pl.lit(str(cfg["team_size"]))))
              .when(pl.col("role") == "backup")
              .then(pl.format("capacity: all {} eligible RMs ({}) are full or already in the customer's team",
                              n, where))
              .otherwise(pl.format("capacity: all {} eligible RMs ({}) are full", n, where)))
    return rows.select("customer_id", "role", "tier", "branch_id", reason.alias("reason")).sort(
        "customer_id", "role")


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
