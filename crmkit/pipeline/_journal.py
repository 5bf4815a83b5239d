"""What a killed run had finished, so that its rerun resumes there.

A run works in ``<output_dir>/.<date>.journal/`` (its staged inputs, shard parts,
and ``checkpoint.json``) and stages the models it fits in
``<model_dir>/.journal-<date>/``. After each phase (inputs validated, each step) the
checkpoint records what the next phases need. A run that completes or fails removes
both folders; a run that is killed (SIGKILL, out of memory, a lost machine) leaves
them, and the next run of the date resumes after the last recorded phase when its
*resume key* is the same: the config, the steps, the crmkit version, the inputs'
signature (:func:`crmkit.pipeline._sources.source_signature`), the previous run and
the stored models it may use. Any difference, or inputs without a signature (a
database), starts afresh. Every phase is a pure function of what it reads, so the
resumed run's outputs equal an uninterrupted run's, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from crmkit.io import write_json

__all__ = ["Journal", "resume_key"]

CHECKPOINT = "checkpoint.json"


def resume_key(*, config: dict[str, Any], day: dt.date, steps: list[str],
               signature: str | None, previous: Path | None, model_dir: Path) -> str | None:
    """The identity a checkpoint must match to be resumed (None: never resume)."""
    if signature is None:
        return None
    from crmkit import __version__

    models = sorted(p.relative_to(model_dir).as_posix() for p in model_dir.glob("*/*.json")
                    if p.stem <= day.isoformat()) if model_dir.is_dir() else []
    prev = None
    if previous is not None and (previous / "manifest.json").exists():
        prev = [previous.name, hashlib.sha256(
            (previous / "manifest.json").read_bytes()).hexdigest()]
    blob = json.dumps({"config": config, "as_of": day.isoformat(), "steps": steps,
                       "inputs": signature, "previous": prev, "models": models,
                       "crmkit": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class Journal:
    """The work folder of one run date and its checkpoint.

    Parameters
    ----------
    output_dir, model_dir : Path
        The run's folders.
    day : date
        The run date.
    key : str or None
        :func:`resume_key`; a checkpoint with another key is discarded.
    resume : bool
        False discards any checkpoint (start afresh).

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> day = dt.date(2025, 12, 31)
    >>> j = Journal(out, out / "models", day, key="k")
    >>> j.record("prepare", {"n": 3}); j.resumed
    []
    >>> again = Journal(out, out / "models", day, key="k")   # the run was killed
    >>> again.resumed, again.done("prepare")
    (['prepare'], {'n': 3})
    >>> Journal(out, out / "models", day, key="other").resumed   # inputs changed
    []
    """

    def __init__(self, output_dir: Path, model_dir: Path, day: dt.date, key: str | None,
                 resume: bool = True) -> None:
        self.folder = output_dir / f".{day.isoformat()}.journal"
        self.staging = model_dir / f".journal-{day.isoformat()}"
        self.key = key
        self.phases: dict[str, Any] = {}
        state = self._read() if resume and key is not None else None
        if state is not None and state.get("key") == key:
            # the file's keys are sorted: the completion order is kept beside them
            self.phases = {p: state["phases"][p] for p in state.get("order", [])}
        else:
            self.discard()
        self.resumed = list(self.phases)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _read(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.folder / CHECKPOINT).read_text(encoding="utf-8"))
        except (OSError, ValueError):  # absent, or cut short by the kill
            return None

    def done(self, phase: str) -> Any:
        """What was recorded when ``phase`` completed, or None."""
        return self.phases.get(phase)

    def record(self, phase: str, facts: Any) -> None:
        """Mark ``phase`` complete (an atomic rewrite of the checkpoint)."""
        self.phases[phase] = facts
        if self.key is not None:
            write_json({"key": self.key, "order": list(self.phases), "phases": self.phases},
                       self.folder / CHECKPOINT)

    def warnings(self) -> list[str]:
        """The warning lines of the killed run, up to its last recorded phase."""
        if not self.resumed:
            return []
        return list(self.phases[self.resumed[-1]].get("warnings", []))

    def discard(self) -> None:
        """Remove the work folder and the staged models (the run ended, or starts afresh)."""
        for folder in (self.folder, self.staging):
            shutil.rmtree(folder, ignore_errors=True)
