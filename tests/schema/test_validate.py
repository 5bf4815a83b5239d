"""Every bad input of the foundation issue, in strict and quarantine mode."""

import datetime as dt

import polars as pl
import pytest

from crmkit import SchemaError, validate
from crmkit.datasets import make_bank
from crmkit.schema import TABLES, empty_table

AS_OF = "2025-12-31"
CLEAN = make_bank(200, seed=5, as_of=AS_OF, years=1)
MESSY = make_bank(200, seed=5, as_of=AS_OF, years=1, messy=True)


def _customers(**cols):
    base = {"customer_id": ["a", "b", "c"], "branch_id": ["B1"] * 3,
            "first_seen": [dt.date(2024, 1, 1)] * 3}
    base.update(cols)
    return pl.DataFrame(base)


def test_clean_bank_passes_and_keeps_every_row():
    res = validate(CLEAN, as_of=AS_OF)
    assert res.ok and res.report() == "no problems"
    for name, frame in CLEAN.items():
        assert res.tables[name].height == frame.height, name


def test_missing_columns_are_all_named_at_once_even_in_quarantine():
    tables = {"customers": _customers().drop("branch_id", "first_seen"),
              "transactions": pl.DataFrame({"customer_id": ["a"]})}
    for mode in ("strict", "quarantine"):
        with pytest.raises(SchemaError) as err:
            validate(tables, mode=mode)
        text = str(err.value)
        for needle in ("customers.branch_id", "customers.first_seen", "transactions.timestamp",
                       "transactions.amount"):
            assert needle in text
        assert len(err.value.problems) == 4


def test_unknown_table_suggests_the_closest():
    with pytest.raises(SchemaError, match="did you mean 'transactions'"):
        validate({"customers": _customers(), "transaction": pl.DataFrame({"x": [1]})},
                 mode="quarantine")


def test_customers_table_is_required():
    with pytest.raises(SchemaError, match="customers table is required"):
        validate({"products": empty_table("products")})


@pytest.mark.parametrize("mode", ["strict", "quarantine"])
def test_messy_bank_reports_every_problem(mode):
    if mode == "strict":
        with pytest.raises(SchemaError) as err:
            validate(MESSY, as_of=AS_OF, mode=mode)
        problems = err.value.problems
    else:
        res = validate(MESSY, as_of=AS_OF, mode=mode)
        problems = res.problems
    found = {(p.table, p.column, p.check.split(" (")[0]) for p in problems}
    expected = {
        ("customers", "customer_id", "duplicate key customer_id"),
        ("customers", "customer_id", "null values"),
        ("customers", "first_seen", "values that cannot be read as a date in the accepted "
                                    "format ISO 8601 date: YYYY-MM-DD or YYYYMMDD"),
        ("transactions", "amount", "non-finite values"),
        ("transactions", "timestamp", f"dated after as_of {AS_OF}"),
        ("transactions", "customer_id", "references unknown customers.customer_id"),
        ("transactions", "customer_id", "null values"),
        ("transactions", "product_id", "references unknown products.product_id"),
        ("transactions", "transaction_id", "duplicate key transaction_id"),
        ("holdings", "product_id", "references unknown products.product_id"),
        ("holdings", "closed", "closed before opened"),
        ("balances", "balance", "non-finite values"),
        ("balances", "account_id", "references unknown holdings.account_id"),
        ("managers", "capacity", "values below 0"),
    }
    missing = expected - found
    assert not missing, missing
    for p in problems:
        assert p.n_rows >= 1 and 1 <= len(p.examples) <= 5, p
        assert p.table in TABLES


def test_quarantine_loses_nothing():
    res = validate(MESSY, as_of=AS_OF, mode="quarantine")
    for name, frame in MESSY.items():
        rejected = res.rejected.get(name, pl.DataFrame())
        assert res.tables[name].height + rejected.height == frame.height, name
    tx = res.rejected["transactions"]
    assert set(tx["transaction_id"].drop_nulls()) >= {"TX_NAN", "TX_INF", "TX_FUTURE", "TX_UNKNOWN",
                                                     "TX_NOPRODUCT", "TX_NULLCUST"}
    reasons = dict(zip(tx["transaction_id"], tx["_reason"]))
    assert reasons["TX_NAN"] == "amount: non-finite values (NaN or infinity)"
    assert reasons["TX_FUTURE"].startswith("timestamp: dated after as_of")
    # the clean part is exactly the clean bank
    assert res.tables["transactions"].height == CLEAN["transactions"].height
    # rows rejected keep their original values and their input row number
    assert "_row" in tx.columns and tx["_row"].is_sorted()


