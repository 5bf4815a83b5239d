"""Segment expressions: what the grammar accepts, what it rejects, and the messages."""

from __future__ import annotations

import ast

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit.exceptions import ConfigError
from crmkit.segments import compile_segment, segment_members, segment_overlaps, segment_sizes

TABLE = pl.DataFrame({
    "customer_id": ["a", "b", "c", "d", "e"],
    "tier": ["Gold", "Platinum", "Mass", "Gold", None],
    "churn_prob_90d": [0.5, 0.1, 0.9, None, 0.6],
    "clv": [100.0, 2000.0, 5.0, 50.0, 10.0],
    "holds_fund": [False, True, False, False, None],
    "n_products_open": [1, 3, 0, 2, 1],
})


def ids(text: str) -> list[str]:
    return segment_members(TABLE, text)["customer_id"].to_list()


def test_issue_example():
    text = 'tier in ["Gold", "Platinum"] and churn_prob_90d > 0.3 and not holds("fund")'
    assert ids(text) == ["a"]


@pytest.mark.parametrize("text, expected", [
    ('tier == "Gold"', ["a", "d"]),
    ('tier != "Gold"', ["b", "c"]),               # missing tier: unknown, not in
    ('tier not in ["Gold"]', ["b", "c"]),
    ("tier is None", ["e"]),
    ("churn_prob_90d is not None and churn_prob_90d >= 0.5", ["a", "c", "e"]),
    ("0.2 < churn_prob_90d < 0.8", ["a", "e"]),
    ("clv * 2 > 150 or n_products_open == 0", ["a", "b", "c"]),
    ("abs(-clv) > 60", ["a", "b"]),
    ("is_null(churn_prob_90d)", ["d"]),
    ("not_null(tier) and holds_fund", ["b"]),
    ("not holds_fund", ["a", "c", "d"]),
    ("holds_fund == False", ["a", "c", "d"]),
    ("n_products_open in [0, 3]", ["b", "c"]),
    ("clv / n_products_open > 100", ["b", "c"]),  # 5 / 0 is inf (IEEE), not an error
])
def test_semantics(text, expected):
    assert ids(text) == expected


@pytest.mark.parametrize("text, message", [
    ("churn_90d > 0.3", "unknown column 'churn_90d'. Did you mean 'churn_prob_90d'?"),
    ('tier > 3', "cannot compare a text with a number"),
    ('clv == "high"', "cannot compare a number with a text"),
    ('tier in ["Gold", 1]', "cannot compare a text with a number"),
    ('tier == "gold"', "did you mean 'Gold'?"),
    ('tier in ["gold"]', "did you mean 'Gold'?"),
    ("clv", "must be a condition"),
    ("clv and holds_fund", "need conditions on both sides"),
    ('holds("funds")', "Did you mean 'fund'?"),
    ("holds(fund)", "holds() takes a product category as text"),
    ("clv == None", "is None"),
    ("tier is 'Gold'", "only allowed with None"),
    ("open('x')", "unknown function 'open'"),
    ("__import__('os').system('true')", "unknown function \"__import__('os').system\""),
    ("tier.upper() == 'GOLD'", "unknown function 'tier.upper'"),
    ("clv.__class__", "Attribute is not allowed"),
    ("[1][0]", "Subscript is not allowed"),
    ("lambda: 1", "Lambda is not allowed"),
    ("clv ** 2 > 1", "only + - * /"),
    ("clv if holds_fund else 0", "IfExp is not allowed"),
    ("clv in [x for x in [1]]", "needs a list of constants"),
    ("tier in []", "is empty"),
    ("clv > 1;", "not a valid expression"),
    ("clv > 1\nor clv < 0", "one line"),
    ("", "is empty"),
    ("holds_fund > True", "only be compared with == or !="),
    ("f'{clv}' == 'x'", "JoinedStr is not allowed"),
    ("clv > b'1'", "the constant b'1' is not allowed"),
    ("(clv := 1)", "NamedExpr is not allowed"),
])
def test_rejections_name_the_problem(text, message):
    with pytest.raises(ConfigError) as err:
        compile_segment(text, TABLE, name="s")
    assert message in str(err.value)
    assert str(err.value).startswith("Segment 's', ")


def test_long_expression_rejected():
    with pytest.raises(ConfigError, match="longer than"):
        compile_segment(" or ".join(["clv > 1"] * 400), TABLE)


