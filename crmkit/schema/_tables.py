"""The canonical tables: their columns, keys, references and date columns."""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from crmkit._frames import to_polars
from crmkit._params import check_date
from crmkit.exceptions import SchemaError

__all__ = [
    "MANAGER_LEVELS",
    "PRODUCT_CATEGORIES",
    "TABLES",
    "Column",
    "Table",
    "complete_tables",
    "empty_table",
    "tables_as_of",
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
    money : bool
        An amount of money: bounded by the contract's range for the column (see
        :class:`crmkit.schema.Contract`), so that sums in integer micro-units are exact.
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
    money: bool = False
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


def _customer_events(name: str, *, date: str, kind: str, outcome: str, doc: str) -> Table:
    """A dated log of one kind of event per customer (contacts, complaints): same columns."""
    return Table(
        name,
        (
            Column("customer_id", _S, doc="the customer"),
            Column("date", _D, doc=date),
            Column("kind", _S, doc=kind),
            Column("outcome", _S, required=False, nullable=True, doc=outcome),
        ),
        references=(("customer_id", "customers", "customer_id"),),
        date_column="date",
        doc=doc,
    )


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "customers",
            (
                Column("customer_id", _S, doc="unique customer id"),
                Column("branch_id", _S, doc="home branch"),
                Column("first_seen", _D, doc="date the bank first knew the customer"),
                Column("birth_year", _I, required=False, nullable=True, low=1900, high=2030,
                       doc="year of birth"),
                Column("risk_level", _I, required=False, nullable=True, low=1, high=5,
                       doc="suitability risk level, 1 (conservative) to 5 (aggressive)"),
                Column("opt_out_sms", _B, required=False, default=False,
                       doc="no contact by text message"),
                Column("opt_out_email", _B, required=False, default=False,
                       doc="no contact by e-mail"),
                Column("opt_out_phone", _B, required=False, default=False,
                       doc="no contact by phone call"),
                Column("do_not_contact", _B, required=False, default=False,
                       doc="no contact through any channel"),
                Column("contact_window", _S, required=False, nullable=True,
                       doc="agreed contact hours 'HH:MM-HH:MM' (bank's zone); null: any time"),
            ),
            key=("customer_id",),
            date_column="first_seen",
            doc="one row per known customer, prospects included; extra columns are free attributes",
        ),
        Table(
            "products",
            (
                Column("product_id", _S, doc="unique product id"),
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
                Column("manager_id", _S, doc="unique manager id"),
                Column("branch_id", _S, doc="the manager's branch"),
                Column("level", _S, doc="private_banking, wealth or branch"),
                Column("capacity", _I, low=0, doc="maximum number of customers in the book"),
                Column("active", _B, required=False, default=True,
                       doc="false for a manager who left (the book needs a new owner)"),
            ),
            key=("manager_id",),
            doc="relationship managers",
        ),
        Table(
            "holdings",
            (
                Column("account_id", _S, doc="unique account id"),
                Column("customer_id", _S, doc="the holder"),
                Column("product_id", _S, doc="the product held"),
                Column("opened", _D, doc="date the account was opened"),
                Column("closed", _D, required=False, nullable=True, doc="null while open"),
                Column("close_reason", _S, required=False, nullable=True,
                       doc="why it was closed (competitor_transfer, fees, matured, ...)"),
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
                Column("account_id", _S, doc="the account"),
                Column("date", _D, doc="date of the snapshot"),
                Column("balance", _F, finite=True, money=True,
                       doc="negative only for the contract's credit categories (loans)"),
            ),
            key=("account_id", "date"),
            references=(("account_id", "holdings", "account_id"),),
            date_column="date",
            doc="balance snapshots (typically month-end) per account",
        ),
        Table(
            "transactions",
            (
                Column("transaction_id", _S, required=False, doc="unique transaction id"),
                Column("customer_id", _S, doc="the customer"),
                Column("timestamp", _TS, doc="date or date-time of the transaction"),
                Column("amount", _F, finite=True, money=True, doc="value; refunds are negative"),
                Column("channel", _S, required=False, nullable=True,
                       doc="where it happened (mobile, online, branch, atm, phone, ...)"),
                Column("product_id", _S, required=False, nullable=True,
                       doc="the product used"),
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
                Column("customer_id", _S, doc="the customer"),
                Column("manager_id", _S, doc="the relationship manager"),
                Column("role", _S, required=False, default="primary", doc="primary or backup"),
                Column("since", _D, required=False, nullable=True,
                       doc="date of the assignment"),
            ),
            key=("customer_id", "role"),
            references=(("customer_id", "customers", "customer_id"),
                        ("manager_id", "managers", "manager_id")),
            date_column="since",
            doc="current assignments of customers to relationship managers",
        ),
        _customer_events("contacts", date="date of the contact",
                         kind="call, visit, email, sms, ...",
                         outcome="reached, no_answer, declined, sale, ...",
                         doc="contacts between the bank and the customer"),
        _customer_events("complaints", date="date raised", kind="fees, service, app, product, ...",
                         outcome="resolved, open, escalated, ...",
                         doc="complaints raised by customers"),
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


def complete_tables(tables: Mapping[str, Any]) -> dict[str, pl.DataFrame]:
    """Every canonical table: an absent one becomes an empty table with the canonical columns.

    An optional table that is not supplied means "none" (no holdings, no contacts),
    the same as a supplied table without rows; downstream code then sees one shape
    for both. Tables that are present are returned as polars frames, unchanged.

    Parameters
    ----------
    tables : mapping of str to table

    Returns
    -------
    dict of str to polars.DataFrame
        The canonical tables in :data:`TABLES` order, then any other tables given.

    Examples
    --------
    >>> import polars as pl
    >>> out = complete_tables({"customers": empty_table("customers")})
    >>> list(out) == list(TABLES), out["holdings"].height
    (True, 0)
    """
    out = {name: to_polars(tables[name], name) if name in tables else empty_table(name)
           for name in TABLES}
    out.update({name: to_polars(frame, name) for name, frame in tables.items()
                if name not in TABLES})
    return out


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




def _table_spec(name: str) -> Table:
    if name not in TABLES:
        close = difflib.get_close_matches(name, list(TABLES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SchemaError(
            f"Unknown table {name!r}; the canonical tables are {', '.join(TABLES)}.{hint}"
        )
    return TABLES[name]
