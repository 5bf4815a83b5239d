"""One run per date at a time, and what dead runs left behind.

A run for date D holds an exclusive lock on ``<output_dir>/.<D>.lock`` (``flock``,
released by the kernel when the process dies, even by SIGKILL). Holding it, the run
may remove what earlier runs of D left when they were killed: temporary run and
work folders and staged models. Nothing of another date is touched.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from crmkit.exceptions import RunLockedError

__all__ = ["remove_stale", "run_lock"]


@contextlib.contextmanager
def run_lock(output_dir: Path, day: dt.date, wait: float = 0.0) -> Iterator[Path]:
    """Hold the lock of ``day``'s run; wait up to ``wait`` seconds for it.

    Raises
    ------
    crmkit.RunLockedError
        Another process holds the lock (after waiting, if asked to).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with run_lock(folder, dt.date(2025, 12, 31)):
    ...     pass
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f".{day.isoformat()}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                    raise RunLockedError(
                        f"Another run for {day.isoformat()} is under way (process {holder}, "
                        f"lock {path}); wait for it, or run with --wait SECONDS.") from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def remove_stale(output_dir: Path, day: dt.date, model_dir: Path) -> list[str]:
    """Remove the temporary folders that killed runs of ``day`` left (call under the lock)."""
    name = day.isoformat()
    patterns = [f".{name}.*.tmp", f".{name}.work.*", f".{name}.*.old"]
    removed = []
    for pattern in patterns:
        for path in output_dir.glob(pattern):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    if model_dir.is_dir():
        for path in model_dir.glob(f".staging-{name}-*"):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(f"{model_dir.name}/{path.name}")
    return sorted(removed)
