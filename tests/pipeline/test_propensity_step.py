"""The propensity step in a nightly run: stored model, offers that follow the rules."""

from __future__ import annotations


import polars as pl

from crmkit.datasets import make_bank
from crmkit.pipeline import load_envelope, run_pipeline
from crmkit.pipeline.steps.propensity import STEP
from crmkit.propensity import load_model


def test_propensity_step_scores_offers_and_stores_its_model(tmp_path):
    cfg = {"run": {"output_dir": str(tmp_path / "runs"), "report": False, "n_shards": 2},
           "inputs": {"source": "sample", "sample_customers": 1200},
           "propensity": {"min_positives": 15, "n_estimators": 30, "cv": 2, "reasons": 1}}
    res = run_pipeline(cfg, as_of="2025-12-31", steps=[STEP])
    facts = res.manifest["steps"]["propensity"]
    assert facts["model"]["refitted"] and facts["customers_scored"] == 1200
    backtest = facts["model"]["metrics"]["backtest"]
    assert backtest["as_of"] == "2025-09-30" and backtest["per_product"]
    assert (tmp_path / "runs" / "models" / "propensity" / "2025-12-31.json").exists()
    offers = res.outputs["propensity"]["offers"]
    bank = make_bank(1200, seed=0)
    held = bank["holdings"].filter(pl.col("opened") <= pl.date(2025, 12, 31)).filter(
        pl.col("closed").is_null() | (pl.col("closed") > pl.date(2025, 12, 31)))
    clash = offers.join(held.select("customer_id", "product_id"), on=["customer_id", "product_id"])
    assert clash.height == 0  # a held product is never offered
    assert (offers["risk_rating"] <= offers["risk_level"].fill_null(1)).all()  # suitability
    assert offers.group_by("customer_id").len()["len"].max() <= 3
    # the next run in the month scores with the stored model
    later = run_pipeline(cfg, as_of="2025-12-31", steps=[STEP], force=True)
    assert not later.manifest["steps"]["propensity"]["model"]["refitted"]
    assert later.outputs["propensity"]["offers"].equals(offers)


def test_reasons_only_for_offers_that_can_reach_a_person(tmp_path):
    """Default: first offers of customers with a named RM, above the fitted cut-offs; a
    run without the assign step explains nobody. Changing whose offers are explained
    does not refit the model."""
    cfg = {"run": {"output_dir": str(tmp_path / "runs"), "report": False, "n_shards": 2},
           "inputs": {"source": "sample", "sample_customers": 1200},
           "propensity": {"min_positives": 15, "n_estimators": 30, "cv": 2}}
    res = run_pipeline(cfg, as_of="2025-12-31", steps=[STEP])
    facts = res.manifest["steps"]["propensity"]
    assert facts["offers_explained"] == 0
    assert not res.outputs["propensity"]["offers"]["explained"].any()
    cfg["propensity"].update(reasons_for="all", reasons_top_share=0.2)
    again = run_pipeline(cfg, as_of="2025-12-31", steps=[STEP], force=True)
    facts = again.manifest["steps"]["propensity"]
    assert not facts["model"]["refitted"]
    offers = again.outputs["propensity"]["offers"]
    cut = offers["product_id"].replace_strict(facts["reason_cutoffs"], return_dtype=pl.Float64)
    stored = load_envelope(tmp_path / "runs" / "models" / "propensity" / "2025-12-31.json")
    model = load_model(stored["payload"]["model"])
    modelled = [t for t in model.targets_ if model.params_[t]["kind"] == "model"]
    expect = ((offers["rank"] == 1) & (offers["propensity"] >= cut)  # baselines: no features
              & offers["product_id"].is_in(modelled))
    assert offers["explained"].to_list() == expect.to_list()
    assert 0 < facts["offers_explained"] == int(expect.sum()) < offers.height
    assert offers.filter(pl.col("explained"))["reasons"].list.len().min() >= 1
    # the scores and offers themselves do not depend on which are explained
    assert offers.drop("explained", "reasons", "reason_text").equals(
        res.outputs["propensity"]["offers"].drop("explained", "reasons", "reason_text"))


