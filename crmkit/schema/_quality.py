"""Checks on whole tables: required tables present, rejected shares, row counts vs the last run.

Row-level validation (:func:`crmkit.schema.validate`) names bad rows; these checks
catch a broken day that looks fine row by row: a file cut in half, a feed that
sends 60 % garbage, a table that went missing. A nightly run calls
:func:`check_required_tables` on what it read, then :func:`quality_gate` on the
validation result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator

from crmkit._config import StrictModel, closest
from crmkit._frames import to_polars
from crmkit.exceptions import InputError, QualityGateError
from crmkit.schema._tables import TABLES
from crmkit.schema._validate import Problem, ValidationResult

__all__ = ["REQUIRED_TABLES", "Breach", "QualityGate", "check_required_tables", "quality_gate",
           "rejected_share_breaches", "volume_breaches"]

REQUIRED_TABLES = ("customers", "transactions")
"""Tables a nightly run cannot do without: they must be present and have rows."""

_TOP_REASONS = 3


def _known_tables(names: Iterable[str]) -> None:
    for name in names:
        if name not in TABLES:
            raise ValueError(f"{name!r} is not a canonical table.{closest(name, TABLES)}")


class QualityGate(StrictModel):
    """Limits on whole tables (a TOML table too).

    Parameters
    ----------
    max_rejected_share : float
        Largest share of a table's rows that quarantine may reject (default 1 %).
    table_max_rejected_share : dict of str to float
        Per-table overrides of ``max_rejected_share``.
    volume_tolerance : float or None
        Largest relative change of a table's row count against the previous run
        (0.2: 20 % fewer or more rows); None switches the volume check off.
    volume_min_change : int
        A change of at most this many rows always passes (small tables move a lot
        in relative terms).
    required_tables : list of str
        Tables that must be present with at least one clean row.

    Examples
    --------
    >>> QualityGate(max_rejected_share=0.05).limit_for("contacts")
    0.05
    """

    max_rejected_share: float = Field(0.01, ge=0, le=1)
    table_max_rejected_share: dict[str, float] = {}
    volume_tolerance: float | None = Field(0.2, gt=0)
    volume_min_change: int = Field(100, ge=0)
    required_tables: list[str] = list(REQUIRED_TABLES)

    @field_validator("table_max_rejected_share")
    @classmethod
    def _shares(cls, value: dict[str, float]) -> dict[str, float]:
        _known_tables(value)
        for name, share in value.items():
            if not 0 <= share <= 1:
                raise ValueError(f"the share for {name!r} must lie in [0, 1]; got {share!r}.")
        return value

    @field_validator("required_tables")
    @classmethod
    def _required(cls, value: list[str]) -> list[str]:
        _known_tables(value)
        return value

    def limit_for(self, table: str) -> float:
        """The largest rejected share allowed for ``table``."""
        return self.table_max_rejected_share.get(table, self.max_rejected_share)


@dataclass(frozen=True)
class Breach:
    """One failed quality check: ``check`` is ``"rejected_share"``, ``"no_clean_rows"``
    or ``"row_count"``; ``value`` and ``limit`` are shares or counts."""

    table: str
    check: str
    value: float
    limit: float
    detail: str

    def __str__(self) -> str:
        return f"{self.table}: {self.detail}"


def check_required_tables(tables: Mapping[str, Any],
                          required: Iterable[str] = REQUIRED_TABLES) -> None:
    """Raise :class:`~crmkit.InputError` when a required table is absent or has no rows.

    Call it on the tables as read, before validation: an empty or missing
    transactions table then fails with its name instead of deep inside a model.

    Examples
    --------
    >>> from crmkit.schema import empty_table
    >>> check_required_tables({"customers": empty_table("customers")})
    Traceback (most recent call last):
    ...
    crmkit.exceptions.InputError: The required table 'customers' has no rows; the required table 'transactions' is absent from the input (it has: customers).
    """
    problems = []
    for name in required:
        if name not in tables:
            problems.append(f"the required table {name!r} is absent from the input (it has: "
                            f"{', '.join(sorted(tables)) or 'no tables'})")
        elif to_polars(tables[name], name).height == 0:
            problems.append(f"the required table {name!r} has no rows")
    if problems:
        text = "; ".join(problems)
        raise InputError(text[0].upper() + text[1:] + ".")


def _pct(share: float) -> str:
    return f"{share * 100:.4g}%"


def _top_reasons(problems: Sequence[Problem], table: str) -> str:
    found = sorted((p for p in problems if p.table == table and not p.structural),
                   key=lambda p: -p.n_rows)[:_TOP_REASONS]
    return "; ".join(f"{p.column}: {p.check} ({p.n_rows:,} row{'s' if p.n_rows != 1 else ''}"
                     + (f", e.g. {p.examples[0]})" if p.examples else ")") for p in found)


def rejected_share_breaches(result: ValidationResult | None = None,
                            gate: QualityGate | None = None, *,
                            rows: Mapping[str, int] | None = None,
                            rejected: Mapping[str, int] | None = None,
                            problems: Sequence[Problem] = ()) -> list[Breach]:
    """Tables whose rejected share exceeds the gate, and required tables left without rows.

    Give a :class:`ValidationResult`, or the counts a runner that validates in
    parts adds up: ``rows`` (given per table), ``rejected`` (per table) and the
    ``problems`` of every part (for the top reasons).

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> from crmkit.schema import validate
    >>> c = pl.DataFrame({"customer_id": ["a", None], "branch_id": ["x", "x"],
    ...                   "first_seen": [dt.date(2024, 1, 1)] * 2})
    >>> for b in rejected_share_breaches(validate({"customers": c}, mode="quarantine")):
    ...     print(b)
    customers: 50.0% of 2 rows rejected (limit 1%); top reasons: customer_id: null values (1 row, e.g. row 1: customer_id=None)
    >>> [b.check for b in rejected_share_breaches(rows={"transactions": 10},
    ...                                           rejected={"transactions": 10})]
    ['rejected_share', 'no_clean_rows']
    """
    gate = gate or QualityGate()
    if result is not None:
        rows = result.counts
        rejected = {t: f.height for t, f in result.rejected.items()}
        problems = result.problems
    rows, rejected = dict(rows or {}), dict(rejected or {})
    out = []
    for table, given in rows.items():
        bad = int(rejected.get(table, 0))
        share = bad / given if given else 0.0
        limit = gate.limit_for(table)
        if share > limit:
            out.append(Breach(table, "rejected_share", share, limit,
                              f"{share:.1%} of {given:,} rows rejected (limit {_pct(limit)}); "
                              f"top reasons: {_top_reasons(problems, table)}"))
    for table in gate.required_tables:
        given = rows.get(table, 0)
        if given and int(rejected.get(table, 0)) >= given:
            out.append(Breach(table, "no_clean_rows", 0, 1,
                              f"no row of {given:,} passed validation; "
                              f"top reasons: {_top_reasons(problems, table)}"))
    return out


def volume_breaches(counts: Mapping[str, int], previous: Mapping[str, int] | None,
                    gate: QualityGate | None = None) -> list[Breach]:
    """Tables whose row count moved too far from the previous run's.

    A table the previous run had and this input lacks counts as 0 rows. Tables
    new in this input, or empty last time, have nothing to compare with.

    Parameters
    ----------
    counts : mapping of str to int
        Rows per table now (e.g. :attr:`ValidationResult.counts`).
    previous : mapping of str to int, optional
        Rows per table in the previous run (its manifest); None: no check.
    gate : QualityGate, optional

    Examples
    --------
    >>> for b in volume_breaches({"transactions": 28_175}, {"transactions": 56_355}):
    ...     print(b)
    transactions: 28,175 rows, 50.0% fewer than the previous run's 56,355 (tolerance 20%)
    """
    gate = gate or QualityGate()
    if previous is None or gate.volume_tolerance is None:
        return []
    out = []
    for table, before in previous.items():
        before = int(before)
        now = int(counts.get(table, 0))
        if before <= 0:
            continue
        change = now - before
        if abs(change) > gate.volume_tolerance * before and abs(change) > gate.volume_min_change:
            word = "fewer" if change < 0 else "more"
            out.append(Breach(table, "row_count", now, before,
                              f"{now:,} rows, {abs(change) / before:.1%} {word} than the "
                              f"previous run's {before:,} (tolerance "
                              f"{_pct(gate.volume_tolerance)})"))
    return out


def quality_gate(result: ValidationResult | None = None, *,
                 previous_counts: Mapping[str, int] | None = None,
                 gate: QualityGate | Mapping[str, Any] | None = None,
                 rows: Mapping[str, int] | None = None,
                 rejected: Mapping[str, int] | None = None,
                 problems: Sequence[Problem] = ()) -> dict[str, Any]:
    """Raise :class:`~crmkit.QualityGateError` naming every breach, else return the facts.

    Checks the share of rejected rows per table (quarantine mode), that required
    tables kept at least one clean row, and the row counts against the previous
    run's.

    Parameters
    ----------
    result : ValidationResult, optional
        From :func:`validate`. A runner that validates in parts (shards) gives
        ``rows``, ``rejected`` and ``problems`` added up over the parts instead.
    previous_counts : mapping of str to int, optional
        Rows per table given to the previous complete run.
    gate : QualityGate or mapping, optional
    rows, rejected : mapping of str to int, optional
        Rows given and rows rejected per table (without ``result``).
    problems : sequence of Problem
        Every part's problems (without ``result``), for the top reasons.

    Returns
    -------
    dict
        For the manifest: ``tables`` (rows, clean, rejected, rejected share per
        table), ``previous_counts`` and ``gate`` (the limits used).

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> from crmkit.schema import validate
    >>> c = pl.DataFrame({"customer_id": ["a", "b"], "branch_id": ["x", "x"],
    ...                   "first_seen": [dt.date(2024, 1, 1)] * 2})
    >>> facts = quality_gate(validate({"customers": c}), gate={"required_tables": ["customers"]})
    >>> facts["tables"]["customers"]["clean"]
    2
    >>> quality_gate(validate({"customers": c}), previous_counts={"customers": 2_000})
    Traceback (most recent call last):
    ...
    crmkit.exceptions.QualityGateError: Quality gate breached (1 check):
    customers: 2 rows, 99.9% fewer than the previous run's 2,000 (tolerance 20%)
    """
    if gate is None:
        gate = QualityGate()
    elif not isinstance(gate, QualityGate):
        from crmkit._config import parse_config

        gate = parse_config(QualityGate, gate, "quality gate")
    if result is not None:
        rows = result.counts
        rejected = {t: f.height for t, f in result.rejected.items()}
        problems = result.problems
    rows, rejected = dict(rows or {}), dict(rejected or {})
    breaches = [*rejected_share_breaches(gate=gate, rows=rows, rejected=rejected,
                                         problems=problems),
                *volume_breaches(rows, previous_counts, gate)]
    if breaches:
        n = len(breaches)
        raise QualityGateError(
            f"Quality gate breached ({n} check{'s' if n != 1 else ''}):\n"
            + "\n".join(str(b) for b in breaches), breaches)
    tables = {}
    for name, given in rows.items():
        bad = int(rejected.get(name, 0))
        tables[name] = {"rows": given, "clean": given - bad, "rejected": bad,
                        "rejected_share": bad / given if given else 0.0}
    return {"tables": tables,
            "previous_counts": dict(previous_counts) if previous_counts is not None else None,
            "gate": gate.model_dump(mode="json")}
