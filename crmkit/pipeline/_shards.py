"""Customer shards on disk: inputs split once, outputs merged once.

Staging reads each input table in record batches (never whole) and appends every
batch's rows to the Parquet file of their shard, ``crc32(customer_id) % n`` (the
rule of :func:`crmkit.features.shard_of`). Balances carry no customer id: they
follow their account's customer (from holdings); a balance of an unknown account
goes to shard 0, where validation rejects it as it would in a single pass.
Products and managers are small catalogue tables shared by every shard.

Each row keeps its 0-based row number in the input as ``__row``, so quarantine
reports name the same rows whatever the shard count.

Merging writes one Parquet file per output table, sorted by its key (then by the
other columns, so ties have one order), in row groups cut at fixed key positions:
the bytes depend on the rows alone, not on how many shards produced them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from crmkit.features._shard import crc32_of

__all__ = ["GLOBAL_TABLES", "ROW", "InputSource", "StagedInputs", "merge_parts", "split_file",
           "stage_inputs", "write_frame", "write_part"]

ROW = "__row"
GLOBAL_TABLES = ("products", "managers")
ROW_GROUP = 256_000
BATCH_ROWS = 1_000_000


@dataclass
class InputSource:
    """Input tables as batch iterators.

    Attributes
    ----------
    names : list of str
        Tables present.
    batches : callable
        ``batches(name) -> iterator of polars.DataFrame`` (in input row order).
    nbytes : int
        Approximate size of the inputs in memory, for ``n_shards = "auto"``.
    """

    names: list[str]
    batches: Callable[[str], Iterator[pl.DataFrame]]
    nbytes: int = 0

    @classmethod
    def from_frames(cls, tables: Mapping[str, Any]) -> InputSource:
        """Tables already in memory (the sample bank, a notebook's frames)."""
        from crmkit._frames import to_polars

        frames = {n: to_polars(t, n) for n, t in tables.items() if t is not None}

        def batches(name: str) -> Iterator[pl.DataFrame]:
            frame = frames[name]
            if frame.height == 0:
                yield frame
            for start in range(0, frame.height, BATCH_ROWS):
                yield frame.slice(start, BATCH_ROWS)

        return cls(sorted(frames), batches, sum(f.estimated_size() for f in frames.values()))

    @classmethod
    def from_parquet(cls, files: Mapping[str, list[Path]]) -> InputSource:
        """Parquet files (one or several parts per table), read in record batches."""

        def batches(name: str) -> Iterator[pl.DataFrame]:
            empty = True
            for path in files[name]:
                pf = pq.ParquetFile(path)
                for batch in pf.iter_batches(batch_size=BATCH_ROWS):
                    empty = False
                    yield pl.from_arrow(batch)
                if empty:
                    yield pl.from_arrow(pf.schema_arrow.empty_table())
                    empty = False

        # compressed Parquet expands roughly five-fold in memory
        size = sum(p.stat().st_size for parts in files.values() for p in parts) * 5
        return cls(sorted(files), batches, size)


@dataclass
class StagedInputs:
    """The inputs split into shards on disk."""

    root: Path
    n_shards: int
    sharded: list[str]
    shared: dict[str, pl.DataFrame]
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def part(self, name: str, index: int) -> Path:
        return self.root / name / f"{index:05d}.parquet"

    def read(self, name: str, index: int) -> pl.DataFrame:
        """Shard ``index`` of the input table ``name`` (or the shared table)."""
        if name in self.shared:
            return self.shared[name]
        return pl.read_parquet(self.part(name, index))


class _ShardWriters:
    def __init__(self, folder: Path, n: int) -> None:
        self.folder = folder
        self.n = n
        self.writers: dict[int, pq.ParquetWriter] = {}
        self.schema: pa.Schema | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, frame: pl.DataFrame, shard: np.ndarray) -> None:
        table = frame.to_arrow()
        if self.schema is None:
            self.schema = table.schema
        elif table.schema != self.schema:
            table = table.cast(self.schema)
        if self.n == 1:
            self._writer(0).write_table(table)
            return
        order = np.argsort(shard, kind="stable")
        bounds = np.searchsorted(shard[order], np.arange(self.n + 1))
        for i in range(self.n):
            if bounds[i + 1] > bounds[i]:
                self._writer(i).write_table(table.take(order[bounds[i]:bounds[i + 1]]))

    def _writer(self, i: int) -> pq.ParquetWriter:
        if i not in self.writers:
            self.writers[i] = pq.ParquetWriter(self.folder / f"{i:05d}.parquet", self.schema)
        return self.writers[i]

    def close(self) -> None:
        for w in self.writers.values():
            w.close()
        for i in range(self.n):
            if i not in self.writers:
                pq.write_table(self.schema.empty_table(), self.folder / f"{i:05d}.parquet")


