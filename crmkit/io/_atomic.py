"""Atomic writes: write a temporary sibling, flush it to disk, then rename it into place.

``os.replace`` within one directory is atomic on POSIX and Windows, so a reader
sees either the old file or the new one, never a half-written file, and a crash
mid-write leaves at most a hidden ``.<name>.*.tmp`` sibling (removed on any
exception we can catch).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_dir", "atomic_write", "write_json"]


def _umask_mode(default: int) -> int:
    # mkstemp/mkdtemp create private (0600/0700) entries; give the final entry the
    # mode an ordinary open()/mkdir() would have given it.
    mask = os.umask(0)
    os.umask(mask)
    return default & ~mask


def _fsync_dir(directory: Path) -> None:
    # Make the rename itself durable. Not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Context manager yielding a temporary path that replaces ``path`` on success.

    The temporary file lives in the same directory as ``path`` (so the final
    rename never crosses a file system) and is named ``.<name>.<random>.tmp``.
    When the block ends without an exception the file is fsynced and renamed over
    ``path`` with :func:`os.replace`; the directory is fsynced too. When the block
    raises, the temporary file is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or path-like
        The final file. Its parent directory is created if needed.

    Yields
    ------
    pathlib.Path
        Where to write. It exists (empty) when the block starts.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_write(target) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> target.read_text()
    'hello'
    >>> try:
    ...     with atomic_write(target) as tmp:
    ...         _ = tmp.write_text("half")
    ...         raise RuntimeError("crash")
    ... except RuntimeError:
    ...     pass
    >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
    ('hello', ['out.txt'])
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, _umask_mode(0o666))
        _fsync_file(tmp)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(final.parent)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Context manager yielding a temporary directory that replaces ``path`` on success.

    Files are written into a hidden sibling directory ``.<name>.<random>.tmp``.
    On success it is renamed to ``path``; an existing ``path`` is first moved
    aside and deleted only after the new directory is in place, so at every
    moment either the complete old or the complete new directory exists (there is
    a sub-millisecond window between the two renames where ``path`` is absent).
    On an exception the temporary directory is deleted and ``path`` is untouched.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "tables"
    >>> with atomic_dir(target) as tmp:
    ...     _ = (tmp / "a.txt").write_text("1")
    >>> sorted(p.name for p in target.iterdir())
    ['a.txt']
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, _umask_mode(0o777))
        for child in tmp.iterdir():
            if child.is_file():
                _fsync_file(child)
        _fsync_dir(tmp)
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old",
                                        dir=final.parent))
            os.rmdir(old)
            os.rename(final, old)
        try:
            os.rename(tmp, final)
        except BaseException:
            if old is not None:
                os.rename(old, final)
            raise
        _fsync_dir(final.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as JSON atomically, with sorted keys and an indent of 2.

    The same object always gives the same bytes (UTF-8, ``\\n`` line ends, a final
    newline), so manifests can be compared and hashed. Dates, datetimes and paths
    are written as ISO strings; other objects raise ``TypeError``.

    Parameters
    ----------
    obj : JSON-serialisable object
    path : str or path-like

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import tempfile, pathlib, datetime as dt
    >>> p = write_json({"b": 1, "a": dt.date(2024, 3, 31)},
    ...                pathlib.Path(tempfile.mkdtemp()) / "manifest.json")
    >>> print(p.read_text(), end="")
    {
      "a": "2024-03-31",
      "b": 1
    }
    """
    text = json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, default=_json_default,
                      allow_nan=False)
    final = Path(path)
    with atomic_write(final) as tmp:
        tmp.write_bytes((text + "\n").encode("utf-8"))
    return final


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    raise TypeError(f"write_json cannot write a {type(value).__name__}: {value!r}")
