"""Reading and writing tables: single files, folders of files, DuckDB files, SQL databases."""

from __future__ import annotations

import codecs
import contextlib
import csv
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from crmkit._frames import to_polars
from crmkit._params import check_choice
from crmkit.exceptions import InputError
from crmkit.io._atomic import atomic_dir, atomic_write
from crmkit.schema import TABLES, Contract
from crmkit.schema._contract import cast_column, has_offsets

__all__ = ["conform", "read_table", "read_tables", "write_table", "write_tables"]

FILE_FORMATS = ("parquet", "csv", "json", "xlsx")
FOLDER_FORMATS = ("parquet", "csv")
_SUFFIX = {"parquet": ".parquet", "csv": ".csv", "json": ".json", "xlsx": ".xlsx"}
_DUCKDB_SUFFIXES = (".duckdb", ".ddb")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _file_format(path: Path, format: str | None, owner: str) -> str:
    if format is not None:
        return check_choice(format, FILE_FORMATS, "format", owner)
    suffix = path.suffix.lower()
    for name, ext in _SUFFIX.items():
        if suffix == ext:
            return name
    raise ValueError(
        f"{owner}: cannot tell the format of {str(path)!r} from its suffix {suffix!r}; "
        f"use one of {', '.join(_SUFFIX.values())} or pass format= (one of "
        f"{', '.join(FILE_FORMATS)})."
    )


def write_table(frame: Any, path: str | os.PathLike, format: str | None = None) -> Path:
    """Write one table to a file atomically; the format follows the suffix.

    Formats: ``.parquet`` (zstd), ``.csv`` (header, ISO dates, empty field for
    null), ``.json`` (a list of records) and ``.xlsx`` (one sheet, needs
    ``openpyxl``). Rows are written in the order given, and the same frame
    always gives the same bytes for Parquet, CSV and JSON (no write time is
    stored). The file is written to a temporary sibling and renamed into place,
    so a crash never leaves a half-written file.

    Parameters
    ----------
    frame : table
        polars (eager or lazy), pandas or pyarrow table.
    path : str or path-like
        Target file; its parent directory is created if needed.
    format : {"parquet", "csv", "json", "xlsx"}, optional
        Overrides the suffix.

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import polars as pl, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> p = write_table(pl.DataFrame({"customer_id": ["007"], "amount": [1.5]}),
    ...                 folder / "x.csv")
    >>> print(p.read_text(), end="")
    customer_id,amount
    007,1.5
    """
    owner = "write_table"
    target = Path(path)
    fmt = _file_format(target, format, owner)
    df = to_polars(frame, "frame")
    if fmt == "xlsx":
        _require_openpyxl(owner)
    with atomic_write(target) as tmp:
        if fmt == "parquet":
            df.write_parquet(tmp, compression="zstd", statistics=True)
        elif fmt == "csv":
            df.write_csv(tmp)
        elif fmt == "json":
            tmp.write_bytes(df.write_json().encode("utf-8"))
        else:
            _write_xlsx(df, tmp, sheet=target.stem)
    return target


def _require_openpyxl(owner: str):
    try:
        import openpyxl
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"{owner}: writing .xlsx needs the optional package openpyxl; install it with "
            "'pip install openpyxl', or write .csv/.parquet instead."
        ) from err
    return openpyxl


def _write_xlsx(df: pl.DataFrame, path: Path, sheet: str) -> None:
    openpyxl = _require_openpyxl("write_table")
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet(title=(sheet or "Sheet1")[:31])
    ws.append(df.columns)
    for row in df.iter_rows():
        ws.append(list(row))
    wb.save(path)


