"""Run one function over many items in worker processes started afresh.

The workers are new interpreters (``python -m crmkit._processes``), not forks and
not :mod:`multiprocessing` children: a fork of a process whose thread pools
(polars, OpenMP) are running can deadlock, and ``spawn`` re-runs the caller's main
script, which breaks any script without an ``if __name__ == "__main__"`` guard. A
worker gets the shared data once, then items one at a time from the parent (the
next free worker takes the next item), so uneven items balance themselves. Warnings
a call raises in a worker are raised again in the parent, in item order.

Each worker caps its BLAS and OpenMP pools at one thread: the workers are the
parallelism, and one thread keeps every sum in the order a single-threaded run
takes, so the results are those of ``[fn(shared, item) for item in items]``.

Parent and workers exchange pickles over the workers' standard input and output
(the worker's own prints go to standard error); only this module's workers, started
here, read them.
"""

from __future__ import annotations

import importlib
import os
import pickle
import subprocess
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["WorkerStartError", "map_in_processes", "worker_peak_kb"]

_ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS",
               "POLARS_MAX_THREADS")
_PROTOCOL = pickle.HIGHEST_PROTOCOL
_PEAK_KB = [0]  # the largest worker's peak resident memory since the last reset


def worker_peak_kb(reset: bool = False) -> int:
    """The peak resident memory (KB) of the largest worker that finished since the last
    reset (0 if none; Linux only), for a caller that accounts memory per phase."""
    peak = _PEAK_KB[0]
    if reset:
        _PEAK_KB[0] = 0
    return peak


def _peak_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class WorkerStartError(RuntimeError):
    """A worker process could not be started, or died before it was ready (before any
    item): nothing ran, so the caller may do the work in line instead."""


def _name_of(fn: Callable) -> str:
    name = f"{fn.__module__}:{fn.__qualname__}"
    if "<" in fn.__qualname__ or fn.__module__ == "__main__":
        raise ValueError(f"map_in_processes needs a module-level function a new interpreter "
                         f"can import; got {name}")
    return name


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for key in _ONE_THREAD:
        env[key] = "1"
    # the workers import crmkit from where this process did (a checkout on sys.path
    # rather than an install, in tests and notebooks)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return env


