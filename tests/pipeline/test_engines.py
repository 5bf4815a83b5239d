"""The same nightly run on the local engine, on Dask and on Spark: identical bytes,
also when a worker is killed in the middle of a task."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import signal
import sys
from pathlib import Path

import polars as pl
import pytest

from crmkit import ConfigError
from crmkit.pipeline import load_steps, run_pipeline
from crmkit.pipeline._registry import select_steps
from crmkit.pipeline._engines import (
    DaskEngine,
    LocalEngine,
    SparkEngine,
    java_available,
    make_engine,
)
from crmkit.pipeline.steps.value import STEP as VALUE

DATES = ("2025-11-30", "2025-12-31")  # the second run reads the first (tier movements)


def _config(out: Path, engine: str = "local", n_shards: int = 3, **settings) -> dict:
    cfg = {"run": {"output_dir": str(out), "report": False, "n_shards": n_shards,
                   "engine": engine},
           "inputs": {"source": "sample", "sample_customers": 1500}}
    if settings:
        cfg["engine"] = settings
    return cfg


def _hashes(manifest: dict) -> dict[str, str]:
    return {rel: facts["sha256"] for rel, facts in manifest["outputs"].items()}


def _runs(cfg: dict, steps=None) -> list[dict[str, str]]:
    return [_hashes(run_pipeline(cfg, as_of=day, steps=steps).manifest) for day in DATES]


@pytest.fixture(scope="module")
def local_hashes(tmp_path_factory) -> list[dict[str, str]]:
    """The local engine's outputs (one shard at a time in this process)."""
    return _runs(_config(tmp_path_factory.mktemp("local")))


def _by_value() -> None:
    # this module's functions travel to the workers by value (they cannot import tests/)
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        from pyspark import cloudpickle as spark_cloudpickle
    except ImportError:  # pragma: no cover - without the spark extra
        return
    spark_cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _die_once(shard, cfg, state, *, marker: str):
    """``value``'s score, except that the worker running shard 1 kills itself (SIGKILL,
    in the middle of the task) the first time."""
    if shard.index == 1 and not os.path.exists(marker):
        with open(marker, "w") as fh:
            fh.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return VALUE.score(shard, cfg, state)


def _killing_steps(marker: Path):
    steps = select_steps(load_steps(), None)  # the steps a run takes by default
    killer = dataclasses.replace(VALUE, score=functools.partial(_die_once, marker=str(marker)))
    return [killer if s.name == "value" else s for s in steps]


def _assert_killed(marker: Path) -> None:
    pid = int(marker.read_text())
    assert pid != os.getpid()  # a worker died, not the driver
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# --- the engines themselves -------------------------------------------------------


def _square(x: int) -> int:
    return x * x


def _scaled(factor: int, x: int) -> int:
    if x < 0:
        raise ValueError(f"negative: {x}")
    return factor * x


def _check_engine(engine) -> None:
    done = []
    assert engine.map(_square, range(5), on_done=done.append) == [0, 1, 4, 9, 16]
    assert sorted(done) == [0, 1, 2, 3, 4]
    assert engine.map(_scaled, [1, 2], shared=10) == [10, 20]
    assert engine.map(_square, []) == []
    # an error in a task is raised here with its own type, whatever the engine
    with pytest.raises(ValueError, match="negative: -2"):
        engine.map(_scaled, [1, -2, 3], shared=10)


def test_local_engine_maps_in_order_and_raises_task_errors():
    _check_engine(LocalEngine())


def test_engine_settings_are_checked():
    with pytest.raises(ValueError, match="The 'address' parameter of DaskEngine must be"):
        DaskEngine(address="localhost")
    with pytest.raises(ValueError, match="The 'n_workers' parameter of DaskEngine"):
        DaskEngine(n_workers=0)
    with pytest.raises(ValueError, match="The 'master' parameter of SparkEngine"):
        SparkEngine(master="local[two]")
    with pytest.raises(ValueError, match="The 'engine' parameter of make_engine"):
        make_engine("ray")
    assert SparkEngine(master="local[2,3]").master == "local[2,3]"


