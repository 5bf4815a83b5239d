"""Relationship managers: optimal books of business, call lists, control groups, scorecards.

The assignment of customers to RMs is solved exactly (min-cost flow with OR-Tools,
or a MIP with HiGHS when workload weights bind) under the tier-to-level eligibility
table, territories and capacities; call lists, branch-staff lists, control groups,
books and scorecards are functions on tables.
"""

from crmkit.assign._config import (
    ELIGIBILITY_PRESETS,
    TERRITORY_PRESET,
    AssignConfig,
    CallsConfig,
    resolve_eligibility,
)
from crmkit.assign._moves import MOVE_REASONS, handover_sheets
from crmkit.assign._solver import AssignmentResult, RMAssigner, solve_assignment

__all__ = sorted([
    "AssignConfig",
    "AssignmentResult",
    "CallsConfig",
    "ELIGIBILITY_PRESETS",
    "MOVE_REASONS",
    "RMAssigner",
    "TERRITORY_PRESET",
    "handover_sheets",
    "resolve_eligibility",
    "solve_assignment",
])
