"""The nightly pipeline: config, the step contract, the run folder and its manifest.

This is the only place that knows the order of the steps.
"""

from crmkit.pipeline._config import load_pipeline_config, pipeline_config_model
from crmkit.pipeline._registry import STEP_MODULES, load_steps
from crmkit.pipeline._run import RunResult, find_previous_run, run_pipeline
from crmkit.pipeline._step import REFIT_SCHEDULES, RunContext, Step, StepResult, due_for_refit

__all__ = sorted([
    "REFIT_SCHEDULES",
    "STEP_MODULES",
    "RunContext",
    "RunResult",
    "Step",
    "StepResult",
    "due_for_refit",
    "find_previous_run",
    "load_pipeline_config",
    "load_steps",
    "pipeline_config_model",
    "run_pipeline",
])