def conform(frame: pl.DataFrame, table: str | None,
            contract: Contract | None = None) -> pl.DataFrame:
    """Give the canonical columns of ``table`` their canonical types where lossless.

    Text-based sources (CSV, JSON, SQLite) lose types. For every column of
    ``frame`` that the canonical table ``table`` defines, the values are parsed
    with the same rules :func:`crmkit.schema.validate` uses (dates in the
    contract's formats, never guessed); the parsed column replaces the original
    only when no value is lost (no non-null value becomes null). Otherwise the
    column is left as it is, so that ``validate`` can name the bad rows instead of
    them vanishing here. Timestamps with a UTC offset or a time zone stay as they
    are too: ``validate`` converts them to the contract's time zone. Ids stay strings.

    Parameters
    ----------
    frame : polars.DataFrame
    table : str or None
        A canonical table name; any other name (or None) returns ``frame`` as is.
    contract : Contract, optional
        Accepted date formats (default: ISO 8601).

    Returns
    -------
    polars.DataFrame

    Examples
    --------
    >>> import polars as pl
    >>> raw = pl.DataFrame({"manager_id": ["007"], "branch_id": ["01"], "level": ["branch"],
    ...                     "capacity": ["12"], "note": ["x"]})
    >>> conform(raw, "managers").dtypes
    [String, String, String, Int64, String]
    """
    if table not in TABLES:
        return frame
    spec = TABLES[table]
    keep = {}
    for col in spec.columns:
        if col.name not in frame.columns or frame.schema[col.name] == col.dtype:
            continue
        if col.dtype in (pl.Date, pl.Datetime("us")) and frame.schema[col.name] == pl.String \
                and has_offsets(frame[col.name]):
            continue  # validate converts them to the contract's zone: no parse here
        values, n_aware = cast_column(frame[col.name], col, table, contract)
        if values is None or n_aware:
            continue
        if not (frame[col.name].is_not_null() & values.is_null()).any():
            keep[col.name] = values
    return frame.with_columns(**keep) if keep else frame


_CHUNK = 1 << 20
_TAIL = 1 << 16


def _codec(encoding: str, owner: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except (LookupError, TypeError):
        raise ValueError(f"The 'encoding' parameter of {owner} must be a text encoding known to "
                         f"Python ('utf-8', 'latin-1', 'gbk', ...). Got {encoding!r} instead.") \
            from None


def _line_of(path: Path, offset: int) -> int:
    line, done = 1, 0
    with open(path, "rb") as fh:
        while done < offset:
            chunk = fh.read(min(_CHUNK, offset - done))
            if not chunk:
                break
            line += chunk.count(b"\n")
            done += len(chunk)
    return line


def _first_decode_error(path: Path, encoding: str) -> tuple[int, bytes, str] | None:
    """(byte offset, offending bytes, reason) of the first byte ``encoding`` cannot decode."""
    decoder = codecs.getincrementaldecoder(encoding)()
    done = 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(_CHUNK)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as err:
                pending = len(err.object) - len(chunk)  # bytes held over from the last chunk
                at = done - pending + err.start
                return at, bytes(err.object[err.start:err.end]), err.reason
            if not chunk:
                return None
            done += len(chunk)


def _encoding_error(path: Path, encoding: str, owner: str) -> InputError | None:
    found = _first_decode_error(path, encoding)
    if found is None:
        return None
    at, raw, reason = found
    return InputError(
        f"{owner}: {str(path)!r} is not valid {encoding} text: byte {raw.hex(' ')} at byte offset "
        f"{at:,} (line {_line_of(path, at):,}) cannot be decoded ({reason}). Declare the file's "
        f"encoding (encoding='latin-1', 'gbk', 'cp1252', ...) or convert it to {encoding}.")


def _fields(line: bytes, encoding: str) -> int | None:
    text = line.decode(encoding, errors="replace")
    if text.count('"') % 2:
        return None  # inside a quoted field that spans lines: cannot tell from one line
    return len(next(csv.reader([text]), []))


def _check_csv_complete(path: Path, encoding: str, owner: str) -> None:
    """A CSV file cut off mid-row is an error, not a smaller table."""
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{owner}: {str(path)!r} is empty (not even a header line): the file "
                         "was not written completely.")
    if "\n".encode(encoding) != b"\n":
        return  # UTF-16 and the like: no byte-level line check
    with open(path, "rb") as fh:
        head = fh.read(min(size, _TAIL))
        fh.seek(max(0, size - _TAIL))
        tail = fh.read()
    if not tail.endswith(b"\n"):
        start = tail.rfind(b"\n") + 1
        at = size - len(tail) + start
        raise InputError(
            f"{owner}: {str(path)!r} ends in the middle of a line (its last line, from byte "
            f"offset {at:,}, has no line break): the file was cut off. Write it again; if it "
            "is complete, end it with a line break.")
    body = tail[:-1].rstrip(b"\r")
    cut = body.rfind(b"\n")
    if cut < 0 and size > len(tail):
        return  # one line longer than the tail read: nothing to compare
    last = body[cut + 1:]
    header = head.split(b"\n", 1)[0].rstrip(b"\r")
    if b"\n" not in head:
        return
    n_header, n_last = _fields(header, encoding), _fields(last, encoding)
    if n_header is not None and n_last is not None and n_last != n_header:
        at = size - len(tail) + cut + 1
        raise InputError(
            f"{owner}: {str(path)!r}: the last line (from byte offset {at:,}) has {n_last} "
            f"field{'s' if n_last != 1 else ''} where the header has {n_header}: the file was "
            "cut off. Write it again.")


