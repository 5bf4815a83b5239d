"""Segment expressions: a small, safe language over the run's customer table.

An expression is parsed with :mod:`ast` (never ``eval``) and only the node types
listed below are accepted; anything else is rejected with the offending text named.
The expression is checked against the customer table's schema before it is
compiled to a polars expression: an unknown column names the closest one, and a
comparison of a number column with a text value (or the reverse) is an error.

Grammar (Python syntax, restricted)::

    expr     := expr "and" expr | expr "or" expr | "not" expr | "(" expr ")"
              | operand cmp operand [cmp operand ...]
              | operand ["not"] "in" "[" constant, ... "]"
              | operand "is" ["not"] "None"
              | column                                (a true/false column)
              | "holds(" text ")"                     (column holds_<text>)
              | "is_null(" column ")" | "not_null(" column ")"
    operand  := column | number | text | True | False
              | operand ("+" | "-" | "*" | "/") operand | "-" operand | "abs(" operand ")"
    cmp      := "==" | "!=" | "<" | "<=" | ">" | ">="

Missing values follow SQL: a comparison with a missing value is unknown, and an
unknown condition does not put the customer in the segment.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from crmkit._config import closest
from crmkit.exceptions import ConfigError

__all__ = ["CompiledSegment", "compile_segment"]

_CMP = {ast.Eq: ("==", operator.eq), ast.NotEq: ("!=", operator.ne),
        ast.Lt: ("<", operator.lt), ast.LtE: ("<=", operator.le),
        ast.Gt: (">", operator.gt), ast.GtE: (">=", operator.ge)}
_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv}
FUNCTIONS = ("abs", "holds", "is_null", "not_null")
MAX_LENGTH = 2000

# The type of a value in the language.
NUM, TEXT, BOOL, DATE, NULL = "number", "text", "true/false", "date", "missing"


def _kind(dtype: pl.DataType) -> str | None:
    if dtype == pl.Boolean:
        return BOOL
    if dtype.is_numeric():
        return NUM
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return TEXT
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        return DATE
    if dtype == pl.Null:
        return NULL
    return None


@dataclass(frozen=True)
class CompiledSegment:
    """A segment expression checked against a schema and compiled to polars.

    Attributes
    ----------
    text : str
        The expression as written.
    expr : polars.Expr
        True for the customers in the segment (never null: unknown is False).
    columns : frozenset of str
        The customer-table columns the expression reads.
    """

    text: str
    expr: pl.Expr
    columns: frozenset[str]


class _Compiler:
    def __init__(self, text: str, name: str, schema: Mapping[str, pl.DataType],
                 values: Mapping[str, list[str]], frame: pl.DataFrame | None = None):
        self.text = text
        self.name = name
        self.schema = dict(schema)
        self.values = dict(values)
        self.frame = frame
        self.used: set[str] = set()

    def _seen(self, column: str) -> list[str] | None:
        """Distinct values of a text column (up to 200), computed only when compared."""
        if column not in self.values and self.frame is not None and column in self.frame.columns:
            distinct = self.frame[column].drop_nulls().unique()
            self.values[column] = ([str(v) for v in distinct.to_list()]
                                   if distinct.len() <= 200 else [])
        return self.values.get(column)

    # -- errors ----------------------------------------------------------------------
    def _piece(self, node: ast.AST) -> str:
        piece = ast.get_source_segment(self.text, node)
        return piece if piece is not None else ast.dump(node)

    def fail(self, node: ast.AST | None, why: str) -> ConfigError:
        at = f"at {self._piece(node)!r} in" if node is not None else "in"
        end = "" if why.endswith((".", "?", "!")) else "."
        shown = self.text if len(self.text) <= 200 else self.text[:200] + "…"
        return ConfigError(f"Segment {self.name!r}, {at} {shown!r}: {why}{end}")

    # -- entry -----------------------------------------------------------------------
    def compile(self) -> pl.Expr:
        if not isinstance(self.text, str):
            raise ConfigError(f"Segment {self.name!r}: the expression must be text. "
                              f"Got {type(self.text).__name__} instead.")
        if not self.text.strip():
            raise self.fail(None, "the expression is empty")
        if len(self.text) > MAX_LENGTH:
            raise self.fail(None, f"the expression is longer than {MAX_LENGTH} characters "
                                  f"({len(self.text)})")
        if "\n" in self.text.strip() or "\r" in self.text:
            raise self.fail(None, "the expression must be one line")
        try:
            tree = ast.parse(self.text.strip(), mode="eval")
        except SyntaxError as err:
            raise self.fail(None, f"not a valid expression ({err.msg})") from None
        self.text = self.text.strip()
        expr, kind = self.visit(tree.body)
        if kind != BOOL:
            raise self.fail(tree.body, f"the expression must be a condition (true/false), "
                                       f"but it is a {kind}")
        return expr.fill_null(False)

    # -- nodes -----------------------------------------------------------------------
    def visit(self, node: ast.AST) -> tuple[pl.Expr, str]:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise self.fail(node, f"{type(node).__name__} is not allowed; use columns, "
                                  "constants, comparisons, in [...], and/or/not, + - * /, "
                                  f"and the functions {', '.join(FUNCTIONS)}")
        return method(node)

    def _Name(self, node: ast.Name) -> tuple[pl.Expr, str]:
        name = node.id
        if name in ("True", "False", "None"):  # pragma: no cover - parsed as Constant
            return self._Constant(ast.Constant(value=eval_const(name)))
        if name not in self.schema:
            raise self.fail(node, f"unknown column {name!r}.{closest(name, self.schema)} "
                                  f"The customer table has {len(self.schema)} columns")
        kind = _kind(self.schema[name])
        if kind is None:
            raise self.fail(node, f"column {name!r} has type {self.schema[name]}, which "
                                  "segments cannot compare")
        self.used.add(name)
        return pl.col(name), kind

    def _Constant(self, node: ast.Constant) -> tuple[pl.Expr, str]:
        v = node.value
        if isinstance(v, bool):
            return pl.lit(v), BOOL
        if v is None:
            return pl.lit(None), NULL
        if isinstance(v, (int, float)):
            return pl.lit(v), NUM
        if isinstance(v, str):
            return pl.lit(v), TEXT
        raise self.fail(node, f"the constant {v!r} is not allowed (numbers, text, True, "
                              "False and None are)")

    def _BoolOp(self, node: ast.BoolOp) -> tuple[pl.Expr, str]:
        parts = []
        for value in node.values:
            expr, kind = self.visit(value)
            if kind != BOOL:
                raise self.fail(value, f"'and'/'or' need conditions on both sides, not a {kind}")
            parts.append(expr)
        out = parts[0]
        for p in parts[1:]:
            out = (out & p) if isinstance(node.op, ast.And) else (out | p)
        return out, BOOL

    def _UnaryOp(self, node: ast.UnaryOp) -> tuple[pl.Expr, str]:
        expr, kind = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            if kind != BOOL:
                raise self.fail(node, f"'not' needs a condition, not a {kind}")
            return ~expr, BOOL
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            if kind != NUM:
                raise self.fail(node, f"a sign needs a number, not a {kind}")
            return (-expr if isinstance(node.op, ast.USub) else expr), NUM
        raise self.fail(node, f"the operator {type(node.op).__name__} is not allowed")

    def _BinOp(self, node: ast.BinOp) -> tuple[pl.Expr, str]:
        op = _BIN.get(type(node.op))
        if op is None:
            raise self.fail(node, "only + - * / are allowed in arithmetic")
        left, lk = self.visit(node.left)
        right, rk = self.visit(node.right)
        if lk != NUM or rk != NUM:
            raise self.fail(node, f"arithmetic needs numbers on both sides, got a {lk} and a {rk}")
        return op(left, right), NUM

    def _comparable(self, node: ast.AST, a: str, b: str) -> None:
        if NULL in (a, b):
            raise self.fail(node, "compare with None using 'is None' or 'is not None'")
        if a != b:
            raise self.fail(node, f"cannot compare a {a} with a {b}")

    def _check_text_value(self, column: ast.AST, value: ast.AST) -> None:
        # 'gold' against a column holding 'Gold': an empty segment nobody asked for.
        if not (isinstance(column, ast.Name) and isinstance(value, ast.Constant)
                and isinstance(value.value, str)):
            return
        seen = self._seen(column.id)
        if not seen or value.value in seen:
            return
        same = [s for s in seen if s.casefold() == value.value.casefold()]
        if same:
            raise self.fail(value, f"column {column.id!r} has no value {value.value!r} (text "
                                   f"comparisons are exact); did you mean {same[0]!r}?")

    def _Compare(self, node: ast.Compare) -> tuple[pl.Expr, str]:
        nodes = [node.left, *node.comparators]
        out = None
        for i, op in enumerate(node.ops):
            left_node, right_node = nodes[i], nodes[i + 1]
            if isinstance(op, (ast.In, ast.NotIn)):
                part = self._membership(left_node, right_node, isinstance(op, ast.NotIn))
            elif isinstance(op, (ast.Is, ast.IsNot)):
                if not (isinstance(right_node, ast.Constant) and right_node.value is None):
                    raise self.fail(node, "'is' and 'is not' are only allowed with None")
                left, _ = self.visit(left_node)
                part = left.is_null() if isinstance(op, ast.Is) else left.is_not_null()
            elif type(op) in _CMP:
                left, lk = self.visit(left_node)
                right, rk = self.visit(right_node)
                self._comparable(node, lk, rk)
                if lk == BOOL and type(op) not in (ast.Eq, ast.NotEq):
                    raise self.fail(node, "true/false values can only be compared with == or !=")
                self._check_text_value(left_node, right_node)
                self._check_text_value(right_node, left_node)
                part = _CMP[type(op)][1](left, right)
            else:  # pragma: no cover - every ast.cmpop is handled above
                raise self.fail(node, f"the comparison {type(op).__name__} is not allowed")
            out = part if out is None else (out & part)
        return out, BOOL

    def _membership(self, left_node: ast.AST, right_node: ast.AST,
                    negate: bool) -> pl.Expr:
        left, lk = self.visit(left_node)
        if not isinstance(right_node, (ast.List, ast.Tuple, ast.Set)):
            raise self.fail(right_node, "'in' needs a list of constants such as "
                                        "[\"Gold\", \"Platinum\"]")
        values = []
        for elt in right_node.elts:
            if not isinstance(elt, ast.Constant) or elt.value is None:
                raise self.fail(elt, "a list after 'in' may hold only numbers or text")
            _, kind = self._Constant(elt)
            self._comparable(elt, lk, kind)
            self._check_text_value(left_node, elt)
            values.append(elt.value)
        if not values:
            raise self.fail(right_node, "the list after 'in' is empty")
        member = left.is_in(pl.Series(values).implode())
        # is_in gives False (not null) for a null left side; keep SQL's unknown instead.
        member = pl.when(left.is_null()).then(None).otherwise(member)
        return ~member if negate else member

    def _Call(self, node: ast.Call) -> tuple[pl.Expr, str]:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            what = node.func.id if isinstance(node.func, ast.Name) else self._piece(node.func)
            raise self.fail(node, f"unknown function {what!r}; the functions are "
                                  f"{', '.join(FUNCTIONS)}")
        fn = node.func.id
        if node.keywords or len(node.args) != 1:
            raise self.fail(node, f"{fn}() takes exactly one argument")
        arg = node.args[0]
        if fn == "holds":
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                raise self.fail(node, "holds() takes a product category as text, e.g. "
                                      "holds(\"fund\")")
            column = f"holds_{arg.value}"
            if column not in self.schema:
                cats = sorted(c.removeprefix("holds_") for c in self.schema
                              if c.startswith("holds_"))
                hint = closest(arg.value, cats)
                raise self.fail(node, f"no column {column!r} for holds({arg.value!r}).{hint} "
                                      f"Categories: {', '.join(cats) or 'none'}")
            self.used.add(column)
            expr = pl.col(column)
            kind = _kind(self.schema[column])
            if kind == NUM:
                expr = expr > 0
            elif kind != BOOL:
                raise self.fail(node, f"column {column!r} is a {kind}, not true/false")
            return expr, BOOL
        expr, kind = self.visit(arg)
        if fn == "abs":
            if kind != NUM:
                raise self.fail(node, f"abs() needs a number, not a {kind}")
            return expr.abs(), NUM
        if fn == "is_null":
            return expr.is_null(), BOOL
        return expr.is_not_null(), BOOL


def eval_const(name: str) -> Any:  # pragma: no cover - Python >= 3.8 parses these as Constant
    return {"True": True, "False": False, "None": None}[name]


def compile_segment(text: str, schema: Mapping[str, pl.DataType] | pl.DataFrame, *,
                    name: str = "segment",
                    values: Mapping[str, list[str]] | None = None) -> CompiledSegment:
    """Parse, check and compile one segment expression.

    Parameters
    ----------
    text : str
        The expression, e.g. ``tier in ["Gold", "Platinum"] and not holds("fund")``.
    schema : mapping of column name to polars dtype, or a polars DataFrame
        The customer table (or its schema) the expression will run on. With a
        frame, the distinct values of its text columns are used to catch a value
        written in the wrong case (``"gold"`` for ``"Gold"``).
    name : str
        The segment's name, for error messages.
    values : mapping, optional
        Distinct values of text columns (taken from the frame when one is given).

    Returns
    -------
    CompiledSegment

    Raises
    ------
    crmkit.exceptions.ConfigError
        For anything outside the grammar, an unknown column (with the closest
        name) or a comparison of different types.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"tier": ["Gold", "Mass"], "churn_prob_90d": [0.4, 0.9],
    ...                    "holds_fund": [False, False]})
    >>> seg = compile_segment('tier == "Gold" and churn_prob_90d > 0.3 and not holds("fund")', df)
    >>> df.filter(seg.expr)["tier"].to_list()
    ['Gold']
    >>> compile_segment("churn_90d > 0.3", df)
    Traceback (most recent call last):
    ...
    crmkit.exceptions.ConfigError: Segment 'segment', at 'churn_90d' in 'churn_90d > 0.3': unknown column 'churn_90d'. Did you mean 'churn_prob_90d'? The customer table has 3 columns.
    """
    frame = schema if isinstance(schema, pl.DataFrame) else None
    if frame is not None:
        schema = frame.schema
    comp = _Compiler(text, name, schema, values or {}, frame)
    expr = comp.compile()
    return CompiledSegment(text=comp.text, expr=expr, columns=frozenset(comp.used))
