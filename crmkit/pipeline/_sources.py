"""Where a run's input tables come from, as batch iterators (never whole tables)."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from crmkit.exceptions import ConfigError
from crmkit.pipeline._shards import BATCH_ROWS, InputSource
from crmkit.schema import TABLES

__all__ = ["open_source", "source_signature"]


_PARTITION = re.compile(r"shard=(\d+)")


def _parquet_files(folder: Path) -> tuple[dict[str, list[Path]], dict[str, list[list[Path]]]]:
    """``<table>.parquet`` files, or ``<table>/`` folders of Parquet parts (sorted by name);
    and the tables split by customer shard: ``<table>/shard=K/`` folders (Hive style),
    as their files per shard K (see :func:`partitioned_tables`)."""
    found: dict[str, list[Path]] = {}
    partitions: dict[str, list[list[Path]]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_file() and path.suffix == ".parquet":
            found[path.stem] = [path]
        elif path.is_dir() and path.name in TABLES:
            if (path / "_delta_log").exists():
                # a Delta table's folder keeps removed files until vacuumed; only its log
                # says which are live, and reading them all would double rows silently
                raise ConfigError(f"{path} is a Delta table: crmkit reads Parquet files and "
                                  "does not interpret Delta logs; export the table's current "
                                  "version to Parquet (or shard= folders) first.")
            parts = sorted(p for p in path.rglob("*.parquet") if not p.name.startswith("."))
            if parts:
                found[path.name] = parts
            split = partitioned_tables(path)
            if split is not None:
                partitions[path.name] = split
    return found, partitions


def partitioned_tables(folder: Path) -> list[list[Path]] | None:
    """The Parquet files of each shard of a table folder made only of ``shard=K``
    folders (K = 0, 1, ...: CRC-32 of ``customer_id`` mod the shard count), or None."""
    subdirs = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if not subdirs or not all(p.is_dir() and _PARTITION.fullmatch(p.name) for p in subdirs):
        return None
    by_shard = {int(_PARTITION.fullmatch(p.name).group(1)): p for p in subdirs}
    out: list[list[Path]] = [[] for _ in range(max(by_shard) + 1)]
    for k, sub in by_shard.items():
        out[k] = sorted(p for p in sub.rglob("*.parquet") if not p.name.startswith("."))
    return out


def _duckdb_source(path: Path) -> InputSource:
    import duckdb

    from crmkit.io import conform

    if not path.is_file():
        raise FileNotFoundError(f"no DuckDB file {str(path)!r}")
    with contextlib.closing(duckdb.connect(str(path), read_only=True)) as con:
        names = sorted(r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'main' AND table_type = 'BASE TABLE'").fetchall())

    def batches(name: str) -> Iterator[pl.DataFrame]:
        quoted = '"' + name.replace('"', '""') + '"'
        with contextlib.closing(duckdb.connect(str(path), read_only=True)) as con:
            relation = con.sql(f"SELECT * FROM {quoted}")
            # duckdb 2 names it to_arrow_reader; duckdb 1 had fetch_arrow_reader
            fetch = getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader
            reader = fetch(BATCH_ROWS)
            empty = True
            for batch in reader:
                empty = False
                yield conform(pl.from_arrow(batch), name)
            if empty:
                yield conform(pl.from_arrow(reader.schema.empty_table()), name)

    return InputSource(names, batches, path.stat().st_size * 3)


def _sql_source(uri: str) -> InputSource:
    import sqlalchemy as sa

    from crmkit.io import conform
    from crmkit.io._tables import _engine, _polars_type

    engine = _engine(uri)
    try:
        names = sorted(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()

    def batches(name: str) -> Iterator[pl.DataFrame]:
        engine = _engine(uri)
        try:
            with engine.connect() as conn:
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                schema = {c.name: _polars_type(c.type) for c in table.columns}
                schema = {k: v for k, v in schema.items() if v is not None}
                empty = pl.DataFrame(schema={c.name: schema.get(c.name, pl.String)
                                             for c in table.columns})
                seen = False
                # a server-side cursor where the driver has one: rows arrive in batches
                query = sa.select(table).execution_options(stream_results=True,
                                                            yield_per=BATCH_ROWS)
                for batch in pl.read_database(query, connection=conn, iter_batches=True,
                                              batch_size=BATCH_ROWS,
                                              schema_overrides=schema):
                    seen = True
                    yield conform(batch if batch.width else empty, name)
                if not seen:
                    yield conform(empty, name)
        finally:
            engine.dispose()

    return InputSource(names, batches, 0)


def open_source(inputs: Any, base: Path, as_of: dt.date) -> InputSource:
    """The input tables named by an ``[inputs]`` config section.

    ``sample`` generates the sample bank in memory (as it stood on ``as_of``); a
    folder of Parquet files (or of ``<table>/`` folders of Parquet parts) and a
    DuckDB file and a SQL database (SQLAlchemy URI) are read in record batches; CSV
    folders are read table by table through :func:`crmkit.io.read_tables`.
    """
    if inputs.source == "sample":
        from crmkit.datasets import make_bank
        from crmkit.schema import tables_as_of

        if as_of > inputs.sample_data_end:
            raise ConfigError(
                f"The sample bank's data end on {inputs.sample_data_end.isoformat()}; run with "
                f"--as-of on or before it, or set inputs.sample_data_end.")
        bank = make_bank(inputs.sample_customers, seed=inputs.sample_seed,
                         as_of=inputs.sample_data_end, years=inputs.sample_years)
        return InputSource.from_frames(tables_as_of(bank, as_of))
    source = inputs.source
    if "://" in source:
        return _sql_source(source)
    path = Path(source)
    path = path if path.is_absolute() else base / path
    if path.suffix.lower() in (".duckdb", ".ddb"):
        return _duckdb_source(path)
    if not path.is_dir():
        raise FileNotFoundError(f"input folder {str(path)!r} does not exist")
    parquet, partitions = _parquet_files(path) if inputs.format in (None, "parquet") \
        else ({}, {})
    if parquet and not any(path.glob("*.csv")):
        return InputSource.from_parquet(parquet, partitions)
    from crmkit.io import read_tables

    return InputSource.from_frames(read_tables(path, format=inputs.format))


def source_signature(inputs: Any, base: Path) -> str | None:
    """A cheap identity of the inputs as they are now, or None where there is none.

    Files and folders: every file's path, size and modification time (nanoseconds),
    so a file replaced or appended to changes it. The sample bank is set by the
    config alone. A database can change without a trace outside it: None (a killed
    run reading one is not resumed; its rerun stages the inputs afresh).
    """
    import hashlib

    if inputs.source == "sample":
        return "sample"
    if "://" in inputs.source:
        return None
    path = Path(inputs.source)
    path = path if path.is_absolute() else base / path
    if not path.exists():
        return None
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(path).parts))
    digest = hashlib.sha256()
    for f in files:
        st = f.stat()
        rel = f.name if f == path else f.relative_to(path).as_posix()
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()
