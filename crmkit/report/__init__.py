"""The HTML run report."""

from crmkit.report._html import SECTION_IDS, render_run_report, write_run_report

__all__ = ["SECTION_IDS", "render_run_report", "write_run_report"]
