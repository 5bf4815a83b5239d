"""Process measurements shared by the benchmark scripts (standard library only, so the
peers' own virtual environments can import it too). Linux /proc is required."""

from __future__ import annotations

import resource

__all__ = ["cpu_seconds", "reset_peak", "status_kb"]


def status_kb(field: str) -> int:
    """A ``/proc/self/status`` field in KiB: ``VmRSS`` (now) or ``VmHWM`` (peak)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} field")


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (``clear_refs`` = 5); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def cpu_seconds() -> float:
    """User plus system CPU time of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
