"""The HTML report: self-contained (plotly inline, no network), and it renders in headless Chromium.

The browser test needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them). It is
skipped only when chromium is absent *and* ``CI`` is not ``"true"``; under CI a missing browser fails.
The page is opened from a ``file://`` URL with every http(s) request blocked, so a chart that needed
the network would not render and would log an error.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from plotly.offline import get_plotlyjs

from solver.formatting import rate
from solver.report_html import MAX_CURVES

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
CHARTS = 4   # allocation, frontier, scenarios, response curves


def _chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver; skips or fails as the module docstring says."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but chromium is not installed (apt-get install chromium chromium-driver)")
        pytest.skip("chromium is not installed (apt-get install chromium chromium-driver)")
    if driver is None:
        pytest.fail("chromium is installed but chromedriver is not (apt-get install chromium-driver)")
    return browser, driver


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[object]:
    """``path`` opened in headless Chromium (a fresh profile, http(s) blocked, console captured),
    once every plotly chart has drawn."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver_path = _chromium()
    profile = tempfile.mkdtemp(prefix="report-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*FLAGS, f"--user-data-dir={profile}", "--window-size=1366,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["http://*", "https://*", "ws://*", "wss://*"]})
        driver.get(path.resolve().as_uri())
        WebDriverWait(driver, 60).until(lambda d: d.execute_script(
            "const g = document.querySelectorAll('.js-plotly-plot');"
            "return document.readyState === 'complete' && g.length > 0 &&"
            " Array.from(g).every(x => x.querySelector('.main-svg') && x._fullLayout);"))
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _charts(driver) -> list[dict]:  # type: ignore[no-untyped-def]
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.js-plotly-plot')).map(g => ({"
        " traces: g.data.length, drawn: g.querySelectorAll('.trace').length,"
        " width: g.getBoundingClientRect().width, height: g.getBoundingClientRect().height}));")


def _console_errors(driver) -> list[dict]:  # type: ignore[no-untyped-def]
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


@pytest.fixture(scope="module")
def page(sample_report_files) -> Iterator[object]:
    """The sample report opened in headless Chromium (see :func:`_opened`)."""
    with _opened(sample_report_files["html"]) as driver:
        yield driver


def test_every_chart_renders_with_its_traces(page) -> None:
    rendered = _charts(page)
    assert len(rendered) == CHARTS
    for chart in rendered:
        assert chart["traces"] > 0 and chart["drawn"] >= chart["traces"], chart
        assert chart["width"] > 300 and chart["height"] > 100, chart


def test_no_console_errors_and_no_network(page) -> None:
    assert _console_errors(page) == []
    fetched = page.execute_script("return performance.getEntriesByType('resource').map(r => r.name);")
    assert [u for u in fetched if not u.startswith(("file:", "data:", "blob:"))] == []


def test_first_screen_answers_the_two_questions(page, sample_report) -> None:
    boxes = page.execute_script(
        "return Array.from(document.querySelectorAll('.card')).map(c => ({"
        " title: c.querySelector('h3').textContent, bottom: c.getBoundingClientRect().bottom,"
        " text: c.textContent}));")
    height = page.execute_script("return window.innerHeight;")
    titles = [b["title"] for b in boxes]
    assert titles == ["What does the next dollar earn?", "What does each rule cost?"]
    assert all(b["bottom"] <= height for b in boxes), (boxes, height)   # above the fold at 1366 x 900
    assert rate(sample_report.headline["next_dollar"]) in boxes[0]["text"]
    binding = sample_report.rules[sample_report.rules["binding"] & sample_report.rules["removal_gain"].notna()]
    assert len(binding) > 0
    for limit in binding["limit"]:
        assert limit in boxes[1]["text"]


def test_the_fit_report_renders_too(fit_report) -> None:
    report, files = fit_report
    with _opened(files["html"]) as driver:
        rendered = _charts(driver)
        assert len(rendered) == CHARTS + 1   # and the fitted curves with their data and bands
        for chart in rendered:
            assert chart["traces"] > 0 and chart["drawn"] >= chart["traces"], chart
        assert _console_errors(driver) == []


# --- without a browser -------------------------------------------------------------------------


def test_fit_section_shows_every_cell_with_data_curve_and_bands(fit_report) -> None:
    from solver.report_html import fit_figure

    report, files = fit_report
    text = files["html"].read_text(encoding="utf-8")
    assert "<h2>Response-curve fit</h2>" in text and "held-out MAPE" in text
    n = min(len(report.fit_cells), MAX_CURVES)
    div = fit_figure(report)
    # per cell: two bands (edge + filled edge each), the fitted line, the history points
    assert div.count('"fill":"tonexty"') == 2 * n and div.count('"mode":"markers"') == n
    for category, segment in zip(report.fit_cells["category"], report.fit_cells["segment"]):
        assert f'<td class="text">{category}</td><td class="text">{segment}</td>' in text   # its diagnostics row


def test_html_is_self_contained(sample_report_files) -> None:
    text = sample_report_files["html"].read_text(encoding="utf-8")
    assert get_plotlyjs()[:2000] in text                      # plotly.js inline, not fetched
    assert not re.search(r"<script[^>]+src=", text, re.I)
    assert not re.search(r"<link[^>]+href=", text, re.I)
    assert not re.search(r"<(img|iframe)[^>]+src=[\"']?https?:", text, re.I)
    assert not re.search(r"@import|url\(\s*[\"']?https?:", text.split("<script", 1)[0])  # CSS: nothing remote
    assert text.count('class="plotly-graph-div"') == CHARTS


def test_html_has_every_section(sample_report_files, sample_report) -> None:
    text = sample_report_files["html"].read_text(encoding="utf-8")
    for title in ("Recommendations", "Allocation vs status quo", "Budget frontier", "Scenarios", "Shadow prices",
                  "Response curves", "Cells"):
        assert f"<h2>{title}</h2>" in text
    assert html.escape(sample_report.recommendations["action"].iloc[0]) in text
    for name in sample_report.scenarios["scenario"]:
        assert name in text


def test_curve_chart_has_one_panel_per_cell_with_both_points(sample_report) -> None:
    from solver.report_html import curves_figure

    div = curves_figure(sample_report)
    n = min(len(sample_report.cells), MAX_CURVES)
    # one line and two markers (status quo, optimal) per cell
    assert div.count('"mode":"lines"') == n and div.count('"mode":"markers"') == 2 * n


def test_a_report_without_an_optimum_still_renders(sample_problem, tmp_path: Path) -> None:
    from formulations.problem import Problem
    from solver.report import build_report, write_report

    d = sample_problem.to_dict()
    d["category_shares"] = {c: {"min": 0.3} for c in sample_problem.categories}   # minimums add to 180 %
    report = build_report(Problem.from_dict(d), scenarios={"version": 1, "include": ["plan", "status_quo"]})
    assert report.headline["status"] == "infeasible"
    paths = {p.suffix: p for p in write_report(report, tmp_path)}
    text = paths[".html"].read_text(encoding="utf-8")
    assert "infeasible" in text and "category minimums add to" in text
