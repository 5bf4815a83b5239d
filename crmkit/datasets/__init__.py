"""Synthetic data generators and loaders for public reference data."""

from crmkit.datasets._bank import BANK_PRODUCTS, make_bank
from crmkit.datasets._sectors import SECTORS, make_sector
from crmkit.datasets._reference import (
    load_cdnow,
    load_cdnow_summary,
    load_charity,
    load_donations,
    load_rossi,
    load_telco,
    reference_data_dir,
)

__all__ = sorted([
    "BANK_PRODUCTS",
    "make_bank",
    "make_sector",
    "SECTORS",
    "load_cdnow",
    "load_cdnow_summary",
    "load_charity",
    "load_donations",
    "load_rossi",
    "load_telco",
    "reference_data_dir",
])