def _read_csv(path: Path, name: str, encoding: str, owner: str, **options: Any) -> pl.DataFrame:
    utf8 = encoding == "utf-8"
    try:
        return pl.read_csv(path, encoding="utf8" if utf8 else encoding, **options)
    except UnicodeDecodeError:
        err = _encoding_error(path, encoding, owner)
        if err is None:
            raise
        raise err from None
    except pl.exceptions.ComputeError as exc:
        if utf8 and "utf-8" in str(exc).lower():
            err = _encoding_error(path, encoding, owner)
            if err is not None:
                raise err from None
        raise InputError(f"{owner}: cannot read {str(path)!r} as CSV: "
                         f"{str(exc).splitlines()[0]}") from None


def _csv_schema(path: Path, table: str | None, encoding: str, owner: str) -> dict[str, Any]:
    header = _read_csv(path, str(table), encoding, owner, n_rows=0, infer_schema=False).columns
    if table in TABLES:
        names = set(TABLES[table].column_names)
        return {c: pl.String for c in header if c in names}
    return {}


def read_table(path: str | os.PathLike, table: str | None = None,
               format: str | None = None, *, encoding: str = "utf-8",
               contract: Contract | None = None) -> pl.DataFrame:
    """Read one table from a Parquet, CSV or JSON file.

    For text formats the columns that the canonical table defines are read as
    text and then given their canonical types by :func:`conform` (ids stay
    strings, leading zeros kept; dates only in the contract's formats); other
    columns are inferred. Validate the result with :func:`crmkit.schema.validate`.

    A CSV file must be complete: a file that is empty, ends in the middle of a
    line, or whose last line has fewer fields than the header was cut off and
    raises :class:`~crmkit.InputError` (a file cut exactly at a line break looks
    complete; the row-count check of :func:`crmkit.schema.quality_gate` catches
    that). Text that is not valid in the declared ``encoding`` raises
    :class:`~crmkit.InputError` naming the file, the byte offset and the line.

    Parameters
    ----------
    path : str or path-like
    table : str, optional
        The canonical table the file holds. Defaults to the file's stem
        (``transactions.csv`` holds ``transactions``).
    format : {"parquet", "csv", "json"}, optional
        Overrides the suffix.
    encoding : str
        The text encoding of a CSV file (``"utf-8"``, ``"latin-1"``, ``"gbk"``, ...).
    contract : crmkit.schema.Contract, optional
        Accepted date formats; pass the one given to ``validate``.

    Returns
    -------
    polars.DataFrame

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "products.csv"
    >>> _ = p.write_text("product_id,category,risk_rating\\n0042,fund,3\\n")
    >>> read_table(p).row(0)
    ('0042', 'fund', 3)
    """
    owner = "read_table"
    source = Path(path)
    fmt = _file_format(source, format, owner)
    encoding = _codec(encoding, owner)
    name = table if table is not None else source.stem
    if not source.is_file():
        raise FileNotFoundError(f"{owner}: no file {str(source)!r}.")
    if fmt == "parquet":
        try:
            return pl.read_parquet(source)
        except (pl.exceptions.ComputeError, OSError) as exc:
            raise InputError(f"{owner}: cannot read {str(source)!r} as Parquet (cut off or not "
                             f"Parquet?): {str(exc).splitlines()[0]}") from None
    if fmt == "csv":
        _check_csv_complete(source, encoding, owner)
        schema = _csv_schema(source, name, encoding, owner)
        df = _read_csv(source, name, encoding, owner, schema_overrides=schema,
                       infer_schema_length=10_000, try_parse_dates=False)
        return conform(df, name, contract)
    if fmt == "json":
        text = source.read_bytes()
        if text.strip() in (b"", b"[]"):
            df = pl.DataFrame()
        else:
            try:
                df = pl.read_json(source, infer_schema_length=None)
            except pl.exceptions.ComputeError as exc:
                raise InputError(f"{owner}: cannot read {str(source)!r} as JSON (cut off?): "
                                 f"{str(exc).splitlines()[0]}") from None
        return conform(df, name, contract)
    raise ValueError(f"{owner}: reading .xlsx is not supported; export to .csv or .parquet.")


