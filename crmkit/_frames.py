"""Conversion of tables at the public boundary.

Public functions accept polars (eager or lazy), pandas or pyarrow tables and return
polars by default, pandas on request (``output="pandas"``). Inside, everything is
polars.
"""

from __future__ import annotations

from typing import Any, Literal

import polars as pl

Output = Literal["polars", "pandas"]

__all__ = ["Output", "check_table", "parse_dates", "to_lazy", "to_polars", "to_output"]

_MAX_EXAMPLES = 5


def _crmkit_version() -> str:
    try:
        import crmkit
        return str(crmkit.__version__)
    except Exception:  # pragma: no cover - only while the package is half-imported
        return "unknown"


def _schema_dates(name: str) -> dict:
    """Date/datetime columns of canonical table ``name`` (empty for other names)."""
    try:
        from crmkit.schema import TABLES
    except ImportError:  # pragma: no cover
        return {}
    spec = TABLES.get(name)
    if spec is None:
        return {}
    return {c.name: c.dtype for c in spec.columns
            if c.dtype == pl.Date or isinstance(c.dtype, pl.Datetime)}


def _schema_error(owner: str, column: str, what: str, count: int, examples: list):
    from crmkit.exceptions import SchemaError
    shown = ", ".join(repr(e) for e in examples[:_MAX_EXAMPLES])
    return SchemaError(f"{owner}: column {column!r} has {count} {what} (e.g. {shown}).")


_ISO_LAYOUTS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M")


def parse_dates(frame: pl.DataFrame | pl.LazyFrame, columns: dict, owner: str, *,
                strict: bool = True):
    """Parse ISO date strings in ``columns`` (name -> polars Date or Datetime type).

    String columns holding ISO dates (``2024-03-31``) or date-times
    (``2024-03-31 10:00:00``, ``2024-03-31T10:00``), as pandas reads them from a CSV
    file, become dates; a value that is not one raises :class:`SchemaError` naming
    the column, the count and examples (with ``strict=False`` such a column is left
    as it is, for :func:`crmkit.validate` to report row by row). Columns of other
    types are left alone.

    Examples
    --------
    >>> import polars as pl
    >>> parse_dates(pl.DataFrame({"d": ["2024-01-05"]}), {"d": pl.Date}, "f")["d"].dtype
    Date
    """
    schema = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema
    todo = {c: t for c, t in columns.items() if c in schema and schema[c] == pl.String}
    if not todo:
        return frame
    def parsed(c, t):
        col = pl.col(c).str.strip_chars()
        # ISO layouts only, each named: without a format polars guesses one from the
        # first value (01/02/2024 read day-first for a whole column)
        as_dt = pl.coalesce([col.str.to_datetime(format=f, time_unit="us", strict=False)
                             for f in _ISO_LAYOUTS])
        return as_dt.dt.date() if t == pl.Date else as_dt.cast(t)
    exprs = {c: parsed(c, t) for c, t in todo.items()}
    checks = [((pl.col(c).is_not_null() & e.is_null()).alias(c)) for c, e in exprs.items()]
    eager = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    bad = eager.select(checks)
    for c in list(todo):
        mask = bad[c]
        if mask.any():
            if not strict:
                del exprs[c]
                continue
            examples = eager.filter(mask)[c].head(_MAX_EXAMPLES).to_list()
            raise _schema_error(owner, c, "values that are not ISO dates (YYYY-MM-DD)",
                                int(mask.sum()), examples)
    out = eager.with_columns(e.alias(c) for c, e in exprs.items())
    return out.lazy() if isinstance(frame, pl.LazyFrame) else out


