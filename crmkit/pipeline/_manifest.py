"""Facts a run records about itself: versions and fingerprints."""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from pathlib import Path

import polars as pl

from crmkit._processes import worker_peak_kb

__all__ = ["PhaseMeter", "file_sha256", "frame_fingerprint", "versions"]

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


class PhaseMeter:
    """Wall time and peak resident memory of each phase of a run (Linux /proc).

    The kernel's peak-RSS counter is reset at the start of each phase, so a phase's
    peak is its own (where resetting is not allowed, the peak so far is reported).
    Worker processes a phase starts (the propensity fit's) are not in that counter:
    ``worker_peak_mb`` holds, for each phase that started some, the peak of the
    largest one.

    Examples
    --------
    >>> meter = PhaseMeter()
    >>> meter.lap("load")
    >>> sorted(meter.seconds), meter.peak_mb["load"] >= 0
    (['load'], True)
    """

    def __init__(self) -> None:
        import time

        self._clock = time.perf_counter
        self._t0 = self._clock()
        self.seconds: dict[str, float] = {}
        self.peak_mb: dict[str, float] = {}
        self.worker_peak_mb: dict[str, float] = {}
        worker_peak_kb(reset=True)
        self._reset()

    @staticmethod
    def _reset() -> None:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            pass

    @staticmethod
    def _peak_kb() -> int:
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def current_peak_mb(self) -> float:
        """The peak resident memory of the phase under way, so far."""
        return round(self._peak_kb() / 1024, 1)

    def lap(self, name: str) -> None:
        """Close the phase ``name``: record its time and peak, start the next one."""
        now = self._clock()
        self.seconds[name] = round(now - self._t0, 3)
        self.peak_mb[name] = round(self._peak_kb() / 1024, 1)
        workers = worker_peak_kb(reset=True)
        if workers:
            self.worker_peak_mb[name] = round(workers / 1024, 1)
        self._t0 = now
        self._reset()