@pytest.mark.parametrize("cfg, message", [
    ({"run": {"engine": "ray"}}, "run.engine: Input should be 'local', 'dask' or 'spark'"),
    ({"run": {"engine": "dask"}, "engine": {"scheduler": "localhost:8786"}},
     "engine.scheduler: scheduler must be a Dask scheduler address"),
    ({"run": {"engine": "dask"}, "engine": {"n_worker": 2}},
     "unknown key 'n_worker' in EngineSection. Did you mean 'n_workers'?"),
    ({"run": {"engine": "dask"}, "engine": {"n_workers": 0}}, "engine.n_workers"),
    ({"run": {"engine": "dask"}, "engine": {"spark_master": "local[2]"}},
     "engine.spark_master is not a setting of run.engine = 'dask'"),
    ({"run": {"engine": "spark"}, "engine": {"n_workers": 2}},
     "engine.n_workers is not a setting of run.engine = 'spark'"),
    ({"engine": {"n_workers": 2}}, "engine.n_workers is not a setting of run.engine = 'local'"),
    ({"run": {"engine": "spark"}, "engine": {"spark_master": "local[x]"}},
     "spark_master must be a Spark master"),
    ({"run": {"engine": "spark"}, "engine": {"spark_conf": {"driver.memory": "2g"}}},
     "spark_conf keys must start with 'spark.'"),
    ({"run": {"engine": "dask"}, "engine": {"memory_limit": "lots"}},
     "memory_limit must be 'auto' or a size"),
])
def test_bad_engine_config_is_one_clear_error(tmp_path, cfg, message):
    cfg = {**cfg, "run": {"output_dir": str(tmp_path), **cfg.get("run", {})}}
    with pytest.raises(ConfigError, match=re.escape(message)):
        run_pipeline(cfg, as_of="2025-12-31", steps=[])


# --- Dask ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_cluster():
    """A LocalCluster of two single-threaded worker processes, started by the test."""
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    _by_value()
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0")
    yield cluster
    cluster.close()


def test_dask_engine_maps_in_order_and_raises_task_errors(dask_cluster):
    with DaskEngine(address=dask_cluster.scheduler_address) as engine:
        _check_engine(engine)


def test_dask_outputs_are_identical_to_local(tmp_path, dask_cluster, local_hashes):
    cfg = _config(tmp_path, "dask", scheduler=dask_cluster.scheduler_address)
    assert _runs(cfg) == local_hashes
    assert len(local_hashes[1]) >= 12


def test_dask_own_local_cluster(tmp_path, local_hashes):
    """Without a scheduler address the engine starts (and closes) its own LocalCluster."""
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    cfg = _config(tmp_path, "dask", n_shards=2, n_workers=2)
    res = run_pipeline(cfg, as_of=DATES[0], steps=[VALUE])
    local = run_pipeline(_config(tmp_path / "l", n_shards=2), as_of=DATES[0], steps=[VALUE])
    assert _hashes(res.manifest) == _hashes(local.manifest)


def test_dask_worker_killed_mid_task_still_gives_identical_outputs(tmp_path, dask_cluster,
                                                                  local_hashes):
    marker = tmp_path / "killed.pid"
    cfg = _config(tmp_path / "runs", "dask", scheduler=dask_cluster.scheduler_address)
    assert _runs(cfg, steps=_killing_steps(marker)) == local_hashes
    _assert_killed(marker)
    # no part of the work folder is left behind, and no stray temporary part file
    assert not list((tmp_path / "runs").glob(".*work*"))


# --- Spark --------------------------------------------------------------------------

needs_java = pytest.mark.skipif(not java_available(),
                                reason="Spark needs a Java runtime (17+); none on this machine")


@pytest.fixture(scope="module")
def spark():
    """One local-mode session for every Spark test (a JVM start costs seconds); the
    engine uses the active session and leaves it running. local[2,4]: two cores, a
    failed task tried up to four times."""
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    _by_value()
    session = SparkEngine(master="local[2,4]").session
    yield session
    session.stop()


@needs_java
def test_spark_engine_maps_in_order_and_raises_task_errors(spark):
    with SparkEngine() as engine:
        _check_engine(engine)
        assert engine.session is spark


@needs_java
def test_spark_outputs_are_identical_to_local(tmp_path, spark, local_hashes):
    assert _runs(_config(tmp_path, "spark", spark_master="local[2,4]")) == local_hashes


@needs_java
def test_spark_worker_killed_mid_task_still_gives_identical_outputs(tmp_path, spark,
                                                                   local_hashes):
    """local[2,4]: a task whose Python worker dies is retried (up to 4 attempts)."""
    marker = tmp_path / "killed.pid"
    cfg = _config(tmp_path / "runs", "spark", spark_master="local[2,4]")
    res = run_pipeline(cfg, as_of=DATES[0], steps=_killing_steps(marker))
    assert _hashes(res.manifest) == local_hashes[0]
    _assert_killed(marker)


def test_parts_are_replaced_whole(tmp_path):
    """A retried task's part replaces the first attempt's whole (no torn or doubled rows)."""
    from crmkit.pipeline._run import _write_part

    dest = tmp_path / "p.parquet"
    dest.write_bytes(b"PAR1 torn")  # what a killed attempt may leave
    _write_part(pl.DataFrame({"customer_id": ["a", "b"]}), dest)
    assert pl.read_parquet(dest)["customer_id"].to_list() == ["a", "b"]
    assert [p.name for p in tmp_path.iterdir()] == ["p.parquet"]
