"""The HTML run report."""

from crmkit.report._html import REPORT_FEATURES, SECTION_IDS, render_run_report, write_run_report

__all__ = ["REPORT_FEATURES", "SECTION_IDS", "render_run_report", "write_run_report"]