def check_table(frame: pl.DataFrame | pl.LazyFrame, owner: str, *, ids: tuple = (),
                numbers: tuple = (), dates: tuple = ()) -> None:
    """The data contract of a public function's input table.

    ``ids`` must be present and non-null; ``numbers`` finite and non-null
    (NaN, infinities and nulls are refused, never cast away); ``dates``
    non-null. One pass over the data; raises :class:`SchemaError` naming the
    function, the column, the count and examples of the bad rows.

    Examples
    --------
    >>> import polars as pl
    >>> check_table(pl.DataFrame({"customer_id": ["a", None]}), "rfm_summary",
    ...             ids=("customer_id",))
    Traceback (most recent call last):
    ...
    crmkit.exceptions.SchemaError: rfm_summary: column 'customer_id' has 1 null ids (e.g. row 1).
    """
    lf = frame.lazy() if isinstance(frame, pl.DataFrame) else frame
    schema = lf.collect_schema()
    exprs = []
    for c in ids + dates:
        if c in schema:
            exprs.append(pl.col(c).null_count().alias(f"null:{c}"))
    for c in numbers:
        if c in schema:
            e = pl.col(c)
            bad = e.is_null()
            if schema[c].is_float():
                bad = bad | ~e.is_finite()
            exprs.append(bad.sum().alias(f"bad:{c}"))
    if not exprs:
        return
    counts = lf.select(exprs).collect().row(0, named=True)
    for key, n in counts.items():
        if not n:
            continue
        kind, c = key.split(":", 1)
        rows = (lf.with_row_index("_row")
                .filter(pl.col(c).is_null() if kind == "null" or not schema[c].is_float()
                        else pl.col(c).is_null() | ~pl.col(c).is_finite())
                .select("_row", c).head(_MAX_EXAMPLES).collect())
        if kind == "null":
            what = "null ids" if c in ids else "null dates"
            examples = [f"row {r}" for r in rows["_row"].to_list()]
            from crmkit.exceptions import SchemaError
            raise SchemaError(f"{owner}: column {c!r} has {n} {what} (e.g. "
                              f"{', '.join(examples)}).")
        vals = [f"row {r}: {v}" for r, v in zip(rows["_row"].to_list(), rows[c].to_list())]
        from crmkit.exceptions import SchemaError
        raise SchemaError(f"{owner}: column {c!r} has {n} missing or non-finite values "
                          f"(e.g. {', '.join(vals)}); drop or fill them first, crmkit does "
                          "not guess.")


def to_polars(table: Any, name: str = "table") -> pl.DataFrame:
    """Return ``table`` as an eager polars DataFrame (see :func:`_to_polars`).

    ISO date strings in the date columns of a canonical table (``name`` one of
    :data:`crmkit.schema.TABLES`) are parsed into dates.

    Examples
    --------
    >>> import pandas as pd
    >>> to_polars(pd.DataFrame({"a": [1, 2]})).shape
    (2, 1)
    """
    out = _to_polars(table, name)
    dates = _schema_dates(name)
    return parse_dates(out, dates, name, strict=False) if dates else out


def _to_polars(table: Any, name: str = "table") -> pl.DataFrame:
    """Return ``table`` as an eager polars DataFrame.

    Parameters
    ----------
    table : polars.DataFrame, polars.LazyFrame, pandas.DataFrame or pyarrow.Table
        The input table.
    name : str
        Used in the error message when the type is not accepted.

    Returns
    -------
    polars.DataFrame

    Examples
    --------
    >>> import pandas as pd
    >>> to_polars(pd.DataFrame({"a": [1, 2]})).shape
    (2, 1)
    """
    if isinstance(table, pl.DataFrame):
        return table
    if isinstance(table, pl.LazyFrame):
        return table.collect()
    module = type(table).__module__.split(".")[0]
    if module == "pandas":
        return pl.from_pandas(table)
    if module == "pyarrow":
        out = pl.from_arrow(table)
        if isinstance(out, pl.Series):
            out = out.to_frame()
        return out
    if isinstance(table, dict):
        return pl.DataFrame(table)
    raise TypeError(
        f"The {name!r} argument must be a polars, pandas or pyarrow table. "
        f"Got {type(table).__name__} instead."
    )


def to_lazy(table: Any, name: str = "table") -> pl.LazyFrame:
    """Return ``table`` as a polars LazyFrame without collecting a lazy input.

    Examples
    --------
    >>> import polars as pl
    >>> isinstance(to_lazy(pl.DataFrame({"a": [1]})), pl.LazyFrame)
    True
    """
    if isinstance(table, pl.LazyFrame):
        dates = _schema_dates(name)
        return parse_dates(table, dates, name, strict=False) if dates else table
    return to_polars(table, name).lazy()


def to_output(frame: pl.DataFrame | pl.LazyFrame, output: Output = "polars",
              index: str | None = "customer_id"):
    """Return ``frame`` in the requested output type (``"polars"`` or ``"pandas"``).

    pandas output is indexed by ``index`` (``customer_id``) when the frame has that
    column and its values are unique, as lifetimes and lifelines users expect.

    Examples
    --------
    >>> import polars as pl
    >>> out = to_output(pl.DataFrame({"customer_id": ["a"], "x": [1]}), "pandas")
    >>> type(out).__name__, out.index.name, list(out.columns)
    ('DataFrame', 'customer_id', ['x'])
    """
    if isinstance(frame, pl.LazyFrame):
        frame = frame.collect()
    if output == "polars":
        return frame
    if output == "pandas":
        pdf = frame.to_pandas()
        if index is not None and index in frame.columns and frame[index].n_unique() == \
                frame.height:
            pdf = pdf.set_index(index)
        return pdf
    raise ValueError(
        f"The 'output' parameter must be one of 'polars', 'pandas'. Got {output!r} instead."
    )
