"""Segment exports: opt-outs, formula injection, pseudonyms, stamps, staleness, round trips."""

from __future__ import annotations

import json

import openpyxl
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from crmkit.exceptions import ConfigError
from crmkit.segments import (
    config_fingerprint,
    customer_table,
    export_command,
    export_segment,
    export_stamp,
    is_stale_export,
    neutralise,
    unneutralise,
)

DANGER = ("=", "+", "-", "@", "\t", "\r")
KEY = "k" * 32


def table(n=6):
    return pl.DataFrame({
        "customer_id": [f"C{i:03d}" for i in range(n)],
        "tier": ["Gold", "Mass"] * (n // 2),
        "note": ["=HYPERLINK(\"http://evil\",\"x\")", "+cmd|' /C calc'!A0", "@SUM(1)", "-2+3",
                 "\tx", "plain"][:n],
        "clv": [float(i) * 100.5 for i in range(n)],
        "opt_out_email": [False, True, None, False, True, False][:n],
        "opt_out_sms": [False] * n,
    })


def test_only_listed_columns_and_opt_outs_counted(tmp_path):
    res = export_segment(table(), {"where": "clv >= 0", "columns": ["tier", "clv"],
                                   "channel": "email"}, tmp_path / "x.parquet",
                         format="parquet", run_date="2025-12-31", name="all")
    got = pl.read_parquet(res.path)
    assert got.columns == ["customer_id", "tier", "clv"]
    assert got["customer_id"].to_list() == ["C000", "C003", "C005"]
    assert (res.in_segment, res.suppressed_opt_out, res.suppressed_unknown_consent) == (6, 2, 1)
    assert res.rows == 3


def test_channel_without_opt_out_column_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no 'opt_out_phone' column"):
        export_segment(table(), {"where": "clv > 0", "channel": "phone"}, tmp_path / "x.csv")


def test_unknown_column_named(tmp_path):
    with pytest.raises(ConfigError, match="'tierr'.*Did you mean 'tier'"):
        export_segment(table(), {"where": "clv > 0", "columns": ["tierr"]}, tmp_path / "x.csv")


consent = st.one_of(st.none(), st.booleans())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(consent, consent, st.floats(0, 1)), min_size=1, max_size=30),
       st.sampled_from(["email", "sms"]), st.sampled_from(["csv", "xlsx", "parquet"]))
def test_never_exports_an_opted_out_customer(tmp_path_factory, rows, channel, fmt):
    t = pl.DataFrame({"customer_id": [f"C{i}" for i in range(len(rows))],
                      "opt_out_email": [r[0] for r in rows], "opt_out_sms": [r[1] for r in rows],
                      "churn_prob_90d": [r[2] for r in rows]},
                     schema={"customer_id": pl.String, "opt_out_email": pl.Boolean,
                             "opt_out_sms": pl.Boolean, "churn_prob_90d": pl.Float64})
    out = tmp_path_factory.mktemp("x") / f"seg.{fmt}"
    res = export_segment(t, {"where": "churn_prob_90d > 0.2", "channel": channel}, out,
                         format=fmt)
    got = _read(res.path, fmt)["customer_id"].to_list()
    flag = dict(zip(t["customer_id"], t[f"opt_out_{channel}"]))
    assert all(flag[c] is False for c in got)
    in_seg = t.filter(pl.col("churn_prob_90d") > 0.2)
    assert res.in_segment == in_seg.height
    assert res.rows + res.suppressed_opt_out + res.suppressed_unknown_consent == in_seg.height
    assert res.suppressed_opt_out == int(in_seg[f"opt_out_{channel}"].fill_null(False).sum())


def _read(path, fmt) -> pl.DataFrame:
    if fmt == "parquet":
        return pl.read_parquet(path)
    if fmt == "csv":  # Python's csv module: polars misreads a quoted header such as '""""'
        import csv

        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        return pl.DataFrame(rows[1:], schema={c: pl.String for c in rows[0]}, orient="row")
    ws = openpyxl.load_workbook(path).active
    rows = [[c.value for c in r] for r in ws.iter_rows()]
    return pl.DataFrame(rows[1:], schema=[str(c) for c in rows[0]], orient="row")


def _cells(path, fmt):
    """Every text cell (header included) as a spreadsheet would see it."""
    if fmt == "csv":
        import csv

        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.reader(fh):
                yield from row
        return
    wb = openpyxl.load_workbook(path)
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                assert c.data_type != "f", f"cell {c.coordinate} is a formula: {c.value!r}"
                if isinstance(c.value, str):
                    yield c.value


