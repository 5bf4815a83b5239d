"""Property tests: for random mutations of every table, validation loses and invents no row.

clean + rejected = input, in both modes, in memory and through CSV and Parquet files;
row-local bad values are always among the rejected rows; CSV and Parquet agree.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit import SchemaError
from crmkit.datasets import make_bank
from crmkit.io import read_tables, write_tables
from crmkit.schema import TABLES, validate

AS_OF = "2025-12-31"
BASE = make_bank(40, seed=3, as_of=AS_OF, years=1, balance_months=3)
_TS = pl.Datetime("us")

KINDS = ("null", "text", "us_date", "impossible_date", "future", "early", "nan", "inf", "huge",
         "negative", "unknown_ref", "dup")


@st.composite
def mutations(draw):
    """A list of (table, row, column, kind) applied to BASE."""
    out = []
    for _ in range(draw(st.integers(0, 12))):
        table = draw(st.sampled_from([t for t in TABLES if BASE[t].height]))
        frame = BASE[table]
        out.append((table, draw(st.integers(0, frame.height - 1)),
                    draw(st.sampled_from(frame.columns)), draw(st.sampled_from(KINDS))))
    return out


def _value(kind: str, dtype) -> object:
    temporal = dtype in (pl.Date, _TS)
    return {
        "null": None,
        "text": "??",
        "us_date": "12/31/2024" if temporal else None,
        "impossible_date": "2025-02-30" if temporal else None,
        "future": "2026-03-01" if temporal else None,
        "early": "1900-01-01" if temporal else None,
        "nan": "NaN" if dtype == pl.Float64 else None,
        "inf": "inf" if dtype == pl.Float64 else None,
        "huge": "1e13" if dtype == pl.Float64 else None,
        "negative": "-100" if dtype == pl.Float64 else None,
        "unknown_ref": "ZZ_UNKNOWN" if dtype == pl.String else None,
    }.get(kind)


def apply(muts) -> tuple[dict[str, pl.DataFrame], dict[str, set[int]]]:
    """The mutated tables, and per table the rows a row-local check must reject."""
    tables = dict(BASE)
    must: dict[str, set[int]] = {t: set() for t in tables}
    dups: dict[str, list[int]] = {t: [] for t in tables}
    for table, row, column, kind in muts:
        frame = tables[table]
        if kind == "dup":
            dups[table].append(row)
            continue
        spec = TABLES[table]
        canon = spec.column(column) if column in spec.column_names else None
        dtype = BASE[table].schema[column]
        value = _value(kind, dtype)
        if value is None and kind != "null":
            continue
        if frame.schema[column] in (pl.Date, _TS):  # dates as ISO text, the rest as text
            text = frame[column].dt.to_string("%Y-%m-%d" if frame.schema[column] == pl.Date
                                              else "%Y-%m-%dT%H:%M:%S")
        else:
            text = frame[column].cast(pl.String)
        new = text.scatter(row, value)
        tables[table] = frame.with_columns(new.alias(column))
        if canon is None:
            continue
        bad = (kind == "null" and not canon.nullable) \
            or (kind == "text" and canon.dtype != pl.String) \
            or kind in ("us_date", "impossible_date") \
            or (kind in ("nan", "inf") and canon.finite) \
            or (kind == "huge" and canon.money) \
            or (kind == "future" and column == spec.date_column)
        if bad:
            must[table].add(row)
        else:
            must[table].discard(row)  # a later valid value replaced an earlier bad one
    for table, rows in dups.items():
        if rows:
            tables[table] = pl.concat([tables[table], tables[table][rows]],
                                      how="vertical_relaxed")
    return tables, must


def _check_partition(tables, res, must=None):
    for name, frame in tables.items():
        rejected = res.rejected.get(name)
        n_bad = 0 if rejected is None else rejected.height
        assert res.tables[name].height + n_bad == frame.height, name
        assert res.counts[name] == frame.height
        if rejected is not None:
            rows = rejected["_row"]
            assert rows.is_unique().all() and rows.is_sorted(), name
            assert rows.min() >= 0 and rows.max() < frame.height, name
            assert rejected["_reason"].null_count() == 0
            assert rejected.drop("_row", "_reason").columns == frame.columns
        if must:
            got = set() if rejected is None else set(rejected["_row"].to_list())
            assert must[name] <= got, (name, must[name] - got)


def _rejected_rows(res):
    return {name: frame["_row"].to_list() for name, frame in res.rejected.items()}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(muts=mutations())
def test_validate_partitions_rows_in_both_modes(muts):
    tables, must = apply(muts)
    res = validate(tables, as_of=AS_OF, mode="quarantine")
    _check_partition(tables, res, must)
    if res.problems:
        with pytest.raises(SchemaError) as err:
            validate(tables, as_of=AS_OF, mode="strict")
        assert len(err.value.problems) == len(res.problems)
    else:
        strict = validate(tables, as_of=AS_OF, mode="strict")
        for name in tables:
            assert strict.tables[name].equals(res.tables[name])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(muts=mutations())
def test_readers_lose_no_row_and_csv_agrees_with_parquet(muts):
    tables, must = apply(muts)
    in_memory = validate(tables, as_of=AS_OF, mode="quarantine")
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for fmt in ("csv", "parquet"):
            folder = Path(tmp) / fmt
            write_tables(tables, folder, format=fmt)
            back = read_tables(folder)
            assert {k: v.height for k, v in back.items()} == {k: v.height
                                                               for k, v in tables.items()}
            res = validate(back, as_of=AS_OF, mode="quarantine")
            _check_partition(back, res, must)
            results[fmt] = res
            if res.problems:
                with pytest.raises(SchemaError):
                    validate(back, as_of=AS_OF, mode="strict")
    assert _rejected_rows(results["csv"]) == _rejected_rows(results["parquet"]) \
        == _rejected_rows(in_memory)
    for name in tables:
        assert results["csv"].tables[name].equals(results["parquet"].tables[name]), name


def test_mutation_helper_marks_bad_rows():
    tables, must = apply([("transactions", 3, "amount", "nan"),
                          ("customers", 0, "first_seen", "us_date"),
                          ("customers", 1, "opt_out_sms", "text"),
                          ("balances", 2, "balance", "huge")])
    assert must["transactions"] == {3} and must["customers"] == {0, 1}
    res = validate(tables, as_of=AS_OF, mode="quarantine")
    _check_partition(tables, res, must)
    assert res.rejected["customers"]["_row"].to_list() == [0, 1]
    # the rejected customers take their transactions and accounts with them, by reference
    for name, row in (("transactions", 3), ("balances", 2)):
        rej = res.rejected[name]
        others = rej.filter(pl.col("_row") != row)["_reason"]
        assert row in rej["_row"].to_list()
        assert others.str.contains("references unknown (customers|holdings)").all(), name
