"""The canonical tables of crmkit, their data contracts, validation and quality gates.

Every table is keyed by ids stored as strings. :func:`validate` checks a set of
tables against :data:`TABLES` and a :class:`Contract` (accepted date formats, time
zone, money ranges, cross-table date rules) and reports **all** problems at once,
each naming the table, the column, the number of bad rows and up to five examples.
In ``"strict"`` mode any problem raises :class:`crmkit.SchemaError`; in
``"quarantine"`` mode the clean rows are returned together with the rejected rows
and the reason each was rejected, so nothing is dropped silently. Problems that no
row can be blamed for (a missing required column, an unknown table) raise in both
modes.

Whole-table checks sit beside it: :func:`check_required_tables` (customers and
transactions present and non-empty), :func:`quality_gate` (rejected share per table,
row counts against the previous run) and :func:`complete_tables` (an absent optional
table means an empty one).
"""

from crmkit.schema._contract import MAX_EXACT_AMOUNT, MAX_EXACT_SUM, Contract
from crmkit.schema._quality import (
    REQUIRED_TABLES,
    Breach,
    QualityGate,
    check_required_tables,
    quality_gate,
    rejected_share_breaches,
    volume_breaches,
)
from crmkit.schema._tables import (
    MANAGER_LEVELS,
    PRODUCT_CATEGORIES,
    TABLES,
    Column,
    Table,
    complete_tables,
    empty_table,
    tables_as_of,
)
from crmkit.schema._validate import Problem, ValidationResult, validate

__all__ = sorted([
    "MANAGER_LEVELS",
    "MAX_EXACT_AMOUNT",
    "MAX_EXACT_SUM",
    "PRODUCT_CATEGORIES",
    "REQUIRED_TABLES",
    "TABLES",
    "Breach",
    "Column",
    "Contract",
    "Problem",
    "QualityGate",
    "Table",
    "ValidationResult",
    "check_required_tables",
    "complete_tables",
    "empty_table",
    "quality_gate",
    "rejected_share_breaches",
    "tables_as_of",
    "validate",
    "volume_breaches",
])