def _kind(location: str | os.PathLike) -> str:
    text = os.fspath(location)
    if "://" in text:
        return "sql"
    if Path(text).suffix.lower() in _DUCKDB_SUFFIXES:
        return "duckdb"
    return "folder"


def _check_name(name: str, owner: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"{owner}: table name {name!r} is not usable as a file or SQL table name; use "
            "letters, digits and underscores, starting with a letter."
        )
    return name


def _wanted(available: Iterable[str], tables: Iterable[str] | None, where: str,
            owner: str) -> list[str]:
    available = sorted(available)
    if tables is None:
        return available
    if isinstance(tables, str):
        tables = [tables]
    tables = list(tables)
    missing = [t for t in tables if t not in available]
    if missing:
        raise FileNotFoundError(
            f"{owner}: no table {', '.join(map(repr, missing))} in {where}; it has "
            f"{', '.join(available) if available else 'no tables'}."
        )
    return tables


def read_tables(source: str | os.PathLike, tables: Iterable[str] | None = None, *,
                format: str | None = None, encoding: str = "utf-8",
                contract: Contract | None = None) -> dict[str, pl.DataFrame]:
    """Read a set of tables from a folder, a DuckDB file or a SQL database.

    ``source`` is one of

    - a folder of ``<table>.parquet`` or ``<table>.csv`` files;
    - a DuckDB file (suffix ``.duckdb`` or ``.ddb``), one SQL table per table;
    - a SQLAlchemy URI such as ``postgresql://user@host/db`` or
      ``sqlite:///path/to/file.db``, one SQL table per table.

    Canonical columns get their canonical types where the source lost them
    (CSV text, SQLite's loose types); see :func:`conform`. Check the result with
    :func:`crmkit.schema.validate`.

    Parameters
    ----------
    source : str or path-like
    tables : iterable of str, optional
        Names to read; all tables found when omitted. A missing name is an error
        that lists the tables present.
    format : {"parquet", "csv"}, optional
        For a folder holding both kinds of file: which to read.
    encoding : str
        Text encoding of the CSV files (see :func:`read_table`).
    contract : crmkit.schema.Contract, optional
        Accepted date formats; pass the one given to ``validate``.

    Returns
    -------
    dict of str to polars.DataFrame

    Examples
    --------
    >>> import tempfile, pathlib, polars as pl
    >>> from crmkit.schema import validate
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "in"
    >>> customers = pl.DataFrame({"customer_id": ["001", "002"], "branch_id": ["b1", "b1"],
    ...                           "first_seen": ["2024-01-01", "2024-02-01"]})
    >>> _ = write_tables({"customers": customers}, folder, format="csv")
    >>> got = read_tables(folder)
    >>> got["customers"].schema["first_seen"], got["customers"]["customer_id"].to_list()
    (Date, ['001', '002'])
    >>> validate(got).ok
    True
    """
    owner = "read_tables"
    _codec(encoding, owner)
    kind = _kind(source)
    if kind == "sql":
        return _read_sql(os.fspath(source), tables, owner, contract)
    if kind == "duckdb":
        return _read_duckdb(Path(source), tables, owner, contract)
    folder = Path(source)
    if not folder.is_dir():
        raise FileNotFoundError(f"{owner}: {str(folder)!r} is not a folder.")
    if format is not None:
        check_choice(format, FOLDER_FORMATS, "format", owner)
        fmts = [format]
    else:
        fmts = [f for f in FOLDER_FORMATS if any(folder.glob(f"*{_SUFFIX[f]}"))]
        if len(fmts) > 1:
            raise ValueError(
                f"{owner}: the folder {str(folder)!r} holds both .parquet and .csv files; "
                "pass format='parquet' or format='csv'."
            )
        fmts = fmts or ["parquet"]
    fmt = fmts[0]
    found = {p.stem: p for p in folder.glob(f"*{_SUFFIX[fmt]}")
             if p.is_file() and not p.name.startswith(".")}
    names = _wanted(found, tables, f"folder {str(folder)!r} ({fmt})", owner)
    return {name: read_table(found[name], table=name, format=fmt, encoding=encoding,
                             contract=contract) for name in names}


