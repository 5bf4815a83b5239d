"""Staging inputs into customer shards: bounded memory and exactly the checks of one pass.

Validating shard by shard must reject the same rows, for the same reasons, as one
``validate`` over the whole input, whatever the shard count and whether balances are
routed through the in-memory account map or through hash buckets on disk. Duplicate
keys held by two customers (so usually by two shards) are the case a per-shard check
alone would miss.
"""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit.datasets import make_bank
from crmkit.features import shard_of
from crmkit.pipeline._shards import InputSource, stage_inputs
from crmkit.schema import validate

AS_OF = "2025-12-31"
SHARDED = ("customers", "holdings", "balances", "transactions", "assignments", "contacts",
           "complaints")


@pytest.fixture(scope="module")
def bank():
    return make_bank(120, seed=3, years=1)


def _rejected_whole(tables) -> dict[str, set]:
    res = validate(tables, as_of=AS_OF, mode="quarantine")
    return {n: set(zip(f["_row"].to_list(), f["_reason"].to_list()))
            for n, f in res.rejected.items() if f.height}


def _rejected_by_shard(tables, n_shards: int, root, **routing) -> dict[str, set]:
    staged = stage_inputs(InputSource.from_frames(tables), n_shards, root, **routing)
    seen: dict[str, set] = {}
    for i in range(n_shards):
        raw = {name: staged.read(name, i) for name in staged.sharded}
        raw.update(staged.shared)
        res = validate(raw, as_of=AS_OF, mode="quarantine")
        for name, frame in res.rejected.items():
            seen.setdefault(name, set()).update(
                zip(frame["_row"].to_list(), frame["_reason"].to_list()))
    return {n: rows for n, rows in seen.items() if rows}


def _with_duplicates(bank, txn_pairs, account_pairs):
    """Copy keys from one row onto another: (source, target) index pairs."""
    tables = dict(bank)
    txn = tables["transactions"]["transaction_id"].to_list()
    for src, dst in txn_pairs:
        txn[dst % len(txn)] = txn[src % len(txn)]
    tables["transactions"] = tables["transactions"].with_columns(
        pl.Series("transaction_id", txn))
    acc = tables["holdings"]["account_id"].to_list()
    for src, dst in account_pairs:
        acc[dst % len(acc)] = acc[src % len(acc)]
    tables["holdings"] = tables["holdings"].with_columns(pl.Series("account_id", acc))
    return tables


def test_bucketed_balance_routing_equals_the_in_memory_map(bank, tmp_path):
    """Beyond ``owner_map_rows`` holdings, balances go through hash buckets on disk: every
    shard gets the same balance rows, in input order."""
    mem = stage_inputs(InputSource.from_frames(bank), 5, tmp_path / "mem")
    disk = stage_inputs(InputSource.from_frames(bank), 5, tmp_path / "disk",
                        owner_map_rows=10, bucket_rows=37)
    assert "balances" in disk.resorted and "balances" not in mem.resorted
    total = 0
    for i in range(5):
        a, b = mem.read("balances", i), disk.read("balances", i)
        assert a.equals(b)
        total += a.height
    assert total == bank["balances"].height
    assert mem.facts == disk.facts
    assert not (tmp_path / "disk" / ".owners").exists()
    assert not (tmp_path / "disk" / ".balances.buckets").exists()


def test_balances_routed_by_account_hash_equal_routing_by_the_ids(bank, tmp_path, monkeypatch):
    """Balances find their shard by a 64-bit hash of the account id (an integer join);
    the ids themselves route them when two held accounts share a hash. Both give every
    shard the same rows, and balances of unknown or missing accounts are rejected as in
    one pass."""
    import crmkit.pipeline._shards as shards

    balances = bank["balances"]
    odd = balances.head(3).with_columns(
        pl.Series("account_id", ["NO-SUCH-ACCOUNT", None, "ANOTHER-UNKNOWN"]))
    tables = {**bank, "balances": pl.concat([balances, odd])}
    routes = []  # per balance batch: routed by hash (True) or by the ids (False)
    real_join = shards._join_shard
    monkeypatch.setattr(shards, "_join_shard", lambda b, o, h=None: routes.append(h is not None)
                        or real_join(b, o, h))
    hashed = stage_inputs(InputSource.from_frames(tables), 4, tmp_path / "hashed")
    assert routes and all(routes)
    # every held account sharing one hash value: routing falls back to the ids
    routes.clear()
    monkeypatch.setattr(shards, "_account_hash", lambda: pl.lit(7, pl.UInt64).alias("h"))
    by_ids = stage_inputs(InputSource.from_frames(tables), 4, tmp_path / "ids")
    assert routes and not any(routes)
    for i in range(4):
        assert hashed.read("balances", i).equals(by_ids.read("balances", i))
    monkeypatch.undo()
    whole = _rejected_whole(tables)
    assert len(whole["balances"]) == 3
    assert _rejected_by_shard(tables, 4, tmp_path / "check") == whole


