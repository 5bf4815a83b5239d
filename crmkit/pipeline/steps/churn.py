"""The ``churn`` step: survival churn model, refitted on a schedule, scores with reasons.

Table written to ``<run>/churn/``: ``churn_scores`` (customer_id, churn probability
within each configured horizon conditional on being a customer on the run date,
``restricted_mean_days``, ``median_remaining_days``, ``reason_<k>`` and
``reason_<k>_contribution``). The model is refitted on the ``[churn] refit``
schedule (or when its settings changed) and stored as JSON data, with its latest
backtest, in ``<model_dir>/churn.json``; between refits the stored model scores
today's features. The manifest records the model, its coefficients, what
covariate screening did and the latest backtest metrics.
"""

from __future__ import annotations

from crmkit.churn._step import ChurnSettings, run_churn_step
from crmkit.pipeline._step import RunContext, Step, StepResult, due_for_refit

__all__ = ["STEP", "run"]

MODEL_NAME = "churn"


def run(ctx: RunContext, cfg: ChurnSettings) -> StepResult:
    """Run the churn step on the run context (see the module docstring)."""
    refit = due_for_refit(ctx.stored_fit_date(MODEL_NAME), ctx.as_of, cfg.refit)
    res = run_churn_step(ctx.features, ctx.tables, ctx.as_of, cfg, ctx.model_dir, refit=refit,
                         feature_options=ctx.feature_options)
    return StepResult(tables=res.tables, manifest=res.manifest)


STEP = Step(name="churn", config_model=ChurnSettings, run=run,
            doc="survival churn model (refit on a schedule), horizon probabilities, "
                "remaining lifetime, reason codes, latest backtest")
