"""Sector presets: a strict config model per sector whose defaults are the shipped preset.

Each sector step (``[insurer]``, ``[tobacco_retail]``, ``[elderly_care]``,
``[broker]``) is configured by one :class:`SectorConfig` subclass. Its field
defaults are the shipped preset, and ``pipelines/presets/<sector>.toml`` holds the
same values as an editable file (a test keeps the two in step). ``preset`` names
either the shipped preset (the sector's name) or a TOML file whose ``[<sector>]``
table is read first; keys given in the pipeline config then override it. Every
key, in the file or the config, is checked: an unknown one is an error naming the
closest valid key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationInfo, model_validator

from crmkit._config import StrictModel, closest, read_toml

__all__ = ["SectorConfig", "preset_path"]


class SectorConfig(StrictModel):
    """Base of the sector step configs: ``preset`` (name or TOML path) + overrides."""

    SECTION: ClassVar[str] = ""
    preset: str = ""

    @model_validator(mode="before")
    @classmethod
    def _from_preset(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        preset = data.get("preset", cls.SECTION) or cls.SECTION
        if preset == cls.SECTION:
            return {**data, "preset": cls.SECTION}
        path = Path(preset)
        if path.suffix != ".toml":
            raise ValueError(f"preset must be {cls.SECTION!r} (the shipped preset) or a .toml "
                             f"file; got {preset!r}.{closest(preset, [cls.SECTION])}")
        base = (info.context or {}).get("base_dir")
        if base is not None and not path.is_absolute():
            path = Path(base) / path
        table, _ = read_toml(path)
        if cls.SECTION not in table:
            raise ValueError(f"preset file {str(path)!r} has no [{cls.SECTION}] table; it has "
                             f"{', '.join(sorted(table)) or 'no tables'}")
        from_file = dict(table[cls.SECTION])
        if "preset" in from_file:
            raise ValueError(f"preset file {str(path)!r}: [{cls.SECTION}] may not name "
                             f"another preset")
        return {**from_file, **data, "preset": str(path)}


def preset_path(sector: str) -> Path:
    """The repository's ``pipelines/presets/<sector>.toml`` (for tests and docs)."""
    return Path(__file__).resolve().parents[2] / "pipelines" / "presets" / f"{sector}.toml"
