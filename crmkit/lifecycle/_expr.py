"""A small, safe condition language for stage rules, compiled to polars expressions.

A condition is either a restricted expression string, parsed with :mod:`ast` (never
``eval``), or a list of ``{feature, op, value}`` clauses. The string form allows

- names (feature columns, or rule parameters such as ``dormant_days``),
- numbers, strings, ``True``/``False``/``None`` and lists/tuples of constants,
- comparisons ``== != < <= > >=`` (chained too), ``in`` / ``not in`` a list,
  ``is None`` / ``is not None``,
- arithmetic ``+ - * /`` and unary minus,
- ``and``, ``or``, ``not`` and parentheses,
- the functions ``abs(x)``, ``is_null(x)``, ``not_null(x)`` and ``coalesce(x, y, ...)``.

Anything else (attribute access, subscripts, lambdas, other calls) is rejected with
the offending piece of text named. Missing values follow SQL: a comparison with a
missing value is missing, and a rule whose condition is missing does not fire.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from crmkit._config import closest
from crmkit.exceptions import ConfigError

__all__ = ["CompiledCondition", "compile_clauses", "compile_condition", "closest"]

_CMP = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv}
_FUNCS = ("abs", "coalesce", "is_null", "not_null")
CLAUSE_OPS = ("==", "!=", "<", "<=", ">", ">=", "in", "not in", "is_null", "not_null")


@dataclass(frozen=True)
class CompiledCondition:
    """A condition compiled to a polars expression, with the names it reads."""

    expr: pl.Expr
    features: frozenset[str]
    params: frozenset[str]


class _Compiler:
    def __init__(self, text: str, where: str, params: Mapping[str, Any]):
        self.text = text
        self.where = where
        self.params = params
        self.features: set[str] = set()
        self.used_params: set[str] = set()

    def fail(self, node: ast.AST, what: str) -> ConfigError:
        piece = ast.get_source_segment(self.text, node) or type(node).__name__
        return ConfigError(
            f"{self.where}: {what} in condition {self.text!r} (at {piece!r}). Conditions may "
            "use feature names, numbers, strings, comparisons, in/not in a list, + - * /, "
            "and/or/not and the functions " + ", ".join(_FUNCS) + "."
        )

    def const(self, node: ast.AST) -> Any:
        """Value of a constant node (or a parameter name, or a list of constants)."""
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool,
                                                                      type(None))):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            value = self.const(node.operand)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return -value
        if isinstance(node, ast.Name) and node.id in self.params:
            self.used_params.add(node.id)
            return self.params[node.id]
        raise self.fail(node, "expected a constant")

    def compile(self, node: ast.AST) -> pl.Expr:
        if isinstance(node, ast.Expression):
            return self.compile(node.body)
        if isinstance(node, ast.BoolOp):
            parts = [self.compile(v) for v in node.values]
            out = parts[0]
            for part in parts[1:]:
                out = (out & part) if isinstance(node.op, ast.And) else (out | part)
            return out
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                return ~self.compile(node.operand)
            if isinstance(node.op, ast.USub):
                return -self.compile(node.operand)
            if isinstance(node.op, ast.UAdd):
                return self.compile(node.operand)
            raise self.fail(node, "unsupported operator")
        if isinstance(node, ast.BinOp):
            op = _BIN.get(type(node.op))
            if op is None:
                raise self.fail(node, "unsupported arithmetic operator")
            return op(self.compile(node.left), self.compile(node.right))
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Name):
            if node.id in self.params:
                self.used_params.add(node.id)
                return pl.lit(self.params[node.id])
            self.features.add(node.id)
            return pl.col(node.id)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (int, float, str, bool)):
                return pl.lit(node.value)
            if node.value is None:
                return pl.lit(None)
        raise self.fail(node, f"{type(node).__name__} is not allowed")

    def compare(self, node: ast.Compare) -> pl.Expr:
        left_node = node.left
        result: pl.Expr | None = None
        for op, right_node in zip(node.ops, node.comparators):
            left = self.compile(left_node)
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(right_node, (ast.List, ast.Tuple, ast.Set)):
                    raise self.fail(right_node, "'in' needs a list of constants")
                values = [self.const(e) for e in right_node.elts]
                part = left.is_in(values)  # missing stays missing (SQL semantics)
                if isinstance(op, ast.NotIn):
                    part = ~part
            elif isinstance(op, (ast.Is, ast.IsNot)) or (
                    isinstance(op, (ast.Eq, ast.NotEq))
                    and isinstance(right_node, ast.Constant) and right_node.value is None):
                if not (isinstance(right_node, ast.Constant) and right_node.value is None):
                    raise self.fail(right_node, "'is' is only allowed with None")
                part = left.is_null() if isinstance(op, (ast.Is, ast.Eq)) else left.is_not_null()
            else:
                part = _CMP[type(op)](left, self.compile(right_node))
            result = part if result is None else (result & part)
            left_node = right_node
        assert result is not None
        return result

    def call(self, node: ast.Call) -> pl.Expr:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS or node.keywords:
            raise self.fail(node, "only abs(), is_null(), not_null() and coalesce() may be called")
        args = [self.compile(a) for a in node.args]
        name = node.func.id
        if name == "coalesce":
            if len(args) < 2:
                raise self.fail(node, "coalesce() needs two or more arguments")
            return pl.coalesce(args)
        if len(args) != 1:
            raise self.fail(node, f"{name}() takes exactly one argument")
        if name == "abs":
            return args[0].abs()
        return args[0].is_null() if name == "is_null" else args[0].is_not_null()


def compile_condition(text: str, *, params: Mapping[str, Any] | None = None,
                      where: str = "condition") -> CompiledCondition:
    """Compile a restricted expression string to a polars boolean expression.

    Parameters
    ----------
    text : str
        The condition, e.g. ``"days_since_last_txn >= dormant_days and n_products_open > 0"``.
    params : mapping, optional
        Named constants (thresholds); a name found here is a constant, any other name
        a feature column.
    where : str
        Prefix of error messages (e.g. ``"rule 'dormant'"``).

    Returns
    -------
    CompiledCondition

    Examples
    --------
    >>> import polars as pl
    >>> c = compile_condition("x >= limit and y in ['a', 'b']", params={"limit": 2})
    >>> sorted(c.features)
    ['x', 'y']
    >>> pl.DataFrame({"x": [1, 3, None], "y": ["a", "a", "a"]}).select(c.expr)["x"].to_list()
    [False, True, None]
    >>> compile_condition("__import__('os')")
    Traceback (most recent call last):
    ...
    crmkit.exceptions.ConfigError: condition: only abs(), is_null(), not_null() and coalesce() may be called ...
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where}: the condition must be a non-empty string. Got {text!r} instead.")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConfigError(f"{where}: condition {text!r} is not valid syntax ({exc.msg}).") from None
    comp = _Compiler(text.strip(), where, dict(params or {}))
    expr = comp.compile(tree)
    return CompiledCondition(expr, frozenset(comp.features), frozenset(comp.used_params))