def split_file(path: Path, n_shards: int, folder: Path) -> None:
    """Split a Parquet file keyed by ``customer_id`` into ``n_shards`` files, batch by batch."""
    writers = _ShardWriters(folder, n_shards)
    pf = pq.ParquetFile(path)
    writers.schema = pf.schema_arrow
    for batch in pf.iter_batches(batch_size=BATCH_ROWS):
        frame = pl.from_arrow(batch)
        writers.write(frame, _shard_of_rows("previous", frame, n_shards, None))
    writers.close()


def _fingerprint(frame: pl.DataFrame) -> int:
    if frame.height == 0:
        return 0
    # an order-free sum of row hashes: the same rows give the same fingerprint
    return int(frame.hash_rows(seed=0).to_numpy().sum(dtype=np.uint64))


def stage_inputs(source: InputSource, n_shards: int, root: Path) -> StagedInputs:
    """Split every input table into ``n_shards`` Parquet files under ``root``.

    Returns the staged inputs with, per table, the row count and a fingerprint
    (SHA-256 of the schema and of the wrapping sum of polars' row hashes: equal for
    equal rows in any order, stable for one polars version).
    """
    staged = StagedInputs(root, n_shards, [], {})
    account_owner: pl.DataFrame | None = None
    names = [n for n in source.names if n in GLOBAL_TABLES] + \
        [n for n in ("customers", "holdings") if n in source.names] + \
        [n for n in source.names if n not in GLOBAL_TABLES and n not in ("customers", "holdings")]
    for name in names:
        rows, total, schema = 0, np.uint64(0), None
        if name in GLOBAL_TABLES:
            parts = list(source.batches(name))
            frame = pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]
            frame = frame.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW))
            staged.shared[name] = frame
            rows, schema = frame.height, frame.drop(ROW).schema
            total = np.uint64(_fingerprint(frame.drop(ROW)))
        else:
            writers = _ShardWriters(root / name, n_shards)
            owners = []
            for batch in source.batches(name):
                schema = schema or batch.schema
                batch = batch.with_columns(
                    pl.int_range(rows, rows + batch.height, dtype=pl.Int64).alias(ROW))
                total = np.uint64(int(total) + _fingerprint(batch.drop(ROW)) & (2**64 - 1))
                rows += batch.height
                shard = _shard_of_rows(name, batch, n_shards, account_owner)
                writers.write(batch, shard)
                if name == "holdings" and {"account_id", "customer_id"} <= set(batch.columns):
                    owners.append(batch.select(pl.col("account_id").cast(pl.String),
                                               pl.col("customer_id").cast(pl.String)))
            writers.close()
            staged.sharded.append(name)
            if name == "holdings":
                account_owner = (pl.concat(owners) if owners else None)
                if account_owner is not None:
                    account_owner = account_owner.unique("account_id", keep="first",
                                                         maintain_order=True)
        digest = hashlib.sha256(repr(schema).encode())
        digest.update(int(total).to_bytes(8, "little"))
        staged.facts[name] = {"rows": int(rows), "fingerprint": digest.hexdigest()}
    return staged


