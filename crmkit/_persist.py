"""Models saved as JSON data: one way to write them (atomically) and to read them back."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from pathlib import Path

from crmkit.io import atomic_write

__all__ = ["document_fingerprint", "json_text_from", "library_versions", "save_json_text"]


def document_fingerprint(body: dict) -> str:
    """SHA-256 of a model document's body (canonical JSON: sorted keys, no spaces).

    The previous per-family formats (``crmkit.churn/1``, ``crmkit.propensity/1``)
    store it beside the body, so a file edited by hand is refused on load.

    Examples
    --------
    >>> document_fingerprint({"b": 1, "a": [1.5]}) == document_fingerprint({"a": [1.5], "b": 1})
    True
    >>> document_fingerprint({"a": 1})[:12]
    '015abd7f5cc5'
    """
    blob = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def library_versions(*optional: str) -> dict[str, str]:
    """Versions of crmkit, numpy and scikit-learn, and of each ``optional`` module installed.

    Examples
    --------
    >>> sorted(library_versions("no_such_module_here"))
    ['crmkit', 'numpy', 'sklearn']
    """
    import numpy as np
    import sklearn

    import crmkit
    out = {"crmkit": crmkit.__version__, "numpy": np.__version__, "sklearn": sklearn.__version__}
    for name in optional:
        try:
            out[name] = importlib.import_module(name).__version__
        except ImportError:
            pass
    return out


def save_json_text(text: str, path: str | os.PathLike) -> None:
    """Write a model's JSON text to ``path`` atomically (temporary file, then rename),
    so a crash never leaves a truncated model for the next run to load.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "m.json"
    >>> save_json_text('{"a": 1}', target)
    >>> target.read_text()
    '{"a": 1}\\n'
    """
    with atomic_write(path) as tmp:
        Path(tmp).write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def json_text_from(source: str | os.PathLike) -> str:
    """The JSON text of ``source``: JSON text as given, or the contents of a file path.

    Examples
    --------
    >>> json_text_from('{"a": 1}')
    '{"a": 1}'
    """
    text = str(source)
    if isinstance(source, str) and text.lstrip().startswith("{"):
        return text
    return Path(source).read_text(encoding="utf-8")