def compile_clauses(clauses: Iterable[Mapping[str, Any]], *, combine: str = "all",
                    params: Mapping[str, Any] | None = None,
                    where: str = "condition") -> CompiledCondition:
    """Compile ``{feature, op, value}`` clauses combined with ``all`` or ``any``.

    ``value`` may name a parameter (a string that is a key of ``params``) and is
    ignored by ``is_null`` / ``not_null``.

    Examples
    --------
    >>> import polars as pl
    >>> c = compile_clauses([{"feature": "x", "op": ">", "value": 1},
    ...                      {"feature": "y", "op": "is_null"}], combine="any")
    >>> pl.DataFrame({"x": [0, 2], "y": [None, 1]}).select(c.expr)["x"].to_list()
    [True, True]
    """
    params = dict(params or {})
    exprs, feats, used = [], set(), set()
    for i, clause in enumerate(clauses):
        feature, op, value = clause["feature"], clause["op"], clause.get("value")
        if op not in CLAUSE_OPS:
            raise ConfigError(f"{where}: clause {i} has op {op!r}; use one of "
                              f"{', '.join(map(repr, CLAUSE_OPS))}.{closest(op, CLAUSE_OPS)}")
        if isinstance(value, str) and value in params:
            used.add(value)
            value = params[value]
        col = pl.col(feature)
        feats.add(feature)
        if op == "is_null":
            e = col.is_null()
        elif op == "not_null":
            e = col.is_not_null()
        elif op in ("in", "not in"):
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{where}: clause {i} ({feature} {op}) needs a list value. "
                                  f"Got {value!r} instead.")
            e = col.is_in(list(value))
            e = ~e if op == "not in" else e
        else:
            if value is None:
                raise ConfigError(f"{where}: clause {i} ({feature} {op}) has no value; "
                                  "use op 'is_null' to test for a missing value.")
            cmp = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
                   ">": operator.gt, ">=": operator.ge}[op]
            e = cmp(col, pl.lit(value))
        exprs.append(e)
    if not exprs:
        raise ConfigError(f"{where}: an empty clause list matches nothing; give at least one clause.")
    out = exprs[0]
    for e in exprs[1:]:
        out = (out & e) if combine == "all" else (out | e)
    return CompiledCondition(out, frozenset(feats), frozenset(used))
