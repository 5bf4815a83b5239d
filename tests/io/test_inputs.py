"""Issue 9's broken input files: each is an error naming the file and the place, or read right."""

from __future__ import annotations

import os

import polars as pl
import pytest

from crmkit import InputError, QualityGateError
from crmkit.datasets import make_bank
from crmkit.io import check_inputs, check_writable, preflight, read_table, read_tables, write_tables
from crmkit.schema import quality_gate, validate

AS_OF = "2025-12-31"
BANK = make_bank(1500, seed=0, as_of=AS_OF)
COUNTS = {name: frame.height for name, frame in BANK.items()}


@pytest.fixture(scope="module")
def csv_bank(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bank") / "csv"
    write_tables(BANK, folder, format="csv")
    return folder


def _copy(src, dst):
    dst.mkdir()
    for path in src.iterdir():
        (dst / path.name).write_bytes(path.read_bytes())
    return dst


def test_latin1_file_names_file_offset_and_line_then_reads_when_declared(tmp_path):
    # before: "invalid utf-8 sequence", naming no file
    path = tmp_path / "customers.csv"
    path.write_bytes("customer_id,branch_id,first_seen,area\nc1,b1,2024-01-01,Bern\n"
                     "c2,b1,2024-01-02,Zürich\n".encode("latin-1"))
    with pytest.raises(InputError) as err:
        read_table(path)
    text = str(err.value)
    offset = path.read_bytes().index(b"\xfc")
    assert repr(str(path)) in text
    assert f"byte fc at byte offset {offset:,} (line 3)" in text
    assert "encoding='latin-1'" in text
    got = read_table(path, encoding="latin-1")
    assert got["area"].to_list() == ["Bern", "Zürich"]
    assert got.schema["first_seen"] == pl.Date
    assert read_tables(tmp_path, encoding="latin-1")["customers"].equals(got)


def test_bad_byte_deep_in_a_big_file_is_located(tmp_path):
    path = tmp_path / "contacts.csv"
    lines = ["customer_id,date,kind"] + [f"c{i},2024-01-01,call" for i in range(200_000)]
    body = ("\n".join(lines) + "\n").encode()
    at = len(body) - 30
    path.write_bytes(body[:at] + b"\xe9" + body[at + 1:])
    line = body[:at].count(b"\n") + 1
    with pytest.raises(InputError, match=f"at byte offset {at:,} \\(line {line:,}\\)"):
        read_table(path)


def test_gbk_text_is_read_when_declared(tmp_path):
    path = tmp_path / "complaints.csv"
    path.write_bytes("customer_id,date,kind\nc1,2024-01-01,费用\n".encode("gbk"))
    with pytest.raises(InputError, match="not valid utf-8"):
        read_table(path)
    assert read_table(path, encoding="gbk")["kind"].to_list() == ["费用"]
    with pytest.raises(ValueError, match="'encoding' parameter of read_table must be a text "
                                         "encoding"):
        read_table(path, encoding="klingon")


def test_a_file_cut_mid_row_is_an_error_not_a_smaller_day(tmp_path, csv_bank):
    # before: exit 0, 1 row quarantined, about 28,600 transactions silently missing
    folder = _copy(csv_bank, tmp_path / "cut")
    path = folder / "transactions.csv"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match=r"transactions.csv' ends in the middle of a line \(its "
                                         r"last line, from byte offset [\d,]+, has no line "
                                         r"break\): the file was cut off"):
        read_tables(folder)
    assert any("ends in the middle of a line" in p for p in check_inputs(folder))


def test_a_last_line_with_missing_fields_is_an_error(tmp_path):
    path = tmp_path / "transactions.csv"
    text = "transaction_id,customer_id,timestamp,amount,channel\nt1,c1,2024-01-01,5.0,app\n"
    path.write_text(text + "t2,c1,2024-01-0\n")
    with pytest.raises(InputError, match=f"the last line \\(from byte offset {len(text)}\\) has 3 "
                                         "fields "
                                         "where the header has 5: the file was cut off"):
        read_table(path)


