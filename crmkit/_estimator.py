"""The one estimator base of crmkit (DESIGN.md section 3b).

Every crmkit model (CLV, survival, RFM scorer, ...) derives from
:class:`CrmkitEstimator`, which gives the same words everywhere:

- hyperparameters are keyword-only, stored untouched, and declared once in
  ``_parameter_constraints``; :meth:`CrmkitEstimator._validate_params` checks them
  when ``fit`` starts (as scikit-learn's ``_parameter_constraints`` do), with the
  message format of :mod:`crmkit._params`;
- ``params_`` (a mapping), ``summary_`` (a polars frame) and :meth:`print_summary`
  (a fixed-width text table that never wraps a row across lines);
- ``output="polars" | "pandas"`` on every method that returns a table, with
  scikit-learn's ``set_output`` (and ``sklearn.set_config(transform_output=...)``)
  as the default; pandas output is indexed by ``customer_id`` when the table has one;
- ``model.save(path)`` and :func:`load_model` reading one JSON envelope, built by
  :func:`to_envelope` and read by :func:`from_envelope` (the model store reuses both).

The envelope
------------
One JSON format, ``crmkit.model/1``, for a model saved by ``model.save(path)`` and
for a model file of the nightly run's model store (:mod:`crmkit.pipeline._store`
adds its own fields, such as ``name``, ``fitted_as_of`` and ``settings``, beside
these):

``{"format": "crmkit.model/1", "class": "<Name>", "params": {...}, "fitted_params": {...},
"state": {...}, "feature_names": [...] | null, "training_window": {"start": ..., "end": ...}
| null, "metrics": {...}, "fingerprint": "..." | null, "crmkit_version": "..."}``.

Several models saved together (the CLV step's transaction and spend models) are one
envelope with ``"models": {name: <envelope of one model>, ...}`` in place of
``class``/``params``/``state``; :func:`load_model` then returns a dict name -> model.

JSON has no infinity or NaN, so the envelope is written with ``allow_nan=False``
and **every non-finite float is stored as the object** ``{"__float__": "inf"}`` (or
``"-inf"``, ``"nan"``); :func:`encode_floats` / :func:`decode_floats` do only that,
:func:`to_envelope` / :func:`from_envelope` also store numpy arrays as
``{"__ndarray__": [...], "dtype": "..."}`` and polars frames as
``{"__frame__": {column: [...]}}``. Loading executes no code from the file and
only instantiates registered crmkit estimator classes.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import warnings
from dataclasses import dataclass
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator

__all__ = [
    "CrmkitEstimator",
    "ENVELOPE_FORMAT",
    "Interval",
    "Options",
    "decode_floats",
    "deprecated_alias",
    "encode_floats",
    "from_envelope",
    "load_model",
    "to_envelope",
]

ENVELOPE_FORMAT = "crmkit.model/1"
_REGISTRY: dict[str, type] = {}
_NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
MODEL_FORMATS = (ENVELOPE_FORMAT, "crmkit.clv/1", "crmkit.churn/1", "crmkit.propensity/1")
"""Formats of a model document :func:`load_model` reads (the first is written today)."""


# --------------------------------------------------------------------------- constraints
@dataclass(frozen=True)
class Interval:
    """A number in a range: ``Interval(float, 0, None, closed="left")`` is [0, inf).

    Examples
    --------
    >>> Interval(float, 0, None, closed="left").describe()
    'a float in the range [0, inf)'
    >>> Interval(int, 1, None, closed="left").accepts(0)
    False
    """

    kind: type
    low: float | None
    high: float | None
    closed: str = "both"

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.kind is int and not isinstance(value, numbers.Integral):
            return False
        v = float(value)
        if not math.isfinite(v):
            return False
        if self.low is not None:
            if v < self.low or (v == self.low and self.closed in ("right", "neither")):
                return False
        if self.high is not None:
            if v > self.high or (v == self.high and self.closed in ("left", "neither")):
                return False
        return True

    def describe(self) -> str:
        left = "[" if self.closed in ("left", "both") and self.low is not None else "("
        right = "]" if self.closed in ("right", "both") and self.high is not None else ")"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        kind = "an int" if self.kind is int else "a float"
        return f"{kind} in the range {left}{lo}, {hi}{right}"


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values (``Options(("days", "weeks"))``)."""

    values: tuple

    def accepts(self, value: Any) -> bool:
        return isinstance(value, (str, bool, int, float, type(None))) and value in self.values

    def describe(self) -> str:
        return "a str among " + "{" + ", ".join(repr(v) for v in self.values) + "}"