TOKENS = list("abcdefghijklmnopqrstuvwxyz_0123456789 .,()[]{}'\"=<>!+-*/%&|^~@:;\\\n\t") + [
    " clv ", " tier ", " and ", " or ", " not ", " in ", " is ", " None ", " lambda ", "import ",
    ".__class__", "holds", "open", '"Gold"', " 0.3 ", " > ", " == ", "[", "]", "(", ")"]

ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
           ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Compare, ast.Eq, ast.NotEq,
           ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot, ast.Name,
           ast.Load, ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Call)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=14).map("".join))
def test_fuzz_only_grammar_is_accepted(text):
    """Random text either compiles (and then parses to allowed nodes only and runs) or
    raises ConfigError; nothing else escapes and nothing outside the grammar passes."""
    try:
        seg = compile_segment(text, TABLE)
    except ConfigError:
        return
    tree = ast.parse(text.strip(), mode="eval")
    for node in ast.walk(tree):
        assert isinstance(node, ALLOWED), ast.dump(node)
        if isinstance(node, ast.Call):
            assert node.func.id in ("abs", "holds", "is_null", "not_null")
        if isinstance(node, ast.Constant):
            assert node.value is None or isinstance(node.value, (bool, int, float, str))
    mask = TABLE.select(seg.expr).to_series()
    assert mask.dtype == pl.Boolean and mask.null_count() == 0


def _exprs():
    leaf = st.one_of(
        st.builds(lambda v: f"clv > {v}", st.integers(-10, 3000)),
        st.builds(lambda v: f'tier == "{v}"', st.sampled_from(["Gold", "Platinum", "Mass"])),
        st.just("holds_fund"), st.just("churn_prob_90d is None"))
    return st.recursive(leaf, lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) or ({b})", inner, inner),
        st.builds(lambda a: f"not ({a})", inner)), max_leaves=8)


def _python(text: str, row: dict) -> bool | None:
    # Reference semantics: SQL three-valued logic, evaluated by hand on one row.
    tree = ast.parse(text, mode="eval").body

    def ev(n):
        if isinstance(n, ast.BoolOp):
            vals = [ev(v) for v in n.values]
            if isinstance(n.op, ast.And):
                return False if False in vals else (None if None in vals else True)
            return True if True in vals else (None if None in vals else False)
        if isinstance(n, ast.UnaryOp):
            v = ev(n.operand)
            return None if v is None else not v
        if isinstance(n, ast.Name):
            return row[n.id]
        left = row[n.left.id]
        op, right = n.ops[0], ast.literal_eval(n.comparators[0])
        if isinstance(op, ast.Is):
            return left is None
        if left is None:
            return None
        return left > right if isinstance(op, ast.Gt) else left == right

    return ev(tree)


@settings(max_examples=150, deadline=None)
@given(_exprs())
def test_three_valued_logic_matches_a_hand_evaluation(text):
    got = set(ids(text))
    want = {r["customer_id"] for r in TABLE.iter_rows(named=True) if _python(text, r) is True}
    assert got == want


def test_sizes_and_overlaps():
    segs = {"gold": 'tier == "Gold"', "risky": "churn_prob_90d > 0.3"}
    sizes = segment_sizes(TABLE, segs)
    assert sizes.rows() == [("risky", 3, 0.6, "churn_prob_90d > 0.3"),
                            ("gold", 2, 0.4, 'tier == "Gold"')]
    ov = {(a, b): n for a, b, n, _ in segment_overlaps(TABLE, segs).rows()}
    assert ov[("gold", "risky")] == ov[("risky", "gold")] == 1
    assert ov[("gold", "gold")] == 2


def test_segments_config_section(tmp_path):
    from crmkit.segments import SegmentsConfig, run_segments

    cfg = SegmentsConfig.model_validate({"gold": {"where": 'tier == "Gold"', "columns": ["clv"],
                                                  "formats": ["parquet"]}})
    assert SegmentsConfig().segments() == []
    res = run_segments(TABLE, cfg, export_dir=tmp_path, run_date="2025-12-31", link_base=tmp_path)
    assert res.manifest["sizes"] == {"gold": 2}
    assert res.manifest["exports"][0]["path"] == "gold_2025-12-31.parquet"
    assert pl.read_parquet(tmp_path / "gold_2025-12-31.parquet").columns == ["customer_id", "clv"]
    with pytest.raises(Exception, match="Did you mean 'where'"):
        SegmentsConfig.model_validate({"gold": {"wher": "clv > 1"}})