texts = st.text(alphabet=st.sampled_from(list("=+-@\t\r'\"ab1,;|!()\n ")), max_size=12)


def _xml(v):
    # XML (inside XLSX) turns CR and CRLF into LF, and openpyxl reads an empty cell as None.
    return None if v in ("", None) else v.replace("\r\n", "\n").replace("\r", "\n")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(texts, min_size=1, max_size=6), texts, st.sampled_from(["csv", "xlsx"]))
def test_no_text_cell_starts_a_formula_and_round_trips(tmp_path_factory, values, header, fmt):
    t = pl.DataFrame({"customer_id": [f"C{i}" for i in range(len(values))], "note": values})
    if header and header != "customer_id":
        t = t.rename({"note": header})
    col = t.columns[1]
    out = tmp_path_factory.mktemp("x") / f"seg.{fmt}"
    res = export_segment(t, {"where": "not_null(customer_id)", "columns": [col]}, out, format=fmt)
    for cell in _cells(res.path, fmt):
        assert not cell.startswith(DANGER), repr(cell)
    back = _read(res.path, fmt)
    got_cols = [unneutralise(c) for c in back.columns]
    got = [unneutralise(v) for v in back[back.columns[1]].to_list()]
    want = t[col].to_list()
    if fmt == "xlsx":  # compare the cells as stored: neutralised, then as XML keeps them
        assert back.columns == ["customer_id", _xml(neutralise(col))]
        assert back[back.columns[1]].to_list() == [_xml(neutralise(v)) for v in want]
    else:
        assert got_cols == ["customer_id", col]
        assert [v or "" for v in got] == [v or "" for v in want]


def test_known_payloads_neutralised_in_csv_and_xlsx(tmp_path):
    for fmt in ("csv", "xlsx"):
        res = export_segment(table(), {"where": "clv >= 0", "columns": ["note"]},
                             tmp_path / f"p.{fmt}", format=fmt)
        cells = list(_cells(res.path, fmt))
        assert "'=HYPERLINK(\"http://evil\",\"x\")" in cells
        assert "'+cmd|' /C calc'!A0" in cells and "'@SUM(1)" in cells and "'-2+3" in cells


@given(st.text(max_size=20))
def test_neutralise_is_undone_exactly(s):
    assert unneutralise(neutralise(s)) == s
    assert not neutralise(s).startswith(DANGER)


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet"])
def test_round_trip_values(tmp_path, fmt):
    t = table().with_columns(pl.col("clv").round(1))
    res = export_segment(t, {"where": "clv >= 0", "columns": ["tier", "note", "clv"]},
                         tmp_path / f"r.{fmt}", format=fmt, run_date="2025-12-31")
    back = _read(res.path, fmt)
    if fmt != "parquet":
        back = back.with_columns(pl.col("note").map_elements(unneutralise, return_dtype=pl.String),
                                 pl.col("clv").cast(pl.Float64))
    assert_frame_equal(back, t.select("customer_id", "tier", "note", "clv"))


def test_pseudonyms_need_the_key_and_are_stable(tmp_path, monkeypatch):
    monkeypatch.delenv("CRMKIT_PSEUDONYM_KEY", raising=False)
    with pytest.raises(ConfigError, match="CRMKIT_PSEUDONYM_KEY"):
        export_segment(table(), "clv > 0", tmp_path / "x.csv", pseudonymise=True)
    monkeypatch.setenv("CRMKIT_PSEUDONYM_KEY", KEY)
    a = export_segment(table(), "clv > 0", tmp_path / "a.csv", pseudonymise=True)
    b = export_segment(table(), "clv > 0", tmp_path / "b.csv", pseudonymise=True)
    assert a.path.read_bytes() == b.path.read_bytes()
    got = pl.read_csv(a.path)
    assert got.columns == ["customer_pid"]
    assert not set(got["customer_pid"]) & set(table()["customer_id"])
    assert got["customer_pid"].str.len_chars().unique().to_list() == [32]
    assert a.stamp["pseudonymised"] and len(a.stamp["pseudonym_key_id"]) == 12
    assert KEY not in a.stamp_path.read_text()
    monkeypatch.setenv("CRMKIT_PSEUDONYM_KEY", "x" * 32)
    c = export_segment(table(), "clv > 0", tmp_path / "c.csv", pseudonymise=True)
    assert c.path.read_bytes() != a.path.read_bytes()