def write_tables(tables: Mapping[str, Any], dest: str | os.PathLike, *,
                 format: str | None = None, replace: bool = False) -> str | Path:
    """Write a set of tables to a folder, a DuckDB file or a SQL database, atomically.

    ``dest`` is interpreted as in :func:`read_tables`. What "atomic" means:

    - **new folder**: all files are written into a hidden temporary folder which
      is then renamed to ``dest``: readers see all tables or none;
    - **existing folder**: each file is replaced atomically (never half a file);
      other files in the folder are kept. With ``replace=True`` the whole folder
      is swapped for the new one instead (other files are removed);
    - **DuckDB file**: a new file is built under a temporary name and renamed; in
      an existing file all tables are replaced in one transaction;
    - **SQL database**: all tables are dropped, created and filled in one
      transaction, so a failure leaves the old tables (PostgreSQL and SQLite both
      have transactional DDL).

    Parameters
    ----------
    tables : mapping of str to table
        Table name to polars/pandas/pyarrow table. Names must be letters, digits
        and underscores.
    dest : str or path-like
    format : {"parquet", "csv"}, optional
        File format for a folder; ``"parquet"`` by default.
    replace : bool
        For an existing folder: replace the whole folder.

    Returns
    -------
    pathlib.Path or str
        ``dest``.

    Examples
    --------
    >>> import tempfile, pathlib, polars as pl
    >>> db = pathlib.Path(tempfile.mkdtemp()) / "crm.duckdb"
    >>> _ = write_tables({"products": pl.DataFrame({"product_id": ["p1"], "category": ["fund"],
    ...                                             "risk_rating": [3]})}, db)
    >>> read_tables(db)["products"].row(0)
    ('p1', 'fund', 3)
    """
    owner = "write_tables"
    frames = {_check_name(name, owner): to_polars(frame, name) for name, frame in tables.items()}
    kind = _kind(dest)
    if kind == "sql":
        _write_sql(frames, os.fspath(dest))
        return os.fspath(dest)
    if kind == "duckdb":
        _write_duckdb(frames, Path(dest))
        return Path(dest)
    fmt = check_choice(format or "parquet", FOLDER_FORMATS, "format", owner)
    folder = Path(dest)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{owner}: {str(folder)!r} exists and is not a folder.")
    if folder.exists() and not replace:
        for name, frame in frames.items():
            write_table(frame, folder / f"{name}{_SUFFIX[fmt]}", format=fmt)
        return folder
    with atomic_dir(folder) as tmp:
        for name, frame in frames.items():
            _write_plain(frame, tmp / f"{name}{_SUFFIX[fmt]}", fmt)
    return folder


def _write_plain(frame: pl.DataFrame, path: Path, fmt: str) -> None:
    # Inside a temporary folder that is renamed as a whole: no per-file rename needed.
    if fmt == "parquet":
        frame.write_parquet(path, compression="zstd", statistics=True)
    else:
        frame.write_csv(path)


# --- DuckDB ---------------------------------------------------------------------------

def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _read_duckdb(path: Path, tables: Iterable[str] | None, owner: str,
                 contract: Contract | None = None) -> dict[str, pl.DataFrame]:
    import duckdb

    if not path.is_file():
        raise FileNotFoundError(f"{owner}: no DuckDB file {str(path)!r}.")
    with contextlib.closing(duckdb.connect(str(path), read_only=True)) as con:
        available = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'main' AND table_type = 'BASE TABLE'").fetchall()]
        names = _wanted(available, tables, f"DuckDB file {str(path)!r}", owner)
        out = {}
        for name in names:
            out[name] = conform(con.sql(f"SELECT * FROM {_quote(name)}").pl(), name, contract)
    return out


def _duckdb_fill(con, frames: Mapping[str, pl.DataFrame]) -> None:
    for name, frame in frames.items():
        view = f"__crmkit_src_{name}"
        con.register(view, frame.to_arrow())
        try:
            con.execute(f"CREATE OR REPLACE TABLE {_quote(name)} AS SELECT * FROM {_quote(view)}")
        finally:
            con.unregister(view)


