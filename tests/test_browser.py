"""The HTML report in a real browser (headless Chromium via playwright): loads without console errors, every chart
is drawn, and a planted script/onerror payload in a model output is shown as text and never runs.

Needs Debian's `chromium` (/usr/bin/chromium; `apt-get install -y chromium`). Without it the test is skipped,
except under CI (CI set), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from comparative_fixtures import PAYLOAD, build, default_records

from sfteval.report.gate import apply_gate, load_policy
from sfteval.report.html import write_html

CHROMIUM = Path(os.environ.get("SFTEVAL_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file() or shutil.which(str(CHROMIUM)) is None:
        message = f"{CHROMIUM} not found: install it with `apt-get install -y chromium`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page_file(tmp_path_factory) -> Path:
    records = default_records()
    report = apply_gate(build(records), load_policy("default"))
    return write_html(report, records, tmp_path_factory.mktemp("html") / "report.html")


def test_report_renders_charts_and_never_runs_model_output(browser, page_file, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(page_file.as_uri(), wait_until="load")

    assert page.title().startswith("sfteval report")
    figures = page.locator("figure.chart svg")
    assert figures.count() == 5
    for index in range(figures.count()):
        svg = figures.nth(index)
        box = svg.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 80
        marks = svg.locator("circle, rect.bar, polyline, polygon").count()
        assert marks > 0, f"chart {index} has no marks"

    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.querySelectorAll('script').length") == 0
    assert page.locator("pre.output img").count() == 0
    outputs = page.locator("pre.output").all_text_contents()
    assert PAYLOAD in outputs

    page.evaluate("document.querySelectorAll('details').forEach(element => element.open = true)")
    page.locator("pre.output").first.scroll_into_view_if_needed()
    assert page.locator("pre.output").first.is_visible()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    screenshot = tmp_path / "report.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    assert problems == []
    page.close()
