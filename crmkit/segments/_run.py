"""Segments in a run: sizes, overlaps and exports for every defined segment, and the
``crmkit export`` command's library function."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from crmkit._config import closest
from crmkit._params import check_choice, check_date
from crmkit.exceptions import ConfigError
from crmkit.segments._export import (
    EXPORT_FORMATS,
    ExportResult,
    config_fingerprint,
    export_segment,
)
from crmkit.segments._table import (
    _segments,
    customer_table,
    segment_overlaps,
    segment_sizes,
)

__all__ = ["SegmentsRun", "export_command", "load_run_tables", "run_segments"]

_NOT_STEPS = {"features", "quarantine", "exports"}

PER_CUSTOMER_TABLES = ("value.value_tiers", "value.rfm_segments", "clv.clv",
                       "churn.churn_scores", "lifecycle.stages", "propensity.scores",
                       "calls.call_list")
"""Run tables with one row per customer that segments may use (``step.table``)."""


@dataclass
class SegmentsRun:
    """What :func:`run_segments` produced: tables for the run folder, exports, manifest facts."""

    tables: dict[str, pl.DataFrame]
    exports: list[ExportResult] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)


def run_segments(table: Any, segments: Mapping[str, Any], *, export_dir: str | os.PathLike,
                 run_date: Any, config_fingerprint: str | None = None,
                 link_base: str | os.PathLike | None = None) -> SegmentsRun:
    """Size every segment, count overlaps and write each segment's exports.

    The body of a ``segments`` pipeline step: ``segments`` is the ``[segments]``
    config section (name -> fields of :class:`Segment`), ``table`` the run's
    :func:`customer_table`.

    Parameters
    ----------
    table : table
    segments : mapping of name to Segment or its fields
    export_dir : path
        Folder for the export files (``<segment>_<run_date>.<format>`` + stamps).
    run_date : date or str
    config_fingerprint : str, optional
    link_base : path, optional
        Export paths in the manifest are relative to this folder (the run folder).

    Returns
    -------
    SegmentsRun
        ``tables``: ``sizes`` and ``overlaps``; ``manifest``: sizes, overlaps and
        one record per export (relative path, rows, suppressed counts, definition).

    Examples
    --------
    >>> import polars as pl, tempfile, pathlib
    >>> t = pl.DataFrame({"customer_id": ["a", "b"], "clv": [9.0, 1.0]})
    >>> res = run_segments(t, {"high": {"where": "clv > 5", "columns": ["clv"]}},
    ...                    export_dir=pathlib.Path(tempfile.mkdtemp()), run_date="2025-12-31")
    >>> res.manifest["sizes"]
    {'high': 1}
    """
    day = check_date(run_date, "run_date", "run_segments")
    segs = _segments(segments)
    if not segs:
        empty = pl.DataFrame(schema={"segment": pl.String, "customers": pl.Int64})
        return SegmentsRun(tables={"sizes": empty}, manifest={"sizes": {}, "exports": []})
    sizes = segment_sizes(table, segs)
    overlaps = segment_overlaps(table, segs)
    exports = []
    records = []
    base = Path(link_base) if link_base is not None else None
    for seg in segs:
        for fmt in seg.formats:
            res = export_segment(table, seg, Path(export_dir), format=fmt,
                                 pseudonymise=seg.pseudonymise, run_date=day,
                                 config_fingerprint=config_fingerprint)
            exports.append(res)
            rel = res.path
            if base is not None:
                try:
                    rel = res.path.relative_to(base)
                except ValueError:
                    pass
            records.append({"segment": seg.name, "format": fmt, "path": str(rel),
                            "rows": res.rows, "in_segment": res.in_segment,
                            "channel": seg.channel,
                            "suppressed_opt_out": res.suppressed_opt_out,
                            "suppressed_unknown_consent": res.suppressed_unknown_consent,
                            "where": seg.where, "description": seg.description})
    facts = {"sizes": {r["segment"]: r["customers"] for r in sizes.iter_rows(named=True)},
             "definitions": {s.name: s.where for s in segs},
             "overlaps": [list(r) for r in overlaps.filter(pl.col("a") < pl.col("b")).rows()],
             "exports": records}
    return SegmentsRun(tables={"sizes": sizes, "overlaps": overlaps}, exports=exports,
                       manifest=facts)


class RunTables(Mapping):
    """A run folder's step tables, each read only when asked for.

    ``tables[step]`` is a mapping of table name to its file; ``tables[step][name]``
    reads that one file (a LazyFrame with ``scan=True``, so a reader takes only the
    columns it needs). Nothing is cached: a 10M-customer run's outputs are several
    GB, and the report and the drift checks need a few columns of a few tables at a
    time.

    Examples
    --------
    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> (run / "value").mkdir()
    >>> pl.DataFrame({"customer_id": ["a"], "tier": ["Gold"]}).write_parquet(
    ...     run / "value" / "value_tiers.parquet")
    >>> tables = RunTables.from_folder(run)
    >>> list(tables), list(tables["value"])
    (['value'], ['value_tiers'])
    >>> tables["value"]["value_tiers"]["tier"].to_list()
    ['Gold']
    """

    def __init__(self, files: Mapping[str, Mapping[str, Path]], scan: bool = False) -> None:
        self._files = {step: dict(tables) for step, tables in files.items()}
        self._scan = scan

    @classmethod
    def from_folder(cls, run_dir: str | os.PathLike, scan: bool = False) -> RunTables:
        """Every ``<step>/<table>.parquet`` of a run folder."""
        run = Path(run_dir)
        files = {folder.name: {f.stem: f for f in sorted(folder.glob("*.parquet"))}
                 for folder in sorted(p for p in run.iterdir()
                                      if p.is_dir() and p.name not in _NOT_STEPS)}
        return cls({k: v for k, v in files.items() if v}, scan=scan)

    @classmethod
    def from_manifest(cls, run_dir: str | os.PathLike, manifest: Mapping[str, Any],
                      scan: bool = False) -> RunTables:
        """The step outputs a run's manifest lists."""
        run = Path(run_dir)
        return cls({step: {t: run / rel for t, rel in (facts.get("outputs") or {}).items()}
                    for step, facts in (manifest.get("steps") or {}).items()}, scan=scan)

    def __getitem__(self, step: str) -> Mapping[str, pl.DataFrame | pl.LazyFrame]:
        return _StepTables(self._files[step], self._scan)

    def __iter__(self):
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)


