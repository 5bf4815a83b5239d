"""Shared pieces of crmkit's pydantic configuration models.

Every configuration model rejects unknown keys with the closest valid key named,
and every validation problem surfaces as one :class:`crmkit.ConfigError`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from crmkit.exceptions import ConfigError

__all__ = ["StrictModel", "closest", "format_validation_error", "parse_config"]

M = TypeVar("M", bound=BaseModel)


def closest(name: str, valid: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest valid name, or ``""``.

    Examples
    --------
    >>> closest("dormnt", ["dormant", "churned"])
    " Did you mean 'dormant'?"
    """
    match = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" Did you mean {match[0]!r}?" if match else ""


class StrictModel(BaseModel):
    """Base model: frozen, strict types, and an unknown key names the closest valid key.

    Values are not coerced between types: ``"no"`` is no boolean and ``["30"]`` no
    list of numbers (pydantic's strict mode; an integer still fills a float field),
    and NaN or an infinity is no number.

    Examples
    --------
    >>> class Run(StrictModel):
    ...     output_dir: str = "runs"
    >>> parse_config(Run, {"ouput_dir": "x"}, "run")
    Traceback (most recent call last):
    ...
    crmkit.exceptions.ConfigError: Invalid run config: unknown key 'ouput_dir' in Run. Did you mean 'output_dir'? Valid keys: output_dir.
    >>> class Flags(StrictModel):
    ...     report: bool = True
    ...     discount: float = 0.1
    >>> parse_config(Flags, {"report": "no", "discount": float("nan")}, "run")
    Traceback (most recent call last):
    ...
    crmkit.exceptions.ConfigError: Invalid run config: report: Input should be a valid boolean; discount: Input should be a finite number
    """

    # strict: a value of the wrong type is an error, never coerced ("no" is not False,
    # ["30"] is not [30]); integers still fill float fields. allow_inf_nan: NaN and
    # infinities are no setting.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, strict=True,
                              allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            valid = set(cls.model_fields)
            valid |= {f.alias for f in cls.model_fields.values() if f.alias}
            unknown = [k for k in data if k not in valid]
            if unknown:
                msgs = [f"unknown key {k!r} in {cls.__name__}.{closest(str(k), valid)}"
                        for k in unknown]
                raise ValueError("; ".join(msgs) + f" Valid keys: {', '.join(sorted(valid))}.")
        return data


def format_validation_error(err: ValidationError) -> str:
    """Every problem of a pydantic ``ValidationError`` as ``location: message``, joined by ``; ``."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(lines)


def parse_config(model: type[M], data: Any, what: str,
                 context: dict[str, Any] | None = None) -> M:
    """Validate ``data`` as ``model``, raising :class:`ConfigError` that lists every problem.

    ``context`` reaches every validator (pydantic's validation context); the pipeline
    passes ``{"base_dir": <folder of the config file>}`` so that sections can resolve
    relative file paths against the file rather than the working directory.
    """
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(dict(data or {}), context=context)
    except ValidationError as err:
        raise ConfigError(f"Invalid {what} config: {format_validation_error(err)}") from None


def read_toml(path) -> tuple[dict, Any]:
    """A TOML config file's data and folder; a missing file or bad TOML is a ConfigError.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "c.toml"
    >>> _ = f.write_text("name = 'x'")
    >>> read_toml(f)[0]
    {'name': 'x'}
    """
    import tomllib
    from pathlib import Path

    from crmkit.exceptions import ConfigError

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"Config file {path} does not exist.")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None
    return data, path.resolve().parent
