"""Config validation: every mistake is named, presets and their TOML files agree."""

import tomllib
from pathlib import Path

import polars as pl
import pytest

from crmkit.exceptions import ConfigError
from crmkit.lifecycle import assign_stages, get_preset, load_config, preset_names
from crmkit.lifecycle._presets import PRESETS

ROOT = Path(__file__).resolve().parents[2]


def _cfg(rules, **extra):
    return {"kind": "non_contractual", "default_stage": "mature", "rules": rules,
            "churn": {"kind": "non_contractual"}, **extra}


FEATS = pl.DataFrame({"customer_id": ["a", "b", "c"], "x": [1, 5, 9], "y": [0, 0, 1]})


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_toml_files_match_builtin_presets(name):
    path = ROOT / "pipelines" / "presets" / f"lifecycle_{name}.toml"
    assert tomllib.loads(path.read_text())["lifecycle"] == PRESETS[name]
    assert load_config(path) == get_preset(name)


def test_preset_names():
    assert preset_names() == ["elderly_care", "insurer", "retail_bank", "retailer",
                              "tobacco_retail"]
    with pytest.raises(ConfigError, match="Did you mean 'retailer'"):
        load_config("retialer")


def test_unknown_key_names_the_closest():
    with pytest.raises(ConfigError, match="unknown key 'defualt_stage'.*Did you mean 'default_stage'"):
        load_config({**_cfg([{"name": "r", "stage": "growth", "when": "x > 1"}]),
                     "defualt_stage": "growth"})
    with pytest.raises(ConfigError, match="unknown key 'wen'.*Did you mean 'when'"):
        load_config(_cfg([{"name": "r", "stage": "growth", "wen": "x > 1"}]))
    with pytest.raises(ConfigError, match="unknown key 'inactivty_days'.*'inactivity_days'"):
        load_config(_cfg([{"name": "r", "stage": "growth", "when": "x > 1"}],
                         churn={"kind": "non_contractual", "inactivty_days": 3}))


def test_unknown_stage_is_named():
    with pytest.raises(ConfigError, match="rule 'r' assigns unknown stage 'grwoth'.*'growth'"):
        load_config(_cfg([{"name": "r", "stage": "grwoth", "when": "x > 1"}]))
    with pytest.raises(ConfigError, match="default_stage 'matur' is not a known stage"):
        load_config(_cfg([{"name": "r", "stage": "growth", "when": "x > 1"}],
                         default_stage="matur"))


def test_custom_stage_list():
    cfg = load_config(_cfg([{"name": "r", "stage": "vip_watch", "when": "x > 4"}],
                           stages=["vip_watch", "mature"]))
    out = assign_stages(FEATS, as_of="2025-01-01", preset=cfg)
    assert out["stage"].to_list() == ["mature", "vip_watch", "vip_watch"]


def test_missing_feature_is_named_with_hint():
    with pytest.raises(ConfigError, match="rule 'r' reads 'z', which is not a column"):
        assign_stages(FEATS, as_of="2025-01-01",
                      preset=_cfg([{"name": "r", "stage": "growth", "when": "z > 1"}]))
    with pytest.raises(ConfigError, match="'xx'.*Did you mean 'x'"):
        assign_stages(FEATS, as_of="2025-01-01",
                      preset=_cfg([{"name": "r", "stage": "growth", "when": "xx > 1"}]))
    with pytest.raises(ConfigError, match="longest_gap_30d_days comes from"):
        assign_stages(FEATS, as_of="2025-01-01", preset="retailer")


def test_optional_rule_on_missing_model_output_is_skipped():
    rules = [{"name": "model", "stage": "decline", "when": "p_alive < 0.5", "if_missing": "skip"},
             {"name": "r", "stage": "growth", "when": "x > 4"}]
    out = assign_stages(FEATS, as_of="2025-01-01", preset=_cfg(rules))
    assert out["stage_rule"].to_list() == ["default", "r", "r"]
    with_model = FEATS.with_columns(p_alive=pl.Series([0.9, 0.1, 0.9]))
    out = assign_stages(with_model, as_of="2025-01-01", preset=_cfg(rules))
    assert out["stage_rule"].to_list() == ["default", "model", "r"]


