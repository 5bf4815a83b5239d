"""Conversion of tables at the public boundary.

Public functions accept polars (eager or lazy), pandas or pyarrow tables and return
polars by default, pandas on request (``output="pandas"``). Inside, everything is
polars.
"""

from __future__ import annotations

from typing import Any, Literal

import polars as pl

Output = Literal["polars", "pandas"]

__all__ = ["Output", "to_lazy", "to_polars", "to_output"]


def to_polars(table: Any, name: str = "table") -> pl.DataFrame:
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
        return table
    return to_polars(table, name).lazy()


def to_output(frame: pl.DataFrame | pl.LazyFrame, output: Output = "polars"):
    """Return ``frame`` in the requested output type (``"polars"`` or ``"pandas"``).

    Examples
    --------
    >>> import polars as pl
    >>> type(to_output(pl.DataFrame({"a": [1]}), "pandas")).__name__
    'DataFrame'
    """
    if isinstance(frame, pl.LazyFrame):
        frame = frame.collect()
    if output == "polars":
        return frame
    if output == "pandas":
        return frame.to_pandas()
    raise ValueError(
        f"The 'output' parameter must be one of 'polars', 'pandas'. Got {output!r} instead."
    )