@dataclass(frozen=True)
class _Simple:
    name: str

    def accepts(self, value: Any) -> bool:
        if self.name == "none":
            return value is None
        if self.name == "boolean":
            return isinstance(value, (bool, np.bool_))
        if self.name == "str":
            return isinstance(value, str)
        if self.name == "dict":
            return isinstance(value, dict)
        if self.name == "str list":
            return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        if self.name == "horizons":
            vals = [value] if isinstance(value, numbers.Real) else value
            return (isinstance(vals, (list, tuple)) and len(vals) > 0 and all(
                Interval(float, 0, None, "neither").accepts(v) for v in vals))
        raise AssertionError(self.name)  # pragma: no cover

    def describe(self) -> str:
        return {"none": "None", "boolean": "a bool", "str": "a str", "dict": "a dict",
                "str list": "a list of str",
                "horizons": "a positive number or a non-empty sequence of positive numbers",
                }[self.name]


NONE = _Simple("none")
BOOLEAN = _Simple("boolean")
STRING = _Simple("str")
DICT = _Simple("dict")
STR_LIST = _Simple("str list")
HORIZONS = _Simple("horizons")


def validate_params(owner: str, params: dict, constraints: dict) -> None:
    """Check ``params`` against ``constraints`` (name -> list of accepted forms).

    Raises the one message format of :mod:`crmkit._params`.

    Examples
    --------
    >>> validate_params("BetaGeo", {"penalizer": -1},
    ...                 {"penalizer": [Interval(float, 0, None, "left")]})
    Traceback (most recent call last):
    ...
    ValueError: The 'penalizer' parameter of BetaGeo must be a float in the range [0, inf). Got -1 instead.
    """
    for name, accepted in constraints.items():
        if name not in params or accepted == "no_validation":
            continue
        value = params[name]
        if any(c.accepts(value) for c in accepted):
            continue
        forms = [c.describe() for c in accepted]
        must = forms[0] if len(forms) == 1 else ", ".join(forms[:-1]) + " or " + forms[-1]
        raise ValueError(f"The {name!r} parameter of {owner} must be {must}. "
                         f"Got {value!r} instead.")


def deprecated_alias(owner: str, old: str, new: str, *, note: str = "") -> None:
    """Warn (FutureWarning) that ``old`` is the previous name of ``new``."""
    warnings.warn(f"{owner}: {old!r} is deprecated and will be removed in crmkit 0.3; use "
                  f"{new!r} instead{note}.", FutureWarning, stacklevel=3)