def test_a_key_shared_by_two_customers_is_rejected_across_shards(bank, tmp_path):
    """A transaction id and an account id each copied onto another customer's row: the
    later row is rejected as a duplicate exactly as in one pass, shards or not."""
    txn = bank["transactions"]
    holdings = bank["holdings"]
    # rows of two different customers, far apart
    t_src, t_dst = 0, next(i for i, c in enumerate(txn["customer_id"])
                           if c != txn["customer_id"][0])
    a_src, a_dst = 0, next(i for i, c in enumerate(holdings["customer_id"])
                           if c != holdings["customer_id"][0])
    tables = _with_duplicates(bank, [(t_src, t_dst)], [(a_src, a_dst)])
    owners = [txn["customer_id"][t_src], txn["customer_id"][t_dst],
              holdings["customer_id"][a_src], holdings["customer_id"][a_dst]]
    shards = [shard_of(c, 4) for c in owners]
    assert shards[0] != shards[1] and shards[2] != shards[3]  # the case a shard cannot see
    whole = _rejected_whole(tables)
    assert any("duplicate key transaction_id" in r for _, r in whole["transactions"])
    assert any("duplicate key account_id" in r for _, r in whole["holdings"])
    for n in (1, 4, 7):
        assert _rejected_by_shard(tables, n, tmp_path / f"n{n}") == whole
    assert _rejected_by_shard(tables, 4, tmp_path / "buckets", owner_map_rows=10,
                              bucket_rows=50) == whole


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_shards=st.integers(1, 6),
       buckets=st.booleans(),
       txn_pairs=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), max_size=6),
       account_pairs=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)),
                              max_size=4))
def test_shard_checks_equal_one_pass_for_random_duplicates(bank, tmp_path_factory, n_shards,
                                                           buckets, txn_pairs, account_pairs):
    tables = _with_duplicates(bank, txn_pairs, account_pairs)
    routing = {"owner_map_rows": 5, "bucket_rows": 40} if buckets else {}
    root = tmp_path_factory.mktemp("stage")
    assert _rejected_by_shard(tables, n_shards, root, **routing) == _rejected_whole(tables)


def _hashes(manifest: dict) -> dict[str, str]:
    return {rel: facts["sha256"] for rel, facts in manifest["outputs"].items()}


def test_inputs_split_by_shard_are_read_in_place(tmp_path):
    """``<table>/shard=K/`` folders: the run uses their shard count, copies no rows, and
    writes the same outputs (and input fingerprints) as from the unsplit files."""
    from crmkit.io import write_tables
    from crmkit.pipeline import run_pipeline, write_partitioned
    from crmkit.pipeline._sources import open_source

    bank = make_bank(400, seed=5, years=1)
    write_tables(bank, tmp_path / "flat", format="parquet")
    write_partitioned(bank, tmp_path / "split", 4)
    assert sorted(p.name for p in (tmp_path / "split" / "balances").iterdir()) == [
        "shard=0", "shard=1", "shard=2", "shard=3"]

    def run(src, out, n_shards):
        cfg = {"run": {"output_dir": str(tmp_path / out), "report": False,
                       "n_shards": n_shards}, "inputs": {"source": str(tmp_path / src)}}
        return run_pipeline(cfg, as_of=AS_OF).manifest

    flat, split = run("flat", "a", 4), run("split", "b", "auto")
    assert split["run"]["n_shards"] == 4
    assert _hashes(flat) == _hashes(split)
    assert flat["inputs"]["tables"] == split["inputs"]["tables"]

    # nothing was staged: the shard reads come from the input files themselves
    class Cfg:
        source, format = str(tmp_path / "split"), None
    source = open_source(Cfg, tmp_path, None)
    staged = stage_inputs(source, 4, tmp_path / "stage")
    assert set(staged.in_place) == {"customers", "holdings", "balances", "transactions",
                                    "assignments", "contacts", "complaints"} & set(source.names)
    assert not (tmp_path / "stage" / "transactions").exists()


def test_a_row_in_the_wrong_shard_folder_fails_the_run(tmp_path):
    from crmkit import SchemaError
    from crmkit.pipeline import run_pipeline, write_partitioned

    bank = make_bank(200, seed=6, years=1)
    out = write_partitioned(bank, tmp_path / "split", 3)
    wrong = out / "transactions" / "shard=0" / "part-00000.parquet"
    moved = pl.read_parquet(out / "transactions" / "shard=1" / "part-00000.parquet").head(2)
    pl.concat([pl.read_parquet(wrong), moved]).write_parquet(wrong)
    cfg = {"run": {"output_dir": str(tmp_path / "runs"), "report": False},
           "inputs": {"source": str(out)}}
    with pytest.raises(SchemaError, match=r"transactions: 2 row\(s\) in folder shard=0 "
                                          r"belong to other shards"):
        run_pipeline(cfg, as_of=AS_OF)


def test_a_delta_table_folder_is_refused_not_read_file_by_file(tmp_path):
    from crmkit import ConfigError
    from crmkit.pipeline import run_pipeline, write_partitioned

    out = write_partitioned(make_bank(60, seed=1, years=1), tmp_path / "bank", 2)
    (out / "transactions" / "_delta_log").mkdir()
    cfg = {"run": {"output_dir": str(tmp_path / "runs"), "report": False},
           "inputs": {"source": str(out)}}
    with pytest.raises(ConfigError, match="is a Delta table"):
        run_pipeline(cfg, as_of=AS_OF)


def test_a_read_error_mid_table_stops_the_staging_with_that_error(bank, tmp_path, monkeypatch):
    """Batches are read ahead on a thread: an error there (a truncated file) must reach
    the caller as itself, not hang the staging or be lost, and leave no file open."""
    import crmkit.pipeline._shards as shards

    monkeypatch.setattr(shards, "BATCH_ROWS", 500)  # several batches per table
    source = InputSource.from_frames(bank)

    def broken(name):
        for i, batch in enumerate(source.batches(name)):
            if name == "transactions" and i == 1:
                raise OSError("truncated Parquet file: transactions/part-00001.parquet")
            yield batch

    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda *a, **k: opened.append(real_open(*a, **k))
                        or opened[-1])
    with pytest.raises(OSError, match="truncated Parquet file"):
        stage_inputs(InputSource(source.names, broken, source.nbytes), 3, tmp_path / "staged")
    assert opened and all(f.closed for f in opened)  # the key hash files of transactions
    assert not (tmp_path / "staged" / ".transactions.keys").exists()