def test_stamp_in_sidecar_and_file_metadata(tmp_path):
    fp = config_fingerprint({"run": {"name": "x"}})
    seg = {"where": 'tier == "Gold"', "columns": ["tier"], "description": "gold book"}
    for fmt in ("csv", "xlsx", "parquet"):
        res = export_segment(table(), seg, tmp_path, format=fmt, run_date="2025-12-31",
                             config_fingerprint=fp, name="gold")
        assert res.path.name == f"gold_2025-12-31.{fmt}"
        stamp = export_stamp(res.path)
        assert stamp["where"] == 'tier == "Gold"' and stamp["config_fingerprint"] == fp
        assert stamp["run_date"] == "2025-12-31" and stamp["rows"] == 3
    meta = pl.read_parquet_metadata(tmp_path / "gold_2025-12-31.parquet")
    assert json.loads(meta["crmkit_export"])["config_fingerprint"] == fp
    props = openpyxl.load_workbook(tmp_path / "gold_2025-12-31.xlsx").properties
    assert props.subject == "run 2025-12-31" and fp in props.keywords


def test_stale_export(tmp_path):
    runs = tmp_path / "runs"
    res = export_segment(table(), "clv > 0", tmp_path / "x.csv", run_date="2025-11-30")
    assert not is_stale_export(res.path, runs)        # no runs yet
    for day in ("2025-11-30", "2025-12-31"):
        (runs / day).mkdir(parents=True)
    (runs / "2025-11-30" / "manifest.json").write_text("{}")
    assert not is_stale_export(res.path, runs)
    assert not is_stale_export(res.path, runs)        # an unfinished run (no manifest) is no run
    (runs / "2025-12-31" / "manifest.json").write_text("{}")
    assert is_stale_export(res.path, runs)


def test_export_command_from_a_run_folder(tmp_path):
    run = tmp_path / "runs" / "2025-12-31"
    (run / "features").mkdir(parents=True)
    (run / "value").mkdir()
    (run / "churn").mkdir()
    t = table()
    t.select("customer_id", "clv").write_parquet(run / "features" / "features.parquet")
    t.select("customer_id", "tier").write_parquet(run / "value" / "value_tiers.parquet")
    t.select("customer_id", "note").write_parquet(run / "churn" / "churn_scores.parquet")
    (run / "manifest.json").write_text(json.dumps({"config": {"run": {"name": "t"}}}))
    data = tmp_path / "data"
    data.mkdir()
    t.select("customer_id", "opt_out_email", "opt_out_sms").write_parquet(data / "customers.parquet")
    cfg = tmp_path / "nightly.toml"
    cfg.write_text('[run]\noutput_dir = "runs"\n[inputs]\nsource = "data"\n'
                   '[segments.gold_email]\nwhere = \'tier == "Gold"\'\n'
                   'columns = ["tier", "clv", "note"]\nchannel = "email"\n')
    res = export_command("gold_email", run="2025-12-31", config=cfg, format="xlsx")
    assert res.path == run / "exports" / "gold_email_2025-12-31.xlsx"
    got = _read(res.path, "xlsx")
    assert got["customer_id"].to_list() == ["C000"]             # C002 unknown consent, C004 out
    assert (res.suppressed_opt_out, res.suppressed_unknown_consent) == (1, 1)
    assert res.stamp["config_fingerprint"] == config_fingerprint({"run": {"name": "t"}})
    with pytest.raises(ConfigError, match="Did you mean 'gold_email'"):
        export_command("gold_emial", run="2025-12-31", config=cfg)
    with pytest.raises(FileNotFoundError, match="no complete run for 2025-12-30"):
        export_command("gold_email", run="2025-12-30", config=cfg)


def test_customer_table_joins_per_customer_outputs_only():
    feats = pl.DataFrame({"customer_id": ["a", "b"], "x": [1, 2]})
    outs = {"value": {"value_tiers": pl.DataFrame({"customer_id": ["b", "a"], "tier": ["G", "M"],
                                                   "x": [9, 9]})},
            "lifecycle": {"actions": pl.DataFrame({"customer_id": ["a", "a"], "action": ["p", "q"]})}}
    got = customer_table(outs, feats)
    assert got.columns == ["customer_id", "x", "tier"]
    assert got.rows() == [("a", 1, "M"), ("b", 2, "G")]
