"""Issue 9's reproductions of silently wrong dates, amounts and cross-table facts, each now
either read right or rejected with the table, column, count and examples named."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from crmkit import QualityGateError, SchemaError
from crmkit.datasets import make_bank
from crmkit.features import build_features
from crmkit.io import read_tables, write_tables
from crmkit.schema import (MAX_EXACT_AMOUNT, MAX_EXACT_SUM, Contract, quality_gate,
                           validate)

AS_OF = "2025-12-31"
BANK = make_bank(1500, seed=0, as_of=AS_OF)
TX = BANK["transactions"]


def _customers(first_seen=dt.date(2024, 1, 1)):
    return pl.DataFrame({"customer_id": ["a", "b"], "branch_id": ["B1", "B1"],
                         "first_seen": [first_seen] * 2})


def _tx(timestamps, amounts=None, customers=None):
    n = len(timestamps)
    return pl.DataFrame({"transaction_id": [f"t{i}" for i in range(n)],
                         "customer_id": customers or ["a"] * n,
                         "timestamp": timestamps, "amount": amounts or [10.0] * n})


def _csv_round_trip(tmp_path, tables, **read):
    folder = tmp_path / "in"
    write_tables(tables, folder, format="csv")
    return read_tables(folder, **read)


# --- dates: one accepted format per column, never guessed -------------------------------

def test_a_first_row_in_day_first_form_does_not_decide_the_whole_column():
    # before: polars inferred %d/%m/%Y from row 0 and read the whole column with it
    stamps = ["01/02/2024", "2024-03-05T10:00:00", "2024-03-06 11:30:00", "2024-03-07"]
    res = validate({"customers": _customers(), "transactions": _tx(stamps)}, mode="quarantine")
    assert res.tables["transactions"]["timestamp"].to_list() == [
        dt.datetime(2024, 3, 5, 10), dt.datetime(2024, 3, 6, 11, 30), dt.datetime(2024, 3, 7)]
    (problem,) = res.problems
    assert (problem.table, problem.column, problem.n_rows) == ("transactions", "timestamp", 1)
    assert "accepted format ISO 8601" in problem.check
    assert problem.examples == ("row 0: transaction_id='t0', timestamp='01/02/2024'",)


def test_a_whole_us_file_is_rejected_by_default_and_read_right_when_declared(tmp_path):
    us = TX.with_columns(pl.col("timestamp").dt.strftime("%m/%d/%Y"))
    raw = _csv_round_trip(tmp_path, {**BANK, "transactions": us})
    # before: 20,657 of 55,363 rows passed quarantine with day and month swapped (exit 0)
    res = validate(raw, as_of=AS_OF, mode="quarantine")
    assert res.tables["transactions"].height == 0
    assert res.rejected["transactions"].height == TX.height
    with pytest.raises(QualityGateError) as err:
        quality_gate(res)
    text = str(err.value)
    assert f"transactions: 100.0% of {TX.height:,} rows rejected (limit 1%)" in text
    assert "timestamp: values that cannot be read as a timestamp in the accepted format" in text
    assert "transactions: no row of" in text
    with pytest.raises(SchemaError, match=f"transactions.timestamp: .* \\({TX.height} rows; "):
        validate(raw, as_of=AS_OF)

    contract = Contract(formats={"transactions.timestamp": "%m/%d/%Y"})
    raw = _csv_round_trip(tmp_path / "2", {**BANK, "transactions": us}, contract=contract)
    res = validate(raw, as_of=AS_OF, contract=contract)
    got = res.tables["transactions"]["timestamp"]
    assert got.dt.date().equals(TX["timestamp"].dt.date())  # not one day swapped


def test_utc_offsets_are_converted_to_the_contract_zone():
    stamps = ["2024-01-31T00:30:00+01:00", "2024-01-31T23:30:00Z", "2024-01-31T12:00:00-0500",
              "2024-01-31 08:00:00"]
    tables = {"customers": _customers(), "transactions": _tx(stamps)}
    utc = validate(tables).tables["transactions"]["timestamp"].to_list()
    assert utc == [dt.datetime(2024, 1, 30, 23, 30), dt.datetime(2024, 1, 31, 23, 30),
                   dt.datetime(2024, 1, 31, 17), dt.datetime(2024, 1, 31, 8)]
    shanghai = validate(tables, contract={"time_zone": "Asia/Shanghai"})
    assert shanghai.tables["transactions"]["timestamp"].dt.date().to_list() == [
        dt.date(2024, 1, 31), dt.date(2024, 2, 1), dt.date(2024, 2, 1), dt.date(2024, 1, 31)]
    # an aware Parquet/Arrow column is converted the same way
    aware = _tx([dt.datetime(2024, 1, 31, 23, 30)]).with_columns(
        pl.col("timestamp").dt.replace_time_zone("UTC"))
    got = validate({"customers": _customers(), "transactions": aware},
                   contract={"time_zone": "Asia/Shanghai"}).tables["transactions"]
    assert got["timestamp"].to_list() == [dt.datetime(2024, 2, 1, 7, 30)]


def test_a_bank_with_utc_offsets_is_read_whole_and_features_work(tmp_path):
    # before: every row rejected, then "RFMScorer.fit: no customer with a purchase"
    aware = TX.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S+01:00"))
    raw = _csv_round_trip(tmp_path, {**BANK, "transactions": aware})
    assert raw["transactions"].schema["timestamp"] == pl.String  # converted by validate only
    res = validate(raw, as_of=AS_OF, contract={"time_zone": "Europe/Paris"})
    assert res.ok
    want = TX["timestamp"].dt.replace_time_zone("Etc/GMT-1").dt.convert_time_zone(
        "Europe/Paris").dt.replace_time_zone(None)
    assert res.tables["transactions"]["timestamp"].equals(want)
    feats = build_features(res.tables, as_of=AS_OF)
    assert feats["txn_count_total"].sum() == TX.height


def test_basic_iso_dates_are_accepted_in_date_and_timestamp_columns_alike():
    # before: 20240131 passed in date columns and was rejected in timestamps
    res = validate({"customers": _customers("20240131"),
                    "transactions": _tx(["20240131", "20240201"])}, mode="quarantine")
    assert res.ok
    assert res.tables["customers"]["first_seen"].to_list() == [dt.date(2024, 1, 31)] * 2
    assert res.tables["transactions"]["timestamp"].to_list() == [dt.datetime(2024, 1, 31),
                                                                 dt.datetime(2024, 2, 1)]


def test_impossible_days_are_bad_rows_not_shifted():
    res = validate({"customers": _customers(), "transactions": _tx(["2025-02-30", "2024-02-29"])},
                   mode="quarantine")
    assert res.rejected["transactions"]["timestamp"].to_list() == ["2025-02-30"]


def test_configured_formats_are_checked_when_the_contract_is_made():
    from crmkit._config import parse_config
    from crmkit.exceptions import ConfigError

    with pytest.raises(ConfigError, match="does not give back a whole date"):
        parse_config(Contract, {"formats": {"customers.first_seen": "%m/%d"}}, "contract")
    with pytest.raises(ConfigError, match="Did you mean 'customers.first_seen'"):
        parse_config(Contract, {"formats": {"customers.first_sen": "%d.%m.%Y"}}, "contract")
    with pytest.raises(ConfigError, match="not a time zone"):
        parse_config(Contract, {"time_zone": "Mars/Olympus"}, "contract")
    c = Contract(formats={"customers.first_seen": "%d.%m.%Y"})
    res = validate({"customers": _customers("31.01.2024")}, contract=c)
    assert res.tables["customers"]["first_seen"].to_list() == [dt.date(2024, 1, 31)] * 2


# --- money: exact integer micro-units ---------------------------------------------------

def test_amounts_beyond_exact_micro_units_are_rejected_naming_rows():
    # before: two amounts of 5e12 gave txn_amount_total = -8.4e12 (int64 micro-units wrapped)
    tx = _tx(["2024-02-01", "2024-02-02", "2024-02-03"], [5e12, 5e12, 12.5])
    res = validate({"customers": _customers(), "transactions": tx}, mode="quarantine")
    problem = next(p for p in res.problems if "range" in p.check)
    assert (problem.table, problem.column, problem.n_rows) == ("transactions", "amount", 2)
    assert problem.examples[0] == "row 0: transaction_id='t0', amount=5000000000000.0"
    feats = build_features(res.tables, as_of="2024-12-31")
    assert feats.filter(customer_id="a")["txn_amount_total"].item() == 12.5
    # before: 1e13 passed validation and crashed the features step
    with pytest.raises(SchemaError, match=r"transactions.amount: values outside the contract's "
                                          r"range \[-9,007,199,254.74, 9,007,199,254.74\]"):
        validate({"customers": _customers(), "transactions": _tx(["2024-02-01"], [1e13])})


def test_the_largest_exact_amount_passes_and_sums_exactly():
    tx = _tx(["2024-02-01", "2024-02-02"], [MAX_EXACT_AMOUNT, -MAX_EXACT_AMOUNT + 1])
    res = validate({"customers": _customers(), "transactions": tx})
    feats = build_features(res.tables, as_of="2024-12-31")
    assert feats.filter(customer_id="a")["txn_amount_total"].item() == 1.0


def test_a_customer_whose_amounts_would_wrap_is_rejected_whole():
    n = int(MAX_EXACT_SUM // 9e9) + 2  # each amount in range, their sum is not
    tx = _tx(["2024-02-01"] * (n + 1), [9e9] * n + [3.0], ["a"] * n + ["b"])
    res = validate({"customers": _customers(), "transactions": tx}, mode="quarantine")
    (problem,) = res.problems
    assert problem.n_rows == n and "add up to more than 9.223e+12" in problem.check
    assert "customer_id='a'" in problem.examples[0]
    assert res.tables["transactions"]["customer_id"].to_list() == ["b"]
    build_features(res.tables, as_of="2024-12-31")  # no overflow left


def test_money_ranges_are_configurable_but_never_beyond_exact():
    from crmkit._config import parse_config
    from crmkit.exceptions import ConfigError

    c = Contract(amount_range=[-1e6, 1e6])
    res = validate({"customers": _customers(), "transactions": _tx(["2024-02-01"] * 2,
                                                                  [2e6, 5.0])},
                   contract=c, mode="quarantine")
    assert res.rejected["transactions"]["_reason"].to_list() == [
        "amount: values outside the contract's range [-1,000,000.00, 1,000,000.00]"]
    with pytest.raises(ConfigError, match="no exact integer micro-units"):
        parse_config(Contract, {"amount_range": [-1e13, 1e13]}, "contract")


# --- cross-table date rules -------------------------------------------------------------

def _accounts():
    products = pl.DataFrame({"product_id": ["DEP", "LOAN"], "category": ["deposit", "loan"],
                             "risk_rating": [1, 3]})
    holdings = pl.DataFrame({"account_id": ["A1", "A2"], "customer_id": ["a", "a"],
                             "product_id": ["DEP", "LOAN"],
                             "opened": [dt.date(2024, 3, 1), dt.date(2024, 3, 1)]})
    return products, holdings


def test_nothing_of_a_customer_before_first_seen_and_no_balance_before_opening():
    products, holdings = _accounts()
    early = holdings.head(1).with_columns(pl.lit("A0").alias("account_id"),
                                  pl.lit(dt.date(2023, 6, 1)).alias("opened"))
    balances = pl.DataFrame({"account_id": ["A1", "A1", "A2", "A2"],
                             "date": [dt.date(2024, 2, 29), dt.date(2024, 3, 31),
                                      dt.date(2024, 3, 31), dt.date(2024, 4, 30)],
                             "balance": [10.0, -5.0, -1000.0, 20.0]})
    tx = _tx(["2023-12-31T23:59:59", "2024-01-01T00:00:00"])
    contacts = pl.DataFrame({"customer_id": ["a", "b"], "date": [dt.date(2023, 5, 1),
                                                                dt.date(2024, 5, 1)],
                             "kind": ["call", "sms"]})
    res = validate({"customers": _customers(), "products": products,
                    "holdings": pl.concat([holdings, early]), "balances": balances,
                    "transactions": tx, "contacts": contacts}, mode="quarantine")
    reasons = {(p.table, p.column, p.check): p.n_rows for p in res.problems}
    assert reasons == {
        ("holdings", "opened", "dated before the customer's first_seen"): 1,
        ("transactions", "timestamp", "dated before the customer's first_seen"): 1,
        ("contacts", "date", "dated before the customer's first_seen"): 1,
        ("balances", "date", "dated before the account was opened"): 1,
        ("balances", "balance",
         "negative balance on a product that is not credit (loan, mortgage, card)"): 1,
    }
    # the loan may be negative; the deposit may not
    assert res.tables["balances"]["balance"].to_list() == [-1000.0, 20.0]
    assert res.rejected["balances"]["_reason"].to_list() == [
        "date: dated before the account was opened",
        "balance: negative balance on a product that is not credit (loan, mortgage, card)"]
    off = validate({"customers": _customers(), "transactions": tx},
                   contract={"cross_table_rules": False})
    assert off.ok


def test_the_sample_bank_keeps_every_cross_table_rule():
    res = validate(BANK, as_of=AS_OF)
    assert res.ok, res.report()


@pytest.mark.parametrize("fmt", ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%6f",
                                 "%Y-%m-%dT%H:%M:%S.%3f", "%Y-%m-%dT%H:%M:%S.%9f",
                                 "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S+00:00",
                                 "%Y-%m-%d %H:%M:%SZ"])
def test_every_iso_form_reads_the_same_instants(fmt):
    text = TX.head(3000).with_columns(pl.col("timestamp").dt.strftime(fmt))
    got = validate({"customers": BANK["customers"], "transactions": text}).tables
    assert got["transactions"]["timestamp"].equals(TX["timestamp"].head(3000))


def test_a_column_mixing_iso_forms_reads_each_value_by_its_own_form():
    forms = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%6f", "%Y-%m-%dT%H:%M:%S+00:00"]
    head = TX.head(3000)
    text = head.with_columns(
        pl.when(pl.int_range(pl.len()) % 3 == 0).then(pl.col("timestamp").dt.strftime(forms[0]))
        .when(pl.int_range(pl.len()) % 3 == 1).then(pl.col("timestamp").dt.strftime(forms[1]))
        .otherwise(pl.col("timestamp").dt.strftime(forms[2])).alias("timestamp"))
    got = validate({"customers": BANK["customers"], "transactions": text}).tables
    assert got["transactions"]["timestamp"].equals(head["timestamp"])
