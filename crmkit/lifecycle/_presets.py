"""The shipped lifecycle presets, as plain data.

``pipelines/presets/<name>.toml`` hold the same presets as editable TOML files
(a test keeps both in step). Thresholds live in ``params`` so that they can be
changed without touching the rules (:meth:`LifecycleConfig.with_params`).

Trend features are symmetric relative changes ``(now - prior) / (|now| + |prior|)``
in [-1, 1]: -1/3 means the current window is half the prior one, +0.2 means it is
1.5 times the prior one, -0.1 a fall of about 18%. Transaction counts over 90 days
are noisy (Poisson) for customers with few transactions, so the bank preset reads
them only for customers with ``min_prior_txn`` or more in the prior window and
leans on financial assets, which move smoothly.
"""

from __future__ import annotations

__all__ = ["PRESETS", "preset_names"]

# Active again after being dormant/churned in the previous run (any transaction since,
# however long ago the previous run was), or, without a previous run, a transaction in
# the last 30 days that ended a long gap.
_REACTIVATED = ("(previous_stage in ['dormant', 'churned'] and days_since_last_txn < dormant_days)"
                " or (txn_count_30d > 0 and longest_gap_30d_days > reactivation_gap_days)")

RETAIL_BANK = {
    "name": "retail_bank",
    "description": "Retail bank (contractual): stages from products held, "
                   "customer-initiated transactions and financial assets.",
    "kind": "contractual",
    "stages": ["prospect", "onboarding", "growth", "mature", "decline", "dormant", "churned",
               "reactivated"],
    "params": {
        "onboarding_days": 90,
        "dormant_days": 180,
        "mature_days": 365,
        "reactivation_gap_days": 180,
        "asset_growth_trend": 0.1,
        "asset_decline_trend": -0.1,
        "txn_growth_trend": 0.33,
        "txn_decline_trend": -0.5,
        "min_prior_txn": 10,
        "churn_risk_threshold": 0.5,
    },
    "rules": [
        {"name": "prospect", "stage": "prospect",
         "when": "n_products_ever == 0 and not has_transacted",
         "description": "known to the bank, no product and no transaction"},
        {"name": "all_products_closed", "stage": "churned",
         "when": "all_products_closed",
         "description": "had products, every one of them is closed"},
        {"name": "reactivated", "stage": "reactivated", "when": _REACTIVATED,
         "description": "active again after being dormant or churned in the previous run, "
                        "or active in the last 30 days after a gap of more than "
                        "reactivation_gap_days"},
        {"name": "dormant", "stage": "dormant",
         "when": "n_products_open > 0 and (days_since_last_txn >= dormant_days or "
                 "(not has_transacted and days_since_first_product >= dormant_days))",
         "description": "products open, no customer-initiated transaction for dormant_days"},
        {"name": "onboarding", "stage": "onboarding",
         "when": "days_since_first_product <= onboarding_days or "
                 "(n_products_ever == 0 and days_since_first_txn <= onboarding_days)",
         "description": "first product within the last onboarding_days"},
        {"name": "churn_risk", "stage": "decline", "when": "churn_risk >= churn_risk_threshold",
         "if_missing": "skip",
         "description": "the churn model's risk is high (only when a churn_risk column is given)"},
        {"name": "decline", "stage": "decline",
         "when": "financial_assets_trend_90d <= asset_decline_trend or "
                 "(txn_count_prior_90d >= min_prior_txn and txn_count_trend_90d <= txn_decline_trend)",
         "description": "financial assets or activity fell materially against the customer's "
                        "own prior 90 days (-0.1 is a fall of about 18%, -0.5 to a third)"},
        {"name": "growth", "stage": "growth",
         "when": "financial_assets_trend_90d >= asset_growth_trend or "
                 "(txn_count_prior_90d >= min_prior_txn and txn_count_trend_90d >= txn_growth_trend)",
         "description": "financial assets or activity rose over the prior 90 days"},
        {"name": "mature", "stage": "mature",
         "when": "days_since_first_product >= mature_days or "
                 "(n_products_ever == 0 and days_since_first_txn >= mature_days)",
         "description": "stable for mature_days or more"},
    ],
    "default_stage": "growth",
    "default_rule": "default",
    "churn": {
        "kind": "contractual",
        "reason_lookback_days": 180,
        "closure_reason_map": {"fees": "price"},
        "price_complaint_kinds": ["fees", "price", "pricing"],
        "transfer_out_channels": ["transfer_out"],
        "falling_balance_threshold": -0.33,
    },
}

