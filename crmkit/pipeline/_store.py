"""The model store: one refit rule, one JSON envelope, models kept per fit date.

Layout: ``<model_dir>/<name>/<fitted_as_of>.json``. A run for date D uses the newest
stored model fitted on or before D (a model fitted after D has seen rows D must
not see) or refits as of D. Models fitted by a run are staged beside the store and
published only when the run completes, so a failed or killed run changes nothing.
A stored model that cannot be read or fails its checks is reported with its path
and refitted (the run fails instead where the schedule is ``"never"``).

The envelope is the one of every crmkit model (:func:`crmkit._estimator.to_envelope`,
``model.save``), so a stored file loads with ``crmkit.load_model(path)`` and a file
written by ``model.save`` can be placed in the store. The store adds its fields::

    {"format": "crmkit.model/1",
     "class": ..., "params": ..., "state": ...,        # the step's model (its payload), or
     "models": {"transaction_model": {...}, ...},      # several models, or
     "data": {...},                                    # fitted data that is no estimator
     "name": ..., "step": ..., "fitted_as_of": "YYYY-MM-DD", "settings": {...},
     "settings_sha256": ..., "training": {...}, "metrics": {...}, "fingerprint": ...,
     "crmkit_version": ..., "payload_layout": "envelope" | "models" | "data"}

The step's payload (what ``fit`` returned as JSON data) is given back on load as it
was staged (``payload_layout`` says how it was laid out; a single model's envelope
comes back with the step's metrics added and the run's input fingerprint as its
``fingerprint``). JSON has no infinities or
NaN; a non-finite float anywhere in the file is stored as the object
``{"__float__": "inf" | "-inf" | "nan"}`` and restored on load.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crmkit._estimator import (
    ENVELOPE_FORMAT,
    MODEL_FORMATS,
    _encode,
    decode_floats,
    encode_floats,
    parse_model_json,
)
from crmkit._params import check_choice
from crmkit.exceptions import ConfigError
from crmkit.io import atomic_write

__all__ = ["FORMAT", "REFIT_SCHEDULES", "ModelStore", "StoredModel", "decode_floats",
           "due_for_refit", "encode_floats", "load_envelope"]

FORMAT = ENVELOPE_FORMAT

REFIT_SCHEDULES = ("always", "weekly", "monthly", "quarterly", "yearly", "never")
"""How often a step refits its model; in between it loads the stored one."""


def due_for_refit(last_fit: dt.date | None, as_of: dt.date, schedule: str) -> bool:
    """Whether a model fitted on ``last_fit`` (on or before ``as_of``) must be refitted.

    ``weekly``/``monthly``/``quarterly``/``yearly`` refit when ``as_of`` is in a later
    calendar week/month/quarter/year than the fit; ``always`` every run; ``never``
    only when there is no model. A model fitted after ``as_of`` is never passed
    here: the store does not offer it (see :meth:`ModelStore.latest`).

    Examples
    --------
    >>> due_for_refit(dt.date(2025, 1, 31), dt.date(2025, 2, 1), "monthly")
    True
    >>> due_for_refit(dt.date(2025, 1, 3), dt.date(2025, 1, 31), "monthly")
    False
    >>> due_for_refit(None, dt.date(2025, 1, 31), "never")
    True
    """
    check_choice(schedule, REFIT_SCHEDULES, "schedule", "due_for_refit")
    if last_fit is not None and last_fit > as_of:
        raise ValueError(f"due_for_refit: a model fitted on {last_fit} cannot serve a run on "
                         f"{as_of}; the store never offers it.")
    if last_fit is None or schedule == "always":
        return True
    if schedule == "never":
        return False
    if schedule == "weekly":
        return as_of.isocalendar()[:2] != last_fit.isocalendar()[:2]
    if schedule == "monthly":
        return (as_of.year, as_of.month) != (last_fit.year, last_fit.month)
    if schedule == "quarterly":
        return (as_of.year, (as_of.month - 1) // 3) != (last_fit.year, (last_fit.month - 1) // 3)
    return as_of.year != last_fit.year


def _settings_sha256(settings: dict[str, Any]) -> str:
    text = json.dumps(encode_floats(settings), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


_STORE_FIELDS = ("name", "step", "fitted_as_of", "settings", "settings_sha256", "training",
                 "payload_layout")


def _is_model_document(value: Any) -> bool:
    return isinstance(value, dict) and value.get("format") in MODEL_FORMATS


def _layout(payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """How a step's payload sits in the envelope, and the envelope's own part of it."""
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        return "envelope", dict(payload)
    if isinstance(payload, dict) and payload and all(map(_is_model_document, payload.values())):
        return "models", {"models": payload}
    return "data", {"data": payload}


def _payload(doc: dict[str, Any]) -> Any:
    """The step's payload as it was staged (the inverse of :func:`_layout`)."""
    layout = doc.get("payload_layout", "envelope")
    if layout == "models":
        return doc["models"]
    if layout == "data":
        return doc["data"]
    return {k: v for k, v in doc.items() if k not in _STORE_FIELDS}