class _Worker:
    def __init__(self, fn_name: str, shared: Any) -> None:
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "crmkit._processes"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         env=_env())
        except OSError as err:
            raise WorkerStartError(f"could not start a worker process "
                                   f"({sys.executable} -m crmkit._processes): {err}") from err
        try:
            self.send((fn_name, shared))
            status, value = pickle.load(self.proc.stdout)  # ("ready", None) once loaded
        except (OSError, EOFError):
            self.close(kill=True)
            code = self.proc.returncode
            raise WorkerStartError(f"worker process {self.proc.pid} exited with code {code} "
                                   f"before it was ready (its standard error says why)") from None
        if status != "ready":
            self.close(kill=True)
            raise WorkerStartError(f"worker process {self.proc.pid} could not load "
                                   f"{fn_name}:\n{value}")

    def send(self, obj: Any) -> None:
        pickle.dump(obj, self.proc.stdin, protocol=_PROTOCOL)
        self.proc.stdin.flush()

    def call(self, index: int, item: Any) -> Any:
        try:
            self.send((index, item))
            status, value = pickle.load(self.proc.stdout)
        except (EOFError, BrokenPipeError):  # died with the item, or before it reached it
            code = self.proc.wait()
            raise RuntimeError(f"worker process {self.proc.pid} exited with code {code} "
                               f"while working on item {index}") from None
        if status == "error":
            raise RuntimeError(f"item {index} failed in worker process {self.proc.pid}:\n"
                               f"{value}")
        return value  # (result, warnings)

    def close(self, kill: bool = False) -> None:
        _PEAK_KB[0] = max(_PEAK_KB[0], _peak_of(self.proc.pid))
        try:
            if kill:
                self.proc.kill()
            else:
                self.send(None)
        except OSError:
            pass
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def map_in_processes(fn: Callable[[Any, Any], Any], items: Sequence[Any], *, shared: Any = None,
                     workers: int = 2, order: Sequence[int] | None = None) -> list[Any]:
    """``[fn(shared, item) for item in items]``, computed in ``workers`` new processes.

    Parameters
    ----------
    fn : callable
        A module-level function (the workers import it by name).
    items : sequence
        Picklable items, one call each.
    shared : object
        Picklable data every call needs, sent once to each worker.
    workers : int, default 2
        Processes; never more than there are items.
    order : sequence of int, optional
        The order items are handed out (longest first balances best); the results
        are in item order whatever it is.

    Returns
    -------
    list
        The results, in the order of ``items``.

    Raises
    ------
    WorkerStartError
        When a worker cannot be started or dies before its first item (nothing ran).
    RuntimeError
        When a call raises (with the worker's traceback) or a worker dies; the
        other workers are stopped.

    Examples
    --------
    >>> import operator
    >>> map_in_processes(operator.add, [1, 2, 3], shared=10, workers=2)
    [11, 12, 13]
    """
    name = _name_of(fn)
    n = len(items)
    queue = list(order) if order is not None else list(range(n))
    if sorted(queue) != list(range(n)):
        raise ValueError("order must be a permutation of the item positions")
    queue.reverse()  # popped from the end
    results: list[Any] = [None] * n
    found: list[list[tuple]] = [[] for _ in range(n)]
    lock = threading.Lock()
    failures: list[BaseException] = []
    pool: list[_Worker] = []
    try:
        for _ in range(max(1, min(workers, n))):
            pool.append(_Worker(name, shared))
    except BaseException:
        for w in pool:
            w.close(kill=True)
        raise

    def drive(worker: _Worker) -> None:
        while True:
            with lock:
                if failures or not queue:
                    return
                i = queue.pop()
            try:
                results[i], found[i] = worker.call(i, items[i])
            except BaseException as err:  # noqa: BLE001 - re-raised in the caller
                with lock:
                    failures.append(err)
                return

    threads = [threading.Thread(target=drive, args=(w,), daemon=True) for w in pool]
    finished = False
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        finished = not failures
    finally:  # interrupted or failed: the workers are killed, not left to finish
        for w in pool:
            w.close(kill=not finished)
    if failures:
        raise failures[0]
    for records in found:  # the workers' warnings, raised here in item order
        for record in records:
            _warn_again(*record)
    return results


def _warning_record(w: warnings.WarningMessage) -> tuple:
    return (w.category.__module__, w.category.__qualname__, str(w.message), w.filename,
            w.lineno)


def _warn_again(module: str, qualname: str, message: str, filename: str, lineno: int) -> None:
    try:
        category: Any = importlib.import_module(module)
        for part in qualname.split("."):
            category = getattr(category, part)
        if not (isinstance(category, type) and issubclass(category, Warning)):
            raise TypeError
    except Exception:  # noqa: BLE001 - a category this process cannot import
        category = UserWarning
    warnings.warn_explicit(message, category, filename, lineno)


def _serve() -> None:
    """A worker's loop: the function and shared data, then items until None."""
    channel_in = sys.stdin.buffer
    channel_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed (Python or C) goes to stderr, not the channel
    sys.stdout = sys.stderr
    try:
        fn_name, shared = pickle.load(channel_in)
        module, _, qualname = fn_name.partition(":")
        fn: Any = importlib.import_module(module)
        for part in qualname.split("."):
            fn = getattr(fn, part)
    except BaseException:  # noqa: BLE001 - sent to the parent, which raises
        pickle.dump(("error", traceback.format_exc()), channel_out, protocol=_PROTOCOL)
        channel_out.flush()
        return
    pickle.dump(("ready", None), channel_out, protocol=_PROTOCOL)
    channel_out.flush()
    while True:
        try:
            message = pickle.load(channel_in)
        except EOFError:
            return
        if message is None:
            return
        index, item = message
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                reply = ("ok", (fn(shared, item), [_warning_record(w) for w in caught]))
            except BaseException:  # noqa: BLE001 - sent to the parent, which raises
                reply = ("error", traceback.format_exc())
        pickle.dump(reply, channel_out, protocol=_PROTOCOL)
        channel_out.flush()


if __name__ == "__main__":
    _serve()