RETAILER = {
    "name": "retailer",
    "description": "Non-contractual retailer: stages from purchases only.",
    "kind": "non_contractual",
    "stages": ["prospect", "onboarding", "growth", "mature", "decline", "dormant", "churned",
               "reactivated"],
    "params": {
        "onboarding_days": 90,
        "dormant_days": 180,
        "churn_days": 365,
        "mature_days": 365,
        "reactivation_gap_days": 180,
        "growth_trend": 0.2,
        "decline_trend": -0.33,
        "min_prior_txn": 2,
        "p_alive_threshold": 0.5,
    },
    "rules": [
        {"name": "prospect", "stage": "prospect", "when": "not has_transacted",
         "description": "known, never purchased"},
        {"name": "reactivated", "stage": "reactivated", "when": _REACTIVATED,
         "description": "buying again after being dormant or churned in the previous run, "
                        "or bought in the last 30 days after a gap of more than "
                        "reactivation_gap_days"},
        {"name": "inactive", "stage": "churned", "when": "days_since_last_txn >= churn_days",
         "description": "no purchase for churn_days"},
        {"name": "dormant", "stage": "dormant", "when": "days_since_last_txn >= dormant_days",
         "description": "no purchase for dormant_days"},
        {"name": "onboarding", "stage": "onboarding",
         "when": "days_since_first_txn <= onboarding_days",
         "description": "first purchase within the last onboarding_days"},
        {"name": "p_alive", "stage": "decline", "when": "p_alive < p_alive_threshold",
         "if_missing": "skip",
         "description": "the CLV model's P(alive) is low (only when a p_alive column is given)"},
        {"name": "decline", "stage": "decline",
         "when": "(txn_count_prior_365d >= min_prior_txn and txn_count_trend_365d <= decline_trend)"
                 " or (txn_count_prior_90d >= min_prior_txn and txn_count_trend_90d <= decline_trend)",
         "description": "purchases fell materially against the customer's own prior window"},
        {"name": "growth", "stage": "growth",
         "when": "txn_count_prior_90d >= min_prior_txn and txn_count_trend_90d >= growth_trend",
         "description": "purchases rose over the prior window"},
        {"name": "mature", "stage": "mature", "when": "days_since_first_txn >= mature_days",
         "description": "buying for mature_days or more"},
    ],
    "default_stage": "growth",
    "default_rule": "default",
    "churn": {"kind": "non_contractual", "inactivity_days": 365},
}

PRESETS: dict[str, dict] = {"retail_bank": RETAIL_BANK, "retailer": RETAILER}

# Churn definitions that are not a lifecycle preset's own: the bank's combined
# definition (every product closed, or silent for the dormant threshold, 180 days).
CHURN_PRESETS: dict[str, dict] = {
    "retail_bank_combined": {**RETAIL_BANK["churn"], "kind": "combined",
                             "inactivity_days": RETAIL_BANK["params"]["dormant_days"]},
    "retail_bank_silent": {**RETAIL_BANK["churn"], "kind": "silent",
                           "inactivity_days": RETAIL_BANK["params"]["dormant_days"]},
}


def preset_names() -> list[str]:
    """Names of the shipped presets.

    Examples
    --------
    >>> preset_names()
    ['elderly_care', 'insurer', 'retail_bank', 'retailer', 'tobacco_retail']
    """
    return sorted(PRESETS)


# ----------------------------------------------------------------- sector presets
# Each sector preset reads, beside the as-of features, a few columns of its sector
# step's per-customer table, joined by the lifecycle step's ``model_inputs`` (see
# pipelines/<sector>.toml and docs/sector_<sector>.md); a rule on a column that is
# not there is an error naming it; a flag reads as "x == 1" (the step joins a boolean
# column as 1.0 / 0.0). Each carries its own stage actions (``playbook``).

INSURER = {
    "name": "insurer",
    "description": "Insurer (contractual): policyholders' stages from their policies, renewal "
                   "dates, lapses and non-renewals.",
    "kind": "contractual",
    "stages": ["prospect", "onboarding", "active", "renewal_due", "lapsing", "lapsed", "closed"],
    "params": {
        "onboarding_days": 90,
        "renewal_days": 60,
        "churn_risk_threshold": 0.5,
    },
    "rules": [
        {"name": "prospect", "stage": "prospect", "when": "n_products_ever == 0",
         "description": "known to the insurer, never held a policy"},
        {"name": "lapsed", "stage": "lapsed", "when": "policy_churned == 1",
         "description": "no policy open and the last one lapsed or was not renewed (the "
                        "insurer's churn, insurer.policy_churn.churned)"},
        {"name": "closed", "stage": "closed", "when": "all_products_closed",
         "description": "no policy open, the last one ended for another reason (not churn)"},
        {"name": "onboarding", "stage": "onboarding",
         "when": "days_since_first_product <= onboarding_days",
         "description": "first policy within the last onboarding_days"},
        {"name": "lost_policy", "stage": "lapsing", "when": "lapsed_365d + not_renewed_365d > 0",
         "description": "still insured, but a policy lapsed or was not renewed in the last year"},
        {"name": "churn_risk", "stage": "lapsing", "when": "churn_risk >= churn_risk_threshold",
         "if_missing": "skip",
         "description": "the churn model's risk is high (only when a churn_risk column is given)"},
        {"name": "renewal_due", "stage": "renewal_due", "when": "days_to_renewal <= renewal_days",
         "description": "a policy's term ends within renewal_days"},
    ],
    "default_stage": "active",
    "default_rule": "default",
    "churn": {"kind": "contractual", "closure_reason_map": {}},
    "playbook": [
        {"stage": "prospect", "action": "quote_invitation", "channel": "email", "priority": 5,
         "due_days": 30, "description": "invite to a quote"},
        {"stage": "onboarding", "action": "welcome_call", "channel": "phone", "priority": 2,
         "due_days": 7, "description": "welcome call: cover explained, claims line, documents"},
        {"stage": "active", "action": "cover_review", "channel": "phone", "priority": 4,
         "due_days": 90, "description": "yearly review of cover and gaps"},
        {"stage": "renewal_due", "action": "renewal_call", "channel": "phone", "priority": 2,
         "due_days": 14, "description": "renewal terms before the term ends"},
        {"stage": "lapsing", "action": "retention_call", "channel": "phone", "priority": 1,
         "due_days": 7, "description": "call about the lost policy before the others go"},
        {"stage": "lapsed", "action": "win_back", "channel": "email", "priority": 4,
         "due_days": 60, "description": "win-back offer to a former policyholder"},
        {"stage": "closed", "action": "new_cover_offer", "channel": "email", "priority": 5,
         "due_days": 30, "description": "offer cover for what replaced the ended policy"},
    ],
}