def load_envelope(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a stored model envelope; errors name the file.

    Returns the file's fields (non-finite floats restored) and ``payload``: what the
    step staged. A file written by ``model.save`` (no store fields) takes its name
    from its folder and its fit date from its file name; files of the previous store
    layout (``payload`` in the file) are read too.

    Raises
    ------
    ValueError
        The file is not JSON, not a crmkit model envelope, or misses a field.
    """
    path = Path(path)
    try:
        doc = parse_model_json(path.read_text(encoding="utf-8"), source=f"model file {path}")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"model file {path} is unreadable: {err}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"model file {path} is not a {FORMAT} envelope")
    doc = decode_floats(doc)
    if "payload" not in doc:  # the one envelope (a store file, or a model.save file)
        doc.setdefault("name", path.parent.name)
        doc.setdefault("fitted_as_of", path.stem)
        layout = doc.setdefault("payload_layout", "envelope")
        needs = {"envelope": "class", "models": "models", "data": "data"}.get(layout)
        if needs is None or needs not in doc:
            raise ValueError(f"model file {path} lacks {needs or 'a known payload_layout'}")
        doc["payload"] = _payload(doc)
    missing = [k for k in ("name", "fitted_as_of", "payload") if k not in doc]
    if missing:
        raise ValueError(f"model file {path} lacks {', '.join(missing)}")
    try:
        dt.date.fromisoformat(doc["fitted_as_of"])
    except (TypeError, ValueError):
        raise ValueError(f"model file {path} has a bad fitted_as_of "
                         f"{doc['fitted_as_of']!r}") from None
    return doc


@dataclass
class StoredModel:
    """A model envelope found in the store, with its path."""

    path: Path
    fitted_as_of: dt.date
    envelope: dict[str, Any]


class ModelStore:
    """Models of every step, one folder per model name, one file per fit date.

    Parameters
    ----------
    root : path
        ``<model_dir>``.

    Examples
    --------
    >>> import tempfile
    >>> store = ModelStore(tempfile.mkdtemp())
    >>> staging = store.stage(dt.date(2025, 1, 31), "demo", "value", {"k": 1},
    ...                       payload={"edges": [1.0, float("inf")]}, fingerprint="x")
    >>> store.latest("demo", dt.date(2025, 6, 30)) is None   # staged, not published yet
    True
    >>> store.publish(staging)
    >>> store.latest("demo", dt.date(2025, 6, 30)).envelope["payload"]
    {'edges': [1.0, inf]}
    >>> store.latest("demo", dt.date(2025, 1, 1)) is None     # fitted after that date
    True
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def _files(self, name: str) -> list[tuple[dt.date, Path]]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        out = []
        for path in folder.glob("*.json"):
            try:
                out.append((dt.date.fromisoformat(path.stem), path))
            except ValueError:
                continue
        return sorted(out)

    def candidates(self, name: str, as_of: dt.date) -> list[tuple[dt.date, Path]]:
        """Stored fits of ``name`` on or before ``as_of``, newest first."""
        return [(d, p) for d, p in reversed(self._files(name)) if d <= as_of]

    def latest(self, name: str, as_of: dt.date) -> StoredModel | None:
        """The newest readable model fitted on or before ``as_of`` (no checks of settings)."""
        for day, path in self.candidates(name, as_of):
            env = load_envelope(path)
            return StoredModel(path, day, env)
        return None

    def stage(self, as_of: dt.date, name: str, step: str, settings: dict[str, Any], *,
              payload: dict[str, Any], fingerprint: str, training: dict | None = None,
              metrics: dict | None = None, staging: Path | None = None) -> Path:
        """Write an envelope into a staging folder beside the store; returns the folder.

        Nothing is visible to :meth:`latest` until :meth:`publish`.
        """
        from crmkit import __version__

        if staging is None:
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".staging-{as_of.isoformat()}-",
                                            dir=self.root))
        layout, body = _layout(payload)
        envelope = {**body, "format": FORMAT, "name": name, "step": step,
                    "fitted_as_of": as_of.isoformat(), "settings": settings,
                    "settings_sha256": _settings_sha256(settings), "training": training or {},
                    "metrics": {**(body.get("metrics") or {}), **(metrics or {})},
                    "fingerprint": fingerprint, "crmkit_version": __version__,
                    "payload_layout": layout}
        text = json.dumps(_encode(envelope), indent=1, sort_keys=True, allow_nan=False)
        target = staging / name / f"{as_of.isoformat()}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target) as tmp:
            Path(tmp).write_text(text + "\n", encoding="utf-8")
        return staging

    def publish(self, staging: Path) -> None:
        """Move every staged envelope into the store (one atomic rename each)."""
        for path in sorted(staging.glob("*/*.json")):
            dest = self.root / path.parent.name / path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
        shutil.rmtree(staging, ignore_errors=True)

    def discard(self, staging: Path | None) -> None:
        """Drop a staging folder (the run failed)."""
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)

    def clean_stale_staging(self) -> list[Path]:
        """Remove staging folders left by killed runs; returns what was removed."""
        if not self.root.is_dir():
            return []
        stale = sorted(p for p in self.root.glob(".staging-*") if p.is_dir())
        for p in stale:
            shutil.rmtree(p, ignore_errors=True)
        return stale


def settings_match(envelope: dict[str, Any], settings: dict[str, Any]) -> bool:
    """Whether a stored envelope was fitted with these settings.

    A model file written by ``model.save`` and placed in the store records no step
    settings: it is used as it is (the step's ``load`` still checks it).
    """
    recorded = envelope.get("settings_sha256")
    return recorded is None or recorded == _settings_sha256(settings)


def check_never(schedule: str, name: str, problem: str) -> None:
    """With ``refit = "never"`` a bad stored model fails the run instead of a refit."""
    if schedule == "never":
        raise ConfigError(f"model {name!r}: {problem}; refit is 'never', so the run stops. "
                          "Fix or remove the file, or allow a refit.")
