"""The dashboard in a real headless browser: pages load without errors, charts render, metrics.json numbers show.

Uses Debian's chromium (``apt-get install chromium``, or ``make browser``) driven by Playwright;
Playwright's own browser download is not used.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from modops.dashboard import build_site
from modops.dashboard.fmt import fmt_num, fmt_pct
from modops.dashboard.serve import start_background
from tests.dashboard.conftest import build_data, candidate_metrics, champion_metrics, dump_metrics

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Charts each page must render: index (PR-AUC trend), v1 (bars, curves, review load), v2 (bars, curves).
CHARTS = {"index.html": 1, "versions/1.html": 3, "versions/2.html": 2}


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} not found: run `make browser` (or `apt-get install chromium`) to test the dashboard")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    """A site whose numbers come from metrics.json files, and those files' content as read back."""
    tmp = tmp_path_factory.mktemp("browser")
    paths = {
        "1": dump_metrics(tmp / "v1" / "metrics.json", champion_metrics()),
        "2": dump_metrics(tmp / "v2" / "metrics.json", candidate_metrics()),
    }
    metrics = {v: json.loads(p.read_text()) for v, p in paths.items()}
    data = build_data(tmp / "inputs", v1_metrics=metrics["1"], v2_metrics=metrics["2"])
    return build_site(data, tmp / "site").parent, metrics


def _open(browser, url: str, *, charts: int) -> tuple[object, list[str]]:
    """Load ``url``; return the page and every console error, page error and failed request."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.on("response", lambda r: problems.append(f"http {r.status}: {r.url}") if r.status >= 400 else None)
    page.goto(url, wait_until="load")
    if charts:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            js = f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {charts}"
            page.wait_for_function(js, timeout=10_000)
        except PlaywrightTimeout:
            pytest.fail(f"{url}: {charts} chart(s) did not render; errors: {problems}")
    return page, problems


def _expected_numbers(metrics: dict) -> list[str]:
    """The precision, recall and PR-AUC of every category, as the pages format them."""
    out = []
    for row in metrics["holdout"].values():
        out += [fmt_pct(row["precision"]), fmt_pct(row["recall"]), fmt_num(row["pr_auc"])]
    return out


def test_pages_load_clean_with_charts_and_metrics_over_http(browser, built):
    site, metrics = built
    with start_background(site) as server:
        for rel, charts in CHARTS.items():
            page, problems = _open(browser, server.url + rel, charts=charts)
            try:
                assert problems == [], f"{rel}: {problems}"
                assert page.locator(".js-plotly-plot").count() == charts
                assert page.locator("h1").count() == 1 and page.get_attribute("html", "lang") == "en"
                assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0 && i.alt)")
                if rel.startswith("versions/"):
                    version = rel.removeprefix("versions/").removesuffix(".html")
                    text = page.inner_text("main")
                    for number in _expected_numbers(metrics[version]):
                        assert number in text, f"{rel}: {number} not visible"
                        assert page.locator("main td", has_text=number).first.is_visible()
            finally:
                page.close()


def test_index_shows_verdict_and_audit_in_words(browser, built):
    site, metrics = built
    with start_background(site) as server:
        page, problems = _open(browser, server.url, charts=1)
        text = page.inner_text("main")
        page.close()
    assert problems == []
    assert "Version 2 failed the gate and was not promoted" in text
    assert fmt_pct(metrics["1"]["review_load"]["review_reduction"]) in text
    assert "Rolled back" in text and "<script>alert('pwned')</script>" in text  # shown as text, never run


def test_a_page_works_from_file_url(browser, built):
    site, metrics = built
    page, problems = _open(browser, (site / "versions" / "2.html").as_uri(), charts=2)
    text = page.inner_text("main")
    page.close()
    assert problems == []
    for number in _expected_numbers(metrics["2"]):
        assert number in text
