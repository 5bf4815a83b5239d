"""The HTML run report."""

from crmkit.report._html import write_run_report

__all__ = ["write_run_report"]
