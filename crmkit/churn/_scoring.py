"""Scoring many customers in chunks with bounded memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from crmkit._frames import Output, to_output, to_polars
from crmkit.churn._base import _as_table

__all__ = ["score_customers"]


def _chunks(source: Any, columns: list[str], chunk_rows: int):
    # polars' Parquet scan with a slice reads only the row groups the slice needs and
    # keeps far less memory than pyarrow's iter_batches (measured: 350 MB vs 860 MB
    # peak over a 10M-row file in 500k-row chunks)
    if isinstance(source, (str, Path)):
        source = pl.scan_parquet(str(source))
    if isinstance(source, pl.LazyFrame):
        names = source.collect_schema().names()
        cols = [c for c in columns if c in names]
        n = source.select(pl.len()).collect().item()
        for lo in range(0, n, chunk_rows):
            yield source.select(cols).slice(lo, chunk_rows).collect()
        return
    frame = to_polars(source, "source")
    cols = [c for c in columns if c in frame.columns]
    for lo in range(0, frame.height, chunk_rows):
        yield frame.slice(lo, chunk_rows).select(cols)


def score_customers(
    model: Any,
    source: Any,
    *,
    horizons: Any = None,
    horizons_days: Any = None,
    elapsed_col: str | None = None,
    id_col: str = "customer_id",
    lifetime: bool = False,
    reasons: int = 0,
    chunk_rows: int = 250_000,
    sink: str | Path | None = None,
    output: Output = "polars",
):
    """Churn probabilities (and optionally lifetime and reason codes) for many customers.

    Rows are read, scored and written ``chunk_rows`` at a time, and only the
    requested horizons are evaluated (a binary search in the stored baseline per
    customer and horizon), so memory is bounded by the chunk, not by the number of
    customers or the length of the time grid. lifelines'
    ``predict_survival_function`` instead builds a (times x customers) matrix.

    Parameters
    ----------
    model : fitted crmkit survival model (or one loaded with ``load_model``)
    source : table, LazyFrame or path to a Parquet file
        Covariates (the columns used in fit), ``id_col`` and, optionally,
        ``elapsed_col``. A Parquet file is streamed in record batches.
    horizons : sequence of float, optional
        In the model's unit. Default: the model's ``horizons``.
    horizons_days : sequence of float, optional
        Deprecated: horizons in days (columns ``churn_prob_<h>d``).
    elapsed_col : str, optional
        Column with the time each customer has already stayed (model time unit);
        probabilities are then conditional on having stayed until today.
    id_col : str
    lifetime : bool
        Add ``restricted_mean_<unit>`` and ``median_remaining_<unit>``.
    reasons : int
        Number of reason codes per customer, as columns ``reason_<k>`` and
        ``reason_<k>_contribution`` (0: none).
    chunk_rows : int
    sink : path, optional
        Write the scores to this Parquet file chunk by chunk and return its path;
        otherwise return the scores as one table.
    output : {"polars", "pandas"}

    Examples
    --------
    >>> import numpy as np, polars as pl
    >>> from crmkit.churn import CoxPH, make_y
    >>> rng = np.random.default_rng(0)
    >>> X = pl.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    >>> m = CoxPH(unit="days").fit(X, make_y(rng.exponential(100, 200) + 1, rng.random(200) < .8))
    >>> out = score_customers(m, X.with_columns(customer_id=pl.int_range(200).cast(pl.String)),
    ...                       horizons=(30, 90), chunk_rows=64)
    >>> out.columns, out.height
    (['customer_id', 'churn_prob_30d', 'churn_prob_90d'], 200)
    """
    from sklearn.utils.validation import check_is_fitted
    check_is_fitted(model, "coef_")
    chunk_rows = int(chunk_rows)
    if chunk_rows < 1:
        raise ValueError(f"The 'chunk_rows' parameter of score_customers must be a positive "
                         f"integer. Got {chunk_rows!r} instead.")
    hz = model._horizons(horizons, horizons_days)
    needed = [id_col, *model.input_columns_, *([elapsed_col] if elapsed_col else [])]
    writer = None
    parts = []
    warned = False
    try:
        for chunk in _chunks(source, list(dict.fromkeys(needed)), chunk_rows):
            if id_col not in chunk.columns:
                raise ValueError(f"score_customers: the id column {id_col!r} is missing.")
            lp, sidx = model._prepare_predict(chunk)
            a = (chunk[elapsed_col].cast(pl.Float64).to_numpy() if elapsed_col
                 else np.zeros(chunk.height))
            cols = model._churn_arrays(lp, sidx, a, hz, lifetime, warn=not warned)
            warned = True
            out = _as_table(cols).insert_column(0, chunk[id_col].cast(pl.String).alias(
                "customer_id"))
            if reasons:
                out = out.hstack(_wide_reasons(model, chunk, int(reasons)))
            if sink is not None:
                table = out.to_arrow()
                if writer is None:
                    import pyarrow.parquet as pq
                    writer = pq.ParquetWriter(str(sink), table.schema)
                writer.write_table(table)
            else:
                parts.append(out)
    finally:
        if writer is not None:
            writer.close()
    if sink is not None:
        return Path(sink)
    if not parts:
        schema = {"customer_id": pl.String, **{f"churn_prob_{lab}": pl.Float64 for _, lab in hz}}
        return to_output(pl.DataFrame(schema=schema), output)
    return to_output(pl.concat(parts), output)


def _wide_reasons(model: Any, chunk: pl.DataFrame, top: int) -> pl.DataFrame:
    n = chunk.height
    out = {}
    names = np.asarray(model.covariates_, dtype=object)
    if names.size:
        Xc = chunk.select(model.covariates_).cast(pl.Float64).to_numpy()
        contrib = (Xc - model.means_) * model.coef_
        k = min(top, names.size)
        order = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
        c = np.take_along_axis(contrib, order, axis=1)
    for r in range(top):
        if names.size and r < order.shape[1]:
            ok = c[:, r] > 0
            out[f"reason_{r + 1}"] = pl.Series(np.where(ok, names[order[:, r]], None).tolist(),
                                               dtype=pl.String)
            out[f"reason_{r + 1}_contribution"] = pl.Series(np.where(ok, c[:, r], np.nan)
                                                            ).fill_nan(None)
        else:
            out[f"reason_{r + 1}"] = pl.Series([None] * n, dtype=pl.String)
            out[f"reason_{r + 1}_contribution"] = pl.Series([None] * n, dtype=pl.Float64)
    return pl.DataFrame(out)
