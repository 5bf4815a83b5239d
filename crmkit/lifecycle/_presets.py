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
    ['retail_bank', 'retailer']
    """
    return sorted(PRESETS)