# --------------------------------------------------------------------------- base class
class CrmkitEstimator(BaseEstimator):
    """Base of every crmkit model: parameter validation, output type, summary, save.

    Subclasses declare ``_parameter_constraints`` and implement ``_get_state``
    (the learned attributes as a dict) and, when they have fitted parameters, the
    ``params_`` and ``summary_`` attributes.
    """

    _parameter_constraints: dict = {}
    _STATE_ATTRS: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            _REGISTRY[cls.__name__] = cls

    # ---------------------------------------------------------------- parameters
    def _validate_params(self) -> None:
        """Check every hyperparameter against ``_parameter_constraints`` (call in fit)."""
        validate_params(type(self).__name__, self.get_params(deep=False),
                        self._parameter_constraints)

    # ---------------------------------------------------------------- output type
    def set_output(self, *, transform: str | None = None):
        """Choose the table type of every method that returns a table.

        Parameters
        ----------
        transform : {"default", "polars", "pandas"} or None
            ``"default"``/``"polars"``: polars frames; ``"pandas"``: pandas frames
            indexed by ``customer_id`` when there is one. None leaves it unchanged.

        Returns
        -------
        self
        """
        if transform is None:
            return self
        if transform not in ("default", "polars", "pandas"):
            raise ValueError("The 'transform' parameter of set_output must be a str among "
                             f"{{'default', 'polars', 'pandas'}}. Got {transform!r} instead.")
        self._sklearn_output_config = {"transform": transform}
        return self

    def _output_kind(self, output: str | None) -> str:
        if output is not None:
            return output
        cfg = getattr(self, "_sklearn_output_config", {}).get("transform")
        if cfg in ("polars", "pandas"):
            return cfg
        if cfg is None:
            try:
                import sklearn
                glob = sklearn.get_config().get("transform_output", "default")
            except Exception:  # pragma: no cover
                glob = "default"
            if glob in ("polars", "pandas"):
                return glob
        return "polars"

    def _to_output(self, frame, output: str | None):
        from crmkit._frames import to_output
        return to_output(frame, self._output_kind(output))

    # ---------------------------------------------------------------- summary
    def _summary_header(self) -> list[str]:
        return [f"<crmkit.{type(self).__name__}>"]

    def print_summary(self, decimals: int = 3, *, width: int = 100) -> None:
        """Print the fit (header lines, then ``summary_`` as a fixed-width table).

        The table never wraps a row: columns that do not fit in ``width``
        characters go into a further block that repeats the first column.
        """
        from sklearn.utils.validation import check_is_fitted
        check_is_fitted(self)
        print("\n".join(self._summary_header()))
        summary = getattr(self, "summary_", None)
        if isinstance(summary, pl.DataFrame) and summary.width:
            print(format_table(summary, decimals=decimals, width=width))

    # ---------------------------------------------------------------- persistence
    def _envelope_params(self) -> dict:
        """Hyperparameters as JSON data (override when one is an object)."""
        return self.get_params(deep=False)

    @classmethod
    def _params_from_envelope(cls, params: dict) -> dict:
        return params

    def _get_state(self) -> dict:
        return {a: getattr(self, a) for a in self._STATE_ATTRS if hasattr(self, a)}

    def _set_state(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)

    def save(self, path: str | os.PathLike, **meta: Any) -> Path:
        """Write the fitted model to ``path`` as one JSON envelope (atomically).

        ``meta`` may hold ``feature_names``, ``training_window``, ``metrics`` and
        ``fingerprint`` (see :func:`to_envelope`). Read it back with
        :func:`crmkit.load_model`.
        """
        from crmkit._persist import save_json_text
        text = json.dumps(to_envelope(self, **meta), indent=1, sort_keys=True, allow_nan=False)
        save_json_text(text, path)
        return Path(path)


def format_table(frame: pl.DataFrame, *, decimals: int = 3, width: int = 100) -> str:
    """A polars frame as a plain fixed-width table (floats to ``decimals``).

    Examples
    --------
    >>> print(format_table(pl.DataFrame({"param": ["r", "alpha"], "estimate": [0.2426, 4.4135]})))
    param  estimate
    r         0.243
    alpha     4.414
    """
    cols = []
    for name in frame.columns:
        s = frame[name]
        if s.dtype.is_float():
            vals = ["" if v is None else (f"{v:.{decimals}f}" if math.isfinite(v)
                                          else str(v)) for v in s.to_list()]
            vals = [v if len(v) <= 12 else f"{float(v):.{decimals}g}" for v in vals]
        else:
            vals = ["" if v is None else str(v) for v in s.to_list()]
        w = max([len(name)] + [len(v) for v in vals])
        left = not s.dtype.is_numeric()
        cols.append([name.ljust(w) if left else name.rjust(w)]
                    + [v.ljust(w) if left else v.rjust(w) for v in vals])
    blocks, current, used = [], [], 0
    for i, c in enumerate(cols):
        w = len(c[0]) + 2
        if current and used + w > width and i > 0:
            blocks.append(current)
            current, used = [cols[0]], len(cols[0][0]) + 2
        current.append(c)
        used += w
    blocks.append(current)
    out = []
    for b in blocks:
        out.append("\n".join("  ".join(col[r] for col in b).rstrip()
                             for r in range(len(b[0]))))
    return "\n\n".join(out)


