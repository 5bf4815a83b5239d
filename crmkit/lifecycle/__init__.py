"""Lifecycle stages: declarative stage rules, transitions, churn labels and reasons, playbooks.

Every customer gets exactly one relationship stage as of a date (prospect 潜在,
onboarding 建立, growth 成长, mature 成熟, decline 衰退, dormant 休眠, churned 流失,
reactivated) from ordered rules over the as-of features; a change of stage is an
event; churn has one configurable definition with reason codes; each stage maps
to standard service actions.
"""

from crmkit.lifecycle._churn import churn_reason_counts, label_churn
from crmkit.lifecycle._config import (
    STANDARD_STAGES,
    ChurnDefinition,
    Clause,
    LifecycleConfig,
    StageRule,
    load_config,
)
from crmkit.lifecycle._expr import compile_condition
from crmkit.lifecycle._playbooks import (
    DEFAULT_PLAYBOOK,
    PlaybookEntry,
    default_playbook,
    playbook_actions,
)
from crmkit.lifecycle._plots import (
    plot_stage_distribution,
    plot_stage_flow,
    plot_transition_heatmap,
)
from crmkit.lifecycle._presets import preset_names
from crmkit.lifecycle._responses import action_responses
from crmkit.lifecycle._snapshot import run_lifecycle_step
from crmkit.lifecycle._stages import assign_stages, lifecycle_features, recent_gap_feature
from crmkit.lifecycle._transitions import (
    cohort_stages,
    stage_changes,
    stage_flows,
    transition_matrix,
    transition_matrix_from_counts,
)


def get_preset(name: str) -> LifecycleConfig:
    """Return a shipped preset (``"retail_bank"``, ``"retailer"`` or a sector's:
    ``"insurer"``, ``"tobacco_retail"``, ``"elderly_care"``) as a config.

    Examples
    --------
    >>> get_preset("retailer").churn.inactivity_days
    365
    """
    return load_config(name)


__all__ = sorted([
    "DEFAULT_PLAYBOOK",
    "PlaybookEntry",
    "action_responses",
    "STANDARD_STAGES",
    "churn_reason_counts",
    "default_playbook",
    "label_churn",
    "playbook_actions",
    "plot_stage_distribution",
    "plot_stage_flow",
    "plot_transition_heatmap",
    "run_lifecycle_step",
    "ChurnDefinition",
    "Clause",
    "LifecycleConfig",
    "StageRule",
    "assign_stages",
    "cohort_stages",
    "compile_condition",
    "get_preset",
    "lifecycle_features",
    "load_config",
    "preset_names",
    "recent_gap_feature",
    "stage_changes",
    "stage_flows",
    "transition_matrix",
    "transition_matrix_from_counts",
])