def test_rejected_customer_takes_no_one_else_down_but_unknown_refs_do():
    customers = _customers(customer_id=["a", None, "c"])
    tx = pl.DataFrame({"customer_id": ["a", "c", "zz"], "timestamp": [dt.date(2024, 2, 1)] * 3,
                       "amount": [1.0, 2.0, 3.0]})
    res = validate({"customers": customers, "transactions": tx}, mode="quarantine")
    assert res.tables["transactions"]["customer_id"].to_list() == ["a", "c"]
    assert res.rejected["transactions"]["_reason"].to_list() == [
        "customer_id: references unknown customers.customer_id"]


def test_types_are_cast_and_bad_values_named():
    customers = _customers(first_seen=["2024-01-01", "20240102", "yesterday"],
                           risk_level=["1", "9", "x"])
    with pytest.raises(SchemaError) as err:
        validate({"customers": customers})
    text = str(err.value)
    assert ("customers.first_seen: values that cannot be read as a date in the accepted format "
            "ISO 8601 date: YYYY-MM-DD or YYYYMMDD (1 row; e.g. row 2: customer_id='c', "
            "first_seen='yesterday')") in text
    assert "customers.risk_level: values that cannot be read as a whole number" in text
    assert "customers.risk_level: values above 5" in text
    res = validate({"customers": customers.head(2).with_columns(pl.lit("3").alias("risk_level"))})
    assert res.tables["customers"].schema["first_seen"] == pl.Date
    assert res.tables["customers"]["first_seen"].to_list() == [dt.date(2024, 1, 1), dt.date(2024, 1, 2)]


def test_examples_are_at_most_five():
    customers = _customers(customer_id=["a"] * 3).vstack(
        pl.DataFrame({"customer_id": ["a"] * 7, "branch_id": ["B1"] * 7,
                      "first_seen": [dt.date(2024, 1, 1)] * 7}))
    with pytest.raises(SchemaError) as err:
        validate({"customers": customers})
    (problem,) = err.value.problems
    assert problem.n_rows == 9 and len(problem.examples) == 5


def test_a_wholly_wrong_type_is_structural():
    customers = _customers(first_seen=[[1], [2], [3]])
    with pytest.raises(SchemaError, match="has type List.Int64., which cannot be read as a date"):
        validate({"customers": customers}, mode="quarantine")


def test_accepts_every_input_type(as_input):
    res = validate({k: as_input(v) for k, v in CLEAN.items()}, as_of=AS_OF)
    assert res.tables["transactions"].equals(validate(CLEAN).tables["transactions"])


def test_optional_columns_get_defaults():
    res = validate({"customers": _customers()})
    row = res.tables["customers"].row(0, named=True)
    assert row["opt_out_sms"] is False and row["birth_year"] is None


def test_problems_frame_lists_every_problem():
    res = validate(MESSY, as_of=AS_OF, mode="quarantine")
    frame = res.problems_frame()
    assert frame.height == len(res.problems)
    assert frame["n_rows"].min() >= 1


def test_a_result_prints_one_line_not_its_tables():
    """Reproduction (issue 10): print(validation_result) dumped all nine tables."""
    res = validate(MESSY, as_of=AS_OF, mode="quarantine")
    text = repr(res)
    assert "\n" not in text and str(res) == text and len(text) < 400
    assert text.startswith(f"<ValidationResult: {len(res.problems)} problems; customers ")
    for name, count in res.counts.items():
        bad = res.rejected[name].height if name in res.rejected else 0
        assert f"{name} {count:,} rows" + (f" ({bad:,} rejected)" if bad else "") in text
    assert repr(validate(CLEAN, as_of=AS_OF)).startswith("<ValidationResult: ok; ")


def test_row_numbers_of_a_split_input_are_kept():
    part = _customers(customer_id=["a", None, "c"]).with_columns(
        pl.Series("__row", [10, 11, 12]))
    res = validate({"customers": part}, mode="quarantine")
    assert res.rejected["customers"]["_row"].to_list() == [11]
    assert res.rejected["customers"]["_row"].dtype == pl.Int64
    assert res.problems[0].examples == ("row 11: customer_id=None",)
    assert "__row" not in res.tables["customers"].columns
    assert "__row" not in res.rejected["customers"].columns
