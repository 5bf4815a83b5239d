"""The canonical tables of crmkit, their columns, and validation.

Every table is keyed by ids stored as strings. :func:`validate` checks a set of
tables against :data:`TABLES` and reports **all** problems at once, each naming the
table, the column, the number of bad rows and up to five examples. In ``"strict"``
mode any problem raises :class:`crmkit.SchemaError`; in ``"quarantine"`` mode the
clean rows are returned together with the rejected rows and the reason each was
rejected, so nothing is dropped silently. Problems that no row can be blamed for
(a missing required column, an unknown table) raise in both modes.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from crmkit._frames import to_polars
from crmkit._params import check_choice, check_date
from crmkit.exceptions import SchemaError

__all__ = [
    "PRODUCT_CATEGORIES",
    "MANAGER_LEVELS",
    "TABLES",
    "Column",
    "Problem",
    "Table",
    "ValidationResult",
    "empty_table",
    "tables_as_of",
    "validate",
]

PRODUCT_CATEGORIES = (
    "deposit",
    "card",
    "fund",
    "bond",
    "wealth",
    "insurance",
    "loan",
    "mortgage",
)
"""Product categories known to the retail-bank preset (other strings are allowed)."""

MANAGER_LEVELS = ("private_banking", "wealth", "branch")
"""Relationship-manager levels, most senior first."""

_ROW = "__row"
_MAX_EXAMPLES = 5


@dataclass(frozen=True)
class Column:
    """One column of a canonical table.

    Parameters
    ----------
    name : str
        Column name.
    dtype : polars.DataType
        Canonical type; inputs are cast to it and rows that do not cast are bad.
    required : bool
        Whether the column must be present.
    nullable : bool
        Whether null values are allowed.
    finite : bool
        For floats: NaN and infinities are bad rows.
    low, high : float, optional
        Inclusive range for numbers.
    default : Any
        Value used to create an optional column that is absent.
    doc : str
        What the column holds.
    """

    name: str
    dtype: Any
    required: bool = True
    nullable: bool = False
    finite: bool = False
    low: float | None = None
    high: float | None = None
    default: Any = None
    doc: str = ""


@dataclass(frozen=True)
class Table:
    """A canonical table: columns, key, references and the column dating each row."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    references: tuple[tuple[str, str, str], ...] = ()
    date_column: str | None = None
    doc: str = ""

    def column(self, name: str) -> Column:
        """Return the column called ``name``."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def column_names(self) -> list[str]:
        """Names of all canonical columns, in order."""
        return [c.name for c in self.columns]


_S, _D, _F, _I, _B = pl.String, pl.Date, pl.Float64, pl.Int64, pl.Boolean
_TS = pl.Datetime("us")

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "customers",
            (
                Column("customer_id", _S, doc="unique customer id"),
                Column("branch_id", _S, doc="home branch"),
                Column("first_seen", _D, doc="date the bank first knew the customer"),
                Column("birth_year", _I, required=False, nullable=True, low=1900, high=2030),
                Column("risk_level", _I, required=False, nullable=True, low=1, high=5,
                       doc="suitability risk level, 1 (conservative) to 5 (aggressive)"),
                Column("opt_out_sms", _B, required=False, default=False),
                Column("opt_out_email", _B, required=False, default=False),
                Column("opt_out_phone", _B, required=False, default=False),
            ),
            key=("customer_id",),
            date_column="first_seen",
            doc="one row per known customer, prospects included; extra columns are free attributes",
        ),
        Table(
            "products",
            (
                Column("product_id", _S),
                Column("category", _S, doc="deposit, card, fund, bond, wealth, insurance, loan, mortgage, ..."),
                Column("risk_rating", _I, low=1, high=5, doc="product risk rating, 1 to 5"),
                Column("margin", _F, required=False, nullable=True, finite=True,
                       doc="expected annual margin per unit of balance (or per holding)"),
            ),
            key=("product_id",),
            doc="the product catalogue",
        ),
        Table(
            "managers",
            (
                Column("manager_id", _S),
                Column("branch_id", _S),
                Column("level", _S, doc="private_banking, wealth or branch"),
                Column("capacity", _I, low=0, doc="maximum number of customers in the book"),
                Column("active", _B, required=False, default=True),
            ),
            key=("manager_id",),
            doc="relationship managers",
        ),
        Table(
            "holdings",
            (
                Column("account_id", _S),
                Column("customer_id", _S),
                Column("product_id", _S),
                Column("opened", _D),
                Column("closed", _D, required=False, nullable=True, doc="null while open"),
                Column("close_reason", _S, required=False, nullable=True),
            ),
            key=("account_id",),
            references=(("customer_id", "customers", "customer_id"),
                        ("product_id", "products", "product_id")),
            date_column="opened",
            doc="accounts: one product held by one customer over a period",
        ),
        Table(
            "balances",
            (
                Column("account_id", _S),
                Column("date", _D),
                Column("balance", _F, finite=True),
            ),
            key=("account_id", "date"),
            references=(("account_id", "holdings", "account_id"),),
            date_column="date",
            doc="balance snapshots (typically month-end) per account",
        ),
        Table(
            "transactions",
            (
                Column("transaction_id", _S, required=False),
                Column("customer_id", _S),
                Column("timestamp", _TS, doc="date or date-time of the transaction"),
                Column("amount", _F, finite=True, doc="value; refunds are negative"),
                Column("channel", _S, required=False, nullable=True),
                Column("product_id", _S, required=False, nullable=True),
            ),
            key=("transaction_id",),
            references=(("customer_id", "customers", "customer_id"),
                        ("product_id", "products", "product_id")),
            date_column="timestamp",
            doc="customer-initiated transactions",
        ),
        Table(
            "assignments",
            (
                Column("customer_id", _S),
                Column("manager_id", _S),
                Column("role", _S, required=False, default="primary", doc="primary or backup"),
                Column("since", _D, required=False, nullable=True),
            ),
            key=("customer_id", "role"),
            references=(("customer_id", "customers", "customer_id"),
                        ("manager_id", "managers", "manager_id")),
            date_column="since",
            doc="current assignments of customers to relationship managers",
        ),
        Table(
            "contacts",
            (
                Column("customer_id", _S),
                Column("date", _D),
                Column("kind", _S, doc="call, visit, email, sms, ..."),
                Column("outcome", _S, required=False, nullable=True),
            ),
            references=(("customer_id", "customers", "customer_id"),),
            date_column="date",
            doc="contacts between the bank and the customer",
        ),
        Table(
            "complaints",
            (
                Column("customer_id", _S),
                Column("date", _D),
                Column("kind", _S),
                Column("outcome", _S, required=False, nullable=True),
            ),
            references=(("customer_id", "customers", "customer_id"),),
            date_column="date",
            doc="complaints raised by customers",
        ),
    )
}
"""The canonical tables, in dependency order (referenced tables first)."""


def empty_table(name: str) -> pl.DataFrame:
    """Return an empty frame with the canonical columns of table ``name``.

    Examples
    --------
    >>> empty_table("contacts").columns
    ['customer_id', 'date', 'kind', 'outcome']
    """
    table = _table_spec(name)
    return pl.DataFrame(schema={c.name: c.dtype for c in table.columns})


def tables_as_of(tables: Mapping[str, Any], as_of: dt.date | str) -> dict[str, pl.DataFrame]:
    """The tables as they stood on ``as_of``: a replay of history for backtests.

    Rows dated after ``as_of`` (by each table's date column) are removed, and a
    holding closed after ``as_of`` is open again (``closed`` and ``close_reason``
    null). Tables without a date column (products, managers) are kept whole.

    Parameters
    ----------
    tables : mapping of str to table
        Canonical tables with canonical types (for example after :func:`validate`).
    as_of : date or str

    Returns
    -------
    dict of str to polars.DataFrame

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> holdings = pl.DataFrame({"account_id": ["1", "2"], "customer_id": ["a", "a"],
    ...                          "product_id": ["P", "P"],
    ...                          "opened": [dt.date(2024, 1, 1), dt.date(2024, 9, 1)],
    ...                          "closed": [dt.date(2024, 8, 1), None]})
    >>> tables_as_of({"holdings": holdings}, "2024-06-30")["holdings"]["closed"].to_list()
    [None]
    """
    day = check_date(as_of, "as_of", "tables_as_of")
    out: dict[str, pl.DataFrame] = {}
    for name, table in tables.items():
        frame = to_polars(table, name)
        spec = TABLES.get(name)
        date_col = spec.date_column if spec else None
        if date_col and date_col in frame.columns:
            col = pl.col(date_col)
            keep = col.cast(pl.Date) <= day
            frame = frame.filter(keep | col.is_null() if name == "assignments" else keep)
        if name == "holdings" and "closed" in frame.columns:
            still_open = pl.col("closed") > day
            frame = frame.with_columns(
                *[pl.when(still_open).then(None).otherwise(pl.col(c)).alias(c)
                  for c in ("closed", "close_reason") if c in frame.columns])
        out[name] = frame
    return out


@dataclass(frozen=True)
class Problem:
    """One problem found by validation.

    ``n_rows`` is the number of bad rows (0 for a structural problem such as a
    missing column) and ``examples`` up to five of them, rendered as text.
    """

    table: str
    column: str
    check: str
    n_rows: int
    examples: tuple[str, ...] = ()
    structural: bool = False

    def __str__(self) -> str:
        head = f"{self.table}.{self.column}: {self.check}"
        if self.structural:
            return head
        ex = "; ".join(self.examples)
        return f"{head} ({self.n_rows} row{'s' if self.n_rows != 1 else ''}; e.g. {ex})"


@dataclass
class ValidationResult:
    """What :func:`validate` found.

    Attributes
    ----------
    tables : dict of str to polars.DataFrame
        Clean tables with canonical types (rejected rows removed).
    rejected : dict of str to polars.DataFrame
        For each table with rejected rows: the rows as given, plus ``_row`` (0-based
        input row number) and ``_reason`` (every reason, ``"; "``-separated).
    problems : list of Problem
    """

    tables: dict[str, pl.DataFrame]
    rejected: dict[str, pl.DataFrame] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def report(self) -> str:
        """All problems, one per line."""
        if not self.problems:
            return "no problems"
        return "\n".join(str(p) for p in self.problems)

    def problems_frame(self) -> pl.DataFrame:
        """The problems as a table (table, column, check, n_rows, examples)."""
        return pl.DataFrame(
            {
                "table": [p.table for p in self.problems],
                "column": [p.column for p in self.problems],
                "check": [p.check for p in self.problems],
                "n_rows": [p.n_rows for p in self.problems],
                "examples": [" | ".join(p.examples) for p in self.problems],
            },
            schema={"table": pl.String, "column": pl.String, "check": pl.String,
                    "n_rows": pl.Int64, "examples": pl.String},
        )


def _table_spec(name: str) -> Table:
    if name not in TABLES:
        close = difflib.get_close_matches(name, list(TABLES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SchemaError(
            f"Unknown table {name!r}; the canonical tables are {', '.join(TABLES)}.{hint}"
        )
    return TABLES[name]


def validate(
    tables: Mapping[str, Any],
    *,
    as_of: dt.date | str | None = None,
    mode: Literal["strict", "quarantine"] = "strict",
) -> ValidationResult:
    """Check tables against the canonical schema and report every problem at once.

    Parameters
    ----------
    tables : mapping of str to table
        Any of the canonical tables (``customers`` is required) as polars, pandas
        or pyarrow tables.
    as_of : date or str, optional
        When given, rows dated after it (by each table's date column) are bad.
    mode : {"strict", "quarantine"}
        ``"strict"`` raises :class:`~crmkit.SchemaError` listing all problems;
        ``"quarantine"`` returns clean tables and the rejected rows with reasons.

    Returns
    -------
    ValidationResult

    Examples
    --------
    >>> import polars as pl, datetime as dt
    >>> customers = pl.DataFrame({"customer_id": ["a", "b", "b"], "branch_id": ["x"] * 3,
    ...                           "first_seen": [dt.date(2024, 1, 1)] * 3})
    >>> res = validate({"customers": customers}, mode="quarantine")
    >>> res.tables["customers"].height, res.rejected["customers"]["_reason"].to_list()
    (2, ['duplicate key customer_id (first occurrence kept)'])
    >>> validate({"customers": customers})
    Traceback (most recent call last):
    ...
    crmkit.exceptions.SchemaError: 1 problem in the input tables:
    customers.customer_id: duplicate key customer_id (first occurrence kept) (1 row; e.g. row 2: customer_id='b')
    """
    check_choice(mode, ("strict", "quarantine"), "mode", "validate")
    as_of_date = check_date(as_of, "as_of", "validate") if as_of is not None else None
    problems: list[Problem] = []
    for name in tables:
        if name not in TABLES:
            close = difflib.get_close_matches(name, list(TABLES), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(Problem(name, "*", f"unknown table{hint}", 0, structural=True))
    if "customers" not in tables:
        problems.append(Problem("customers", "*", "the customers table is required", 0,
                                structural=True))

    clean: dict[str, pl.DataFrame] = {}
    rejected: dict[str, pl.DataFrame] = {}
    for name, spec in TABLES.items():
        if name not in tables:
            continue
        frame = to_polars(tables[name], name)
        good, bad, found = _validate_table(spec, frame, clean, as_of_date)
        problems.extend(found)
        if good is not None:
            clean[name] = good
        if bad is not None and bad.height:
            rejected[name] = bad

    result = ValidationResult(tables=clean, rejected=rejected, problems=problems)
    structural = [p for p in problems if p.structural]
    if problems and (mode == "strict" or structural):
        n = len(problems)
        raise SchemaError(
            f"{n} problem{'s' if n != 1 else ''} in the input tables:\n" + result.report(),
            problems,
        )
    return result


def _validate_table(
    spec: Table,
    frame: pl.DataFrame,
    clean_so_far: dict[str, pl.DataFrame],
    as_of: dt.date | None,
) -> tuple[pl.DataFrame | None, pl.DataFrame | None, list[Problem]]:
    problems: list[Problem] = []
    present = set(frame.columns)
    missing = [c.name for c in spec.columns if c.required and c.name not in present]
    for name in missing:
        problems.append(Problem(spec.name, name, "required column is missing", 0, structural=True))
    if missing:
        return None, None, problems

    # a caller that split one input into parts passes each row's number in the input
    original = (frame.with_columns(pl.col(_ROW).cast(pl.Int64)) if _ROW in frame.columns
                else frame.with_row_index(_ROW).with_columns(pl.col(_ROW).cast(pl.Int64)))
    cast_exprs = []
    for col in spec.columns:
        if col.name not in present:
            if col.default is not None:
                cast_exprs.append(pl.lit(col.default, dtype=col.dtype).alias(col.name))
            else:
                cast_exprs.append(pl.lit(None, dtype=col.dtype).alias(col.name))
            continue
        source_dtype = frame.schema[col.name]
        expr = _cast_expr(col.name, source_dtype, col.dtype)
        if expr is None:
            problems.append(Problem(spec.name, col.name,
                                    f"has type {source_dtype}, which cannot be read as {col.dtype}",
                                    0, structural=True))
            continue
        cast_exprs.append(expr.alias(col.name))
    if any(p.structural for p in problems):
        return None, None, problems

    extra = [c for c in frame.columns if c not in spec.column_names and c != _ROW]
    typed = original.select([pl.col(_ROW), *cast_exprs, *[pl.col(c) for c in extra]])

    # Each check yields (column, description, boolean expression marking bad rows).
    checks: list[tuple[str, str, pl.Expr]] = []
    for col in spec.columns:
        if col.name not in present:
            continue
        raw, new = pl.col(col.name), typed[col.name]  # raw: typed values, as an expression
        if frame.schema[col.name] != col.dtype:
            checks.append((col.name, f"values that cannot be read as {col.dtype}",
                           _marker(original[col.name].is_not_null() & new.is_null())))
        if not col.nullable:
            checks.append((col.name, "null values", _marker(original[col.name].is_null())))
        if col.finite and col.dtype == _F:
            checks.append((col.name, "non-finite values (NaN or infinity)",
                           raw.is_not_null() & ~raw.is_finite()))
        if col.low is not None:
            checks.append((col.name, f"values below {col.low:g}", raw < col.low))
        if col.high is not None:
            checks.append((col.name, f"values above {col.high:g}", raw > col.high))
    if spec.name == "holdings":
        checks.append(("closed", "closed before opened", pl.col("closed") < pl.col("opened")))
    if spec.name == "managers":
        checks.append(("level", f"level not one of {', '.join(MANAGER_LEVELS)}",
                       ~pl.col("level").is_in(list(MANAGER_LEVELS))))
    if as_of is not None and spec.date_column and spec.date_column in typed.columns:
        dcol = pl.col(spec.date_column)
        limit = (pl.lit(as_of).cast(_TS) + pl.duration(days=1)) if typed.schema[spec.date_column] == _TS \
            else pl.lit(as_of)
        bad = dcol >= limit if typed.schema[spec.date_column] == _TS else dcol > limit
        checks.append((spec.date_column, f"dated after as_of {as_of.isoformat()}", bad))
    key = [k for k in spec.key if k in present]
    if key and len(key) == len(spec.key):
        checks.append((",".join(key), f"duplicate key {', '.join(key)} (first occurrence kept)",
                       pl.struct(key).is_first_distinct().not_() & pl.all_horizontal(
                           [pl.col(k).is_not_null() for k in key])))
    for col_name, other, other_col in spec.references:
        if col_name not in present or other not in clean_so_far:
            continue
        known = clean_so_far[other][other_col].unique()
        checks.append((col_name, f"references unknown {other}.{other_col}",
                       pl.col(col_name).is_not_null() & ~pl.col(col_name).is_in(known.implode())))

    if not checks:
        return typed.drop(_ROW), None, problems

    flags = typed.select(
        pl.col(_ROW),
        *[expr.fill_null(False).alias(f"__chk{i}") for i, (_, _, expr) in enumerate(checks)],
    )
    reason_parts = []
    for i, (col_name, desc, _) in enumerate(checks):
        n_bad = int(flags[f"__chk{i}"].sum())
        if n_bad == 0:
            continue
        rows = flags.filter(pl.col(f"__chk{i}"))[_ROW].head(_MAX_EXAMPLES).to_list()
        problems.append(Problem(spec.name, col_name, desc, n_bad,
                                tuple(_example(original, r, spec, col_name) for r in rows)))
        reason = desc if desc.startswith("duplicate") else f"{col_name}: {desc}"
        reason_parts.append(pl.when(pl.col(f"__chk{i}")).then(pl.lit(reason)))
    if not reason_parts:
        return typed.drop(_ROW), None, problems

    reasons = flags.select(
        pl.col(_ROW), pl.concat_str(reason_parts, separator="; ", ignore_nulls=True).alias("_reason")
    ).filter(pl.col("_reason").is_not_null() & (pl.col("_reason") != ""))
    bad_rows = reasons[_ROW]
    good = typed.filter(~pl.col(_ROW).is_in(bad_rows.implode())).drop(_ROW)
    bad = (
        original.join(reasons, on=_ROW, how="inner")
        .rename({_ROW: "_row"})
        .sort("_row")
    )
    return good, bad, problems


def _marker(series: pl.Series) -> pl.Expr:
    return pl.lit(series)


def _example(original: pl.DataFrame, row: int, spec: Table, col_name: str) -> str:
    record = original.row(by_predicate=pl.col(_ROW) == row, named=True)
    names = [k for k in spec.key if k in record] + col_name.split(",")
    shown = [f"{name}={_show(record[name])}" for name in dict.fromkeys(names) if name in record]
    return f"row {row}: " + ", ".join(shown)


def _show(value: Any) -> str:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return repr(value)


def _cast_expr(name: str, source: Any, target: Any) -> pl.Expr | None:
    col = pl.col(name)
    if source == target:
        return col
    if source == pl.Null:
        return col.cast(target)
    if target == _D:
        if source == pl.String:
            return col.str.strptime(pl.Date, "%Y-%m-%d", strict=False).fill_null(
                col.str.strptime(pl.Date, "%Y%m%d", strict=False))
        if isinstance(source, pl.Datetime):
            return col.dt.date()
        return None
    if target == _TS:
        if source == pl.String:
            return col.str.to_datetime(time_unit="us", strict=False).fill_null(
                col.str.strptime(pl.Date, "%Y-%m-%d", strict=False).cast(_TS))
        if source == pl.Date or isinstance(source, pl.Datetime):
            return col.cast(_TS)
        return None
    if target == pl.String:
        if source.is_numeric() or source == pl.Categorical or isinstance(source, pl.Enum):
            return col.cast(pl.String)
        return None
    if target in (_F, _I):
        if source.is_numeric() or source == pl.String or source == pl.Boolean:
            return col.cast(target, strict=False)
        return None
    if target == _B:
        if source == pl.String:
            low = col.str.to_lowercase()
            return (pl.when(low.is_in(["true", "1", "yes", "y"])).then(True)
                    .when(low.is_in(["false", "0", "no", "n"])).then(False))
        if source.is_numeric():
            return col.cast(pl.Boolean, strict=False)
        return None
    return None
