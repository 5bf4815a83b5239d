"""Sector rules: the lists an insurer, a broker, a tobacco retail network and a
community elderly-care service build from the canonical tables.

Library functions on tables only; the pipeline steps ``insurer``, ``broker``,
``tobacco_retail`` and ``elderly_care`` (:mod:`crmkit.pipeline.steps`) configure
them from a sector preset (:class:`SectorConfig`).
"""

from crmkit.sectors._broker import (
    MEASURES,
    broker_measures,
    data_completeness,
    entitlements,
    grade_edges,
    grade_values,
    persona,
    upgrade_list,
)
from crmkit.sectors._care import case_measures, open_cases, priority_register
from crmkit.sectors._insurer import (
    claim_alerts,
    claim_followups,
    executive_visits,
    grade_complaints,
    policy_churn,
    renewals_due,
)
from crmkit.sectors._presets import SectorConfig, preset_path
from crmkit.sectors._retail import (
    cold_start_estimates,
    cold_start_stats,
    cold_start_table,
    grade_shops,
    shop_status,
    shop_volumes,
    visit_plan,
)

__all__ = sorted([
    "MEASURES",
    "SectorConfig",
    "broker_measures",
    "data_completeness",
    "entitlements",
    "grade_edges",
    "grade_values",
    "persona",
    "upgrade_list",
    "case_measures",
    "open_cases",
    "priority_register",
    "claim_alerts",
    "claim_followups",
    "cold_start_estimates",
    "cold_start_stats",
    "cold_start_table",
    "grade_shops",
    "shop_status",
    "shop_volumes",
    "visit_plan",
    "executive_visits",
    "grade_complaints",
    "policy_churn",
    "preset_path",
    "renewals_due",
])
