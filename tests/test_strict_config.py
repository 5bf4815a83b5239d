"""Config values are never coerced between types (issue 9: "no" -> False, ["30"] -> [30]),
and NaN or infinity is no setting: the whole pipeline config, every section."""

from __future__ import annotations

import math

import pytest

from crmkit._config import StrictModel, parse_config
from crmkit.exceptions import ConfigError
from crmkit.pipeline._config import load_pipeline_config
from crmkit.pipeline._registry import load_steps


class _Settings(StrictModel):
    report: bool = True
    windows: list[int] = [30]
    discount: float = 0.1
    weights: dict[str, float] = {}


@pytest.mark.parametrize(("data", "needle"), [
    ({"report": "no"}, "report: Input should be a valid boolean"),
    ({"report": 0}, "report: Input should be a valid boolean"),
    ({"windows": ["30"]}, "windows.0: Input should be a valid integer"),
    ({"windows": [30.0]}, "windows.0: Input should be a valid integer"),
    ({"discount": "0.1"}, "discount: Input should be a valid number"),
    ({"discount": math.nan}, "discount: Input should be a finite number"),
    ({"weights": {"fund": math.inf}}, "weights.fund: Input should be a finite number"),
    ({"weights": {"fund": -math.inf}}, "weights.fund: Input should be a finite number"),
])
def test_no_coercion_and_no_non_finite(data, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        parse_config(_Settings, data, "test")


def test_integers_still_fill_float_fields():
    assert parse_config(_Settings, {"discount": 1}, "test").discount == 1.0


@pytest.mark.parametrize(("section", "values", "needle"), [
    ("run", {"report": "no"}, "run.report"),
    ("features", {"windows": ["30"]}, "features.windows.0"),
    ("features", {"asset_weights": {"fund": math.inf}}, "features.asset_weights.fund"),
    ("inputs", {"sample_customers": "5000"}, "inputs.sample_customers"),
    ("clv", {"annual_discount_rate": math.nan}, "clv.annual_discount_rate"),
])
def test_pipeline_config_sections_are_strict(section, values, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_pipeline_config({section: values}, load_steps())
