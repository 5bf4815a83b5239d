"""One envelope: a model file of the nightly run's store is a ``crmkit.model/1`` envelope
that ``crmkit.load_model`` reads, and a file written by ``model.save`` serves the store."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

import crmkit
from crmkit.pipeline import ModelStore, run_pipeline
from crmkit.pipeline._store import load_envelope, settings_match
from crmkit.pipeline.steps.clv import STEP as CLV
from crmkit.pipeline.steps.value import STEP as VALUE
from crmkit.value import BetaGeo, GammaGamma


def _config(out, customers=800, **clv):
    return {"run": {"output_dir": str(out), "report": False},
            "inputs": {"source": "sample", "sample_customers": customers},
            **({"clv": clv} if clv else {})}


@pytest.fixture(scope="module")
def rfm():
    rng = np.random.default_rng(3)
    n = 400
    freq = rng.poisson(2, n)
    T = rng.uniform(10, 52, n)
    rec = np.where(freq > 0, T * rng.uniform(0.1, 1, n), 0.0)
    return pl.DataFrame({"frequency": freq, "recency_weeks": rec, "T_weeks": T,
                         "monetary_value": np.where(freq > 0, rng.gamma(3, 20, n), 0.0)})


def test_a_nightly_model_file_loads_with_crmkit_load_model(tmp_path):
    res = run_pipeline(_config(tmp_path), as_of="2025-12-31", steps=[VALUE, CLV])
    path = tmp_path / "models" / "clv" / "2025-12-31.json"
    doc = json.loads(path.read_text())
    # the estimator envelope's fields and the store's, side by side in one file
    assert doc["format"] == "crmkit.model/1" and doc["payload_layout"] == "models"
    assert {"name", "fitted_as_of", "settings_sha256", "fingerprint", "crmkit_version",
            "models"} <= set(doc)
    models = crmkit.load_model(path)
    assert sorted(models) == ["spend_model", "transaction_model"]
    bg, gg = models["transaction_model"], models["spend_model"]
    assert isinstance(bg, BetaGeo) and isinstance(gg, GammaGamma)
    # the same parameters the run scored with (recorded in the manifest)
    fitted = res.manifest["steps"]["clv"]["model"]["metrics"]["transaction_model"]["params"]
    assert bg.params_ == pytest.approx(fitted, rel=1e-12)


def test_a_saved_model_placed_in_the_store_is_used_and_round_trips(tmp_path, rfm):
    bg = BetaGeo(penalizer=0.01).fit(rfm)
    store = ModelStore(tmp_path)
    (tmp_path / "bg").mkdir()
    bg.save(tmp_path / "bg" / "2025-06-30.json", metrics={"mae": 0.25})
    stored = store.latest("bg", dt.date(2025, 7, 1))
    assert stored.fitted_as_of == dt.date(2025, 6, 30) and stored.envelope["name"] == "bg"
    assert settings_match(stored.envelope, {"any": "settings"})  # none recorded: used as is
    back = crmkit.load_model(stored.envelope["payload"])
    assert back.params_ == bg.params_ and back.metadata_["metrics"] == {"mae": 0.25}
    # a single-model payload staged by a step: the file is that model's envelope
    staging = store.stage(dt.date(2025, 7, 31), "bg", "clv", {"unit": "weeks"},
                          payload=crmkit._estimator.to_envelope(bg), fingerprint="sha:f",
                          metrics={"gain": float("-inf")})
    store.publish(staging)
    path = tmp_path / "bg" / "2025-07-31.json"
    assert '"__float__": "-inf"' in path.read_text()
    again = crmkit.load_model(path)
    assert again.params_ == bg.params_ and again.metadata_["fingerprint"] == "sha:f"
    assert again.metadata_["metrics"]["gain"] == float("-inf")
    env = load_envelope(path)
    assert not settings_match(env, {"unit": "days"}) and settings_match(env, {"unit": "weeks"})
    assert crmkit.load_model(env["payload"]).params_ == bg.params_


def test_data_that_is_no_model_is_stored_but_load_model_says_so(tmp_path):
    store = ModelStore(tmp_path)
    store.publish(store.stage(dt.date(2025, 1, 31), "edges", "value", {},
                              payload={"edges": [0.0, float("inf")]}, fingerprint="-"))
    path = tmp_path / "edges" / "2025-01-31.json"
    assert load_envelope(path)["payload"] == {"edges": [0.0, float("inf")]}
    with pytest.raises(ValueError, match="fitted data \\(pipeline step 'value'\\), not a crmkit"):
        crmkit.load_model(path)


def test_a_store_file_of_the_previous_layout_is_still_read(tmp_path, rfm):
    """Files written before the store adopted the one envelope hold ``payload``."""
    bg = BetaGeo().fit(rfm)
    old = {"format": "crmkit.model/1", "name": "clv", "step": "clv",
           "fitted_as_of": "2025-03-31", "settings": {}, "settings_sha256": "x",
           "training": {}, "metrics": {"z": {"__float__": "nan"}}, "input_fingerprint": "f",
           "crmkit_version": "0.1.0", "payload": {"model": crmkit._estimator.to_envelope(bg)}}
    (tmp_path / "clv").mkdir()
    (tmp_path / "clv" / "2025-03-31.json").write_text(json.dumps(old))
    env = ModelStore(tmp_path).latest("clv", dt.date(2025, 4, 1)).envelope
    assert np.isnan(env["metrics"]["z"])
    assert crmkit.load_model(env["payload"]["model"]).params_ == bg.params_


def test_a_bare_nan_in_a_store_file_is_a_corrupt_file(tmp_path):
    (tmp_path / "m").mkdir()
    path = tmp_path / "m" / "2025-01-31.json"
    path.write_text('{"format": "crmkit.model/1", "class": "BetaGeo", "metrics": {"x": NaN}}')
    with pytest.raises(ValueError, match="2025-01-31.json holds a bare non-finite number"):
        load_envelope(path)


def test_the_propensity_steps_payload_loads_as_its_model(tmp_path):
    """The propensity step stages ``{"model": <crmkit.propensity/1 document>}``."""
    from crmkit.propensity import PropensityModel

    rng = np.random.default_rng(0)
    X = pl.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    Y = pl.DataFrame({"P1": (X["a"] + rng.normal(size=400) > 0.5).cast(pl.Int8),
                      "P2": (X["b"] > 1).cast(pl.Int8)})
    model = PropensityModel(backend="logistic", min_positives=10, baseline_by=None).fit(
        X, Y, groups=np.arange(400) % 97)
    store = ModelStore(tmp_path)
    store.publish(store.stage(dt.date(2025, 1, 31), "propensity", "propensity", {},
                              payload={"model": json.loads(model.to_json())}, fingerprint="-"))
    path = tmp_path / "propensity" / "2025-01-31.json"
    back = crmkit.load_model(path)
    assert isinstance(back, PropensityModel)
    assert back.predict_propensities(X).equals(model.predict_propensities(X))
    assert load_envelope(path)["payload"]["model"]["format"] == "crmkit.propensity/1"
