"""Where the per-shard work of a run executes: in this process, on Dask or on Spark.

The runner cuts a run into tasks of one customer shard each (validate and build
features, gather a step's fit statistics, score a step) and hands them to an
:class:`Engine` as ``engine.map(fn, items)``. A task reads its shard's files from
the run's work folder, writes its own part files (atomically: a temporary name
renamed into place, so a retried task overwrites and never duplicates) and
returns a small result (problems, counts, partial aggregates). What runs is the
same polars code on every engine, so the outputs are identical byte for byte.

- :class:`LocalEngine` (the default): a loop in this process, one shard at a time.
- :class:`DaskEngine`: ``dask.distributed``; a ``LocalCluster`` started for the
  run, or an existing scheduler by address. A task whose worker dies is run again
  on another worker (the scheduler's ``allowed-failures``, 3 by default).
- :class:`SparkEngine`: PySpark; an RDD of the shard tasks, one partition per
  shard, collected in order. Local mode by default (``local[2]``); a task whose
  executor fails is retried up to ``spark.task.maxFailures`` times (in local
  mode the ``local[N,F]`` master sets ``F``).

An exception raised by the step code inside a task is caught there and raised
again in this process with its own type, so a bad input reads the same on every
engine and is not retried (only a lost worker is).

Every path a task reads or writes must be visible to every worker: the run's
``output_dir`` on a shared file system for a real cluster.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from crmkit._params import _fail

__all__ = ["DaskEngine", "Engine", "LocalEngine", "SparkEngine", "make_engine"]

_NOTHING = object()


class _Failed:
    """An exception raised inside a task, carried back to the driver."""

    def __init__(self, err: BaseException) -> None:
        self.text = "".join(traceback.format_exception(err))
        try:
            import pickle

            pickle.loads(pickle.dumps(err))
            self.err: BaseException | None = err
        except Exception:  # an exception that does not pickle travels as its text
            self.err = None

    def reraise(self) -> None:
        if self.err is not None:
            raise self.err
        raise RuntimeError(f"a shard task failed:\n{self.text}")


def _call(fn: Callable, args: tuple) -> Any:
    try:
        return fn(*args)
    except Exception as err:  # step errors come back to the driver, not retried
        return _Failed(err)


def _args(shared: Any, item: Any) -> tuple:
    return (item,) if shared is _NOTHING else (shared, item)


def _results(values: Sequence[Any]) -> list[Any]:
    for value in values:
        if isinstance(value, _Failed):
            value.reraise()
    return list(values)


class Engine:
    """Runs one function over many items, results in item order.

    Subclasses implement :meth:`map`; :meth:`close` releases what the engine
    started (a cluster, a Spark session). An engine is a context manager.
    """

    name = "engine"

    def map(self, fn: Callable, items: Iterable[Any], *, shared: Any = _NOTHING,
            on_done: Callable[[int], None] | None = None) -> list[Any]:
        """``[fn(item) for item in items]`` (or ``fn(shared, item)``), run on the engine.

        ``fn`` must be a module-level function and ``items`` and ``shared`` small
        picklable values (paths, indices, configs, fitted states): they travel to
        the workers. ``on_done(i)`` is called in this process as item ``i``
        finishes, where the engine tells.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release what the engine started."""

    def describe(self) -> dict[str, Any]:
        """What the manifest records of the engine."""
        return {"engine": self.name}

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LocalEngine(Engine):
    """One shard after another in this process (bounded memory, no extra process).

    Examples
    --------
    >>> LocalEngine().map(abs, [-1, 2, -3])
    [1, 2, 3]
    >>> LocalEngine().map(pow, [1, 2, 3], shared=2)
    [2, 4, 8]
    """

    name = "local"

    def map(self, fn: Callable, items: Iterable[Any], *, shared: Any = _NOTHING,
            on_done: Callable[[int], None] | None = None) -> list[Any]:
        out = []
        for i, item in enumerate(items):
            out.append(fn(item) if shared is _NOTHING else fn(shared, item))
            if on_done is not None:
                on_done(i)
        return out


_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://\S+$")


class DaskEngine(Engine):
    """Shard tasks on a ``dask.distributed`` cluster.

    Parameters
    ----------
    address : str, optional
        A running scheduler (``"tcp://host:8786"``). Default: a ``LocalCluster`` of
        ``n_workers`` processes started on first use and closed by :meth:`close`.
    n_workers : int, default 2
        Worker processes of the local cluster.
    threads_per_worker : int, default 1
        Tasks at once per worker (polars uses its own threads inside a task).
    memory_limit : str or int, default "auto"
        Per-worker memory limit of the local cluster (dask's meaning).

    Notes
    -----
    A task whose worker dies (killed, out of memory) is rescheduled by the
    scheduler on another worker; it rewrites its part files from the start, so no
    output is duplicated. ``distributed.scheduler.allowed-failures`` (default 3)
    bounds how many workers one task may take down before the run fails.
    """

    name = "dask"

    def __init__(self, *, address: str | None = None, n_workers: int = 2,
                 threads_per_worker: int = 1, memory_limit: str | int = "auto") -> None:
        if address is not None and not _ADDRESS.match(address):
            raise _fail("address", "DaskEngine",
                        "a scheduler address such as 'tcp://host:8786'", address)
        if not isinstance(n_workers, int) or n_workers < 1:
            raise _fail("n_workers", "DaskEngine", "a positive integer", n_workers)
        self.address = address
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.memory_limit = memory_limit
        self._client = None
        self._cluster = None

    @property
    def client(self):
        """The ``distributed.Client`` (the cluster is started on first use)."""
        if self._client is None:
            try:
                from distributed import Client, LocalCluster
            except ImportError:  # pragma: no cover - depends on the extra
                raise ImportError("engine = 'dask' needs dask.distributed: "
                                  "pip install 'crmkit[dask]'") from None
            if self.address is None:
                self._cluster = LocalCluster(
                    n_workers=self.n_workers, threads_per_worker=self.threads_per_worker,
                    processes=True, memory_limit=self.memory_limit, dashboard_address=":0")
                self._client = Client(self._cluster)
            else:
                self._client = Client(self.address)
        return self._client

    def map(self, fn: Callable, items: Iterable[Any], *, shared: Any = _NOTHING,
            on_done: Callable[[int], None] | None = None) -> list[Any]:
        from distributed import as_completed

        items = list(items)
        if not items:
            return []
        client = self.client
        futures = [client.submit(_call, fn, _args(shared, item), pure=False, priority=-i)
                   for i, item in enumerate(items)]
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for future in as_completed(futures):
                if on_done is not None:
                    on_done(index[future.key])
            return _results(client.gather(futures))
        finally:
            for future in futures:
                future.release()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name, "scheduler": self.address or "LocalCluster",
                "n_workers": (len(self._client.scheduler_info()["workers"])
                              if self._client is not None else self.n_workers)}


_MASTER = re.compile(r"^(local(\[(\d+|\*)(,\s*\d+)?\])?|local-cluster\[\d+,\s*\d+,\s*\d+\]|"
                     r"(spark|k8s|mesos)://\S+|yarn)$")


def java_available() -> bool:
    """Whether a Java runtime is found (``JAVA_HOME`` or ``java`` on the PATH)."""
    import shutil

    home = os.environ.get("JAVA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", "java")):
        return True
    return shutil.which("java") is not None


class SparkEngine(Engine):
    """Shard tasks on Spark: an RDD of the tasks, one partition each, calling polars code.

    Parameters
    ----------
    master : str, default "local[2]"
        The Spark master; ``local[N,F]`` retries a failed task ``F - 1`` times in
        local mode. Ignored when ``session`` is given or a session is active.
    session : pyspark.sql.SparkSession, optional
        Use this session (not stopped by :meth:`close`).
    conf : dict, optional
        Extra Spark settings for a session this engine starts.

    Notes
    -----
    The shards are files in the run folder, so each Spark task reads its own
    shard's Parquet files with polars and writes its part files; the Arrow-native
    DataFrame API (``mapInArrow``) would only add a copy through the JVM here.
    Python workers use this interpreter (``PYSPARK_PYTHON`` unless already set).
    """

    name = "spark"

    def __init__(self, *, master: str = "local[2]", session: Any = None,
                 conf: dict[str, str] | None = None) -> None:
        if not isinstance(master, str) or not _MASTER.match(master):
            raise _fail("master", "SparkEngine",
                        "a Spark master such as 'local[2]' or 'spark://host:7077'", master)
        self.master = master
        self.conf = dict(conf or {})
        self._session = session
        self._owned = False

    @property
    def session(self):
        """The ``SparkSession`` (started on first use)."""
        if self._session is None:
            try:
                from pyspark.sql import SparkSession
            except ImportError:  # pragma: no cover - depends on the extra
                raise ImportError("engine = 'spark' needs pyspark: "
                                  "pip install 'crmkit[spark]'") from None
            if not java_available():
                raise RuntimeError("engine = 'spark' needs a Java runtime (17 or newer): "
                                   "set JAVA_HOME or put java on the PATH")
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
            active = SparkSession.getActiveSession()
            if active is not None:
                self._session = active
            else:
                builder = SparkSession.builder.master(self.master).appName("crmkit")
                settings = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
                            "spark.sql.execution.arrow.pyspark.enabled": "true",
                            **self.conf}
                for key, value in settings.items():
                    builder = builder.config(key, value)
                self._session = builder.getOrCreate()
                self._session.sparkContext.setLogLevel("ERROR")
                self._owned = True
        return self._session

    def map(self, fn: Callable, items: Iterable[Any], *, shared: Any = _NOTHING,
            on_done: Callable[[int], None] | None = None) -> list[Any]:
        items = list(items)
        if not items:
            return []
        sc = self.session.sparkContext
        tasks = [(i, _args(shared, item)) for i, item in enumerate(items)]
        rdd = sc.parallelize(tasks, numSlices=len(tasks))
        pairs = rdd.map(lambda task: (task[0], _call(fn, task[1]))).collect()
        out = [value for _, value in sorted(pairs, key=lambda p: p[0])]
        if on_done is not None:
            for i in range(len(out)):
                on_done(i)
        return _results(out)

    def close(self) -> None:
        if self._session is not None and self._owned:
            self._session.stop()
        self._session = None
        self._owned = False

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name, "master": self.master}


def make_engine(name: str = "local", settings: Any = None) -> Engine:
    """The engine named by a config's ``[run] engine`` with its ``[engine]`` settings.

    Examples
    --------
    >>> make_engine("local").name
    'local'
    >>> make_engine("dask", {"n_workers": 3}).n_workers
    3
    """
    if settings is None:
        settings = {}
    elif not isinstance(settings, dict):
        settings = settings.model_dump()
    if name == "local":
        return LocalEngine()
    if name == "dask":
        return DaskEngine(address=settings.get("scheduler"),
                          n_workers=settings.get("n_workers", 2),
                          threads_per_worker=settings.get("threads_per_worker", 1),
                          memory_limit=settings.get("memory_limit", "auto"))
    if name == "spark":
        return SparkEngine(master=settings.get("spark_master", "local[2]"),
                           conf=settings.get("spark_conf") or None)
    raise _fail("engine", "make_engine", "one of 'local', 'dask', 'spark'", name)
