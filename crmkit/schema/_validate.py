"""Validation of input tables against the canonical tables and the data contract."""

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
from crmkit.schema._contract import MAX_EXACT_SUM, Contract, cast_column
from crmkit.schema._tables import MANAGER_LEVELS, TABLES, Table

__all__ = ["Problem", "ValidationResult", "validate"]

_MAX_EXAMPLES = 5
_ROW = "__row"  # optional input column: each row's number in the whole input
# optional input column: True where the row's key repeats an earlier row of the whole
# input that is not in this part (a caller that split the input found it)
_DUP = "__dup"
_HASH_SEED = 0x5EED
_TS = pl.Datetime("us")
_TYPE_WORDS = {pl.Date: "a date", _TS: "a timestamp", pl.Int64: "a whole number",
               pl.Float64: "a number", pl.Boolean: "true or false", pl.String: "text"}
# Tables whose rows belong to a customer and are dated: nothing before first_seen.
_CUSTOMER_DATED = ("holdings", "transactions", "assignments", "contacts", "complaints")
_WINDOW = r"^([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)$"


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
        input row number, Int64; taken from a ``__row`` column when the input has
        one, as the shards of a split input do) and ``_reason`` (every reason,
        ``"; "``-separated).
    problems : list of Problem
    counts : dict of str to int
        Rows given per table (clean + rejected).
    """

    tables: dict[str, pl.DataFrame]
    rejected: dict[str, pl.DataFrame] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def __repr__(self) -> str:
        """One line: problems found and rows per table (``report()`` lists the problems).

        Examples
        --------
        >>> import polars as pl, datetime as dt
        >>> c = pl.DataFrame({"customer_id": ["a", None], "branch_id": ["x", "x"],
        ...                   "first_seen": [dt.date(2024, 1, 1)] * 2})
        >>> validate({"customers": c}, mode="quarantine")
        <ValidationResult: 1 problem; customers 2 rows (1 rejected)>
        """
        n = len(self.problems)
        found = "ok" if not n else f"{n} problem{'s' if n != 1 else ''}"
        given = self.counts or {name: t.height for name, t in self.tables.items()}
        rows = []
        for name, count in given.items():
            bad = self.rejected[name].height if name in self.rejected else 0
            rows.append(f"{name} {count:,} row{'s' if count != 1 else ''}"
                        + (f" ({bad:,} rejected)" if bad else ""))
        return f"<ValidationResult: {found}; {', '.join(rows) or 'no tables'}>"

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def report(self) -> str:
        """All problems, one per line."""
        if not self.problems:
            return "no problems"
        return "\n".join(str(p) for p in self.problems)

    def rejected_share(self, table: str) -> float:
        """Share of ``table``'s rows that were rejected (0.0 for an empty table)."""
        given = self.counts.get(table, 0)
        bad = self.rejected[table].height if table in self.rejected else 0
        return bad / given if given else 0.0

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per table: rows given, clean, rejected and the rejected share (for a manifest).

        Examples
        --------
        >>> import polars as pl, datetime as dt
        >>> c = pl.DataFrame({"customer_id": ["a", None], "branch_id": ["x", "x"],
        ...                   "first_seen": [dt.date(2024, 1, 1)] * 2})
        >>> validate({"customers": c}, mode="quarantine").summary()["customers"]
        {'rows': 2, 'clean': 1, 'rejected': 1, 'rejected_share': 0.5}
        """
        out = {}
        for name, given in self.counts.items():
            bad = self.rejected[name].height if name in self.rejected else 0
            out[name] = {"rows": given, "clean": given - bad, "rejected": bad,
                         "rejected_share": self.rejected_share(name)}
        return out

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


def validate(
    tables: Mapping[str, Any],
    *,
    as_of: dt.date | str | None = None,
    mode: Literal["strict", "quarantine"] = "strict",
    contract: Contract | Mapping[str, Any] | None = None,
) -> ValidationResult:
    """Check tables against the canonical schema and the data contract; report every problem.

    Each row is checked for its types (dates in the contract's formats only, never
    guessed), nulls, ranges (money within the contract's ranges, so that integer
    micro-unit sums are exact), keys, references to other tables and, with
    ``contract.cross_table_rules``, dates across tables (nothing before the
    customer's ``first_seen``, no balance before its account opened, negative
    balances only on credit products).

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
    contract : Contract or mapping, optional
        Date formats, time zone, money ranges (see :class:`Contract`); the default
        accepts ISO 8601 dates in UTC.

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

    US dates are read only when the contract says so:

    >>> tx = pl.DataFrame({"customer_id": ["a"], "timestamp": ["01/02/2024"], "amount": [5.0]})
    >>> validate({"customers": customers[:1], "transactions": tx}, mode="quarantine").report()
    "transactions.timestamp: values that cannot be read as a timestamp in the accepted format ISO 8601: ... (1 row; e.g. row 0: timestamp='01/02/2024')"
    >>> us = {"formats": {"transactions.timestamp": "%m/%d/%Y"}}
    >>> validate({"customers": customers[:1], "transactions": tx},
    ...          contract=us).tables["transactions"]["timestamp"].to_list()
    [datetime.datetime(2024, 1, 2, 0, 0)]
    """
    check_choice(mode, ("strict", "quarantine"), "mode", "validate")
    as_of_date = check_date(as_of, "as_of", "validate") if as_of is not None else None
    contract = _contract(contract)
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
    counts: dict[str, int] = {}
    for name, spec in TABLES.items():
        if name not in tables:
            continue
        frame = to_polars(tables[name], name)
        counts[name] = frame.height
        good, bad, found = _validate_table(spec, frame, clean, as_of_date, contract)
        problems.extend(found)
        if good is not None:
            clean[name] = good
        if bad is not None and bad.height:
            rejected[name] = bad

    result = ValidationResult(tables=clean, rejected=rejected, problems=problems, counts=counts)
    structural = [p for p in problems if p.structural]
    if problems and (mode == "strict" or structural):
        n = len(problems)
        raise SchemaError(
            f"{n} problem{'s' if n != 1 else ''} in the input tables:\n" + result.report(),
            problems,
        )
    return result


def _contract(contract: Contract | Mapping[str, Any] | None) -> Contract:
    if contract is None:
        return Contract()
    if isinstance(contract, Contract):
        return contract
    from crmkit._config import parse_config

    return parse_config(Contract, contract, "contract")


@dataclass
class _Check:
    column: str          # column(s) named in the problem, comma-separated
    desc: str
    bad: pl.Expr         # true on bad rows (null counts as not bad)
    show: tuple[str, ...] = ()  # further columns shown in the examples


def _validate_table(
    spec: Table,
    frame: pl.DataFrame,
    clean_so_far: dict[str, pl.DataFrame],
    as_of: dt.date | None,
    contract: Contract,
) -> tuple[pl.DataFrame | None, pl.DataFrame | None, list[Problem]]:
    problems: list[Problem] = []
    # a caller that split one input into parts passes each row's number in the input
    row_ids = frame[_ROW].cast(pl.Int64) if _ROW in frame.columns else None
    if row_ids is not None:
        frame = frame.drop(_ROW)
    known_dups = frame[_DUP].fill_null(False) if _DUP in frame.columns else None
    if known_dups is not None:
        frame = frame.drop(_DUP)
    present = set(frame.columns)
    missing = [c.name for c in spec.columns if c.required and c.name not in present]
    for name in missing:
        problems.append(Problem(spec.name, name, "required column is missing", 0, structural=True))
    if missing:
        return None, None, problems

    columns: list[pl.Series] = []
    checks: list[_Check] = []
    for col in spec.columns:
        if col.name not in present:
            value = col.default if col.default is not None else None
            columns.append(pl.repeat(value, frame.height, dtype=col.dtype, eager=True)
                           .alias(col.name))
            continue
        given = frame[col.name]
        values, _ = cast_column(given, col, spec.name, contract)
        if values is None:
            problems.append(Problem(spec.name, col.name,
                                    f"has type {given.dtype}, which cannot be read as "
                                    f"{_TYPE_WORDS.get(col.dtype, col.dtype)}",
                                    0, structural=True))
            continue
        columns.append(values.alias(col.name))
        if given.dtype != col.dtype and given.dtype != pl.Null:
            what = f"values that cannot be read as {_TYPE_WORDS.get(col.dtype, col.dtype)}"
            if col.dtype in (pl.Date, _TS) and given.dtype == pl.String:
                what += f" in the accepted format {contract.describe_format(spec.name, col.name)}"
            unread = given.is_not_null() & values.is_null()
            if unread.any():
                checks.append(_Check(col.name, what, pl.lit(unread)))
    if any(p.structural for p in problems):
        return None, None, problems

    extra = [frame[c] for c in frame.columns if c not in spec.column_names]
    typed = pl.DataFrame([*columns, *extra])

    for col in spec.columns:
        if col.name not in present:
            continue
        val = pl.col(col.name)
        if not col.nullable:
            nulls = frame[col.name].is_null()
            if nulls.any():
                checks.append(_Check(col.name, "null values", pl.lit(nulls)))
        if col.finite and col.dtype == pl.Float64:
            checks.append(_Check(col.name, "non-finite values (NaN or infinity)",
                                 val.is_not_null() & ~val.is_finite()))
        bounds = contract.range_for(spec.name, col.name) if col.money else None
        if bounds is not None:
            low, high = bounds
            checks.append(_Check(
                col.name, f"values outside the contract's range [{low:,.2f}, {high:,.2f}]"
                + (" (larger money has no exact integer micro-units)"
                   if max(abs(low), abs(high)) > 1e9 else ""),
                val.is_finite() & ((val < low) | (val > high))))
        if col.low is not None:
            checks.append(_Check(col.name, f"values below {col.low:g}", val < col.low))
        if col.high is not None:
            checks.append(_Check(col.name, f"values above {col.high:g}", val > col.high))
    if spec.name == "holdings":
        checks.append(_Check("closed", "closed before opened",
                             pl.col("closed") < pl.col("opened"), ("opened",)))
    if spec.name == "customers" and "contact_window" in present:
        window = pl.col("contact_window").str.strip_chars()
        checks.append(_Check("contact_window", "contact window not 'HH:MM-HH:MM'",
                             window.is_not_null() & ~window.str.contains(_WINDOW)))
    if spec.name == "managers":
        checks.append(_Check("level", f"level not one of {', '.join(MANAGER_LEVELS)}",
                             ~pl.col("level").is_in(list(MANAGER_LEVELS))))
    if as_of is not None and spec.date_column and spec.date_column in present:
        dcol = pl.col(spec.date_column)
        bad = dcol >= pl.lit(as_of + dt.timedelta(days=1)).cast(_TS) \
            if typed.schema[spec.date_column] == _TS else dcol > pl.lit(as_of)
        checks.append(_Check(spec.date_column, f"dated after as_of {as_of.isoformat()}", bad))
    key = [k for k in spec.key if k in present]
    if key and len(key) == len(spec.key):
        dup = _later_duplicates(typed, key)
        if known_dups is not None and known_dups.any():
            dup = known_dups if dup is None else dup | known_dups
        if dup is not None:
            checks.append(_Check(",".join(key), f"duplicate key {', '.join(key)} "
                                 "(first occurrence kept)", pl.lit(dup)))
    for col_name, other, other_col in spec.references:
        # an absent or empty table means "none": nothing to check a reference against
        if col_name not in present or other not in clean_so_far \
                or clean_so_far[other].height == 0:
            continue
        known = clean_so_far[other][other_col].unique()
        checks.append(_Check(col_name, f"references unknown {other}.{other_col}",
                             pl.col(col_name).is_not_null()
                             & ~pl.col(col_name).is_in(known.implode())))
    if contract.cross_table_rules:
        checks.extend(_cross_table_checks(spec, typed, present, clean_so_far, contract))
    checks.extend(_sum_checks(spec, typed, clean_so_far, contract))
    return _apply_checks(spec, frame, typed, checks, problems, row_ids)


def _apply_checks(spec: Table, frame: pl.DataFrame, typed: pl.DataFrame, checks: list[_Check],
                  problems: list[Problem], row_ids: pl.Series | None = None):
    if not checks:
        return typed, None, problems
    flags = typed.select([c.bad.fill_null(False).alias(f"__chk{i}")
                          for i, c in enumerate(checks)])
    counts = flags.sum().row(0)
    reason_parts = []
    for i, (check, n_bad) in enumerate(zip(checks, counts)):
        if not n_bad:
            continue
        rows = flags[f"__chk{i}"].arg_true().head(_MAX_EXAMPLES).to_list()
        names = [*check.column.split(","), *check.show]
        problems.append(Problem(spec.name, check.column, check.desc, int(n_bad),
                                tuple(_example(frame, r, spec, names, row_ids) for r in rows)))
        reason = check.desc if check.desc.startswith("duplicate") \
            else f"{check.column}: {check.desc}"
        reason_parts.append(pl.when(pl.col(f"__chk{i}")).then(pl.lit(reason)))
    if not reason_parts:
        return typed, None, problems
    any_bad = flags.select(pl.any_horizontal(pl.all())).to_series()
    bad_rows = any_bad.arg_true()
    reasons = flags.select(pl.all().gather(bad_rows)).select(
        pl.concat_str(reason_parts, separator="; ", ignore_nulls=True).alias("_reason"))
    good = typed.filter(~any_bad)
    numbers = row_ids.gather(bad_rows) if row_ids is not None else bad_rows.cast(pl.Int64)
    bad = pl.concat([numbers.alias("_row").to_frame(), frame.select(pl.all().gather(bad_rows)),
                     reasons],
                    how="horizontal")
    return good, bad, problems


def _later_duplicates(typed: pl.DataFrame, key: list[str]) -> pl.Series | None:
    """True on each row whose (non-null) key appeared on an earlier row; None when none.

    Exact and cheap: equal keys have equal hashes, so a sorted array of the 64-bit
    row hashes (8 bytes a row) proves there is no duplicate when no hash repeats.
    Only rows that share a hash are compared on their values. The earlier method,
    ``struct(key).is_first_distinct()``, cost 6 GB at 40M balance rows.
    """
    import numpy as np  # imported here: `import crmkit` stays light

    complete = pl.all_horizontal([pl.col(k).is_not_null() for k in key])
    hashed = (pl.struct(key) if len(key) > 1 else pl.col(key[0])).hash(_HASH_SEED)
    hashes = typed.select(pl.when(complete).then(hashed).alias("h")).to_series()
    arr = np.sort(hashes.drop_nulls().to_numpy())
    repeated = arr[1:][arr[1:] == arr[:-1]]
    del arr
    if repeated.size == 0:
        return None
    candidates = hashes.is_in(pl.Series(np.unique(repeated)).implode()).fill_null(False).arg_true()
    sub = typed.select(pl.col(key).gather(candidates))
    later = sub.select(pl.struct(key).is_first_distinct().not_()).to_series()
    if not later.any():
        return None  # hash collisions only
    marker = pl.Series("dup", np.zeros(typed.height, dtype=bool))
    return marker.scatter(candidates.filter(later), True)


def _date_of(typed: pl.DataFrame, name: str) -> pl.Expr:
    return pl.col(name).dt.date() if typed.schema[name] == _TS else pl.col(name)


def _rows_breaking(typed: pl.DataFrame, key: str, reference: pl.DataFrame,
                   bad: pl.Expr) -> pl.Series | None:
    """Marker of the rows whose ``key`` is in ``reference`` and for which ``bad`` holds.

    ``reference`` holds only the keys with a violation somewhere (found on an
    aggregate), so the row-level look-up runs on their few rows, not on every row:
    mapping 40M rows to their customer's first_seen cost minutes and gigabytes.
    """
    if reference.is_empty():
        return None
    idx = typed.select(pl.col(key).is_in(reference[key].implode())).to_series().arg_true()
    sub = (typed.select(pl.all().gather(idx)).with_columns(idx.alias("__i"))
           .join(reference, on=key, how="left"))
    hit = sub.filter(bad.fill_null(False))["__i"]
    if hit.is_empty():
        return None
    return pl.repeat(False, typed.height, eager=True).scatter(hit, True)


def _cross_table_checks(spec: Table, typed: pl.DataFrame, present: set[str],
                        clean: dict[str, pl.DataFrame], contract: Contract) -> list[_Check]:
    checks: list[_Check] = []
    date_col = spec.date_column
    customers = clean.get("customers")
    if (spec.name in _CUSTOMER_DATED and customers is not None and date_col in present
            and "customer_id" in present and typed.height):
        day = _date_of(typed, date_col)
        earliest = (typed.group_by("customer_id").agg(day.min().alias("__d"))
                    .join(customers.select("customer_id", pl.col("first_seen").alias("__f")),
                          on="customer_id").filter(pl.col("__d") < pl.col("__f"))
                    .select("customer_id", "__f"))
        marker = _rows_breaking(typed, "customer_id", earliest, day < pl.col("__f"))
        if marker is not None:
            checks.append(_Check(date_col, "dated before the customer's first_seen",
                                 pl.lit(marker), ("customer_id",)))
    holdings = clean.get("holdings")
    if spec.name == "balances" and holdings is not None and typed.height:
        earliest = (typed.group_by("account_id").agg(pl.col("date").min().alias("__d"))
                    .join(holdings.select("account_id", pl.col("opened").alias("__o")),
                          on="account_id").filter(pl.col("__d") < pl.col("__o"))
                    .select("account_id", "__o"))
        marker = _rows_breaking(typed, "account_id", earliest, pl.col("date") < pl.col("__o"))
        if marker is not None:
            checks.append(_Check("date", "dated before the account was opened", pl.lit(marker)))
        products = clean.get("products")
        if products is not None:
            negative = typed.filter(pl.col("balance") < 0).select("account_id").unique()
            no_credit = (negative.join(holdings.select("account_id", "product_id"),
                                       on="account_id")
                         .join(products.select("product_id", "category"), on="product_id")
                         .filter(~pl.col("category").is_in(list(contract.credit_categories)))
                         .select("account_id"))
            marker = _rows_breaking(typed, "account_id", no_credit, pl.col("balance") < 0)
            if marker is not None:
                allowed = ", ".join(contract.credit_categories) or "none"
                checks.append(_Check(
                    "balance", f"negative balance on a product that is not credit ({allowed})",
                    pl.lit(marker)))
    return checks


def _sum_checks(spec: Table, typed: pl.DataFrame, clean: dict[str, pl.DataFrame],
                contract: Contract) -> list[_Check]:
    """Rows of customers whose money would not add up exactly in integer micro-units.

    The features sum a customer's amounts (and latest balances) as int64 micro-units;
    a customer whose absolute values add up past :data:`MAX_EXACT_SUM` would wrap.
    A cheap bound (rows times the largest value) rules this out on ordinary data.
    Values already bad (non-finite, out of range) are left out of the sums.
    """
    limit = MAX_EXACT_SUM

    def in_range(name: str) -> pl.Expr:
        low, high = contract.range_for(spec.name, name)
        return pl.col(name).is_finite() & pl.col(name).is_between(low, high)

    if spec.name == "transactions" and "customer_id" in typed.columns:
        size = pl.col("amount").abs().filter(in_range("amount"))
        largest = typed.select(size.max()).item() or 0.0
        if largest * typed.height <= limit:
            return []
        over = (typed.group_by("customer_id").agg(size.sum().alias("s"))
                .filter(pl.col("s") > limit)["customer_id"])
        if over.is_empty():
            return []
        return [_Check("amount", f"the customer's amounts add up to more than {limit:.4g} in "
                       "size (no exact sum in integer micro-units)",
                       pl.col("customer_id").is_in(over.implode()), ("customer_id",))]
    holdings = clean.get("holdings")
    if spec.name == "balances" and holdings is not None and holdings.height:
        size = pl.col("balance").abs().filter(in_range("balance"))
        largest = typed.select(size.max()).item() or 0.0
        most_accounts = holdings.group_by("customer_id").len()["len"].max() or 0
        if largest * most_accounts <= limit:
            return []
        # a customer's as-of total is at most the sum of its accounts' largest balances
        per_account = typed.group_by("account_id").agg(size.max().alias("m"))
        per_customer = (holdings.select("account_id", "customer_id")
                        .join(per_account, on="account_id")
                        .group_by("customer_id").agg(pl.col("m").sum())
                        .filter(pl.col("m") > limit))
        if per_customer.is_empty():
            return []
        accounts = holdings.join(per_customer, on="customer_id", how="semi")["account_id"]
        return [_Check("balance", f"the customer's balances can add up to more than "
                       f"{limit:.4g} in size (no exact sum in integer micro-units)",
                       pl.col("account_id").is_in(accounts.implode()))]
    return []


def _example(frame: pl.DataFrame, row: int, spec: Table, columns: list[str],
             row_ids: pl.Series | None = None) -> str:
    record = frame.row(row, named=True)
    names = [k for k in spec.key if k in record] + columns
    shown = [f"{name}={_show(record[name])}" for name in dict.fromkeys(names) if name in record]
    number = row if row_ids is None else row_ids[row]
    return f"row {number}: " + ", ".join(shown)


def _show(value: Any) -> str:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return repr(value)
