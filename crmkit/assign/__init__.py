"""Relationship managers: optimal books of business, call lists, control groups, scorecards.

The assignment of customers to RMs is solved exactly (min-cost flow with OR-Tools,
or a MIP with HiGHS when workload weights bind) under the tier-to-level eligibility
table, territories and capacities; call lists, branch-staff lists, control groups,
books and scorecards are functions on tables.
"""

from crmkit.assign._books import (
    plot_books,
    plot_call_reasons,
    plot_scorecards,
    rm_books,
    rm_scorecards,
)
from crmkit.assign._calls import (
    CallListResult,
    branch_staff_list,
    build_call_lists,
    priority_score,
)
from crmkit.assign._config import (
    ELIGIBILITY_PRESETS,
    TERRITORY_PRESET,
    AssignConfig,
    CallsConfig,
    resolve_eligibility,
)
from crmkit.assign._control import compare_outcomes, control_group
from crmkit.assign._moves import MOVE_REASONS, handover_sheets
from crmkit.assign._solver import AssignmentResult, RMAssigner, solve_assignment

__all__ = sorted([
    "AssignConfig",
    "AssignmentResult",
    "CallListResult",
    "CallsConfig",
    "ELIGIBILITY_PRESETS",
    "MOVE_REASONS",
    "RMAssigner",
    "TERRITORY_PRESET",
    "branch_staff_list",
    "build_call_lists",
    "compare_outcomes",
    "control_group",
    "handover_sheets",
    "plot_books",
    "plot_call_reasons",
    "plot_scorecards",
    "priority_score",
    "resolve_eligibility",
    "rm_books",
    "rm_scorecards",
    "solve_assignment",
])
