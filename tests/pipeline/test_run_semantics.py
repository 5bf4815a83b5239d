"""Run semantics a scheduler relies on: one run per date, kill -9 and rerun, no-op reruns,
exit codes, JSON log lines, one-line warnings (the CLI as a subprocess, on files)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crmkit.cli import EXIT_BAD_INPUT, EXIT_LOCKED, main
from crmkit.io import write_tables

ROOT = Path(__file__).resolve().parents[2]


def _crmkit(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "crmkit.cli", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope="module")
def bank_dir(tmp_path_factory):
    from crmkit.datasets import make_bank

    folder = tmp_path_factory.mktemp("bank")
    write_tables(make_bank(1500, seed=4), folder / "data")
    return folder / "data"


def _write_config(folder: Path, data: Path, n_shards: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "nightly.toml"
    cfg.write_text(f'[run]\noutput_dir = "runs"\nreport = false\nn_shards = {n_shards}\n'
                   f'[inputs]\nsource = "{data}"\n')
    return cfg


def _outputs(run_dir: Path) -> dict[str, str]:
    return {k: v["sha256"] for k, v in
            json.loads((run_dir / "manifest.json").read_text())["outputs"].items()}


def test_two_runs_for_one_date_exactly_one_writes(tmp_path, bank_dir):
    cfg = _write_config(tmp_path, bank_dir, n_shards=60)  # slow enough to overlap
    lock = tmp_path / "runs" / ".2025-12-31.lock"
    first = _crmkit("run", str(cfg), "--as-of", "2025-12-31", "--no-progress")
    deadline = time.time() + 120
    while time.time() < deadline:  # until the first run holds the date's lock
        if lock.exists() and lock.read_text().strip() == str(first.pid):
            break
        time.sleep(0.05)
    second = _crmkit("run", str(cfg), "--as-of", "2025-12-31", "--no-progress")
    out2, err2 = second.communicate(timeout=300)
    out1, err1 = first.communicate(timeout=600)
    assert first.returncode == 0, err1
    assert "run 2025-12-31" in out1 and "run 2025-12-31" not in out2
    assert second.returncode == EXIT_LOCKED, err2
    assert "Another run for 2025-12-31 is under way" in err2
    assert (tmp_path / "runs" / "2025-12-31" / "manifest.json").exists()


def test_sigkill_at_any_point_then_rerun_equals_an_uninterrupted_run(tmp_path, bank_dir):
    reference = _write_config(tmp_path / "ref", bank_dir)
    assert main(["run", str(reference), "--as-of", "2025-12-31", "--no-progress"]) == 0
    expected = _outputs(tmp_path / "ref" / "runs" / "2025-12-31")
    expected_models = sorted(p.relative_to(tmp_path / "ref" / "runs" / "models").as_posix()
                             for p in (tmp_path / "ref" / "runs" / "models").rglob("*.json"))
    cfg = _write_config(tmp_path / "killed", bank_dir)
    runs = tmp_path / "killed" / "runs"
    checkpoint = runs / ".2025-12-31.journal" / "checkpoint.json"
    trace = []  # where each kill landed: said when the outputs differ
    for delay in (0.5, 2.0, 4.0, 7.0):
        proc = _crmkit("run", str(cfg), "--as-of", "2025-12-31", "--no-progress", "--force")
        time.sleep(delay)
        ended = proc.poll()
        try:
            phases = sorted(json.loads(checkpoint.read_text())["phases"])
        except (OSError, ValueError):
            phases = None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        trace.append({"delay": delay, "ended": ended, "journal_phases": phases,
                      "run_dir": (runs / "2025-12-31").exists(),
                      "models": sorted(p.relative_to(runs).as_posix()
                                       for p in runs.glob("models/**/*.json"))})
        if not (runs / "2025-12-31").exists():
            # a killed run never publishes a model (what it staged, under a hidden
            # .staging-* folder, is removed by the next run of the date)
            published = [p for p in (runs / "models").rglob("*.json")
                         if not any(part.startswith(".") for part in
                                    p.relative_to(runs / "models").parts)] \
                if (runs / "models").exists() else []
            assert published == []
    assert main(["run", str(cfg), "--as-of", "2025-12-31", "--no-progress", "--force"]) == 0
    final = json.loads((runs / "2025-12-31" / "manifest.json").read_text())
    trace.append({"final_resumed_after": final["run"].get("resumed_after"),
                  "models": {k: v.get("model", {}).get("refitted")
                             for k, v in final["steps"].items()}})
    got = _outputs(runs / "2025-12-31")
    assert {k for k in got if got[k] != expected.get(k)} == set(), trace
    assert got == expected
    leftovers = [p.name for p in runs.iterdir() if p.name.startswith(".")
                 and not p.name.endswith(".lock")]
    assert leftovers == []
    assert not list((runs / "models").glob(".staging-*"))
    models = sorted(p.relative_to(runs / "models").as_posix()
                    for p in (runs / "models").rglob("*.json"))
    assert models == expected_models


def test_outputs_do_not_depend_on_the_blas_thread_count(tmp_path, bank_dir):
    """The same run with one and with two BLAS threads writes the same bytes (before the
    runner capped BLAS at one thread in steps, the churn scores differed: a multithreaded
    BLAS splits its sums by thread count, so another machine, a Dask worker or a process
    whose thread pools a library had capped gave other last bits)."""
    found = []
    for threads in ("1", "2"):
        cfg = _write_config(tmp_path / f"t{threads}", bank_dir)
        env = dict(os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads,
                   MKL_NUM_THREADS=threads)
        proc = _crmkit("run", str(cfg), "--as-of", "2025-12-31", "--no-progress", env=env)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        found.append(_outputs(tmp_path / f"t{threads}" / "runs" / "2025-12-31"))
    assert found[0] == found[1]


def test_complete_run_is_a_noop_unless_forced_and_logs_json(tmp_path, bank_dir, capsys):
    cfg = _write_config(tmp_path, bank_dir)
    log = tmp_path / "run.jsonl"
    args = ["run", str(cfg), "--as-of", "2025-12-31", "--no-progress", "--log-json", str(log)]
    assert main(args) == 0
    manifest = tmp_path / "runs" / "2025-12-31" / "manifest.json"
    started = json.loads(manifest.read_text())["run"]["started_at"]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    phases = [r["phase"] for r in records if r["event"] == "phase"]
    assert phases == ["load", "validate_features", *phases[2:-1], "write"]
    assert {"value", "clv", "churn", "lifecycle"} <= set(phases)
    done = records[-1]
    assert done["event"] == "done" and done["rows"]["features/features.parquet"] == 1500
    assert all(r["seconds"] >= 0 and r["peak_rss_mb"] > 0 for r in records
               if r["event"] == "phase")
    err = capsys.readouterr().err
    # warnings: one line each, no file paths or source lines
    assert all(line.startswith(("crmkit: warning: ",)) for line in err.splitlines() if line)
    assert ".py:" not in err
    assert main(args) == 0  # complete: nothing recomputed
    assert json.loads(manifest.read_text())["run"]["started_at"] == started
    assert json.loads(log.read_text().splitlines()[-1])["event"] == "skipped"
    time.sleep(1.1)
    assert main([*args, "--force"]) == 0
    assert json.loads(manifest.read_text())["run"]["started_at"] != started


def test_exit_codes_and_dry_run(tmp_path, bank_dir, capsys):
    cfg = _write_config(tmp_path, bank_dir)
    assert main(["run", str(cfg), "--as-of", "2025-12-31junk"]) == EXIT_BAD_INPUT
    assert "is not a date written YYYY-MM-DD" in capsys.readouterr().err
    assert main(["run", str(cfg), "--as-of", "2025-02-30"]) == EXIT_BAD_INPUT
    assert "2025-02-30 is not a day of the calendar" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\nn_shards = 0\n")
    assert main(["run", str(bad), "--as-of", "2025-12-31"]) == EXIT_BAD_INPUT
    missing = tmp_path / "missing.toml"
    missing.write_text(f'[inputs]\nsource = "{tmp_path / "nowhere"}"\n')
    assert main(["run", str(missing), "--as-of", "2025-12-31", "--dry-run"]) == EXIT_BAD_INPUT
    assert "does not exist" in capsys.readouterr().err
    assert main(["run", str(cfg), "--as-of", "2025-12-31", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "config ok: steps" in out and "customers" in out and "writable:" in out
    assert not (tmp_path / "runs" / "2025-12-31").exists()  # a dry run computes nothing


def test_a_broken_day_fails_the_run_with_the_quality_gate_code(tmp_path):
    """61% of the transactions unreadable: exit code 3 naming the table and the share;
    nothing is written and no model is stored."""
    import polars as pl

    from crmkit.cli import EXIT_QUALITY_GATE
    from crmkit.datasets import make_bank

    bank = make_bank(400, seed=5, years=1)
    tx = bank["transactions"]
    bad = pl.int_range(tx.height, eager=True) % 100 < 61
    bank["transactions"] = tx.with_columns(
        pl.when(bad).then(pl.lit("n/a")).otherwise(pl.col("amount").cast(pl.String))
        .alias("amount"))
    write_tables(bank, tmp_path / "data", format="csv")
    cfg = _write_config(tmp_path, tmp_path / "data")
    err = subprocess.run([sys.executable, "-m", "crmkit.cli", "run", str(cfg), "--as-of",
                          "2025-12-31", "--no-progress"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert err.returncode == EXIT_QUALITY_GATE, err.stderr
    assert "transactions" in err.stderr and "61" in err.stderr
    assert not (tmp_path / "runs" / "2025-12-31").exists()
    assert not list((tmp_path / "runs").rglob("*.json"))


def _kill_after(cfg: Path, runs: Path, phase: str, timeout: float = 240.0) -> None:
    """Start a run and SIGKILL it as soon as its checkpoint records ``phase``."""
    checkpoint = runs / ".2025-12-31.journal" / "checkpoint.json"
    proc = _crmkit("run", str(cfg), "--as-of", "2025-12-31", "--no-progress")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if phase in json.loads(checkpoint.read_text())["phases"]:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (runs / "2025-12-31").exists()


def test_a_killed_run_resumes_after_its_last_complete_step(tmp_path, bank_dir):
    """Killed after the clv step: the rerun skips loading, validation, value and clv, and
    its outputs and models equal an uninterrupted run's. Touched inputs start afresh."""
    reference = _write_config(tmp_path / "ref", bank_dir)
    assert main(["run", str(reference), "--as-of", "2025-12-31", "--no-progress"]) == 0
    expected = _outputs(tmp_path / "ref" / "runs" / "2025-12-31")
    ref_models = tmp_path / "ref" / "runs" / "models"
    expected_models = sorted(p.relative_to(ref_models).as_posix()
                             for p in ref_models.rglob("*.json"))

    cfg = _write_config(tmp_path / "killed", bank_dir)
    runs = tmp_path / "killed" / "runs"
    _kill_after(cfg, runs, "step:clv")
    log = tmp_path / "resumed.jsonl"
    assert main(["run", str(cfg), "--as-of", "2025-12-31", "--no-progress",
                 "--log-json", str(log)]) == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records[0]["event"] == "resumed" and records[0]["after"] == "step:clv"
    phases = [r["phase"] for r in records if r["event"] == "phase"]
    assert "load" not in phases and "value" not in phases and "clv" not in phases
    assert {"churn", "lifecycle", "write"} <= set(phases)
    manifest = json.loads((runs / "2025-12-31" / "manifest.json").read_text())
    assert manifest["run"]["resumed_after"] == "step:clv"
    assert {"load", "value", "clv"} <= set(manifest["timings_seconds"])  # the killed run's
    assert _outputs(runs / "2025-12-31") == expected
    assert sorted(p.relative_to(runs / "models").as_posix()
                  for p in (runs / "models").rglob("*.json")) == expected_models
    assert [p.name for p in runs.iterdir() if p.name.startswith(".")
            and not p.name.endswith(".lock")] == []

    # inputs that changed since the kill are staged afresh (no resume)
    again = _write_config(tmp_path / "touched", bank_dir)
    runs2 = tmp_path / "touched" / "runs"
    _kill_after(again, runs2, "step:value")
    customers = next(bank_dir.glob("customers.*"))
    os.utime(customers, ns=(customers.stat().st_atime_ns, customers.stat().st_mtime_ns + 10**9))
    log2 = tmp_path / "fresh.jsonl"
    assert main(["run", str(again), "--as-of", "2025-12-31", "--no-progress",
                 "--log-json", str(log2)]) == 0
    records = [json.loads(line) for line in log2.read_text().splitlines()]
    assert not any(r["event"] == "resumed" for r in records)
    assert "resumed_after" not in json.loads(
        (runs2 / "2025-12-31" / "manifest.json").read_text())["run"]
    assert _outputs(runs2 / "2025-12-31") == expected