# --------------------------------------------------------------------------- plots
def new_axes(figsize=(6, 4)):
    """Axes for a plot function called with ``ax=None``.

    With a non-interactive backend (Agg: batch jobs, the run report, tests) the
    figure is created outside pyplot, so it is not kept open in pyplot's registry
    (no "More than 20 figures" warning, no memory growth in a loop); with an
    interactive one (a notebook) it is a pyplot figure, shown as usual.
    """
    import matplotlib

    backend = matplotlib.get_backend().lower()
    if backend in ("agg", "pdf", "svg", "ps", "cairo", "template", "pgf"):
        from matplotlib.figure import Figure
        return Figure(figsize=figsize).subplots()
    import matplotlib.pyplot as plt
    return plt.subplots(figsize=figsize)[1]


# --------------------------------------------------------------------------- envelope
def _float_tag(v: float) -> dict:
    return {"__float__": "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")}


def encode_floats(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``{"__float__": "inf"}`` etc.

    Examples
    --------
    >>> encode_floats({"z": [1.0, float("inf"), float("nan")]})
    {'z': [1.0, {'__float__': 'inf'}, {'__float__': 'nan'}]}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return _float_tag(value)
    if isinstance(value, dict):
        return {k: encode_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_floats(v) for v in value]
    return value


def decode_floats(value: Any) -> Any:
    """The inverse of :func:`encode_floats`.

    Examples
    --------
    >>> decode_floats({"z": [{"__float__": "-inf"}]})
    {'z': [-inf]}
    """
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return _NONFINITE[value["__float__"]]
        return {k: decode_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_floats(v) for v in value]
    return value


def _encode(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else _float_tag(v)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, np.ndarray):
        return {"__ndarray__": _encode(value.tolist()), "dtype": str(value.dtype)}
    if isinstance(value, pl.DataFrame):
        return {"__frame__": {c: _encode(value[c].to_list()) for c in value.columns},
                "__columns__": list(value.columns),
                "__schema__": {c: str(t) for c, t in value.schema.items()}}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, str):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"to_envelope: cannot store a {type(value).__name__} as JSON data.")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return _NONFINITE[value["__float__"]]
        if "__ndarray__" in value:
            dtype = value["dtype"]
            data = _decode(value["__ndarray__"])
            return np.asarray(data, dtype=object if dtype == "object" else dtype)
        if "__frame__" in value:
            data = {c: _decode(v) for c, v in value["__frame__"].items()}
            frame = pl.DataFrame(data, strict=False)
            float_cols = [c for c, t in value.get("__schema__", {}).items()
                          if t.startswith("Float")]
            if float_cols:
                frame = frame.with_columns(pl.col(float_cols).cast(pl.Float64))
            return frame.select(value.get("__columns__", frame.columns))
        return {k: _decode(v) for k, v in value.items()}
    return value


def parse_model_json(text: str, source: Any = "the model document") -> Any:
    """Parse a model file's JSON text; a ``crmkit.model/1`` envelope must be strict JSON.

    JSON has no NaN or Infinity; crmkit writes them as ``{"__float__": ...}``, so a
    bare ``NaN`` in an envelope means the file was not written by crmkit (the
    previous formats, written with ``allow_nan=True``, may hold them).
    """
    bare: list[str] = []

    def constant(name: str) -> float:
        bare.append(name)
        return float(name.replace("Infinity", "inf"))

    doc = json.loads(text, parse_constant=constant)
    if bare and isinstance(doc, dict) and doc.get("format") == ENVELOPE_FORMAT:
        raise ValueError(f"{source} holds a bare non-finite number ({bare[0]}); JSON has none, "
                         "and crmkit writes them as {\"__float__\": \"inf\"}. The file was not "
                         "written by crmkit; refit and save it.")
    return doc


