"""Facts a run records about itself: versions and fingerprints."""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from pathlib import Path

import polars as pl

__all__ = ["file_sha256", "frame_fingerprint", "versions"]

_PACKAGES = ("crmkit", "polars", "numpy", "scipy", "pandas", "pyarrow", "scikit-learn",
             "lifelines", "pydantic")


def versions() -> dict[str, str]:
    """Versions of Python and the packages that shape the outputs."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def frame_fingerprint(frame: pl.DataFrame) -> str:
    """SHA-256 over the row hashes and the schema of a frame (stable for one polars version).

    Examples
    --------
    >>> a = pl.DataFrame({"x": [1, 2]})
    >>> frame_fingerprint(a) == frame_fingerprint(a.clone())
    True
    """
    digest = hashlib.sha256(repr(frame.schema).encode())
    if frame.height:
        digest.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
