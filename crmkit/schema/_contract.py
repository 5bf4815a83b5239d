"""The data contract: accepted date formats, the time zone, money ranges, cross-table rules.

Dates are read in formats fixed in advance, never guessed from the data: a column
whose first value is ``01/02/2024`` does not decide how the other rows are read.
By default a date column accepts ISO 8601 dates (``2024-01-31`` or ``20240131``) and a
timestamp column also accepts ISO 8601 date-times, with or without a UTC offset. A
configured format replaces these for its column. Time-zone aware values are
converted to the contract's zone, then stored as that zone's wall time (naive), so
that each row's date is the date in the bank's zone.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
import polars as pl
from pydantic import field_validator

from crmkit._config import StrictModel, closest
from crmkit.schema._tables import TABLES, Column

__all__ = ["MAX_EXACT_AMOUNT", "MAX_EXACT_SUM", "Contract", "cast_column"]

MAX_EXACT_AMOUNT = 2**53 / 1_000_000
"""Largest money value (9,007,199,254.740992) whose micro-units are exact integers in a
float (2**53): the features sum amounts and balances as integer micro-units."""

MAX_EXACT_SUM = (2**63 - 1) / 1_000_000
"""Largest sum (about 9.2e12) that integer micro-units hold without wrapping (int64)."""

_DATE = pl.Date
_TS = pl.Datetime("us")

# The ISO 8601 forms accepted by default. Every one is unambiguous and no value
# matches two of them with different meanings, so the order only matters for speed:
# plain forms first (polars parses fixed formats fast; "%.f" takes a slower path).
_ISO_DATES = ("%Y-%m-%d", "%Y%m%d")
_ISO_TIMESTAMPS = (
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%6f",  # fixed widths first: polars' fast path (what it writes)
    "%Y-%m-%d %H:%M:%S.%6f",
    "%Y-%m-%dT%H:%M:%S.%3f",
    "%Y-%m-%d %H:%M:%S.%3f",
    "%Y-%m-%dT%H:%M:%S.%9f",
    "%Y-%m-%d %H:%M:%S.%9f",
    "%Y-%m-%dT%H:%M:%S%#z",
    "%Y-%m-%d %H:%M:%S%#z",
    *_ISO_DATES,
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M%#z",
    "%Y-%m-%d %H:%M%#z",
)
_SAMPLE = 1000
_TZ_DIRECTIVES = ("%z", "%:z", "%::z", "%#z")
_TIME_DIRECTIVES = ("%H", "%I", "%k", "%l", "%M", "%S", "%T", "%R", "%X", "%r", "%c", "%s",
                    "%p", "%P")
_MONEY_RANGES = {"transactions.amount": "amount_range", "balances.balance": "balance_range"}


def _temporal_columns() -> dict[str, Column]:
    return {f"{t.name}.{c.name}": c for t in TABLES.values() for c in t.columns
            if c.dtype in (_DATE, _TS)}


def _has_tz(fmt: str) -> bool:
    return any(d in fmt for d in _TZ_DIRECTIVES)


def _has_time(fmt: str) -> bool:
    return any(d in fmt for d in _TIME_DIRECTIVES)


class Contract(StrictModel):
    """What the input tables promise beyond their columns' types (a TOML table too).

    Parameters
    ----------
    formats : dict of str to str
        ``"table.column"`` of a date or timestamp column to its one accepted
        format (polars/chrono ``strptime`` directives, e.g. ``"%m/%d/%Y"``). Columns
        not named accept ISO 8601 (see the module docs). Never guessed from the data.
    time_zone : str
        IANA zone (``"UTC"``, ``"Asia/Shanghai"``): values with a UTC offset
        (``+01:00``, ``Z``) are converted to it; values without one are taken to be
        in it. Dates of timestamps are dates in this zone.
    amount_range, balance_range : list of two floats
        Inclusive ``[low, high]`` for ``transactions.amount`` and
        ``balances.balance``. At most :data:`MAX_EXACT_AMOUNT` in size (the largest
        value whose integer micro-units are exact).
    credit_categories : list of str
        Product categories whose balances may be negative (money owed); a negative
        balance on any other product is a bad row.
    cross_table_rules : bool
        Check dates across tables: nothing of a customer's (transactions, holdings,
        contacts, complaints, assignments) dated before the customer's
        ``first_seen``, no balance dated before its account was opened, and the
        credit rule above.

    Examples
    --------
    >>> c = Contract(formats={"transactions.timestamp": "%m/%d/%Y %H:%M"},
    ...              time_zone="Asia/Shanghai")
    >>> c.describe_format("transactions", "timestamp")
    "'%m/%d/%Y %H:%M' (configured)"
    >>> from crmkit._config import parse_config
    >>> parse_config(Contract, {"formats": {"transaction.timestamp": "%d.%m.%Y"}}, "contract")
    Traceback (most recent call last):
    ...
    crmkit.exceptions.ConfigError: Invalid contract config: formats: 'transaction.timestamp' is not a date or timestamp column of a canonical table. Did you mean 'transactions.timestamp'? ...
    >>> parse_config(Contract, {"formats": {"transactions.timestamp": "%d/%m"}}, "contract")
    Traceback (most recent call last):
    ...
    crmkit.exceptions.ConfigError: Invalid contract config: formats: the format '%d/%m' of 'transactions.timestamp' does not give back a whole date ...
    """

    formats: dict[str, str] = {}
    time_zone: str = "UTC"
    amount_range: list[float] = [-MAX_EXACT_AMOUNT, MAX_EXACT_AMOUNT]
    balance_range: list[float] = [-MAX_EXACT_AMOUNT, MAX_EXACT_AMOUNT]
    credit_categories: list[str] = ["loan", "mortgage", "card"]
    cross_table_rules: bool = True

    @field_validator("formats")
    @classmethod
    def _formats(cls, value: dict[str, str]) -> dict[str, str]:
        columns = _temporal_columns()
        for key, fmt in value.items():
            if key not in columns:
                raise ValueError(
                    f"{key!r} is not a date or timestamp column of a canonical table."
                    f"{closest(key, columns)} Date and timestamp columns: {', '.join(columns)}.")
            _check_format(key, fmt)
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone of the IANA database (e.g. 'UTC', "
                             "'Asia/Shanghai', 'Europe/Berlin').") from None
        return value

    @field_validator("amount_range", "balance_range")
    @classmethod
    def _range(cls, value: list[float]) -> list[float]:
        if len(value) != 2 or not value[0] < value[1]:
            raise ValueError(f"must be [low, high] with low < high; got {value!r}.")
        if max(abs(v) for v in value) > MAX_EXACT_AMOUNT:
            raise ValueError(
                f"must lie within +-{MAX_EXACT_AMOUNT:,.6f} (money beyond it has no exact "
                f"integer micro-units); got {value!r}.")
        return value

    def format_for(self, table: str, column: str) -> str | None:
        """The configured format of ``table.column``, or None for the ISO default."""
        return self.formats.get(f"{table}.{column}")

    def describe_format(self, table: str, column: str) -> str:
        """The accepted format of a date or timestamp column, in words.

        Examples
        --------
        >>> Contract().describe_format("customers", "first_seen")
        'ISO 8601 date: YYYY-MM-DD or YYYYMMDD'
        """
        fmt = self.format_for(table, column)
        if fmt is not None:
            return f"{fmt!r} (configured)"
        if TABLES[table].column(column).dtype == _DATE:
            return "ISO 8601 date: YYYY-MM-DD or YYYYMMDD"
        return ("ISO 8601: YYYY-MM-DD, YYYYMMDD, or YYYY-MM-DD HH:MM[:SS[.ffffff]] ('T' or a "
                f"space between), optionally with Z or +HH:MM (converted to {self.time_zone})")

    def range_for(self, table: str, column: str) -> tuple[float, float] | None:
        """The inclusive ``(low, high)`` range of a money column, or None."""
        name = _MONEY_RANGES.get(f"{table}.{column}")
        if name is None:
            return None
        low, high = getattr(self, name)
        return float(low), float(high)


def _check_format(key: str, fmt: str) -> None:
    if not isinstance(fmt, str) or "%" not in fmt:
        raise ValueError(f"the format of {key!r} must be a strptime format such as '%m/%d/%Y'; "
                         f"got {fmt!r}.")
    sample = dt.datetime(2024, 3, 17, 13, 45, 30)
    series = pl.Series([sample.replace(tzinfo=dt.timezone.utc) if _has_tz(fmt) else sample])
    try:
        text = series.dt.strftime(fmt)
        back, _ = _parse(text, (fmt,), "UTC")
    except Exception as err:  # polars raises several types for a bad directive
        raise ValueError(f"the format {fmt!r} of {key!r} is not usable: {err}".splitlines()[0]) \
            from None
    if back[0] is None or back[0].date() != sample.date():
        raise ValueError(f"the format {fmt!r} of {key!r} does not give back a whole date "
                         f"(year, month and day): 2024-03-17 is written {text[0]!r} and read "
                         f"back as {back[0]!r}.")


def _by_frequency(text: pl.Series, formats: tuple[str, ...]) -> tuple[str, ...]:
    """The formats, those that read most of a sample of the values first.

    Only the order of trying changes (each value is still read by a format that
    matches it exactly, and no value matches two accepted forms with different
    meanings): a file of one form costs one pass over the column.
    """
    if len(formats) < 2 or text.len() <= _SAMPLE:
        return formats
    sample = text.head(_SAMPLE).drop_nulls()
    hits = {f: int(sample.str.strptime(_TS, f, strict=False).is_not_null().sum())
            for f in formats}
    return tuple(sorted(formats, key=lambda f: -hits[f]))


def _parse(text: pl.Series, formats: tuple[str, ...], zone: str) -> tuple[pl.Series, int]:
    """Read strings as naive timestamps (wall time in ``zone``) by the format that fits.

    Each format is tried only on the values not read yet, so the usual file (one
    format throughout) costs one pass. Returns the values and how many carried a UTC
    offset.
    """
    result: pl.Series | None = None
    todo: pl.Series | None = None  # positions still unread (None: all)
    n_aware = 0
    for fmt in _by_frequency(text, formats):
        part = text if todo is None else text.gather(todo)
        parsed = part.str.strptime(_TS, fmt, strict=False)
        if _has_tz(fmt):
            n_aware += int(parsed.is_not_null().sum())
            parsed = parsed.dt.convert_time_zone(zone).dt.replace_time_zone(None)
        parsed = parsed.cast(_TS)
        if result is None:
            result = parsed
        else:
            hit = parsed.is_not_null()
            if hit.any():
                result = result.scatter(todo.filter(hit), parsed.filter(hit))
        missing = result.is_null() & text.is_not_null()
        if not missing.any():
            break
        todo = missing.arg_true()
    assert result is not None
    return result, n_aware


def has_offsets(text: pl.Series) -> bool:
    """Whether the first values of a text column carry a UTC offset (``Z``, ``+01:00``)."""
    sample = text.head(_SAMPLE).drop_nulls()
    return bool(sample.str.contains(r"(Z|[+-]\d\d:?\d\d)$").any())


def cast_column(series: pl.Series, column: Column, table: str,
                contract: Contract | None = None) -> tuple[pl.Series | None, int]:
    """``series`` read as ``column``'s canonical type under ``contract``.

    Values that cannot be read become null (the caller names them as bad rows).
    Returns ``(values, n_aware)``: ``values`` is None when the whole type cannot be
    read as the canonical one (a list column as a date, say); ``n_aware`` counts
    values that carried a time zone or UTC offset and were converted to the
    contract's zone (:func:`crmkit.io.conform` leaves such columns to ``validate``).
    """
    contract = contract or Contract()
    source, target = series.dtype, column.dtype
    if source == target:
        return series, 0
    if source == pl.Null:
        return series.cast(target), 0
    zone = contract.time_zone
    if target in (_DATE, _TS):
        if source == pl.String:
            fmt = contract.format_for(table, column.name)
            formats = (fmt,) if fmt else (_ISO_DATES if target == _DATE else _ISO_TIMESTAMPS)
            values, n_aware = _parse(series, formats, zone)
            return (values.dt.date() if target == _DATE else values), n_aware
        if isinstance(source, pl.Datetime):
            n_aware = 0
            if source.time_zone is not None:
                n_aware = series.len() - series.null_count()
                series = series.dt.convert_time_zone(zone).dt.replace_time_zone(None)
            return (series.dt.date() if target == _DATE else series.cast(_TS)), n_aware
        if source == _DATE and target == _TS:
            return series.cast(_TS), 0
        return None, 0
    if target == pl.String:
        if source.is_numeric() or source == pl.Categorical or isinstance(source, pl.Enum):
            return series.cast(pl.String), 0
        return None, 0
    if target in (pl.Float64, pl.Int64):
        if source.is_float() and target == pl.Int64:
            whole = series.is_finite() & (series == series.round(0))
            return pl.select(pl.when(whole).then(series.cast(pl.Int64, strict=False))) \
                .to_series().alias(series.name), 0  # 2.5 is no risk level: not cut to 2
        if source.is_numeric() or source == pl.String or source == pl.Boolean:
            return series.cast(target, strict=False), 0
        return None, 0
    if target == pl.Boolean:
        if source == pl.String:
            low = series.str.to_lowercase()
            return pl.select(
                pl.when(low.is_in(["true", "1", "yes", "y"])).then(True)
                .when(low.is_in(["false", "0", "no", "n"])).then(False)
            ).to_series().alias(series.name), 0
        if source.is_numeric():  # 0 and 1 only: 2 is no flag
            return pl.select(pl.when(series == 1).then(True).when(series == 0).then(False)) \
                .to_series().alias(series.name), 0
        return None, 0
    return None, 0