def test_the_refit_trains_on_a_capped_hash_sample_of_customers(tmp_path):
    """``training_customers`` caps the refit's customers (a hash-based share, the same for
    any shard count), so a refit night does not grow with the bank."""
    cfg = {"run": {"output_dir": str(tmp_path / "runs"), "report": False, "n_shards": 2},
           "inputs": {"source": "sample", "sample_customers": 1200},
           "propensity": {"min_positives": 15, "n_estimators": 20, "cv": 2,
                          "training_customers": 400, "backtest": False}}
    res = run_pipeline(cfg, as_of="2025-12-31", steps=[STEP])
    training = res.manifest["steps"]["propensity"]["model"]["training"]
    assert training["sampled_share"] == 400 / 1200
    assert 250 < training["customers"] < 550  # about a third of the 1,200, by hash
    cfg["run"].update(n_shards=3, output_dir=str(tmp_path / "runs3"))
    again = run_pipeline(cfg, as_of="2025-12-31", steps=[STEP])
    assert again.manifest["steps"]["propensity"]["model"]["training"] == training


def test_scores_from_the_runs_features_equal_the_library_from_scratch(tmp_path):
    """The step scores on the features the run built (not built again), and the model is
    trained and scored with the run's ``[features]`` options: with non-default asset
    weights, its scores equal ``score_shard`` computing every feature from the tables
    with those weights, and differ from the default weights'."""
    from crmkit.propensity import score_shard
    from crmkit.schema import tables_as_of

    weights = {"deposit": 1.0, "fund": 0.5, "wealth": 2.0, "loan": 0.0}
    cfg = {"run": {"output_dir": str(tmp_path / "runs"), "report": False, "n_shards": 2},
           "inputs": {"source": "sample", "sample_customers": 1000},
           "features": {"asset_weights": weights},
           "propensity": {"min_positives": 15, "n_estimators": 20, "cv": 2, "reasons": 0,
                          "backtest": False}}
    res = run_pipeline(cfg, as_of="2025-12-31", steps=[STEP])
    model = load_model(load_envelope(
        tmp_path / "runs" / "models" / "propensity" / "2025-12-31.json")["data"]["model"])
    bank = tables_as_of(make_bank(1000, seed=0), "2025-12-31")
    step_scores = res.outputs["propensity"]["scores"].sort("customer_id")
    scratch, _ = score_shard(model, bank, as_of="2025-12-31", reasons=0, asset_weights=weights)
    assert scratch.sort("customer_id").equals(step_scores)
    default, _ = score_shard(model, bank, as_of="2025-12-31", reasons=0)
    assert not default.sort("customer_id").equals(step_scores)


def test_n_jobs_changes_neither_the_model_nor_the_refit_decision(tmp_path, monkeypatch):
    """The step fits 2 products at once by default (LightGBM ones in worker processes,
    here on any fit size); any n_jobs fits the same model, so a stored model fitted with
    one count serves a run configured with another. The workers' memory is in the
    manifest."""
    import crmkit.propensity._model as model_module
    from crmkit.pipeline.steps.propensity import PropensityStepConfig

    monkeypatch.setattr(model_module, "_PROCESS_MIN_CELLS", 1)

    assert PropensityStepConfig().n_jobs == 2
    cfg = {"run": {"output_dir": str(tmp_path / "a"), "report": False},
           "inputs": {"source": "sample", "sample_customers": 800},
           "propensity": {"min_positives": 15, "n_estimators": 20, "cv": 2, "reasons": 0,
                          "backtest": False, "n_jobs": 1}}
    one = run_pipeline(cfg, as_of="2025-12-31", steps=[STEP])
    cfg["run"]["output_dir"] = str(tmp_path / "b")
    cfg["propensity"]["n_jobs"] = 3
    three = run_pipeline(cfg, as_of="2025-12-31", steps=[STEP])
    a, b = (load_envelope(tmp_path / k / "models" / "propensity" / "2025-12-31.json")
            ["data"]["model"] for k in "ab")
    assert a["state"] == b["state"] and a["summary"] == b["summary"]
    assert (a["params"]["n_jobs"], b["params"]["n_jobs"]) == (1, 3)  # recorded as run
    assert three.outputs["propensity"]["scores"].equals(one.outputs["propensity"]["scores"])
    assert "worker_peak_rss_mb" not in one.manifest
    assert set(three.manifest["worker_peak_rss_mb"]) == {"propensity"}
    assert 50 < three.manifest["worker_peak_rss_mb"]["propensity"] < 4000
    cfg["propensity"]["n_jobs"] = 1
    again = run_pipeline(cfg, as_of="2025-12-31", steps=[STEP], force=True)
    assert not again.manifest["steps"]["propensity"]["model"]["refitted"]