def _meta(feature_names: Any, training_window: Any, metrics: dict | None,
          fingerprint: str | None) -> dict:
    from crmkit._frames import _crmkit_version
    if isinstance(training_window, (tuple, list)):
        training_window = {"start": training_window[0], "end": training_window[1]}
    return {
        "feature_names": None if feature_names is None else [str(f) for f in feature_names],
        "training_window": _encode(training_window),
        "metrics": _encode(metrics or {}),
        "fingerprint": fingerprint,
        "crmkit_version": _crmkit_version(),
    }


def to_envelope(model: Any, *, feature_names: Any = None, training_window: Any = None,
                metrics: dict | None = None, fingerprint: str | None = None) -> dict:
    """The JSON envelope of a fitted crmkit model (a plain dict of JSON data).

    Parameters
    ----------
    model : CrmkitEstimator or mapping of str to CrmkitEstimator
        A fitted crmkit model, or several saved together under their names (one
        envelope with ``"models"``; :func:`load_model` gives the dict back).
    feature_names : list of str, optional
        Default: the model's ``feature_names_in_`` when it has them.
    training_window : dict or tuple, optional
        ``{"start": date, "end": date}`` (or a 2-tuple) of the training data.
    metrics : dict, optional
        Held-out metrics to keep with the model.
    fingerprint : str, optional
        Fingerprint of the training input. Default: the model's ``fingerprint_``.

    Returns
    -------
    dict
        Strict JSON data: non-finite floats are ``{"__float__": "inf"}`` (or ``"-inf"``,
        ``"nan"``), so ``json.dumps(..., allow_nan=False)`` succeeds.

    Examples
    --------
    >>> import polars as pl, json
    >>> from crmkit.value import BetaGeo
    >>> rfm = pl.DataFrame({"frequency": [0, 1, 2, 0, 3, 1], "recency_weeks": [0., 5, 20, 0, 30, 2],
    ...                     "T_weeks": [30., 35, 38, 10, 39, 20]})
    >>> bg = BetaGeo(penalizer=0.01).fit(rfm)
    >>> env = to_envelope(bg, metrics={"mae": 0.5, "gain": float("nan")})
    >>> env["format"], env["class"], env["params"]["penalizer"], env["metrics"]
    ('crmkit.model/1', 'BetaGeo', 0.01, {'mae': 0.5, 'gain': {'__float__': 'nan'}})
    >>> from_envelope(json.loads(json.dumps(env, allow_nan=False))).params_ == bg.params_
    True
    >>> both = to_envelope({"light": bg, "heavy": BetaGeo(penalizer=0.1).fit(rfm)})
    >>> sorted(both["models"]), sorted(from_envelope(both))
    (['heavy', 'light'], ['heavy', 'light'])
    """
    from sklearn.utils.validation import check_is_fitted

    if isinstance(model, Mapping):
        if not model:
            raise ValueError("to_envelope: got an empty mapping of models.")
        models = {str(k): to_envelope(m) for k, m in model.items()}
        return {"format": ENVELOPE_FORMAT, "models": models,
                **_meta(feature_names, training_window, metrics, fingerprint)}
    if not isinstance(model, CrmkitEstimator):
        raise TypeError(f"to_envelope: expected a crmkit estimator, got {type(model).__name__}.")
    check_is_fitted(model)
    if feature_names is None and hasattr(model, "feature_names_in_"):
        feature_names = list(model.feature_names_in_)
    if fingerprint is None:
        fingerprint = getattr(model, "fingerprint_", None)
    return {
        "format": ENVELOPE_FORMAT,
        "class": type(model).__name__,
        "params": _encode(model._envelope_params()),
        "fitted_params": _encode(dict(getattr(model, "params_", {}) or {})),
        "state": _encode(model._get_state()),
        **_meta(feature_names, training_window, metrics, fingerprint),
    }


