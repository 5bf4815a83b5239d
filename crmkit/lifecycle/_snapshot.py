"""The lifecycle step of a nightly run, as a pure function of its inputs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import polars as pl

from crmkit._params import check_date
from crmkit.lifecycle._config import LifecycleConfig, load_config
from crmkit.lifecycle._stages import assign_stages
from crmkit.lifecycle._transitions import stage_changes, transition_matrix

__all__ = ["run_lifecycle_step"]


def run_lifecycle_step(features: Any, previous_stages: Any, as_of: dt.date | str,
                       config: str | Mapping[str, Any] | LifecycleConfig = "retail_bank",
                       *, params: Mapping[str, Any] | None = None) -> dict[str, pl.DataFrame]:
    """Stages as of the run date, stage changes and the transition matrix.

    A pure function (no I/O): the pipeline writes the returned tables into the run
    folder. Without a previous run, every customer is a ``"(new)"`` arrival.

    Parameters
    ----------
    features : DataFrame
        As-of features (see :func:`lifecycle_features`), model outputs optional.
    previous_stages : DataFrame or None
        The ``stages`` table of the previous run.
    as_of : date or str
    config : str, mapping or LifecycleConfig
        Preset name, TOML path or config.
    params : mapping, optional
        Threshold overrides.

    Returns
    -------
    dict of str to polars.DataFrame
        ``"stages"`` (:func:`assign_stages`), ``"stage_changes"``
        (:func:`stage_changes`) and ``"transition_matrix"`` (long form, with
        ``as_of``).

    Examples
    --------
    >>> import polars as pl
    >>> cfg = {"kind": "non_contractual", "default_stage": "growth",
    ...        "rules": [{"name": "prospect", "stage": "prospect", "when": "not has_transacted"}],
    ...        "churn": {"kind": "non_contractual"}}
    >>> f = pl.DataFrame({"customer_id": ["a", "b"], "has_transacted": [False, True]})
    >>> prev = pl.DataFrame({"customer_id": ["a", "b"], "stage": ["prospect", "onboarding"]})
    >>> out = run_lifecycle_step(f, prev, "2025-12-31", cfg)
    >>> sorted(out)
    ['stage_changes', 'stages', 'transition_matrix']
    >>> out["stage_changes"].select("customer_id", "from_stage", "to_stage").rows()
    [('b', 'onboarding', 'growth')]
    """
    as_of = check_date(as_of, "as_of", "run_lifecycle_step")
    config = load_config(config)
    stages = assign_stages(features, as_of=as_of, previous=previous_stages, preset=config,
                           params=params)
    prev = previous_stages if previous_stages is not None else pl.DataFrame(
        schema={"customer_id": pl.String, "stage": pl.String})
    changes = stage_changes(prev, stages, as_of=as_of)
    matrix = transition_matrix(prev, stages, stages=list(config.stages)).select(
        pl.lit(as_of, pl.Date).alias("as_of"), pl.all())
    return {"stages": stages, "stage_changes": changes, "transition_matrix": matrix}
