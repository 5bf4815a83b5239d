"""Readers and writers: round trips through every backend, atomicity, determinism."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from crmkit.io import (atomic_write, conform, read_table, read_tables, write_json,
                       write_table, write_tables)
from crmkit.schema import TABLES, empty_table, validate

D = dt.date
T = dt.datetime


def bank_tables() -> dict[str, pl.DataFrame]:
    """Every canonical table with a few literal rows, including awkward values."""
    rows = {
        "customers": {
            "customer_id": ["0001", "0002", "0010"], "branch_id": ["007", "007", "012"],
            "first_seen": [D(2020, 1, 31), D(2021, 6, 1), D(1999, 12, 31)],
            "birth_year": [1980, None, 1955], "risk_level": [3, 1, None],
            "opt_out_sms": [False, True, False], "opt_out_email": [False, False, True],
            "opt_out_phone": [True, False, False], "do_not_contact": [False, False, True],
            "contact_window": ["09:00-18:00", None, "18:00-21:00"],
        },
        "products": {
            "product_id": ["P01", "P02", "0003"], "category": ["deposit", "fund", "bond"],
            "risk_rating": [1, 4, 2], "margin": [0.0125, None, -0.5],
        },
        "managers": {
            "manager_id": ["M001", "M002"], "branch_id": ["007", "012"],
            "level": ["private_banking", "branch"], "capacity": [50, 400], "active": [True, False],
        },
        "holdings": {
            "account_id": ["A0001", "A0002", "A0003"], "customer_id": ["0001", "0001", "0010"],
            "product_id": ["P01", "P02", "0003"],
            "opened": [D(2020, 2, 1), D(2021, 1, 1), D(2000, 1, 1)],
            "closed": [None, D(2022, 3, 31), None], "close_reason": [None, "moved, away", ""],
        },
        "balances": {
            "account_id": ["A0001", "A0001", "A0003"],
            "date": [D(2024, 1, 31), D(2024, 2, 29), D(2024, 1, 31)],
            "balance": [1234.5, 0.1 + 0.2, 1e-300],
        },
        "transactions": {
            "transaction_id": ["t1", "t2", "t3", "t4"], "customer_id": ["0001", "0001", "0002", "0010"],
            "timestamp": [T(2024, 1, 2, 9, 30, 0, 123456), T(2024, 1, 2), T(2024, 2, 29, 23, 59, 59),
                          T(1999, 12, 31)],
            "amount": [10.0, -2.5, 9e9 + 0.01, 0.3333333333333333],
            "channel": ["app", None, "branch", "web"], "product_id": ["P01", None, "P02", "0003"],
        },
        "assignments": {
            "customer_id": ["0001", "0010"], "manager_id": ["M001", "M002"],
            "role": ["primary", "backup"], "since": [D(2023, 1, 1), None],
        },
        "contacts": {
            "customer_id": ["0002", "0002"], "date": [D(2024, 3, 1), D(2024, 3, 2)],
            "kind": ["call", "sms"], "outcome": ["reached", None],
        },
        "complaints": {
            "customer_id": ["0010"], "date": [D(2024, 4, 1)], "kind": ["fees 费用"], "outcome": [None],
        },
    }
    out = {}
    for name, data in rows.items():
        schema = empty_table(name).schema
        out[name] = pl.DataFrame(data, schema=schema)
    return out


BACKENDS = ["parquet", "csv", "duckdb", "sqlite"]


def _dest(tmp_path: Path, backend: str) -> str | Path:
    if backend in ("parquet", "csv"):
        return tmp_path / "tables"
    if backend == "duckdb":
        return tmp_path / "crm.duckdb"
    return f"sqlite:///{tmp_path / 'crm.db'}"


def _write(tables, tmp_path, backend):
    dest = _dest(tmp_path, backend)
    fmt = backend if backend in ("parquet", "csv") else None
    write_tables(tables, dest, format=fmt)
    return dest


def test_fixture_tables_are_valid():
    tables = bank_tables()
    assert set(tables) == set(TABLES)
    assert validate(tables).ok


@pytest.mark.parametrize("backend", BACKENDS)
def test_round_trip_every_canonical_table(tmp_path, backend):
    tables = bank_tables()
    dest = _write(tables, tmp_path, backend)
    back = read_tables(dest)
    assert sorted(back) == sorted(tables)
    for name, frame in tables.items():
        assert_frame_equal(back[name], frame, check_exact=True), name
    # Ids stay strings with their leading zeros, and the result validates as is.
    assert back["customers"]["customer_id"].to_list() == ["0001", "0002", "0010"]
    assert validate(back).ok


@pytest.mark.parametrize("backend", BACKENDS)
def test_round_trip_empty_tables(tmp_path, backend):
    tables = {name: empty_table(name) for name in ("customers", "transactions", "holdings")}
    dest = _write(tables, tmp_path, backend)
    back = read_tables(dest)
    for name, frame in tables.items():
        assert back[name].height == 0
        assert back[name].columns == frame.columns
        assert back[name].schema == frame.schema, (backend, name, back[name].schema)


@pytest.mark.parametrize("backend", BACKENDS)
def test_select_tables_and_missing_table(tmp_path, backend):
    dest = _write(bank_tables(), tmp_path, backend)
    got = read_tables(dest, tables=["products", "managers"])
    assert list(got) == ["products", "managers"]
    with pytest.raises(FileNotFoundError, match="no table 'prodcts'.*it has .*products"):
        read_tables(dest, tables=["prodcts"])


@pytest.mark.parametrize("backend", ["duckdb", "sqlite", "csv", "parquet"])
def test_rewrite_replaces_tables_and_keeps_others(tmp_path, backend):
    tables = bank_tables()
    dest = _write(tables, tmp_path, backend)
    fewer = tables["products"].head(1)
    _write({"products": fewer}, tmp_path, backend)
    back = read_tables(dest)
    assert_frame_equal(back["products"], fewer)
    assert_frame_equal(back["customers"], tables["customers"])


def test_dirty_csv_keeps_text_so_validate_can_name_bad_rows(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "customers.csv").write_text(
        "customer_id,branch_id,first_seen,birth_year,segment\n"
        "00123,01,2024-01-31,1980,a\n"
        "00124,01,31/01/2024,1990,b\n"
    )
    got = read_tables(folder)["customers"]
    assert got["customer_id"].to_list() == ["00123", "00124"]
    assert got["branch_id"].to_list() == ["01", "01"]
    assert got.schema["birth_year"] == pl.Int64
    assert got.schema["first_seen"] == pl.String  # not silently nulled
    res = validate({"customers": got}, mode="quarantine")
    assert res.tables["customers"]["customer_id"].to_list() == ["00123"]
    assert "first_seen" in res.rejected["customers"]["_reason"][0]


def test_conform_casts_only_without_loss():
    frame = pl.DataFrame({"product_id": [1, 2], "category": ["fund", "bond"],
                          "risk_rating": [3.0, 2.5], "margin": ["0.5", "x"]})
    out = conform(frame, "products")
    assert out["product_id"].to_list() == ["1", "2"]
    assert out.schema["risk_rating"] == pl.Float64  # 2.5 is no risk rating: left for validate
    assert out.schema["margin"] == pl.String  # "x" is no number: left for validate
    whole = conform(frame.with_columns(risk_rating=pl.Series([3.0, 2.0])), "products")
    assert whole.schema["risk_rating"] == pl.Int64


def test_conform_leaves_non_canonical_tables_alone():
    frame = pl.DataFrame({"customer_id": ["1"], "x": ["2"]})
    assert conform(frame, "not_a_table") is frame
    assert conform(frame, None) is frame


def test_folder_with_both_formats_needs_format(tmp_path):
    folder = tmp_path / "mixed"
    write_tables({"products": bank_tables()["products"]}, folder, format="parquet")
    write_table(bank_tables()["managers"], folder / "managers.csv")
    with pytest.raises(ValueError, match="both .parquet and .csv"):
        read_tables(folder)
    assert list(read_tables(folder, format="csv")) == ["managers"]


def test_bad_table_name_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="not usable as a file or SQL table name"):
        write_tables({"../evil": empty_table("customers")}, tmp_path / "x")


# --- atomicity ---------------------------------------------------------------------

class Boom(RuntimeError):
    pass


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".json"])
def test_failed_write_table_leaves_old_file_and_no_temp(tmp_path, suffix, monkeypatch):
    target = tmp_path / f"out{suffix}"
    write_table(bank_tables()["transactions"], target)
    before = target.read_bytes()

    def broken_write(self, file, *args, **kwargs):
        Path(file).write_bytes(b"half a file")
        raise Boom("disk full")

    for method in ("write_parquet", "write_csv"):
        monkeypatch.setattr(pl.DataFrame, method, broken_write)
    monkeypatch.setattr(pl.DataFrame, "write_json", lambda self, *a, **k: (_ for _ in ()).throw(Boom()))
    with pytest.raises(Boom):
        write_table(bank_tables()["customers"], target)
    assert target.read_bytes() == before
    assert _listing(tmp_path) == [target.name]


def test_atomic_write_cleans_up_on_exception(tmp_path):
    target = tmp_path / "a.txt"
    with pytest.raises(Boom):
        with atomic_write(target) as tmp:
            tmp.write_text("partial")
            assert tmp.parent == tmp_path and tmp.name.startswith(".a.txt.")
            raise Boom
    assert _listing(tmp_path) == []


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    import os
    target = tmp_path / "a.txt"
    with atomic_write(target) as tmp:
        tmp.write_text("x")
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_failed_folder_write_leaves_old_folder_and_no_temp(tmp_path, monkeypatch):
    tables = bank_tables()
    dest = tmp_path / "tables"
    write_tables(tables, dest, format="parquet")
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    calls = {"n": 0}
    real = pl.DataFrame.write_parquet

    def fail_third(self, file, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Boom("crash mid-folder")
        return real(self, file, *args, **kwargs)

    monkeypatch.setattr(pl.DataFrame, "write_parquet", fail_third)
    with pytest.raises(Boom):
        write_tables({k: v.head(1) for k, v in tables.items()}, dest, replace=True)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    assert _listing(tmp_path) == ["tables"]


def test_failed_new_folder_write_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(pl.DataFrame, "write_csv", lambda self, *a, **k: (_ for _ in ()).throw(Boom()))
    with pytest.raises(Boom):
        write_tables(bank_tables(), tmp_path / "new", format="csv")
    assert _listing(tmp_path) == []


def test_replace_swaps_whole_folder(tmp_path):
    dest = tmp_path / "tables"
    write_tables(bank_tables(), dest)
    (dest / "stale.txt").write_text("old")
    write_tables({"products": bank_tables()["products"]}, dest, replace=True)
    assert _listing(dest) == ["products.parquet"]
    assert _listing(tmp_path) == ["tables"]


def test_failed_duckdb_transaction_rolls_back(tmp_path, monkeypatch):
    import crmkit.io._tables as mod

    tables = bank_tables()
    db = tmp_path / "crm.duckdb"
    write_tables(tables, db)
    real = mod._duckdb_fill

    def fill_then_fail(con, frames):
        real(con, frames)
        raise Boom("after the first statements")

    monkeypatch.setattr(mod, "_duckdb_fill", fill_then_fail)
    with pytest.raises(Boom):
        write_tables({"products": tables["products"].head(1)}, db)
    monkeypatch.undo()
    assert_frame_equal(read_tables(db)["products"], tables["products"])
    assert _listing(tmp_path) == ["crm.duckdb"]


def test_failed_new_duckdb_leaves_no_file(tmp_path, monkeypatch):
    import crmkit.io._tables as mod

    monkeypatch.setattr(mod, "_duckdb_fill", lambda con, frames: (_ for _ in ()).throw(Boom()))
    with pytest.raises(Boom):
        write_tables(bank_tables(), tmp_path / "new.duckdb")
    assert _listing(tmp_path) == []


def test_failed_sql_write_keeps_old_tables(tmp_path):
    tables = bank_tables()
    uri = f"sqlite:///{tmp_path / 'crm.db'}"
    write_tables(tables, uri)
    # The second table fails inside the transaction: a list column has no SQL type.
    broken = {"products": tables["products"].head(1),
              "weird": pl.DataFrame({"x": [[1, 2]]})}
    with pytest.raises(TypeError, match="cannot be written to a SQL database"):
        write_tables(broken, uri)
    assert_frame_equal(read_tables(uri)["products"], tables["products"])



def test_failure_while_inserting_rolls_back_sql(tmp_path, monkeypatch):
    import sqlalchemy as sa

    tables = bank_tables()
    uri = f"sqlite:///{tmp_path / 'crm.db'}"
    write_tables(tables, uri)
    calls = {"n": 0}
    real = pl.DataFrame.to_dicts

    def fail_second(self):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Boom("connection lost")
        return real(self)

    monkeypatch.setattr(pl.DataFrame, "to_dicts", fail_second)
    # products is dropped, recreated and filled, then the second table fails.
    with pytest.raises(Boom):
        write_tables({"products": tables["products"].head(1), "extra": tables["managers"]}, uri)
    monkeypatch.undo()
    assert_frame_equal(read_tables(uri)["products"], tables["products"])
    engine = sa.create_engine(uri)
    assert "extra" not in sa.inspect(engine).get_table_names()
    engine.dispose()


# --- determinism ---------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".json"])
def test_same_input_same_bytes(tmp_path, suffix):
    frame = bank_tables()["transactions"]
    a = write_table(frame, tmp_path / f"a{suffix}").read_bytes()
    b = write_table(frame.clone(), tmp_path / f"b{suffix}").read_bytes()
    assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()


def test_folder_writes_are_deterministic(tmp_path):
    for fmt in ("parquet", "csv"):
        write_tables(bank_tables(), tmp_path / f"one_{fmt}", format=fmt)
        write_tables(bank_tables(), tmp_path / f"two_{fmt}", format=fmt)
        one = {p.name: p.read_bytes() for p in (tmp_path / f"one_{fmt}").iterdir()}
        two = {p.name: p.read_bytes() for p in (tmp_path / f"two_{fmt}").iterdir()}
        assert one == two and len(one) == len(TABLES)


def test_write_json_is_sorted_and_stable(tmp_path):
    obj = {"z": [3, 1], "a": {"y": 1.5, "b": D(2024, 1, 31)}, "m": "é"}
    p1 = write_json(obj, tmp_path / "m1.json")
    p2 = write_json(dict(reversed(list(obj.items()))), tmp_path / "m2.json")
    assert p1.read_bytes() == p2.read_bytes()
    text = p1.read_text(encoding="utf-8")
    assert text.endswith("}\n") and text.index('"a"') < text.index('"m"') < text.index('"z"')
    assert json.loads(text)["a"]["b"] == "2024-01-31"
    with pytest.raises(ValueError):
        write_json({"x": float("nan")}, tmp_path / "nan.json")
    assert not (tmp_path / "nan.json").exists()
    assert _listing(tmp_path) == ["m1.json", "m2.json"]


def test_json_and_csv_single_files_round_trip(tmp_path):
    for name, frame in bank_tables().items():
        for suffix in (".csv", ".json"):
            path = write_table(frame, tmp_path / f"{name}{suffix}")
            back = read_table(path)
            assert_frame_equal(back, frame, check_exact=True)


def test_xlsx_export(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    frame = bank_tables()["customers"]
    path = write_table(frame, tmp_path / "gold_at_risk.xlsx")
    ws = openpyxl.load_workbook(path, read_only=True)["gold_at_risk"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == tuple(frame.columns)
    assert rows[1][0] == "0001" and rows[2][3] is None
    assert len(rows) == frame.height + 1
    assert _listing(tmp_path) == ["gold_at_risk.xlsx"]


def test_unknown_suffix_says_what_to_do(tmp_path):
    with pytest.raises(ValueError, match=r"cannot tell the format .*\.txt.*format="):
        write_table(empty_table("customers"), tmp_path / "x.txt")
    with pytest.raises(ValueError, match="The 'format' parameter of write_table must be one of"):
        write_table(empty_table("customers"), tmp_path / "x.csv", format="feather")


def test_accepts_pandas_and_pyarrow(tmp_path):
    frame = bank_tables()["products"]
    write_tables({"products": frame.to_pandas(), "managers": bank_tables()["managers"].to_arrow()},
                 tmp_path / "t")
    back = read_tables(tmp_path / "t")
    assert_frame_equal(back["products"], frame)


def test_make_bank_round_trip(tmp_path):
    datasets = pytest.importorskip("crmkit.datasets")
    make_bank = getattr(datasets, "make_bank", None)
    if make_bank is None:
        pytest.skip("crmkit.datasets.make_bank is not there yet")
    bank = make_bank(n_customers=200, seed=1)
    tables = dict(getattr(bank, "tables", bank))
    for backend in BACKENDS:
        (tmp_path / backend).mkdir()
        dest = _write(tables, tmp_path / backend, backend)
        back = read_tables(dest)
        for name, frame in tables.items():
            assert_frame_equal(back[name], to_frame(frame), check_exact=True)


def to_frame(x):
    from crmkit._frames import to_polars
    return to_polars(x)
