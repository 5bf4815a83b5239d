"""Segment exports: CSV/XLSX/Parquet files that are safe to open and say where they came from.

Every export

- holds only the segment's listed columns (``customer_id`` first, sorted by it);
- leaves out customers who opted out of the segment's channel, and counts them;
- can replace ``customer_id`` by a keyed pseudonym (HMAC-SHA256 with a key read
  from an environment variable, never from the config);
- neutralises spreadsheet formula injection: a text cell (or header) that starts
  with ``= + - @``, a tab or a carriage return (after any leading apostrophes) gets
  one more leading apostrophe, in CSV and XLSX alike; XLSX cells are written as
  text, so no cell is ever a formula;
- is stamped with its run date, the config fingerprint and the segment's
  definition, in a sidecar ``<file>.meta.json`` and in the file's own metadata
  (Parquet key-value metadata, XLSX document properties).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from crmkit._config import closest
from crmkit._frames import to_polars
from crmkit._params import check_choice, check_date
from crmkit.exceptions import ConfigError
from crmkit.io import atomic_write, write_json
from crmkit.segments._expr import compile_segment
from crmkit.segments._table import CHANNELS, Segment, as_segment

__all__ = ["ExportResult", "config_fingerprint", "export_segment", "export_stamp",
           "is_stale_export", "latest_run_date", "neutralise", "pseudonymise_ids",
           "unneutralise"]

EXPORT_FORMATS = ("csv", "xlsx", "parquet")
KEY_ENV = "CRMKIT_PSEUDONYM_KEY"
STAMP_SUFFIX = ".meta.json"
_DANGER = re.compile(r"^'*[=+\-@\t\r]")
_QUOTED_DANGER = re.compile(r"^'+[=+\-@\t\r]")


def neutralise(text: str | None) -> str | None:
    """Make a text cell safe for a spreadsheet: prefix ``'`` when it could start a formula.

    A cell that starts with ``= + - @``, a tab or a carriage return, possibly after
    leading apostrophes, gets one more apostrophe; anything else is unchanged. The
    rule can be undone exactly with :func:`unneutralise`.

    Examples
    --------
    >>> neutralise("=HYPERLINK(\\"http://x\\")"), neutralise("Gold"), neutralise("'=1")
    ('\\'=HYPERLINK("http://x")', 'Gold', "''=1")
    """
    if text is None or not _DANGER.match(text):
        return text
    return "'" + text


def unneutralise(text: str | None) -> str | None:
    """Undo :func:`neutralise` (for reading an export back).

    Examples
    --------
    >>> unneutralise(neutralise("+cmd|' /C calc'!A0"))
    "+cmd|' /C calc'!A0"
    """
    if text is None or not _QUOTED_DANGER.match(text):
        return text
    return text[1:]


def _neutralise_frame(frame: pl.DataFrame) -> pl.DataFrame:
    exprs = []
    for name, dtype in frame.schema.items():
        if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
            col = pl.col(name).cast(pl.String)
            exprs.append(pl.when(col.str.contains(_DANGER.pattern)).then(pl.lit("'") + col)
                         .otherwise(col).alias(name))
    frame = frame.with_columns(exprs) if exprs else frame
    return frame.rename({c: neutralise(c) for c in frame.columns if neutralise(c) != c})


def config_fingerprint(config: Mapping[str, Any]) -> str:
    """SHA-256 of a config mapping in canonical JSON (sorted keys): equal configs, equal prints.

    Examples
    --------
    >>> config_fingerprint({"a": 1, "b": [2]}) == config_fingerprint({"b": [2], "a": 1})
    True
    """
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _key(key_env: str, owner: str) -> bytes:
    key = os.environ.get(key_env)
    if not key:
        raise ConfigError(f"{owner}: pseudonymised ids need a secret key in the environment "
                          f"variable {key_env} (at least 16 characters); it is not set. Keep "
                          "the key out of the config file.")
    if len(key) < 16:
        raise ConfigError(f"{owner}: the key in {key_env} is {len(key)} characters long; use "
                          "at least 16.")
    return key.encode("utf-8")


def pseudonymise_ids(ids: pl.Series, key: bytes) -> pl.Series:
    """HMAC-SHA256 of each id under ``key``, as 32 hex characters (128 bits).

    The same id and key always give the same pseudonym, so two exports can be
    matched with each other but not with the customer file without the key.

    Examples
    --------
    >>> import polars as pl
    >>> import hmac, hashlib
    >>> got = pseudonymise_ids(pl.Series(["C1"]), b"0123456789abcdef").to_list()
    >>> got == [hmac.new(b"0123456789abcdef", b"C1", hashlib.sha256).hexdigest()[:32]]
    True
    """
    out = [None if v is None else
           hmac.new(key, str(v).encode("utf-8"), hashlib.sha256).hexdigest()[:32]
           for v in ids.to_list()]
    return pl.Series(ids.name, out, dtype=pl.String)


def _key_id(key: bytes) -> str:
    # Tells two exports made with the same key apart from others, without revealing it.
    return hmac.new(key, b"crmkit key id", hashlib.sha256).hexdigest()[:12]


def _opted_out(table: pl.DataFrame, channel: str, owner: str) -> pl.Series:
    """True for customers who may not be contacted on ``channel`` (unknown consent included).

    The one place that decides consent for exports; to be replaced by the
    project's contact policy module when it lands.
    """
    column = f"opt_out_{channel}"
    if column not in table.columns:
        have = [c for c in table.columns if c.startswith("opt_out_")]
        raise ConfigError(
            f"{owner}: the segment is for the {channel!r} channel but the customer table has "
            f"no {column!r} column (it has {', '.join(have) or 'no opt-out columns'}); join "
            "the customers table (customer_table(..., customers=...)) so opt-outs can be "
            "honoured.")
    flag = table[column]
    if flag.dtype != pl.Boolean:
        raise ConfigError(f"{owner}: column {column!r} must be true/false; it is {flag.dtype}.")
    return flag.fill_null(True)


@dataclass
class ExportResult:
    """What :func:`export_segment` wrote and whom it left out."""

    path: Path
    stamp_path: Path
    segment: str
    rows: int
    in_segment: int
    suppressed_opt_out: int
    suppressed_unknown_consent: int
    stamp: dict[str, Any] = field(default_factory=dict)


def export_segment(customer_table: Any, segment: Segment | Mapping[str, Any] | str,
                   dest: str | os.PathLike, *, format: str = "csv",
                   columns: list[str] | None = None, channel: str | None = None,
                   pseudonymise: bool = False, run_date: Any = None,
                   config_fingerprint: str | None = None, key_env: str = KEY_ENV,
                   name: str = "segment") -> ExportResult:
    """Write the customers of one segment to a CSV, XLSX or Parquet file.

    Parameters
    ----------
    customer_table : table
        The run's customer table (:func:`crmkit.segments.customer_table`).
    segment : Segment, mapping or str
        The segment (its ``where``, ``columns`` and ``channel`` are used), or just
        its condition.
    dest : str or path-like
        The file to write, or a folder (then ``<segment>_<run_date>.<format>``).
    format : {"csv", "xlsx", "parquet"}
    columns : list of str, optional
        Overrides the segment's columns. Only these are written (``customer_id``
        first, always).
    channel : {"email", "sms", "phone"}, optional
        Overrides the segment's channel. Customers with ``opt_out_<channel>`` true
        or missing are left out and counted.
    pseudonymise : bool
        Replace ``customer_id`` by ``customer_pid``, an HMAC-SHA256 pseudonym keyed
        by the environment variable ``key_env``.
    run_date : date or str, optional
        The run the table comes from (stamped; in the default file name).
    config_fingerprint : str, optional
        Fingerprint of the run's config (:func:`config_fingerprint`), stamped.
    key_env : str
        Environment variable holding the pseudonymisation key.
    name : str
        The segment's name when ``segment`` is a plain expression.

    Returns
    -------
    ExportResult

    Examples
    --------
    >>> import polars as pl, tempfile, pathlib
    >>> t = pl.DataFrame({"customer_id": ["a", "b", "c"], "tier": ["Gold", "Gold", "Mass"],
    ...                   "note": ["=1+1", "ok", "x"], "opt_out_email": [False, True, False]})
    >>> seg = {"where": 'tier == "Gold"', "columns": ["tier", "note"], "channel": "email"}
    >>> res = export_segment(t, seg, pathlib.Path(tempfile.mkdtemp()) / "gold.csv",
    ...                      run_date="2025-12-31", name="gold")
    >>> res.rows, res.suppressed_opt_out
    (1, 1)
    >>> print(res.path.read_text(), end="")
    customer_id,tier,note
    a,Gold,'=1+1
    """
    owner = "export_segment"
    fmt = check_choice(format, EXPORT_FORMATS, "format", owner)
    seg = as_segment(segment, name)
    if columns is not None or channel is not None:
        seg = Segment(name=seg.name, where=seg.where,
                      columns=list(columns) if columns is not None else seg.columns,
                      channel=channel if channel is not None else seg.channel,
                      description=seg.description)
    if seg.channel is not None:
        check_choice(seg.channel, CHANNELS, "channel", owner)
    day = check_date(run_date, "run_date", owner) if run_date is not None else None
    table = to_polars(customer_table, "customer_table")
    missing = [c for c in seg.columns if c not in table.columns]
    if missing:
        hints = "".join(closest(c, table.columns) for c in missing[:3])
        raise ConfigError(f"{owner}: segment {seg.name!r} lists columns the customer table does "
                          f"not have: {', '.join(map(repr, missing))}.{hints}")
    bad = [c for c in seg.columns if table.schema[c].is_nested()]
    if bad:
        raise ConfigError(f"{owner}: columns {', '.join(map(repr, bad))} hold lists or structs, "
                          "which a flat export cannot hold; list plain columns.")
    compiled = compile_segment(seg.where, table, name=seg.name)
    members = table.filter(compiled.expr)
    n_in = members.height
    n_out = n_unknown = 0
    if seg.channel is not None:
        col = f"opt_out_{seg.channel}"
        blocked = _opted_out(members, seg.channel, owner)
        n_unknown = int(members[col].is_null().sum())
        n_out = int(blocked.sum()) - n_unknown
        members = members.filter(~blocked)
    out = members.select(seg.columns).sort("customer_id")
    key_id = None
    if pseudonymise:
        key = _key(key_env, owner)
        key_id = _key_id(key)
        out = out.with_columns(pseudonymise_ids(out["customer_id"], key)).rename(
            {"customer_id": "customer_pid"}).sort("customer_pid")

    target = Path(dest)
    if target.is_dir() or (not target.suffix and not target.exists()):
        stamp_day = day.isoformat() if day else "undated"
        target = target / f"{seg.name}_{stamp_day}.{fmt}"
    stamp = {
        "crmkit_export": 1,
        "segment": seg.name,
        "where": compiled.text,
        "description": seg.description,
        "columns": out.columns,
        "channel": seg.channel,
        "run_date": day.isoformat() if day else None,
        "config_fingerprint": config_fingerprint,
        "format": fmt,
        "rows": out.height,
        "in_segment": n_in,
        "suppressed_opt_out": n_out,
        "suppressed_unknown_consent": n_unknown,
        "pseudonymised": bool(pseudonymise),
        "pseudonym_key_id": key_id,
        "formula_neutralisation": "a leading ' before = + - @ tab CR" if fmt != "parquet" else None,
    }
    _write(out, target, fmt, stamp)
    stamp_path = target.with_name(target.name + STAMP_SUFFIX)
    write_json(stamp, stamp_path)
    return ExportResult(path=target, stamp_path=stamp_path, segment=seg.name, rows=out.height,
                        in_segment=n_in, suppressed_opt_out=n_out,
                        suppressed_unknown_consent=n_unknown, stamp=stamp)


def _write(frame: pl.DataFrame, target: Path, fmt: str, stamp: dict[str, Any]) -> None:
    meta = json.dumps(stamp, sort_keys=True)
    with atomic_write(target) as tmp:
        if fmt == "parquet":
            frame.write_parquet(tmp, compression="zstd", metadata={"crmkit_export": meta})
        elif fmt == "csv":
            _neutralise_frame(frame).write_csv(tmp)
        else:
            _write_xlsx(_neutralise_frame(frame), tmp, stamp)


def _write_xlsx(frame: pl.DataFrame, path: Path, stamp: dict[str, Any]) -> None:
    from crmkit.io._tables import _require_openpyxl

    openpyxl = _require_openpyxl("export_segment")
    from openpyxl.cell import WriteOnlyCell

    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet(title=str(stamp["segment"])[:31])
    wb.properties.title = f"crmkit segment {stamp['segment']}"
    wb.properties.subject = f"run {stamp['run_date']}"
    wb.properties.keywords = f"config {stamp['config_fingerprint']}"
    wb.properties.description = stamp["where"][:1000]
    # A fixed creation date keeps the file a function of its contents.
    when = (dt.datetime.combine(dt.date.fromisoformat(stamp["run_date"]), dt.time())
            if stamp["run_date"] else dt.datetime(2000, 1, 1))
    wb.properties.created = when
    wb.properties.modified = when

    def cell(value: Any) -> WriteOnlyCell:
        c = WriteOnlyCell(ws, value=value)
        if isinstance(value, str):
            c.data_type = "s"  # text, never a formula, whatever it starts with
        return c

    ws.append([cell(c) for c in frame.columns])
    for row in frame.iter_rows():
        ws.append([cell(v) for v in row])
    wb.save(path)


def export_stamp(path: str | os.PathLike) -> dict[str, Any]:
    """The stamp of an export (from its ``.meta.json`` sidecar).

    Examples
    --------
    >>> import polars as pl, tempfile, pathlib
    >>> t = pl.DataFrame({"customer_id": ["a"], "clv": [3.0]})
    >>> res = export_segment(t, "clv > 1", pathlib.Path(tempfile.mkdtemp()) / "x.parquet",
    ...                      format="parquet", run_date="2025-12-31")
    >>> export_stamp(res.path)["run_date"]
    '2025-12-31'
    """
    path = Path(path)
    sidecar = path.with_name(path.name + STAMP_SUFFIX)
    if not sidecar.exists():
        raise FileNotFoundError(f"export_stamp: {str(path)!r} has no stamp file "
                                f"{sidecar.name!r}; it was not written by export_segment.")
    return json.loads(sidecar.read_text(encoding="utf-8"))


def latest_run_date(runs_dir: str | os.PathLike) -> dt.date | None:
    """The date of the latest complete run folder (``<runs_dir>/<YYYY-MM-DD>/manifest.json``)."""
    runs = Path(runs_dir)
    if not runs.is_dir():
        return None
    days = []
    for child in runs.iterdir():
        try:
            day = dt.date.fromisoformat(child.name)
        except ValueError:
            continue
        if (child / "manifest.json").exists():
            days.append(day)
    return max(days) if days else None


def is_stale_export(path: str | os.PathLike, runs_dir: str | os.PathLike) -> bool:
    """True when the export comes from a run older than the latest run in ``runs_dir``.

    An export without a run date is stale as soon as any run exists.

    Examples
    --------
    >>> import polars as pl, tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> res = export_segment(pl.DataFrame({"customer_id": ["a"], "clv": [3.0]}), "clv > 1",
    ...                      root / "x.csv", run_date="2025-11-30")
    >>> (root / "runs" / "2025-12-31").mkdir(parents=True)
    >>> _ = (root / "runs" / "2025-12-31" / "manifest.json").write_text("{}")
    >>> is_stale_export(res.path, root / "runs")
    True
    """
    latest = latest_run_date(runs_dir)
    if latest is None:
        return False
    made = export_stamp(path).get("run_date")
    return made is None or dt.date.fromisoformat(made) < latest