TOBACCO_RETAIL = {
    "name": "tobacco_retail",
    "description": "Tobacco retail network (non-contractual): shops' stages from orders and "
                   "status events.",
    "kind": "non_contractual",
    "stages": ["new_shop", "active", "declining", "dormant", "closed"],
    "params": {
        "new_shop_days": 90,
        "dormant_days": 60,
        "decline_trend": -0.33,
        "min_prior_txn": 3,
    },
    "rules": [
        {"name": "closed", "stage": "closed", "when": "shop_churned == 1",
         "description": "the latest status event closed the shop (business closed, licence "
                        "revoked: tobacco_retail.status.churned)"},
        {"name": "new_shop", "stage": "new_shop", "when": "tenure_days <= new_shop_days",
         "description": "registered within new_shop_days"},
        {"name": "dormant", "stage": "dormant",
         "when": "days_since_last_txn >= dormant_days or not has_transacted",
         "description": "no order for dormant_days (or none ever, past the new-shop period)"},
        {"name": "declining", "stage": "declining",
         "when": "txn_count_prior_90d >= min_prior_txn and txn_count_trend_90d <= decline_trend",
         "description": "orders in the last 90 days fell to half the prior 90 days or less"},
    ],
    "default_stage": "active",
    "default_rule": "default",
    "churn": {"kind": "non_contractual", "inactivity_days": 180},
    "playbook": [
        {"stage": "new_shop", "action": "first_visit", "channel": "visit", "priority": 1,
         "due_days": 3, "description": "visit the new shop: range, display, ordering"},
        {"stage": "declining", "action": "order_review_visit", "channel": "visit", "priority": 2,
         "due_days": 7, "description": "review the falling orders with the retailer"},
        {"stage": "dormant", "action": "reactivation_call", "channel": "phone", "priority": 2,
         "due_days": 7, "description": "call the shop that stopped ordering"},
    ],
}

ELDERLY_CARE = {
    "name": "elderly_care",
    "description": "Community elderly care: residents' stages from services delivered, "
                   "contacts and the priority register.",
    "kind": "contractual",
    "stages": ["newly_registered", "active_care", "needs_review", "inactive"],
    "params": {
        "new_days": 30,
        "inactive_days": 90,
        "review_days": 30,
        "decline_trend": -0.5,
        "min_prior_txn": 3,
    },
    "rules": [
        {"name": "newly_registered", "stage": "newly_registered", "when": "tenure_days <= new_days",
         "description": "registered within new_days"},
        {"name": "inactive", "stage": "inactive",
         "when": "days_since_last_txn >= inactive_days or not has_transacted",
         "description": "no service delivered for inactive_days (or none ever)"},
        {"name": "high_priority_unseen", "stage": "needs_review",
         "when": "care_priority == 'high' and coalesce(days_since_last_contact, tenure_days) "
                 ">= review_days",
         "description": "high priority on the register (elderly_care.priority_register) and no "
                        "visit or call for review_days"},
        {"name": "services_fell", "stage": "needs_review",
         "when": "txn_count_prior_90d >= min_prior_txn and txn_count_trend_90d <= decline_trend",
         "description": "services in the last 90 days fell to a third of the prior 90 days or "
                        "less"},
    ],
    "default_stage": "active_care",
    "default_rule": "default",
    "churn": {"kind": "non_contractual", "inactivity_days": 90},
    "playbook": [
        {"stage": "newly_registered", "action": "assessment_visit", "channel": "visit",
         "priority": 1, "due_days": 3, "description": "needs assessment at home"},
        {"stage": "needs_review", "action": "care_review_visit", "channel": "visit",
         "priority": 1, "due_days": 7, "description": "review the care plan in person"},
        {"stage": "inactive", "action": "wellbeing_call", "channel": "phone", "priority": 2,
         "due_days": 7, "description": "check on a resident who receives no service"},
    ],
}

PRESETS.update({"insurer": INSURER, "tobacco_retail": TOBACCO_RETAIL,
                "elderly_care": ELDERLY_CARE})
