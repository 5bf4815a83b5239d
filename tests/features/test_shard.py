"""Customer shards: the vectorised CRC-32 must be zlib's, for any ids."""

import zlib

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.features import shard_of
from crmkit.features._shard import crc32_of


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=23)), max_size=40))
def test_crc32_of_equals_zlib_for_any_strings(ids):
    got = crc32_of(pl.Series("customer_id", ids, dtype=pl.String)).to_list()
    assert got == [None if s is None else zlib.crc32(s.encode()) for s in ids]


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 40), st.integers(1, 30), st.integers(0, 10))
def test_crc32_of_ids_of_one_length_sliced_from_a_longer_series(width, n, skip):
    # ids of one length take the no-copy path; a slice starts mid-buffer
    ids = [f"{i:0{width}d}"[-width:] if width else "" for i in range(n + skip)]
    series = pl.Series(ids).slice(skip)
    assert crc32_of(series).to_list() == [zlib.crc32(s.encode()) for s in ids[skip:]]
    assert [shard_of(s, 7) for s in ids[skip:]] == (crc32_of(series) % 7).to_list()
