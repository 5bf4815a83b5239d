"""The run report: one self-contained HTML file per run (inline CSS, embedded charts)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from crmkit.io import atomic_write

__all__ = ["write_run_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;
color:#1d2733;line-height:1.4}
h1{font-size:1.6rem}h2{border-bottom:2px solid #d7dde5;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem;display:block;max-width:100%;overflow-x:auto}
th,td{border:1px solid #d7dde5;padding:.25rem .5rem;text-align:right}
th{background:#eef2f6}td:first-child,th:first-child{text-align:left}
.bad{color:#a4262c}.ok{color:#107c10}.muted{color:#6b7785;font-size:.85rem}
.grid{display:flex;flex-wrap:wrap;gap:1rem}.grid figure{margin:0}
"""

# Feature columns worth a line in the summary, when present.
_KEY_FEATURES = ("tenure_days", "age_years", "txn_count_90d", "txn_amount_90d",
                 "txn_count_trend_90d", "days_since_last_txn", "n_products_open",
                 "financial_assets", "financial_assets_trend_90d", "complaints_365d")


def _table(frame: pl.DataFrame, max_rows: int = 20) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    rows = []
    for row in frame.head(max_rows).iter_rows():
        cells = "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row)
        rows.append(f"<tr>{cells}</tr>")
    more = (f"<p class='muted'>first {max_rows} of {frame.height:,} rows</p>"
            if frame.height > max_rows else "")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{more}"


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _bar_chart(counts: pl.DataFrame, label: str, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 2.8), dpi=90)
    ax.barh([str(v) for v in counts[label].to_list()], counts["count"].to_list(), color="#2f6f9f")
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'></figure>"


def _categorical_charts(step: str, tables: Mapping[str, pl.DataFrame]) -> str:
    charts = []
    for name, frame in tables.items():
        for col, dtype in frame.schema.items():
            if col.endswith("_id") or dtype not in (pl.String, pl.Categorical, pl.Boolean):
                continue
            distinct = frame[col].n_unique() if frame.height else 0
            # a chart says something only when values repeat and differ
            if distinct > 15 or distinct <= 1 or distinct == frame.height:
                continue
            counts = frame[col].cast(pl.String).fill_null("(none)").value_counts(sort=True)
            charts.append(_bar_chart(counts, col, f"{step}/{name}: {col}"))
    return f"<div class='grid'>{''.join(charts)}</div>" if charts else ""


def write_run_report(path: str | Path, manifest: Mapping[str, Any], features: pl.DataFrame,
                     outputs: Mapping[str, Mapping[str, pl.DataFrame]]) -> Path:
    """Write the HTML report of one run.

    Sections: the run (date, previous run, timings), the inputs (rows read and
    rejected per table), validation problems, a summary of key features, and for
    each step its output tables (row counts, a preview, bar charts of categorical
    columns such as stage or tier) and what it recorded in the manifest.

    Parameters
    ----------
    path : str or path-like
        The ``.html`` file to write (atomically).
    manifest : mapping
        The run manifest, as written to ``manifest.json``.
    features : polars.DataFrame
        The run's feature table.
    outputs : mapping
        Step name to {table name: frame}.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "report.html"
    >>> manifest = {"run": {"name": "nightly", "as_of": "2025-12-31"}, "inputs": {"tables": {}},
    ...             "validation": {"problems": []}, "steps": {}, "timings_seconds": {}}
    >>> write_run_report(out, manifest, pl.DataFrame({"tenure_days": [1, 2]}), {}).exists()
    True
    """
    run = manifest.get("run", {})
    parts = [f"<h1>crmkit run report: {html.escape(str(run.get('name', '')))} as of "
             f"{html.escape(str(run.get('as_of', '')))}</h1>"]
    prev = run.get("previous_run")
    parts.append(f"<p>Previous run: {html.escape(prev) if prev else 'none (first run)'}. "
                 f"Started {html.escape(str(run.get('started_at', '')))}, finished "
                 f"{html.escape(str(run.get('finished_at', '')))}.</p>")
    timings = manifest.get("timings_seconds", {})
    if timings:
        parts.append("<h2>Timings</h2>" + _table(pl.DataFrame(
            {"step": list(timings), "seconds": [float(v) for v in timings.values()]})))

    tables = manifest.get("inputs", {}).get("tables", {})
    parts.append("<h2>Inputs</h2>")
    if tables:
        parts.append(_table(pl.DataFrame({
            "table": list(tables),
            "rows": [t["rows"] for t in tables.values()],
            "rejected": [t["rejected"] for t in tables.values()],
        })))
    problems = manifest.get("validation", {}).get("problems", [])
    if problems:
        items = "".join(f"<li>{html.escape(p)}</li>" for p in problems)
        parts.append(f"<h2 class='bad'>Validation: {len(problems)} problem(s)</h2><ul>{items}</ul>"
                     "<p>Rejected rows and their reasons are in <code>quarantine/</code>.</p>")
    else:
        parts.append("<p class='ok'>Validation: no problems.</p>")

    parts.append(f"<h2>Features</h2><p>{features.height:,} customers, "
                 f"{features.width} features.</p>")
    cols = [c for c in _KEY_FEATURES if c in features.columns]
    if cols and features.height:
        summary = pl.DataFrame({
            "feature": cols,
            "mean": [features[c].cast(pl.Float64).mean() for c in cols],
            "median": [features[c].cast(pl.Float64).median() for c in cols],
            "null share": [features[c].null_count() / features.height for c in cols],
        })
        parts.append(_table(summary))

    for step, step_tables in outputs.items():
        parts.append(f"<h2>{html.escape(step)}</h2>")
        facts = {k: v for k, v in manifest.get("steps", {}).get(step, {}).items() if k != "outputs"}
        if facts:
            items = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(_fmt_fact(v))}</li>"
                            for k, v in facts.items())
            parts.append(f"<ul>{items}</ul>")
        parts.append(_categorical_charts(step, step_tables))
        for name, frame in step_tables.items():
            parts.append(f"<h3>{html.escape(name)} <span class='muted'>({frame.height:,} rows)"
                         f"</span></h3>" + _table(frame, max_rows=10))

    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>crmkit run "
            f"{html.escape(str(run.get('as_of', '')))}</title><style>{_CSS}</style></head>"
            f"<body>{''.join(parts)}</body></html>")
    path = Path(path)
    with atomic_write(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def _fmt_fact(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v) if not isinstance(v, dict) else '{…}'}" for k, v in value.items())
    if isinstance(value, float):
        return _fmt(value)
    return str(value)
