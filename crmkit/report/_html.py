"""The run report: one self-contained HTML file per run, written for its readers.

It opens on the headline (customers, VIPs by tier, movers, assets at risk, call
list, warnings), then tiers and tier movement, lifecycle flows, churn risk by
tier with calibration, CLV, cross-sell propensity, RM workload and calls, drift,
segments and exports, and a technical appendix. Each section appears whether or
not its step ran; without data it says why. Charts are inline PNG images, CSS is
inline, the page needs no network. The page is rendered from a jinja2 template
shipped with the package (``crmkit/report/templates/report.html.j2``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from crmkit.io import atomic_write
from crmkit.pipeline._drift import DEFAULT_FEATURES
from crmkit.report._sections import SECTION_IDS, build_sections, previous_run_folder

REPORT_FEATURES = tuple(dict.fromkeys(("customer_id", "financial_assets", "has_transacted",
                                       *DEFAULT_FEATURES)))
"""The feature columns the report reads: the customer table's and the drift defaults'."""

__all__ = ["SECTION_IDS", "render_run_report", "write_run_report"]


def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("crmkit.report", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        trim_blocks=False, lstrip_blocks=False)


def _previous(path: Path, manifest: Mapping[str, Any]):
    """The previous run folder's tables, when it sits next to this run's folder."""
    folder = previous_run_folder(manifest, path.parent)
    if folder is None:
        return None, None
    from crmkit.segments._run import RunTables, read_features

    try:  # each table is read when a section asks for it; features: the report's columns
        features = read_features(folder, list(REPORT_FEATURES))
        outputs = RunTables.from_folder(folder, scan=True)
    except (OSError, pl.exceptions.PolarsError):
        return None, None
    return outputs, features


def render_run_report(manifest: Mapping[str, Any], features: pl.DataFrame | None,
                      outputs: Mapping[str, Mapping[str, pl.DataFrame]], *,
                      drift: Any = None, exports: Any = None,
                      previous_outputs: Mapping[str, Mapping[str, pl.DataFrame]] | None = None,
                      previous_features: pl.DataFrame | None = None, currency: str = "CNY",
                      risk_threshold: float = 0.1, report_dir: Path | None = None) -> str:
    """The report as an HTML string (see :func:`write_run_report` for the arguments)."""
    from importlib import metadata

    sections, _ = build_sections(manifest, features, outputs, drift=drift, exports=exports,
                                 previous_outputs=previous_outputs,
                                 previous_features=previous_features, currency=currency,
                                 risk_threshold=risk_threshold, report_dir=report_dir)
    run = manifest.get("run", {})
    as_of = str(run.get("as_of", ""))
    name = str(run.get("name", "")) or "crmkit"
    prev = run.get("previous_run")
    try:
        version = metadata.version("crmkit")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        version = "(source)"
    subtitle = (f"Compared with the run of {prev}." if prev else
                "First run: there is no previous run to compare with.")
    return _environment().get_template("report.html.j2").render(
        title=f"{name.capitalize()} run of {as_of}", subtitle=subtitle, as_of=as_of,
        sections=sections, version=version)


def write_run_report(path: str | Path, manifest: Mapping[str, Any], features: pl.DataFrame,
                     outputs: Mapping[str, Mapping[str, pl.DataFrame]], *, drift: Any = None,
                     exports: Any = None,
                     previous_outputs: Mapping[str, Mapping[str, pl.DataFrame]] | None = None,
                     previous_features: pl.DataFrame | None = None, currency: str = "CNY",
                     risk_threshold: float = 0.1) -> Path:
    """Write the HTML report of one run (atomically).

    Parameters
    ----------
    path : str or path-like
        The ``.html`` file to write.
    manifest : mapping
        The run manifest, as written to ``manifest.json``.
    features : polars.DataFrame
        The run's feature table.
    outputs : mapping
        Step name to {table name: frame}. Read when present: ``value`` (value_tiers,
        tier_movement, tier_movement_summary, clv, hidden_vips), ``lifecycle``
        (stages, stage_changes, transition_matrix, actions), ``churn``
        (churn_scores), ``propensity`` (scores), ``assign`` (books), ``calls``
        (call_list), ``segments`` (sizes).
    drift : DriftResult or mapping, optional
        :func:`crmkit.pipeline._drift.check_drift`'s result (or ``manifest["drift"]``).
        Without it, and with the previous run at hand, the report computes the
        drift checks with the default thresholds and says so.
    exports : list, optional
        :class:`crmkit.segments.ExportResult` objects or their stamps (or
        ``manifest["steps"]["segments"]["exports"]``); links are relative to the report.
    previous_outputs, previous_features : optional
        The previous run's tables; by default read from the previous run's folder
        next to this one, when it exists.
    currency : str
        Shown with amounts.
    risk_threshold : float
        Churn probability from which a customer counts as at risk.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "report.html"
    >>> manifest = {"run": {"name": "nightly", "as_of": "2025-12-31"}, "inputs": {"tables": {}},
    ...             "validation": {"problems": []}, "steps": {}, "timings_seconds": {}}
    >>> page = write_run_report(out, manifest, pl.DataFrame({"customer_id": ["a"]}), {})
    >>> text = page.read_text()
    >>> all(f'id="{s}"' in text for s in SECTION_IDS)
    True
    >>> "The churn step did not run" in text
    True
    """
    path = Path(path)
    if previous_outputs is None and previous_features is None:
        previous_outputs, previous_features = _previous(path, manifest)
    page = render_run_report(manifest, features, outputs, drift=drift, exports=exports,
                             previous_outputs=previous_outputs,
                             previous_features=previous_features, currency=currency,
                             risk_threshold=risk_threshold, report_dir=path.parent)
    with atomic_write(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