def test_overlapping_rules_without_order_are_named():
    rules = [{"name": "big", "stage": "growth", "when": "x > 4", "priority": 1},
             {"name": "flag", "stage": "decline", "when": "y == 1", "priority": 1}]
    with pytest.raises(ConfigError, match="rules 'big' .* and 'flag' .* share priority 1 and "
                                          "both match 1 customer.*'c'"):
        assign_stages(FEATS, as_of="2025-01-01", preset=_cfg(rules))
    # the same priority is fine when no customer matches both
    rules[1]["when"] = "y == 1 and x < 4"
    out = assign_stages(FEATS, as_of="2025-01-01", preset=_cfg(rules))
    assert out["stage"].to_list() == ["mature", "growth", "growth"]


def test_priorities_all_or_none():
    rules = [{"name": "a", "stage": "growth", "when": "x > 4", "priority": 1},
             {"name": "b", "stage": "decline", "when": "y == 1"}]
    with pytest.raises(ConfigError, match="these have none: 'b'"):
        load_config(_cfg(rules))


def test_priority_overrides_list_order():
    rules = [{"name": "a", "stage": "growth", "when": "x > 4", "priority": 2},
             {"name": "b", "stage": "decline", "when": "y == 1", "priority": 1}]
    out = assign_stages(FEATS, as_of="2025-01-01", preset=_cfg(rules))
    assert out["stage_rule"].to_list() == ["default", "a", "b"]


def test_duplicate_rule_names_and_no_condition():
    with pytest.raises(ConfigError, match="repeated: 'a'"):
        load_config(_cfg([{"name": "a", "stage": "growth", "when": "x > 1"},
                          {"name": "a", "stage": "growth", "when": "x > 2"}]))
    with pytest.raises(ConfigError, match="rule 'a' has no condition"):
        load_config(_cfg([{"name": "a", "stage": "growth"}]))
    with pytest.raises(ConfigError, match="not allowed"):
        load_config(_cfg([{"name": "a", "stage": "growth", "when": "x[0] > 1"}]))


def test_with_params():
    cfg = get_preset("retail_bank")
    assert cfg.with_params(dormant_days=120).params["dormant_days"] == 120
    with pytest.raises(ConfigError, match="unknown parameter 'dormant_day'.*'dormant_days'"):
        cfg.with_params(dormant_day=120)


def test_config_from_toml_file(tmp_path):
    path = tmp_path / "lc.toml"
    path.write_text('kind = "non_contractual"\ndefault_stage = "mature"\n'
                    '[params]\nt = 4\n[[rules]]\nname = "r"\nstage = "growth"\nwhen = "x > t"\n'
                    '[churn]\nkind = "non_contractual"\n')
    out = assign_stages(FEATS, as_of="2025-01-01", preset=path)
    assert out["stage"].to_list() == ["mature", "growth", "growth"]
    out = assign_stages(FEATS, as_of="2025-01-01", preset=path, params={"t": 6})
    assert out["stage"].to_list() == ["mature", "mature", "growth"]


def test_non_boolean_or_ill_typed_condition_is_named():
    with pytest.raises(ConfigError, match="rule 'r' is Int64, not true/false"):
        assign_stages(FEATS, as_of="2025-01-01",
                      preset=_cfg([{"name": "r", "stage": "growth", "when": "x + 1"}]))
    with pytest.raises(ConfigError, match="rule 'r' cannot be evaluated"):
        assign_stages(FEATS.with_columns(s=pl.lit("a")), as_of="2025-01-01",
                      preset=_cfg([{"name": "r", "stage": "growth", "when": "s > 1 + x"}]))
