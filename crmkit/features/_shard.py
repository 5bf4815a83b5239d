"""Customer shards: split per-customer work by a stable hash of ``customer_id``."""

from __future__ import annotations

import zlib

import polars as pl

from crmkit._params import check_positive

__all__ = ["shard_filter", "shard_of"]


def shard_of(customer_id: str, n_shards: int) -> int:
    """The shard (``0 .. n_shards-1``) of one customer id: CRC-32 of its UTF-8 bytes.

    CRC-32 is fixed by its standard, so a customer lands in the same shard on every
    machine, Python and polars version (polars' own ``hash`` is not stable across
    versions).

    Examples
    --------
    >>> shard_of("C0000001", 8)
    6
    """
    n = int(check_positive(n_shards, "n_shards", "shard_of"))
    return zlib.crc32(str(customer_id).encode()) % n


def shard_filter(customer_id: pl.Expr, index: int, n_shards: int) -> pl.Expr:
    """A boolean expression selecting the customers of shard ``index`` of ``n_shards``.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"customer_id": [f"C{i}" for i in range(100)]})
    >>> sizes = [df.filter(shard_filter(pl.col("customer_id"), i, 4)).height for i in range(4)]
    >>> sum(sizes)
    100
    """
    n = int(check_positive(n_shards, "n_shards", "shard_filter"))
    if not 0 <= index < n:
        raise ValueError(f"The 'index' parameter of shard_filter must be in [0, {n}). "
                         f"Got {index!r} instead.")
    crc = customer_id.cast(pl.String).map_elements(
        lambda s: zlib.crc32(s.encode()) % n, return_dtype=pl.Int64)
    return crc == index