def from_envelope(doc: dict) -> Any:
    """Rebuild a fitted model from :func:`to_envelope` data (no code is executed).

    The metadata (feature names, training window, metrics, fingerprint, version)
    is attached as ``model.metadata_``. An envelope of several models gives a dict
    name -> model, one of a single model (under a name) that model; each member
    may also be a document of the previous formats.
    """
    if not isinstance(doc, dict) or doc.get("format") != ENVELOPE_FORMAT:
        fmt = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(f"Not a crmkit model envelope (format {fmt!r}; expected "
                         f"{ENVELOPE_FORMAT!r}).")
    if "models" in doc:
        members = doc["models"]
        if not isinstance(members, dict) or not members:
            raise ValueError("The model envelope's 'models' is not a mapping of models.")
        models = {name: load_model(member) for name, member in members.items()}
        return next(iter(models.values())) if len(models) == 1 else models
    if "class" not in doc:
        what = f" (pipeline step {doc['step']!r})" if "step" in doc else ""
        raise ValueError(f"The envelope holds fitted data{what}, not a crmkit estimator.")
    _import_model_packages()
    cls = _REGISTRY.get(doc.get("class"))
    if cls is None:
        raise ValueError(f"Unknown model class {doc.get('class')!r} in the envelope; known: "
                         f"{', '.join(sorted(_REGISTRY))}.")
    params = cls._params_from_envelope(_decode(doc.get("params") or {}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = cls(**params)
    model._set_state(_decode(doc.get("state") or {}))
    model.metadata_ = {k: _decode(doc.get(k)) for k in
                       ("feature_names", "training_window", "metrics", "fingerprint",
                        "crmkit_version")}
    return model


def _import_model_packages() -> None:
    import crmkit.churn  # noqa: F401  (registers the estimator classes)
    import crmkit.value  # noqa: F401


def load_model(source: Any) -> Any:
    """Load any crmkit model: a path, JSON text or an envelope dict.

    Reads the envelope written by ``model.save(path)`` and the model files of the
    nightly run's model store (``<model_dir>/<name>/<fitted_as_of>.json``); a file
    holding several models (the CLV step's transaction and spend models) gives a
    dict name -> model, one holding one model that model. Files in the previous
    formats (``crmkit.clv/1`` from ``to_json`` of CLV models, ``crmkit.churn/1`` of
    survival models, ``crmkit.propensity/1``) are read too.

    Examples
    --------
    >>> import polars as pl, tempfile, pathlib, crmkit
    >>> from crmkit.value import BetaGeo
    >>> rfm = pl.DataFrame({"frequency": [0, 1, 2, 0, 3, 1], "recency_weeks": [0., 5, 20, 0, 30, 2],
    ...                     "T_weeks": [30., 35, 38, 10, 39, 20]})
    >>> m = BetaGeo(penalizer=0.01).fit(rfm)
    >>> path = m.save(pathlib.Path(tempfile.mkdtemp()) / "bg.json")
    >>> crmkit.load_model(path).params_ == m.params_
    True
    """
    if isinstance(source, dict):
        doc = source
    else:
        from crmkit._persist import json_text_from
        doc = parse_model_json(json_text_from(source), source=source)
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if fmt == "crmkit.clv/1":
        from crmkit.value._clv_base import CLVModel
        return CLVModel._from_legacy(doc)
    if fmt == "crmkit.churn/1":
        from crmkit.churn._base import _load_legacy
        return _load_legacy(doc)
    if fmt == "crmkit.propensity/1":
        from crmkit.propensity import load_model as load_propensity
        return load_propensity(doc)
    return from_envelope(doc)