class _StepTables(Mapping):
    def __init__(self, files: dict[str, Path], scan: bool) -> None:
        self._files = files
        self._scan = scan

    def __getitem__(self, table: str) -> pl.DataFrame | pl.LazyFrame:
        path = self._files[table]
        return pl.scan_parquet(path) if self._scan else pl.read_parquet(path)

    def __iter__(self):
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)


def read_features(run_dir: str | os.PathLike, columns: list[str] | None = None
                  ) -> pl.DataFrame | None:
    """A run folder's feature table, only ``columns`` of it (those present) when given."""
    path = Path(run_dir) / "features" / "features.parquet"
    if not path.exists():
        return None
    if columns is None:
        return pl.read_parquet(path)
    names = pl.read_parquet_schema(path)
    return pl.read_parquet(path, columns=[c for c in dict.fromkeys(columns) if c in names])


def load_run_tables(run_dir: str | os.PathLike) -> tuple[pl.DataFrame | None,
                                                         dict[str, dict[str, pl.DataFrame]]]:
    """The features and step outputs stored in a run folder (``<step>/<table>.parquet``)."""
    outputs = {step: dict(tables) for step, tables in RunTables.from_folder(run_dir).items()}
    return read_features(run_dir), outputs


def _load_customers(data: Mapping[str, Any], base: Path, day: dt.date) -> pl.DataFrame:
    inputs = data.get("inputs", {}) or {}
    source = inputs.get("source", "sample")
    if source == "sample":
        from crmkit.datasets import make_bank

        end = inputs.get("sample_data_end", dt.date(2025, 12, 31))
        bank = make_bank(int(inputs.get("sample_customers", 5000)),
                         seed=int(inputs.get("sample_seed", 0)),
                         as_of=end, years=int(inputs.get("sample_years", 3)))
        return bank["customers"]
    from crmkit.io import read_tables

    if "://" not in source:
        path = Path(source)
        source = str(path if path.is_absolute() else base / path)
    return read_tables(source, ["customers"], format=inputs.get("format"))["customers"]


