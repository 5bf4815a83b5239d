"""Write-back of a run's results to a database: one transaction, a rerun replaces its rows.

PostgreSQL runs against the throw-away server of ``test_postgres.py`` (same fixture,
same skip reasons); SQLite and DuckDB run everywhere.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl
import pytest
import sqlalchemy as sa

from crmkit.io import write_back
from tests.io.test_postgres import postgres_uri  # noqa: F401 - the fixture


def results(shift=0.0):
    calls = pl.DataFrame({"customer_id": ["C1", "C2", "C3"], "manager_id": ["M1", "M1", "M2"],
                          "priority": [1, 2, 1], "reason": ["=churn risk", "birthday", None],
                          "triggers": [["cadence_due", "high_risk"], [], None]})
    scores = pl.DataFrame({"customer_id": ["C1", "C2", "C3"],
                           "churn_prob_90d": [0.5 + shift, 0.1, 0.2],
                           "as_of": [dt.date(2025, 12, 31)] * 3})
    return {"call_list": calls, "churn_scores": scores}


def _count(uri_or_path, table, day=None):
    where = f" WHERE run_date = DATE '{day}'" if day else ""
    if str(uri_or_path).endswith(".duckdb"):
        with duckdb.connect(str(uri_or_path), read_only=True) as con:
            return con.execute(f"SELECT count(*) FROM {table}{where}").fetchone()[0]
    eng = sa.create_engine(uri_or_path)
    try:
        with eng.connect() as c:
            if "sqlite" in str(uri_or_path):
                where = f" WHERE run_date = '{day}'" if day else ""
            return c.exec_driver_sql(f"SELECT count(*) FROM {table}{where}").scalar()
    finally:
        eng.dispose()


def _check_rerun(dest):
    first = write_back(results(), dest, run_date="2025-12-31")
    assert first == {"call_list": {"rows": 3, "replaced": 0},
                     "churn_scores": {"rows": 3, "replaced": 0}}
    write_back(results(), dest, run_date="2025-11-30")
    again = write_back(results(shift=0.1), dest, run_date="2025-12-31")
    assert again["call_list"] == {"rows": 3, "replaced": 3}
    for table in ("call_list", "churn_scores"):
        assert _count(dest, table, "2025-12-31") == 3          # exactly one copy
        assert _count(dest, table, "2025-11-30") == 3          # other dates kept
        assert _count(dest, table) == 6


def _failing_rerun_leaves_old_rows(dest):
    bad = results()
    # the first table goes in, the second fails (text into a number column): all rolled back
    bad["churn_scores"] = bad["churn_scores"].with_columns(pl.lit("x").alias("churn_prob_90d"))
    with pytest.raises(Exception):
        write_back(bad, dest, run_date="2025-12-31")
    assert _count(dest, "call_list", "2025-12-31") == 3
    assert _count(dest, "churn_scores", "2025-12-31") == 3


def test_sqlite(tmp_path):
    uri = f"sqlite:///{tmp_path / 'crm.db'}"
    _check_rerun(uri)


def test_duckdb(tmp_path):
    path = tmp_path / "crm.duckdb"
    _check_rerun(path)
    _failing_rerun_leaves_old_rows(path)
    with duckdb.connect(str(path), read_only=True) as con:
        got = con.execute("SELECT reason FROM call_list WHERE run_date = DATE '2025-12-31' "
                          "ORDER BY customer_id").fetchall()
    assert got == [("=churn risk",), ("birthday",), (None,)]
    with duckdb.connect(str(path), read_only=True) as con:
        triggers = con.execute("SELECT triggers FROM call_list WHERE run_date = DATE '2025-12-31' "
                               "ORDER BY customer_id").fetchall()
    assert triggers == [('["cadence_due", "high_risk"]',), ("[]",), (None,)]


def test_postgres_rerun_leaves_exactly_one_copy(postgres_uri):  # noqa: F811
    eng = sa.create_engine(postgres_uri)
    with eng.begin() as c:
        c.exec_driver_sql("DROP TABLE IF EXISTS call_list, churn_scores")
    eng.dispose()
    _check_rerun(postgres_uri)
    _failing_rerun_leaves_old_rows(postgres_uri)
    eng = sa.create_engine(postgres_uri)
    with eng.connect() as c:
        rows = c.exec_driver_sql("SELECT run_date, churn_prob_90d FROM churn_scores "
                                 "WHERE customer_id = 'C1' ORDER BY run_date").fetchall()
        types = dict(c.exec_driver_sql(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'churn_scores'").fetchall())
    eng.dispose()
    assert rows == [(dt.date(2025, 11, 30), 0.5), (dt.date(2025, 12, 31), pytest.approx(0.6))]
    assert types["run_date"] == "date" and types["churn_prob_90d"] == "double precision"


def test_new_column_is_added(tmp_path):
    uri = f"sqlite:///{tmp_path / 'crm.db'}"
    write_back(results(), uri, run_date="2025-11-30")
    more = results()
    more["call_list"] = more["call_list"].with_columns(pl.lit("phone").alias("channel"))
    write_back(more, uri, run_date="2025-12-31")
    eng = sa.create_engine(uri)
    with eng.connect() as c:
        got = c.exec_driver_sql("SELECT run_date, channel FROM call_list WHERE customer_id='C1' "
                                "ORDER BY run_date").fetchall()
    eng.dispose()
    assert got == [("2025-11-30", None), ("2025-12-31", "phone")]


def test_bad_names_and_dates(tmp_path):
    uri = f"sqlite:///{tmp_path / 'crm.db'}"
    with pytest.raises(ValueError, match="not usable"):
        write_back({"call list": results()["call_list"]}, uri, run_date="2025-12-31")
    clash = results()["call_list"].with_columns(pl.lit(dt.date(2025, 1, 1)).alias("run_date"))
    with pytest.raises(ValueError, match="3 row\\(s\\) not dated 2025-12-31"):
        write_back({"call_list": clash}, uri, run_date="2025-12-31")
    with pytest.raises(ValueError, match="not a database"):
        write_back(results(), tmp_path / "folder", run_date="2025-12-31")