def test_a_file_cut_at_a_line_break_is_caught_by_the_row_count_check(tmp_path, csv_bank):
    folder = _copy(csv_bank, tmp_path / "cut")
    path = folder / "transactions.csv"
    raw = path.read_bytes()
    path.write_bytes(raw[: raw.index(b"\n", len(raw) // 2) + 1])
    res = validate(read_tables(folder), as_of=AS_OF, mode="quarantine")
    with pytest.raises(QualityGateError, match=r"transactions: 28,175 rows, 50\.0% fewer than "
                                               r"the previous run's 56,355"):
        quality_gate(res, previous_counts=COUNTS)


def test_empty_and_cut_parquet_and_json_files_name_the_file(tmp_path):
    (tmp_path / "customers.csv").write_bytes(b"")
    with pytest.raises(InputError, match="customers.csv' is empty"):
        read_table(tmp_path / "customers.csv")
    write_tables({"customers": BANK["customers"]}, tmp_path / "pq")
    pq = tmp_path / "pq" / "customers.parquet"
    pq.write_bytes(pq.read_bytes()[:-100])
    with pytest.raises(InputError, match="cannot read .*customers.parquet' as Parquet"):
        read_table(pq)
    js = tmp_path / "customers.json"
    js.write_text('[{"customer_id": "c1", "branch_id": "b1", "first_se')
    with pytest.raises(InputError, match="cannot read .*customers.json' as JSON"):
        read_table(js)


def test_quoted_fields_with_line_breaks_are_not_taken_for_a_cut(tmp_path):
    path = tmp_path / "complaints.csv"
    path.write_text('customer_id,date,kind,outcome\nc1,2024-01-01,fees,"open,\nsee note"\n')
    assert read_table(path)["outcome"].to_list() == ["open,\nsee note"]


# --- pre-flight ---------------------------------------------------------------------------

def test_preflight_passes_a_good_folder_and_lists_every_problem(tmp_path, csv_bank):
    assert preflight(csv_bank, writable=[tmp_path / "runs", tmp_path / "runs" / "models"]) == []
    folder = _copy(csv_bank, tmp_path / "bad")
    (folder / "transactions.csv").unlink()
    (folder / "holdings.csv").write_text("account_id,customer_id\nA1,c1\n")
    (tmp_path / "afile").write_text("x")
    problems = preflight(folder, writable=[tmp_path / "afile" / "runs"])
    text = "\n".join(problems).replace(str(tmp_path), "T")
    assert text == (
        "input folder 'T/bad' has no transactions.csv (a required table)\n"
        "'T/bad/holdings.csv': the holdings table lacks the required columns product_id, "
        "opened\n"
        "cannot create the folder 'T/afile/runs': 'T/afile' is a file, not a folder")
    assert check_inputs(tmp_path / "nowhere") == [
        f"input folder {str(tmp_path / 'nowhere')!r} does not exist"]


def test_preflight_reads_parquet_footers_and_databases(tmp_path):
    write_tables(BANK, tmp_path / "pq")
    assert check_inputs(tmp_path / "pq") == []
    pq = tmp_path / "pq" / "balances.parquet"
    pq.write_bytes(pq.read_bytes()[:-50])
    (problem,) = check_inputs(tmp_path / "pq")
    assert "balances.parquet' cannot be read as parquet" in problem
    db = tmp_path / "bank.duckdb"
    write_tables({"customers": BANK["customers"]}, db)
    assert check_inputs(db) == [f"DuckDB file {str(db)!r} has no table transactions "
                                "(a required table)"]
    uri = f"sqlite:///{tmp_path / 'bank.db'}"
    write_tables({"customers": BANK["customers"], "transactions": BANK["transactions"]}, uri)
    assert check_inputs(uri) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_preflight_finds_a_read_only_output_folder(tmp_path):
    out = tmp_path / "runs"
    out.mkdir()
    out.chmod(0o500)
    try:
        (problem,) = check_writable(out)
        assert "is not writable (Permission denied)" in problem
    finally:
        out.chmod(0o700)


def test_zone_aware_database_columns_are_left_for_validate_to_convert(tmp_path):
    import datetime as dt

    from crmkit.io import conform

    tx = pl.DataFrame({"customer_id": ["a"], "amount": [1.0],
                       "timestamp": [dt.datetime(2024, 1, 31, 23, 30)]}).with_columns(
        pl.col("timestamp").dt.replace_time_zone("UTC"))
    assert conform(tx, "transactions").schema["timestamp"] == pl.Datetime("us", "UTC")
    customers = pl.DataFrame({"customer_id": ["a"], "branch_id": ["b"],
                              "first_seen": [dt.date(2024, 1, 1)]})
    db = tmp_path / "bank.duckdb"
    write_tables({"customers": customers, "transactions": tx}, db)
    got = validate(read_tables(db), contract={"time_zone": "Asia/Shanghai"})
    assert got.tables["transactions"]["timestamp"].to_list() == [dt.datetime(2024, 2, 1, 7, 30)]