def _write_duckdb(frames: Mapping[str, pl.DataFrame], path: Path) -> None:
    import duckdb

    if path.exists():
        with contextlib.closing(duckdb.connect(str(path))) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                _duckdb_fill(con, frames)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
            con.execute("CHECKPOINT")
        return
    with atomic_write(path) as tmp:
        tmp.unlink()  # DuckDB refuses to open an existing empty file as a database
        try:
            with contextlib.closing(duckdb.connect(str(tmp))) as con:
                _duckdb_fill(con, frames)
                con.execute("CHECKPOINT")
        finally:
            wal = tmp.with_name(tmp.name + ".wal")
            with contextlib.suppress(FileNotFoundError):
                wal.unlink()


# --- SQL databases through SQLAlchemy -----------------------------------------------

def _sql_type(dtype: Any):
    import sqlalchemy as sa

    if dtype == pl.String or dtype == pl.Categorical or isinstance(dtype, pl.Enum):
        return sa.Text()
    if dtype == pl.Date:
        return sa.Date()
    if isinstance(dtype, pl.Datetime):
        return sa.DateTime(timezone=dtype.time_zone is not None)
    if dtype == pl.Boolean:
        return sa.Boolean()
    if dtype.is_integer():
        return sa.BigInteger()
    if dtype.is_float():
        return sa.Double()
    if dtype == pl.Null:
        return sa.Text()
    raise TypeError(f"write_tables: a column of type {dtype} cannot be written to a SQL "
                    "database; cast it to a string, number, boolean, date or datetime first.")


def _polars_type(sql_type: Any) -> Any:
    import sqlalchemy as sa

    if isinstance(sql_type, sa.Boolean):
        return pl.Boolean
    if isinstance(sql_type, sa.DateTime):
        return pl.Datetime("us")
    if isinstance(sql_type, sa.Date):
        return pl.Date
    if isinstance(sql_type, sa.Integer):
        return pl.Int64
    if isinstance(sql_type, (sa.Float, sa.Numeric)):
        return pl.Float64
    if isinstance(sql_type, (sa.String, sa.Text)):
        return pl.String
    return None


def _engine(uri: str):
    import sqlalchemy as sa

    engine = sa.create_engine(uri)
    if engine.dialect.name == "sqlite" and engine.dialect.driver == "pysqlite":
        # Python's sqlite3 commits before DDL on its own, which would make DROP/CREATE
        # escape the transaction. Take over transaction control so that they do not
        # (SQLAlchemy's documented recipe for transactional DDL on SQLite).
        @sa.event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_connection, _record):
            dbapi_connection.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _explicit_begin(connection):
            connection.exec_driver_sql("BEGIN")

    return engine


def _write_sql(frames: Mapping[str, pl.DataFrame], uri: str, chunk_rows: int = 10_000) -> None:
    import sqlalchemy as sa

    engine = _engine(uri)
    try:
        meta = sa.MetaData()
        defs = {
            name: sa.Table(name, meta, *[sa.Column(c, _sql_type(t)) for c, t in frame.schema.items()])
            for name, frame in frames.items()
        }
        # One transaction for everything: a failure leaves the previous tables in place.
        with engine.begin() as conn:
            for name, frame in frames.items():
                table = defs[name]
                table.drop(conn, checkfirst=True)
                table.create(conn)
                for start in range(0, frame.height, chunk_rows):
                    rows = frame.slice(start, chunk_rows).to_dicts()
                    conn.execute(table.insert(), rows)
    finally:
        engine.dispose()


def _read_sql(uri: str, tables: Iterable[str] | None, owner: str,
              contract: Contract | None = None) -> dict[str, pl.DataFrame]:
    import sqlalchemy as sa

    engine = _engine(uri)
    try:
        available = sa.inspect(engine).get_table_names()
        names = _wanted(available, tables, f"database {engine.url.render_as_string()!r}", owner)
        out = {}
        with engine.connect() as conn:
            for name in names:
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                schema = {c.name: _polars_type(c.type) for c in table.columns}
                schema = {k: v for k, v in schema.items() if v is not None}
                frame = pl.read_database(sa.select(table), connection=conn,
                                         schema_overrides=schema)
                if frame.width == 0 and len(table.columns):
                    frame = pl.DataFrame(schema={c.name: schema.get(c.name, pl.String)
                                                 for c in table.columns})
                out[name] = conform(frame, name, contract)
    finally:
        engine.dispose()
    return out
