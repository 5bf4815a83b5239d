"""crmkit._processes: functions run in new worker processes, as a caller sees them."""

import ctypes
import operator
import os
import warnings

import pytest

from crmkit._processes import map_in_processes


def test_results_come_back_in_item_order_whatever_the_order_handed_out():
    items = list(range(9))
    assert map_in_processes(operator.mul, items, shared=3, workers=2,
                            order=[8, 0, 7, 1, 6, 2, 5, 3, 4]) == [3 * i for i in items]
    assert map_in_processes(operator.add, [], shared=1) == []


def test_workers_run_their_pools_on_one_thread():
    # the workers are the parallelism: BLAS, OpenMP and polars pools stay at one thread
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "POLARS_MAX_THREADS"):
        assert map_in_processes(os.getenv, ["unset"], shared=name) == ["1"]


def test_a_worker_error_is_raised_with_its_traceback():
    with pytest.raises(RuntimeError, match=r"item 1 failed(.|\n)*ZeroDivisionError"):
        map_in_processes(divmod, [1, 0, 2], shared=4, workers=2)


def test_a_worker_that_dies_is_reported_not_waited_for():
    # reading address 8 segfaults the worker: the parent gets an error naming the item
    with pytest.raises(RuntimeError, match=r"exited with code -11 while working on item 1"):
        map_in_processes(ctypes.string_at, [0, 1], shared=8, workers=1, order=[1, 0])


def test_warnings_raised_in_a_worker_are_raised_again_here():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        map_in_processes(warnings.warn, [DeprecationWarning, UserWarning], shared="careful",
                         workers=2)
    assert [(w.category, str(w.message)) for w in caught] == [
        (DeprecationWarning, "careful"), (UserWarning, "careful")]


def test_a_worker_that_cannot_start_or_load_says_so_before_any_item(monkeypatch):
    import crmkit._processes as processes
    from crmkit._processes import WorkerStartError

    monkeypatch.setattr(processes, "_name_of", lambda fn: "no_such_module_here:fn")
    with pytest.raises(WorkerStartError, match=r"could not load(.|\n)*ModuleNotFoundError"):
        map_in_processes(operator.add, [1], shared=0)
    monkeypatch.undo()
    monkeypatch.setattr(processes.sys, "executable", "/nonexistent/python3")
    with pytest.raises(WorkerStartError, match="could not start a worker process"):
        map_in_processes(operator.add, [1], shared=0)


def test_functions_a_new_interpreter_cannot_import_are_refused():
    with pytest.raises(ValueError, match="module-level function"):
        map_in_processes(lambda s, i: i, [1])
    with pytest.raises(ValueError, match="permutation"):
        map_in_processes(operator.add, [1, 2], shared=0, order=[0, 0])
