"""Whole-table checks of issue 9: broken days must not pass as smaller days."""

from __future__ import annotations

import polars as pl
import pytest

from crmkit import InputError, QualityGateError
from crmkit.datasets import make_bank
from crmkit.features import build_features
from crmkit.schema import (TABLES, QualityGate, check_required_tables, complete_tables,
                           empty_table, quality_gate, validate, volume_breaches)

AS_OF = "2025-12-31"
BANK = make_bank(1500, seed=0, as_of=AS_OF)
COUNTS = {name: frame.height for name, frame in BANK.items()}


def _spoil(frame: pl.DataFrame, share: float) -> pl.DataFrame:
    """Null the amount of the first ``share`` of the rows."""
    n = int(frame.height * share)
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) < n).then(None).otherwise(pl.col("amount")).alias("amount"))


def test_a_clean_day_passes_and_reports_its_counts():
    facts = quality_gate(validate(BANK, as_of=AS_OF), previous_counts=COUNTS)
    assert facts["tables"]["transactions"] == {"rows": COUNTS["transactions"],
                                               "clean": COUNTS["transactions"], "rejected": 0,
                                               "rejected_share": 0.0}
    assert facts["gate"]["max_rejected_share"] == 0.01


def test_61_percent_rejected_fails_naming_table_share_and_top_reasons():
    # before: 61% of rows quarantined and the run exited 0
    tx = _spoil(BANK["transactions"], 0.61)
    res = validate({**BANK, "transactions": tx}, as_of=AS_OF, mode="quarantine")
    with pytest.raises(QualityGateError) as err:
        quality_gate(res)
    (breach,) = err.value.breaches
    assert (breach.table, breach.check, breach.limit) == ("transactions", "rejected_share", 0.01)
    assert breach.value == pytest.approx(0.61, abs=1e-4)
    assert str(breach).startswith(f"transactions: 61.0% of {tx.height:,} rows rejected (limit 1%); "
                                  "top reasons: amount: null values (")
    assert "e.g. row 0: transaction_id='T000000001'" in str(breach)
    # a per-table limit can allow it
    quality_gate(res, gate={"table_max_rejected_share": {"transactions": 0.7}})


def test_just_under_the_limit_passes_and_just_over_fails():
    ok = validate({**BANK, "transactions": _spoil(BANK["transactions"], 0.0099)}, as_of=AS_OF,
                  mode="quarantine")
    quality_gate(ok)
    over = validate({**BANK, "transactions": _spoil(BANK["transactions"], 0.0101)}, as_of=AS_OF,
                    mode="quarantine")
    with pytest.raises(QualityGateError, match="transactions: 1.0% of"):
        quality_gate(over)


def test_every_row_rejected_names_the_cause():
    # before: 100% rejected gave a failure message unrelated to the cause
    tx = _spoil(BANK["transactions"], 1.0)
    res = validate({**BANK, "transactions": tx}, as_of=AS_OF, mode="quarantine")
    with pytest.raises(QualityGateError) as err:
        quality_gate(res, gate={"max_rejected_share": 1.0})
    (breach,) = err.value.breaches
    assert breach.check == "no_clean_rows"
    assert f"no row of {tx.height:,} passed validation" in str(breach)
    assert "amount: null values" in str(breach)


def test_row_counts_against_the_previous_run():
    half = BANK["transactions"].head(COUNTS["transactions"] // 2)
    res = validate({**BANK, "transactions": half}, as_of=AS_OF)
    with pytest.raises(QualityGateError) as err:
        quality_gate(res, previous_counts=COUNTS)
    (breach,) = err.value.breaches
    assert (breach.table, breach.check) == ("transactions", "row_count")
    assert "50.0% fewer than the previous run's" in str(breach)
    # a vanished table counts as 0 rows; small changes and new tables pass
    res = validate({k: v for k, v in BANK.items() if k != "contacts"}, as_of=AS_OF)
    with pytest.raises(QualityGateError, match="contacts: 0 rows, 100.0% fewer"):
        quality_gate(res, previous_counts=COUNTS)
    assert volume_breaches({"complaints": 10}, {"complaints": 40}) == []  # within 100 rows
    assert volume_breaches({"x": 10_000}, {}) == []
    assert volume_breaches(COUNTS, {"transactions": 1}, QualityGate(volume_tolerance=None)) == []


def test_required_tables_absent_or_empty_are_named():
    # before: an empty or absent transactions table failed deep inside a model
    no_tx = {k: v for k, v in BANK.items() if k != "transactions"}
    with pytest.raises(InputError, match="required table 'transactions' is absent from the "
                                         "input \\(it has: assignments, balances"):
        check_required_tables(no_tx)
    with pytest.raises(InputError, match="The required table 'transactions' has no rows."):
        check_required_tables({**BANK, "transactions": empty_table("transactions")})
    check_required_tables(BANK)


def test_absent_optional_tables_mean_none_the_same_as_empty_ones():
    # before: an absent holdings table (documented as "none") failed inside a model
    partial = {k: v for k, v in BANK.items() if k in ("customers", "transactions")}
    full = complete_tables(validate(partial, as_of=AS_OF).tables)
    assert list(full) == list(TABLES)
    assert full["holdings"].height == 0 and full["holdings"].schema == empty_table("holdings").schema
    explicit = {**partial, **{k: empty_table(k) for k in TABLES if k not in partial}}
    a = build_features(full, as_of=AS_OF)
    b = build_features(validate(explicit, as_of=AS_OF).tables, as_of=AS_OF)
    assert a.equals(b)
    assert a["financial_assets"].fill_null(0).sum() == 0


def test_gate_settings_are_checked():
    from crmkit._config import parse_config
    from crmkit.exceptions import ConfigError

    with pytest.raises(ConfigError, match="Did you mean 'transactions'"):
        parse_config(QualityGate, {"table_max_rejected_share": {"transaction": 0.1}}, "gate")
    with pytest.raises(ConfigError, match="max_rejected_share"):
        parse_config(QualityGate, {"max_rejected_share": 1.5}, "gate")


def test_a_runner_that_validates_in_shards_gets_the_same_gate():
    tx = _spoil(BANK["transactions"], 0.05)
    whole = validate({**BANK, "transactions": tx}, as_of=AS_OF, mode="quarantine")
    ids = BANK["customers"]["customer_id"]
    halves = [set(ids[: ids.len() // 2]), set(ids[ids.len() // 2:])]
    rows: dict[str, int] = {}
    rejected: dict[str, int] = {}
    problems = []
    for part in halves:
        shard = {name: frame.filter(pl.col("customer_id").is_in(list(part)))
                 if "customer_id" in frame.columns else frame
                 for name, frame in {**BANK, "transactions": tx}.items() if name != "balances"}
        res = validate(shard, as_of=AS_OF, mode="quarantine")
        for name, n in res.counts.items():
            if name in ("products", "managers") and name in rows:
                continue  # shared tables counted once
            rows[name] = rows.get(name, 0) + n
            rejected[name] = rejected.get(name, 0) + (res.rejected[name].height
                                                      if name in res.rejected else 0)
        problems += res.problems
    with pytest.raises(QualityGateError) as from_counts:
        quality_gate(rows=rows, rejected=rejected, problems=problems)
    with pytest.raises(QualityGateError) as from_result:
        quality_gate(whole)
    assert [b.value for b in from_counts.value.breaches] == [
        b.value for b in from_result.value.breaches]
    assert "amount: null values" in str(from_counts.value)
