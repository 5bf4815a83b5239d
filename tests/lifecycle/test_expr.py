"""The rule language: safe, SQL null semantics, every construct it promises."""

import polars as pl
import pytest

from crmkit.exceptions import ConfigError
from crmkit.lifecycle import compile_condition
from crmkit.lifecycle._expr import compile_clauses

FRAME = pl.DataFrame({"x": [1, 5, None, 10], "s": ["a", "b", None, "c"],
                      "flag": [True, False, True, None]})


def _eval(text, params=None):
    return FRAME.select(compile_condition(text, params=params).expr.alias("r"))["r"].to_list()


@pytest.mark.parametrize("text, expected", [
    ("x > 2", [False, True, None, True]),
    ("1 < x <= 5", [False, True, None, False]),
    ("x * 2 - 1 >= 9", [False, True, None, True]),
    ("-x < -4", [False, True, None, True]),
    ("s in ['a', 'c']", [True, False, None, True]),
    ("s not in ('a',)", [False, True, None, True]),
    ("x is None", [False, False, True, False]),
    ("x == None", [False, False, True, False]),
    ("x is not None and flag", [True, False, False, None]),
    ("not flag", [False, True, False, None]),
    ("is_null(s) or abs(x - 6) < 2", [False, True, True, False]),
    ("coalesce(x, 0) == 0", [False, False, True, False]),
    ("x >= limit", [False, True, None, True]),
])
def test_constructs(text, expected):
    assert _eval(text, {"limit": 5}) == expected


@pytest.mark.parametrize("text, piece", [
    ("__import__('os').system('true')", "__import__"),
    ("x.real > 0", "x.real"),
    ("x[0] > 1", "x[0]"),
    ("(lambda: 1)() == 1", "lambda"),
    ("x if flag else 0", "IfExp"),
    ("open('f')", "open"),
    ("x ** 2 > 1", "**"),
    ("s in other_column", "other_column"),
])
def test_rejects_everything_else(text, piece):
    with pytest.raises(ConfigError) as err:
        compile_condition(text)
    assert piece in str(err.value)


def test_syntax_error_and_empty():
    with pytest.raises(ConfigError, match="not valid syntax"):
        compile_condition("x >")
    with pytest.raises(ConfigError, match="non-empty"):
        compile_condition("  ")


def test_features_and_params_are_told_apart():
    c = compile_condition("a > t and b < 2 * t", params={"t": 3})
    assert c.features == {"a", "b"} and c.params == {"t"}


def test_clauses():
    c = compile_clauses([{"feature": "x", "op": ">=", "value": "limit"},
                         {"feature": "s", "op": "in", "value": ["b", "c"]}],
                        params={"limit": 5})
    assert FRAME.select(c.expr)["x"].to_list() == [False, True, None, True]
    with pytest.raises(ConfigError, match="use one of .*Did you mean"):
        compile_clauses([{"feature": "x", "op": "=>", "value": 1}])
    with pytest.raises(ConfigError, match="needs a list"):
        compile_clauses([{"feature": "x", "op": "in", "value": 1}])
