"""The run report: every section present and explained, numbers for people, and the
page checked in a real headless browser (renders, no script error, charts decode).

The browser is Chromium (Debian package ``chromium``); without it the browser test
skips and says so (``apt-get install -y chromium``).
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess

import polars as pl
import pytest

from crmkit.report import SECTION_IDS, render_run_report, write_run_report
from tests.report._run import make_runs

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    run_dir, manifest, features, outputs, drift, exports = make_runs(root, customers=800)
    path = write_run_report(run_dir / "report.html", manifest, features, outputs, drift=drift,
                            exports=exports)
    return path, manifest, features, outputs, drift, exports


def _text(page: str) -> str:
    """What a reader sees: tags, styles, scripts and image data removed."""
    page = re.sub(r"<(style|script)\b.*?</\1>", " ", page, flags=re.S)
    page = re.sub(r'src="data:[^"]*"', "", page)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_every_section_present_with_data(full_run):
    page = full_run[0].read_text()
    for sid in SECTION_IDS:
        assert f'data-section="{sid}"' in page, sid
    # every section had its data but the sector lists (a bank run has no sector step)
    assert re.findall(r'data-section="(\w+)" data-empty', page) == ["sectors"]
    assert page.count("<img ") >= 8  # tiers, flow, heatmap, churn, calibration, CLV, lift, books
    assert "http://" not in page.replace('href="http', "")  # nothing fetched from a network
    assert "https://" not in page


def test_numbers_are_for_people(full_run):
    text = _text(full_run[0].read_text())
    noise = r"\d\.0*[1-9]\d{5,}"  # six or more significant decimals: 374.16999999999996
    assert not re.search(noise, text), re.search(r".{30}" + noise + ".{30}", text)
    for repr_bit in (r"\{'", r"\['", r"\bTrue\b", r"\bFalse\b", r"\bNone\b", r"\bnan\b",
                     r"\binf\b", r"\bnull\b"):
        assert not re.search(repr_bit, text), repr_bit
    assert "CNY" in text and "%" in text


def test_headline_first_and_sorted_tables(full_run):
    page = full_run[0].read_text()
    first = page.index('data-section="headline"')
    assert all(first < page.index(f'data-section="{s}"') for s in SECTION_IDS[1:])
    calls = full_run[3]["calls"]["call_list"]
    top = calls.sort(["urgency", "priority", "customer_id"],
                     descending=[False, True, False]).row(0, named=True)
    section = page[page.index('data-section="workload"'):page.index('data-section="drift"')]
    table = section[section.index("Call list, highest priority first"):]
    assert table.index(top["customer_id"]) < table.index("</table>")
    first_row = re.search(r"<tbody>\s*<tr>(.*?)</tr>", table, re.S).group(1)
    assert top["customer_id"] in first_row


def test_exports_listed_with_working_links(full_run):
    path, *_, exports = full_run
    page = path.read_text()
    for e in exports:
        rel = e.path.relative_to(path.parent).as_posix()
        assert f'href="{rel}"' in page
        assert (path.parent / rel).exists()


def test_blanks_are_explained_when_steps_are_absent(tmp_path):
    manifest = {"run": {"name": "nightly", "as_of": "2025-12-31"}, "inputs": {"tables": {}},
                "validation": {"problems": ["transactions: 3 rows dated after the run"]},
                "steps": {}, "timings_seconds": {"load": 0.1234567}}
    page = render_run_report(manifest, pl.DataFrame({"customer_id": ["a"]}), {})
    text = _text(page)
    for sid in SECTION_IDS:
        assert f'data-section="{sid}"' in page
    assert page.count('data-empty="yes"') == 9            # all but headline and appendix
    assert "The churn step did not run" in text
    assert "the calls step did not run" in text
    assert "first run, so there is nothing to compare with" in text
    assert "1 validation problem(s)" in text                # a warning in the headline
    assert "0.12 s" in text


def test_clv_blanks_are_counted_and_explained(full_run):
    _, _, features, outputs, *_ = full_run
    text = _text(full_run[0].read_text())
    blank = outputs["clv"]["clv"]["clv"].null_count()
    assert blank > 0
    assert f"{blank:,} of {features.height:,} customers have no CLV" in text
    assert "never transacted" in text


def test_a_failing_section_is_reported_not_fatal(tmp_path):
    manifest = {"run": {"as_of": "2025-12-31"}, "steps": {}}
    broken = {"calls": {"call_list": pl.DataFrame({"manager_id": ["M1"], "priority": ["high"],
                                                   "urgency": [[1, 2]]})}}
    page = render_run_report(manifest, None, broken)
    assert 'data-section="workload"' in page


def _browser():
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("the headless-browser check needs Chromium: apt-get install -y chromium")


def test_report_in_a_headless_browser(full_run, tmp_path):
    browser = _browser()
    path = full_run[0]
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-extensions", "--no-first-run",
             "--virtual-time-budget=10000", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--enable-logging=stderr", "--v=0", "--dump-dom",
                          path.as_uri()], capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout).group(0)
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))
    assert attrs["errors"] == "0"                                       # window.onerror count
    assert int(attrs["images"]) >= 8
    assert attrs["images-ok"] == attrs["images"]                        # every chart decoded
    assert "Uncaught" not in dom.stderr and "SyntaxError" not in dom.stderr
    for sid in SECTION_IDS:
        assert f'data-section="{sid}"' in dom.stdout
    shot = tmp_path / "report.png"
    run = subprocess.run([*flags, "--hide-scrollbars", "--window-size=1280,2000",
                          f"--screenshot={shot}", path.as_uri()], capture_output=True,
                         text=True, timeout=180)
    assert run.returncode == 0 and shot.stat().st_size > 50_000, run.stderr[-2000:]


def test_propensity_backtest_is_read_from_the_stored_model_facts():
    """The propensity step records its backtest with the model (``model.metrics``): the
    report shows the observed AUC and lift beside the popularity baseline."""
    per_product = [
        {"target": "fund", "n": 900, "positives": 41, "roc_auc": 0.81, "top_decile_lift": 3.4,
         "baseline_roc_auc": 0.62, "baseline_top_decile_lift": 1.7, "beats_baseline": True},
        {"target": "insurance", "n": 900, "positives": 17, "roc_auc": 0.74,
         "top_decile_lift": 2.2, "baseline_roc_auc": 0.55, "baseline_top_decile_lift": 1.1,
         "beats_baseline": True}]
    manifest = {"run": {"as_of": "2025-12-31"}, "steps": {"propensity": {"model": {
        "metrics": {"backtest": {"as_of": "2025-09-30", "per_product": per_product}}}}}}
    page = render_run_report(manifest, pl.DataFrame({"customer_id": ["a"]}), {})
    assert "Backtest per product (fitted on the earlier landmarks, scored on 2025-09-30)" in page
    assert "3.4" in page and "0.62" in page
    assert page.index("Fund") < page.index("Insurance")  # best lift first
    assert "propensity step did not run" not in page


def test_sector_lists_section_for_a_sector_run(tmp_path):
    """A sector run's report shows each list of the sector step: its row count and its
    first rows with the reason; a run without a sector step says so."""
    import json
    from pathlib import Path

    from crmkit.pipeline import run_pipeline
    from crmkit.report._sections import SECTOR_LIST_ROWS

    root = Path(__file__).resolve().parents[2]
    shutil.copytree(root / "data" / "insurer", tmp_path / "data" / "insurer")
    (tmp_path / "pipelines").mkdir()
    shutil.copy(root / "pipelines" / "insurer.toml", tmp_path / "pipelines")
    result = run_pipeline(tmp_path / "pipelines" / "insurer.toml", as_of="2025-12-31")
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    page = render_run_report(manifest, result.features, result.outputs)
    section = re.search(r'<section id="sectors".*?</section>', page, re.S).group(0)
    assert "data-empty" not in section
    text = _text(section)
    lists = result.outputs["insurer"]
    for name, frame in lists.items():
        label = name.replace("_", " ").capitalize()
        # the list and its row count in the summary table
        assert re.search(rf"\b{re.escape(label)}\s+{frame.height:,}\s+(yes|no)\b", text), name
        if frame.height:
            assert f"Insurer · {label}: first rows" in text
            first = frame.head(SECTOR_LIST_ROWS)
            reasons = first["reason" if "reason" in frame.columns else "suppression_reason"]
            for reason in reasons.to_list():
                assert html.escape(reason, quote=False) in section or reason in text, reason
            if frame.height > SECTOR_LIST_ROWS:
                assert f"Showing {SECTOR_LIST_ROWS:,} of {frame.height:,} rows." in text
    renewals = lists["renewals"].head(SECTOR_LIST_ROWS)
    for policy in renewals["policy_id"].to_list():
        assert policy in text
    # a run without a sector step: an explained blank
    blank = render_run_report({"run": {"as_of": "2025-12-31"}, "steps": {}}, None, {})
    empty = re.search(r'<section id="sectors".*?</section>', blank, re.S).group(0)
    assert 'data-empty="yes"' in empty and "No sector step" in _text(empty)


def test_a_run_folder_read_a_few_columns_at_a_time_gives_the_same_report(full_run, tmp_path):
    """The runner hands the report LazyFrames over the run folder, and each section reads
    only the columns it draws (a 10M-customer report must not hold every table); the
    page must equal the one drawn from the whole tables in memory, and drawing it twice
    must give the same bytes (ties in counts are ordered by their label)."""
    from crmkit.report._sections import Data
    from crmkit.segments._run import RunTables

    _, manifest, features, outputs, drift, exports = full_run
    for step, tables in outputs.items():
        (tmp_path / step).mkdir()
        for name, frame in tables.items():
            frame.write_parquet(tmp_path / step / f"{name}.parquet")
    lazy = RunTables.from_folder(tmp_path, scan=True)
    kwargs = dict(drift=drift, exports=exports)
    eager_page = render_run_report(manifest, features, outputs, **kwargs)
    lazy_page = render_run_report(manifest, features, lazy, **kwargs)
    assert _text(lazy_page) == _text(eager_page)
    assert render_run_report(manifest, features, lazy, **kwargs) == lazy_page

    d = Data(manifest, features, lazy, None, None, "CNY", 0.1, None)
    whole = d.customers().sort("customer_id")
    few = d.customers(["stage", "clv"])
    assert few.columns == ["stage", "clv"] and whole.height == few.height > 0
    assert d.customers(["customer_id", "stage", "clv"]).sort("customer_id").equals(
        whole.select("customer_id", "stage", "clv"))
    assert d.customers(["no_such_column"]).columns == ["customer_id"]


def test_the_report_own_drift_check_reads_the_previous_models_fit_dates(full_run):
    """Without a drift result, the report compares with the previous run folder itself:
    CLV and churn were refitted on the run date, so their scores are shown, not gated."""
    from crmkit.segments import load_run_tables

    path, manifest, features, outputs, _, _ = full_run
    run_dir = path.parent
    previous = manifest["run"]["previous_run"]
    prev_features, prev_outputs = load_run_tables(run_dir.parent / str(previous))
    bare = {k: v for k, v in manifest.items() if k != "drift"}
    text = _text(render_run_report(bare, features, outputs, previous_outputs=prev_outputs,
                                   previous_features=prev_features, report_dir=run_dir))
    assert "Computed by the report" in text
    assert f"model refitted (fitted as of {previous} in the previous run, 2025-12-31 now)" in text
    assert "Drift: churn" not in text and "Drift: clv" not in text