def export_command(segment: str, *, run: Any, config: str | os.PathLike, format: str = "csv",
                   out: str | os.PathLike | None = None, channel: str | None = None,
                   pseudonymise: bool | None = None) -> ExportResult:
    """Export one configured segment from a finished run (``crmkit export``).

    Reads the segment from ``[segments.<segment>]`` of the pipeline config, the run
    folder ``<output_dir>/<run>/`` (features and step outputs joined by customer),
    and, when the segment has a channel, the input ``customers`` table for the
    opt-out columns. Writes ``<out>/<segment>_<run>.<format>`` and its stamp
    (``out`` defaults to ``<run folder>/exports``).

    Parameters
    ----------
    segment : str
        Name of a ``[segments.<name>]`` table in the config.
    run : date or str
        The run date (``--run``).
    config : path
        The pipeline TOML (``crmkit run`` uses the same file).
    format : {"csv", "xlsx", "parquet"}
    out : path, optional
    channel : {"email", "sms", "phone"}, optional
        Overrides the segment's channel.
    pseudonymise : bool, optional
        Overrides the segment's setting.

    Returns
    -------
    ExportResult
    """
    owner = "crmkit export"
    check_choice(format, EXPORT_FORMATS, "format", owner)
    day = check_date(run, "run", owner)
    from crmkit._config import read_toml

    data, base = read_toml(config)
    defined = data.get("segments", {}) or {}
    if segment not in defined:
        raise ConfigError(f"{owner}: no segment {segment!r} in {config} ([segments.<name>]).{closest(segment, defined)}"
                          f" Defined: {', '.join(sorted(defined)) or 'none'}.")
    seg = _segments({segment: defined[segment]})[0]
    output_dir = Path((data.get("run", {}) or {}).get("output_dir", "runs"))
    output_dir = output_dir if output_dir.is_absolute() else base / output_dir
    run_dir = output_dir / day.isoformat()
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{owner}: no complete run for {day.isoformat()} in "
                                f"{str(output_dir)!r} (no {manifest_path.name}).")
    import json

    manifest = json.loads(manifest_path.read_text())
    fingerprint = manifest.get("config_fingerprint") or config_fingerprint(
        manifest.get("config", {}))
    features, outputs = load_run_tables(run_dir)
    # the per-customer tables the nightly segments step joins, not aggregates that happen
    # to have one row per customer (hidden_vips carries its own 'tier' column)
    outputs = {step: {t: f for t, f in tables.items() if f"{step}.{t}" in PER_CUSTOMER_TABLES}
               for step, tables in outputs.items()}
    use_channel = channel if channel is not None else seg.channel
    customers = None
    if use_channel is not None:
        col = f"opt_out_{use_channel}"
        present = (features is not None and col in features.columns) or any(
            col in t.columns for tables in outputs.values() for t in tables.values())
        if not present:
            customers = _load_customers(data, base, day)
    table = customer_table(outputs, features, customers)
    return export_segment(table, seg, Path(out) if out is not None else run_dir / "exports",
                          format=format, channel=channel,
                          pseudonymise=seg.pseudonymise if pseudonymise is None else pseudonymise,
                          run_date=day, config_fingerprint=fingerprint)
