"""Writing a run's results (call lists, segments, scores) back to a database.

Each table gets a ``run_date`` column (list and struct columns are stored as JSON
text). In one transaction for the whole run, every
table is created if it does not exist (columns it lacks are added), the rows of
that run date are deleted and the new rows inserted: a rerun of the same date
replaces its rows (idempotent), other dates are kept, and a failure leaves the
database as it was.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from crmkit._frames import to_polars
from crmkit._params import check_date
from crmkit.io._tables import _check_name, _engine, _kind, _quote, _sql_type

__all__ = ["write_back"]


def _plain(value: Any) -> Any:
    if isinstance(value, pl.Series):
        return [_plain(v) for v in value.to_list()]
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def _prepare(tables: Mapping[str, Any], day: dt.date, run_column: str,
             owner: str) -> dict[str, pl.DataFrame]:
    _check_name(run_column, owner)
    frames = {}
    for name, table in tables.items():
        frame = to_polars(table, name)
        _check_name(name, owner)
        for col in frame.columns:
            _check_name(col, owner)
        if run_column in frame.columns:
            other = frame.filter(pl.col(run_column).cast(pl.Date) != day).height
            if other:
                raise ValueError(
                    f"{owner}: table {name!r} has a {run_column!r} column with {other:,} row(s) "
                    f"not dated {day.isoformat()}; drop the column or fix the rows.")
            frame = frame.with_columns(pl.col(run_column).cast(pl.Date))
        else:
            frame = frame.with_columns(pl.lit(day, dtype=pl.Date).alias(run_column))
        # A list or struct column (a call's triggers) has no portable SQL type: it is
        # stored as its JSON text, which every database can hold and read back.
        nested = [c for c, t in frame.schema.items() if t.is_nested()]
        if nested:
            frame = frame.with_columns(
                pl.col(c).map_elements(lambda v: json.dumps(_plain(v), ensure_ascii=False),
                                       return_dtype=pl.String, skip_nulls=True)
                for c in nested)
        frames[name] = frame.select([run_column, *[c for c in frame.columns if c != run_column]])
    return frames


def write_back(tables: Mapping[str, Any], dest: str | os.PathLike, *, run_date: Any,
               run_column: str = "run_date", chunk_rows: int = 10_000) -> dict[str, dict[str, int]]:
    """Write tables of one run to a database, replacing that run date's rows.

    Parameters
    ----------
    tables : mapping of str to table
        Table name to frame (e.g. ``{"call_list": ..., "segment_members": ...,
        "churn_scores": ...}``). Names and columns must be letters, digits and
        underscores.
    dest : str or path-like
        A SQLAlchemy URI (``postgresql+psycopg://user@host/db``,
        ``sqlite:///file.db``) or a DuckDB file (``.duckdb`` / ``.ddb``).
    run_date : date or str
        Stored in ``run_column``; the rows of this date are replaced.
    run_column : str
        Name of the run-date column.
    chunk_rows : int
        Rows per INSERT batch (SQL databases).

    Returns
    -------
    dict
        Per table: ``{"rows": written, "replaced": rows of that date deleted first}``.

    Examples
    --------
    >>> import polars as pl, tempfile, pathlib
    >>> db = "sqlite:///" + str(pathlib.Path(tempfile.mkdtemp()) / "crm.db")
    >>> scores = pl.DataFrame({"customer_id": ["a", "b"], "churn_prob_90d": [0.1, 0.4]})
    >>> write_back({"churn_scores": scores}, db, run_date="2025-12-31")
    {'churn_scores': {'rows': 2, 'replaced': 0}}
    >>> write_back({"churn_scores": scores}, db, run_date="2025-12-31")  # a rerun
    {'churn_scores': {'rows': 2, 'replaced': 2}}
    """
    owner = "write_back"
    day = check_date(run_date, "run_date", owner)
    frames = _prepare(tables, day, run_column, owner)
    kind = _kind(dest)
    if kind == "sql":
        return _write_back_sql(frames, os.fspath(dest), day, run_column, chunk_rows)
    if kind == "duckdb":
        return _write_back_duckdb(frames, Path(dest), day, run_column)
    raise ValueError(f"{owner}: {os.fspath(dest)!r} is not a database; give a SQLAlchemy URI "
                     "(postgresql+psycopg://..., sqlite:///...) or a .duckdb file.")


def _write_back_sql(frames: Mapping[str, pl.DataFrame], uri: str, day: dt.date, run_column: str,
                    chunk_rows: int) -> dict[str, dict[str, int]]:
    import sqlalchemy as sa

    engine = _engine(uri)
    out: dict[str, dict[str, int]] = {}
    try:
        with engine.begin() as conn:  # one transaction for the whole run
            inspector = sa.inspect(conn)
            for name, frame in frames.items():
                columns = [sa.Column(c, _sql_type(t)) for c, t in frame.schema.items()]
                if not inspector.has_table(name):
                    sa.Table(name, sa.MetaData(), *columns).create(conn)
                else:
                    have = {c["name"] for c in inspector.get_columns(name)}
                    for col in columns:
                        if col.name not in have:
                            kind = col.type.compile(dialect=conn.dialect)
                            conn.exec_driver_sql(
                                f"ALTER TABLE {_quote(name)} ADD COLUMN {_quote(col.name)} {kind}")
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                deleted = conn.execute(table.delete().where(table.c[run_column] == day)).rowcount
                for start in range(0, frame.height, chunk_rows):
                    conn.execute(table.insert(), frame.slice(start, chunk_rows).to_dicts())
                out[name] = {"rows": frame.height, "replaced": int(deleted or 0)}
    finally:
        engine.dispose()
    return out


def _write_back_duckdb(frames: Mapping[str, pl.DataFrame], path: Path, day: dt.date,
                       run_column: str) -> dict[str, dict[str, int]]:
    import duckdb

    out: dict[str, dict[str, int]] = {}
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(duckdb.connect(str(path))) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            for name, frame in frames.items():
                view = f"__crmkit_wb_{name}"
                con.register(view, frame.to_arrow())
                try:
                    q, v = _quote(name), _quote(view)
                    con.execute(f"CREATE TABLE IF NOT EXISTS {q} AS SELECT * FROM {v} LIMIT 0")
                    have = {r[0] for r in con.execute(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_schema = 'main' AND table_name = ?", [name]).fetchall()}
                    for col, dtype in zip(frame.columns, con.sql(f"SELECT * FROM {v}").types):
                        if col not in have:
                            con.execute(f"ALTER TABLE {q} ADD COLUMN {_quote(col)} {dtype}")
                    deleted = con.execute(f"DELETE FROM {q} WHERE {_quote(run_column)} = ?",
                                          [day]).fetchone()[0]
                    con.execute(f"INSERT INTO {q} BY NAME SELECT * FROM {v}")
                finally:
                    con.unregister(view)
                out[name] = {"rows": frame.height, "replaced": int(deleted)}
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    return out
