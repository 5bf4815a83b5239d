"""Pre-flight checks: before any computing, can the inputs be read and the outputs written?

A nightly run that finds a read-only output folder after an hour of work has
wasted the hour; one that finds a missing table deep inside a model names the
wrong cause. These checks are cheap (headers, Parquet footers, a test file per
folder) and return every problem found, as text, so a runner can print them all
and stop with the "bad config or input" exit code.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from crmkit.exceptions import InputError
from crmkit.io._tables import (_SUFFIX, FOLDER_FORMATS, _check_csv_complete, _codec, _kind,
                               _read_csv)
from crmkit.schema import REQUIRED_TABLES, TABLES

__all__ = ["check_inputs", "check_writable", "preflight"]


def _required_columns(table: str) -> list[str]:
    spec = TABLES.get(table)
    return [c.name for c in spec.columns if c.required] if spec else []


def _missing_columns(table: str, columns: Iterable[str], where: str) -> list[str]:
    missing = [c for c in _required_columns(table) if c not in set(columns)]
    if not missing:
        return []
    return [f"{where}: the {table} table lacks the required column"
            f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}"]


def _check_folder(folder: Path, format: str | None, encoding: str,
                  required: list[str]) -> list[str]:
    if not folder.exists():
        return [f"input folder {str(folder)!r} does not exist"]
    if not folder.is_dir():
        return [f"input {str(folder)!r} is not a folder"]
    if not os.access(folder, os.R_OK | os.X_OK):
        return [f"input folder {str(folder)!r} cannot be read (permissions)"]
    kinds = [format] if format else [f for f in FOLDER_FORMATS
                                     if any(folder.glob(f"*{_SUFFIX[f]}"))]
    if len(kinds) > 1:
        return [f"input folder {str(folder)!r} holds both .parquet and .csv files; set the "
                "format"]
    fmt = kinds[0] if kinds else "parquet"
    files = {p.stem: p for p in folder.glob(f"*{_SUFFIX[fmt]}")
             if p.is_file() and not p.name.startswith(".")}
    problems = [f"input folder {str(folder)!r} has no {t}{_SUFFIX[fmt]} (a required table)"
                for t in required if t not in files]
    for name, path in sorted(files.items()):
        where = repr(str(path))
        if not os.access(path, os.R_OK):
            problems.append(f"{where} cannot be read (permissions)")
            continue
        try:
            if fmt == "csv":
                _check_csv_complete(path, encoding, "preflight")
                columns = _read_csv(path, name, encoding, "preflight", n_rows=0,
                                    infer_schema=False).columns
            else:
                columns = list(pl.read_parquet_schema(path))
        except InputError as err:
            problems.append(str(err).removeprefix("preflight: "))
            continue
        except Exception as err:  # unreadable Parquet footer, bad header bytes, ...
            problems.append(f"{where} cannot be read as {fmt}: {str(err).splitlines()[0]}")
            continue
        problems += _missing_columns(name, columns, where)
    return problems


def _check_duckdb(path: Path, required: list[str]) -> list[str]:
    if not path.is_file():
        return [f"DuckDB file {str(path)!r} does not exist"]
    import duckdb

    try:
        with contextlib.closing(duckdb.connect(str(path), read_only=True)) as con:
            rows = con.execute("SELECT table_name, column_name FROM information_schema.columns "
                               "WHERE table_schema = 'main'").fetchall()
    except Exception as err:
        return [f"DuckDB file {str(path)!r} cannot be opened: {str(err).splitlines()[0]}"]
    return _check_catalogue(rows, required, f"DuckDB file {str(path)!r}")


def _check_sql(uri: str, required: list[str]) -> list[str]:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(uri)
    except Exception as err:
        return [f"database URI {uri!r} is not usable: {str(err).splitlines()[0]}"]
    where = f"database {engine.url.render_as_string()!r}"
    try:
        inspector = sa.inspect(engine)
        rows = [(t, c["name"]) for t in inspector.get_table_names()
                for c in inspector.get_columns(t)]
    except Exception as err:
        return [f"{where} cannot be read: {str(err).splitlines()[0]}"]
    finally:
        engine.dispose()
    return _check_catalogue(rows, required, where)


def _check_catalogue(rows: list[tuple[str, str]], required: list[str], where: str) -> list[str]:
    columns: dict[str, list[str]] = {}
    for table, column in rows:
        columns.setdefault(table, []).append(column)
    problems = [f"{where} has no table {t} (a required table)" for t in required
                if t not in columns]
    for table, cols in sorted(columns.items()):
        problems += _missing_columns(table, cols, f"{where}, table {table}")
    return problems


def check_inputs(source: str | os.PathLike, *, format: str | None = None,
                 encoding: str = "utf-8",
                 required: Iterable[str] = REQUIRED_TABLES) -> list[str]:
    """Problems that would stop reading ``source``, found without reading the data.

    ``source`` is what :func:`read_tables` takes (a folder, a DuckDB file or a
    SQLAlchemy URI). Checked: it exists and can be read; the required tables are
    there; every canonical table has its required columns (CSV header, Parquet
    footer, SQL catalogue); a CSV file is not cut off (see :func:`read_table`) and
    its header decodes in ``encoding``; a Parquet file's footer is readable.

    Parameters
    ----------
    source : str or path-like
    format : {"parquet", "csv"}, optional
    encoding : str
        Text encoding of CSV files.
    required : iterable of str
        Tables that must be present.

    Returns
    -------
    list of str
        One line per problem; empty when all is well.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "customers.csv").write_text("customer_id,branch_id\\nc1,b1\\n")
    >>> for line in check_inputs(folder):
    ...     print(line.replace(str(folder), "IN"))
    input folder 'IN' has no transactions.csv (a required table)
    'IN/customers.csv': the customers table lacks the required column first_seen
    """
    _codec(encoding, "check_inputs")
    required = list(required)
    kind = _kind(source)
    if kind == "sql":
        return _check_sql(os.fspath(source), required)
    if kind == "duckdb":
        return _check_duckdb(Path(source), required)
    return _check_folder(Path(source), format, encoding, required)


def check_writable(*folders: str | os.PathLike) -> list[str]:
    """Problems that would stop writing into each folder (created later if missing).

    Each folder, or its nearest existing parent when it does not exist yet, must
    be a folder in which a file can be created: a test file is written and
    removed, which is what counts (permission bits alone do not show a read-only
    file system).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> base = pathlib.Path(tempfile.mkdtemp())
    >>> check_writable(base / "runs", base / "runs" / "models")
    []
    >>> _ = (base / "file").write_text("x")
    >>> [p.replace(str(base), "B") for p in check_writable(base / "file" / "runs")]
    ["cannot create the folder 'B/file/runs': 'B/file' is a file, not a folder"]
    """
    problems = []
    for folder in folders:
        target = Path(folder)
        probe = target
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if not probe.is_dir():
            what = "write into" if probe == target else "create the folder"
            problems.append(f"cannot {what} {str(target)!r}: {str(probe)!r} is a file, not a "
                            "folder")
            continue
        try:
            fd, name = tempfile.mkstemp(prefix=".crmkit-preflight-", dir=probe)
            os.close(fd)
            os.unlink(name)
        except OSError as err:
            what = "write into" if probe == target else "create the folder"
            problems.append(f"cannot {what} {str(target)!r}: {str(probe)!r} is not writable "
                            f"({err.strerror})")
    return problems


def preflight(source: str | os.PathLike, *, writable: Iterable[str | os.PathLike] = (),
              format: str | None = None, encoding: str = "utf-8",
              required: Iterable[str] = REQUIRED_TABLES) -> list[str]:
    """Every problem of :func:`check_inputs` and :func:`check_writable`, inputs first.

    Parameters
    ----------
    source : str or path-like
        The input source (see :func:`read_tables`).
    writable : iterable of path-like
        Folders the run writes to (run folders, model store).
    format, encoding, required
        As in :func:`check_inputs`.

    Returns
    -------
    list of str
        One line per problem; empty when the run can start.
    """
    return [*check_inputs(source, format=format, encoding=encoding, required=required),
            *check_writable(*writable)]
