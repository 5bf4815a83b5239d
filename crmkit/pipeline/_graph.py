"""Order the steps from what they declare they read and write."""

from __future__ import annotations

from collections.abc import Sequence

from crmkit.exceptions import ConfigError
from crmkit.pipeline._step import Step
from crmkit.schema import TABLES

__all__ = ["BUILTIN_INPUTS", "order_steps"]

BUILTIN_INPUTS = ("features", *TABLES)
"""Inputs every step may declare: the as-of features and the validated input tables."""


def order_steps(steps: Sequence[Step]) -> list[Step]:
    """The steps in an order where each runs after the producers of its inputs.

    Ties keep the given order. A step reading an input that no step produces, two
    steps producing one output, or a cycle is a :class:`crmkit.ConfigError` naming
    the steps and inputs.

    Examples
    --------
    >>> from crmkit.pipeline._step import Step
    >>> from pydantic import BaseModel
    >>> a = Step("a", BaseModel, score=None, inputs=("b.t",), outputs=("t",))
    >>> b = Step("b", BaseModel, score=None, inputs=("features",), outputs=("t",))
    >>> [s.name for s in order_steps([a, b])]
    ['b', 'a']
    >>> order_steps([a])
    Traceback (most recent call last):
    ...
    crmkit.exceptions.ConfigError: Step 'a' reads 'b.t', which no step produces (produced: features, ...).
    """
    producers: dict[str, str] = {}
    for step in steps:
        for out in step.qualified_outputs():
            if out in producers:
                raise ConfigError(f"Steps {producers[out]!r} and {step.name!r} both produce "
                                  f"{out!r}.")
            producers[out] = step.name
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise ConfigError(f"Two steps share a name: {', '.join(names)}.")
    needs: dict[str, set[str]] = {}
    for step in steps:
        needs[step.name] = set()
        for name in step.inputs:
            if name in BUILTIN_INPUTS:
                continue
            if name not in producers:
                known = ", ".join(["features", *sorted(producers)][:12])
                raise ConfigError(f"Step {step.name!r} reads {name!r}, which no step produces "
                                  f"(produced: {known}, ...).")
            if producers[name] != step.name:
                needs[step.name].add(producers[name])
        for name in step.optional_inputs:
            if name in producers and producers[name] != step.name:
                needs[step.name].add(producers[name])
    ordered: list[Step] = []
    done: set[str] = set()
    pending = list(steps)
    while pending:
        ready = [s for s in pending if needs[s.name] <= done]
        if not ready:
            cycle = ", ".join(s.name for s in pending)
            raise ConfigError(f"The steps {cycle} read each other's outputs in a cycle.")
        first = ready[0]
        ordered.append(first)
        done.add(first.name)
        pending.remove(first)
    return ordered