def _shard_of_rows(name: str, batch: pl.DataFrame, n: int,
                   account_owner: pl.DataFrame | None) -> np.ndarray:
    if n == 1:
        return np.zeros(batch.height, dtype=np.int64)
    if name == "balances":
        if account_owner is None or "account_id" not in batch.columns:
            return np.zeros(batch.height, dtype=np.int64)
        owner = batch.select(pl.col("account_id").cast(pl.String)).join(
            account_owner, on="account_id", how="left", maintain_order="left")["customer_id"]
        shard = (crc32_of(owner) % n).fill_null(0)
        return shard.to_numpy().astype(np.int64)
    if "customer_id" not in batch.columns:
        return np.zeros(batch.height, dtype=np.int64)
    ids = batch["customer_id"]
    ids = ids if ids.dtype == pl.String else ids.cast(pl.String, strict=False)
    return (crc32_of(ids) % n).fill_null(0).to_numpy().astype(np.int64)


def write_frame(frame: pl.DataFrame, dest: Path, row_group: int = ROW_GROUP) -> Path:
    """Write a frame to Parquet with a layout set by its rows alone (fixed row groups)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(frame.rechunk().to_arrow(), dest, row_group_size=row_group,
                   compression="zstd")
    return dest


PART_ROW_GROUP = 16_384


def write_part(frame: pl.DataFrame, dest: Path, key: str = "customer_id") -> Path:
    """Write one shard's part of a table, sorted as the merged file will be.

    Small row groups of sorted rows carry tight min/max statistics, so each key
    range of :func:`merge_parts` reads only the row groups it needs from each part.
    """
    if key in frame.columns:
        frame = frame.sort(_sort_columns(frame.schema, key), nulls_last=True)
    return write_frame(frame, dest, row_group=PART_ROW_GROUP)


def _sort_columns(schema: pl.Schema, key: str) -> list[str]:
    nested = (pl.List, pl.Struct, pl.Array, pl.Object)
    return [key] + [c for c, t in schema.items() if c != key and not isinstance(t, nested)
                    and t.base_type() not in nested]


def merge_parts(parts: list[Path], dest: Path, key: str = "customer_id",
                row_group: int = ROW_GROUP) -> int:
    """Merge shard parts into one Parquet file sorted by ``key`` (ties by the other columns).

    Memory holds the key column of all parts plus one row group of full rows.
    Row groups start at fixed positions in the sorted key sequence (every
    ``row_group`` rows, moved forward to the next new key value), so the file's
    bytes do not depend on the number of parts. Returns the number of rows.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    scan = pl.scan_parquet(parts)
    schema = scan.collect_schema()
    keys = scan.select(key).collect().get_column(key).sort()
    n = keys.len()
    by = _sort_columns(schema, key)
    if n <= row_group:
        frame = scan.collect().sort(by, nulls_last=True)
        write_frame(frame, dest, row_group=max(n, 1))
        return n
    cuts = [keys[i] for i in range(row_group, n, row_group)]
    bounds = [None, *sorted(set(cuts)), None]
    writer = None
    try:
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            pred = pl.lit(True)
            if lo is not None:
                pred = pred & (pl.col(key) >= lo)
            if hi is not None:
                pred = pred & (pl.col(key) < hi)
            chunk = scan.filter(pred).collect().sort(by, nulls_last=True)
            table = chunk.to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(dest, table.schema, compression="zstd")
            writer.write_table(table, row_group_size=max(chunk.height, 1))
    finally:
        if writer is not None:
            writer.close()
    return n


def part_path(root: Path, step: str, table: str, index: int) -> Path:
    """Where shard ``index`` of a step's table is written during a run."""
    return root / step / table / f"{index:05d}.parquet"


def remove_tree(path: Path) -> None:
    """Remove a work folder (best effort)."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    if path.exists():  # pragma: no cover - a file held open on some platforms
        os.replace(path, path.with_name(path.name + ".gone"))
