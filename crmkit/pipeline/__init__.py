"""The nightly pipeline: config, the step contract, the model store, the run folder.

This is the only place that knows the order of the steps.
"""

from crmkit.pipeline._config import load_pipeline_config, pipeline_config_model
from crmkit.pipeline._graph import order_steps
from crmkit.pipeline._preflight import preflight
from crmkit.pipeline._registry import STEP_MODULES, load_steps
from crmkit.pipeline._run import FitContext, RunResult, find_previous_run, run_pipeline
from crmkit.pipeline._shards import write_partitioned
from crmkit.pipeline._step import FitResult, ModelSpec, Shard, ShardOutput, Step, StepSummary
from crmkit.pipeline._store import REFIT_SCHEDULES, ModelStore, due_for_refit, load_envelope

__all__ = sorted([
    "REFIT_SCHEDULES",
    "STEP_MODULES",
    "FitContext",
    "FitResult",
    "ModelSpec",
    "ModelStore",
    "RunResult",
    "Shard",
    "ShardOutput",
    "Step",
    "StepSummary",
    "due_for_refit",
    "find_previous_run",
    "load_envelope",
    "load_pipeline_config",
    "load_steps",
    "write_partitioned",
    "order_steps",
    "pipeline_config_model",
    "preflight",
    "run_pipeline",
])
