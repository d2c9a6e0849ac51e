"""The HTML report as text: self-contained, strict CSP, escaped model outputs, one chart per thing the report holds."""

from __future__ import annotations

import base64
import hashlib
import re
import sys
from itertools import pairwise

import pytest
from comparative_fixtures import PAYLOAD, build, default_records, if_records, write_run

from sfteval.cli import main
from sfteval.core.records import ItemRecord
from sfteval.report.charts import probe_charts
from sfteval.report.gate import apply_gate, load_policy
from sfteval.report.html import render_html
from sfteval.report.html_style import STYLESHEET
from sfteval.report.samples import sample_outputs, truncate
from sfteval.report.svg import nice_ticks


@pytest.fixture(scope="module")
def records():
    return default_records()


@pytest.fixture(scope="module")
def page(records):
    return render_html(apply_gate(build(records), load_policy("default")), records)


def test_page_is_self_contained_with_a_strict_policy(page):
    digest = base64.b64encode(hashlib.sha256(STYLESHEET.encode()).digest()).decode()
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "default-src 'none'" in policy and f"style-src 'sha256-{digest}'" in policy
    assert "script-src" not in policy and "<script" not in page.replace("&lt;script", "")
    assert " style=" not in page, "inline style attributes would be blocked by the CSP"
    assert re.findall(r"(?:src|href)=\"(?!#)", page) == [], "no external resources"
    urls = set(re.findall(r"https?://[^\"'<> ]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}


def test_model_outputs_are_escaped(page):
    assert PAYLOAD not in page
    assert (
        "&lt;script&gt;window.__pwned=1&lt;/script&gt;&lt;img src=x onerror=&quot;window.__pwned=2&quot;&gt;"
        in page
    )
    assert "&amp; &lt;/pre&gt;" in page


def test_charts_cover_trends_templates_flips_and_openings(records):
    report = build(records)
    kinds = {
        probe.name: [chart.kind for chart in probe_charts(report, probe, records)] for probe in report.probes
    }
    assert kinds == {
        "instruction_following": ["trend", "flips"],
        "spurious_prefix": ["trend", "flips", "openings"],
    }
    several = build(records + [record.model_copy(update={"template": "alpaca"}) for record in if_records()])
    if_probe = several.probe("instruction_following")
    assert [chart.kind for chart in probe_charts(several, if_probe, [])] == ["trend", "templates"]


def test_trend_chart_marks_significant_epochs_and_draws_bands(records):
    report = build(records)
    probe = report.probe("instruction_following")
    trend = next(chart for chart in probe_charts(report, probe, records) if chart.kind == "trend")
    assert trend.svg.count("<circle") == 4 and trend.svg.count('class="star"') == 3
    assert '<polygon class="band"' in trend.svg and "base: 50.0% [" in trend.svg


def test_flip_counts_come_from_paired_items(records):
    report = build(records)
    probe = report.probe("instruction_following")
    flips = next(chart for chart in probe_charts(report, probe, records) if chart.kind == "flips")
    # Items pass from the end (item i passes when i >= 40 − passes): no item is lost, 10/14/16 are gained.
    values = re.findall(r'<text class="value"[^>]*>(\d+)</text>', flips.svg)
    assert values == ["0", "10", "0", "14", "0", "16"]


def test_summary_shows_recommendation_gate_and_findings(page):
    assert "<p>Recommended: <strong>epoch-1</strong> (no later fit epoch is significantly better" in page
    assert "<td>epoch-3</td><td>90.0%</td><td>+40.0 (p&lt;0.001)</td><td>—</td>" in page
    assert (
        "<td>excluded: gate rule spurious-prefix-rate, spurious prefix, dominant_prefix regression</td>"
        in page
    )
    assert "<li>epoch-2 is not significantly better than epoch-1 on prompt_loose (+10.0 points" in page
    assert "Rule: Candidates are the non-base variants." in page
    assert "epochs 1–3 rise by 25.0 → 35.0 → 40.0 points in prompt_loose of instruction_following" in page
    assert '<div class="gate passed"><h3>Gate passed</h3>' in page
    assert "opens 75% of off-task answers with &#x27;The sentiment is:&#x27;" in page
    assert page.count('<figure class="chart"') == 5


def test_sample_browser_shows_the_same_items_for_every_variant(records):
    sampled = sample_outputs(records, ["instruction_following", "spurious_prefix"], per_variant=3)
    for by_variant in sampled.values():
        ids = {variant: [item.item_id for item in items] for variant, items in by_variant.items()}
        assert list(ids) == ["base", "epoch-1", "epoch-2", "epoch-3"]
        assert len({tuple(value) for value in ids.values()}) == 1 and len(ids["base"]) == 3


def test_long_texts_are_truncated():
    assert truncate("x" * 2500) == "x" * 2000 + "… [500 more characters]"


def test_without_records_the_page_still_renders(records):
    page = render_html(build(records), None)
    assert "items.jsonl was not available" in page and page.count('<figure class="chart"') == 2


def test_names_that_look_like_html_are_escaped():
    record = ItemRecord(
        probe="instruction_following",
        variant="base",
        template="<b>tmpl</b>",
        item_id="<i>id</i>",
        cluster_id="c",
        metrics={"prompt_loose": 1},
        output="ok",
        extra={"instructions": [{"id": "a:b", "strict": True, "loose": True}]},
    )
    page = render_html(build([record], ("base",)), [record])
    assert "<b>tmpl</b>" not in page and "&lt;b&gt;tmpl&lt;/b&gt;" in page and "<i>id</i>" not in page


@pytest.mark.parametrize(
    ("low", "high"), [(0.0, 1.0), (-38.4, -9.8), (0.0012, 0.0049), (3.0, 3.0000001), (-1.1, 1.1)]
)
def test_nice_ticks_cover_the_range_with_round_steps(low, high):
    ticks = nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high and 2 <= len(ticks) <= 12
    steps = {round(b - a, 9) for a, b in pairwise(ticks)}
    assert len(steps) == 1


def test_report_command_writes_html(tmp_path, records, monkeypatch, capsys):
    run = write_run(tmp_path / "run", records)
    out = tmp_path / "pages" / "report.html"
    monkeypatch.setattr(sys, "argv", ["sfteval", "report", str(run), "--html", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code in (0, None) and f"HTML report: {out}" in capsys.readouterr().out
    assert "&lt;script&gt;window.__pwned=1" in out.read_text(encoding="utf-8")
