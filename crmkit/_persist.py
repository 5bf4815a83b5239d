"""Models saved as JSON data: one way to write them (atomically) and to read them back."""

from __future__ import annotations

import os
from pathlib import Path

from crmkit.io import atomic_write

__all__ = ["json_text_from", "save_json_text"]


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
