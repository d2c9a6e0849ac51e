"""Rich rendering of a report: the verdict block first, a compact headline table, full tables with --detail, and
widths 80/120/200 where no metric name breaks and no interval spans two lines."""

from __future__ import annotations

import io
import re

import pytest
from demo_fixtures import demo_report
from report_fixtures import answer_records, cluster_records, probes, run_info
from rich.console import Console

from sfteval import stats
from sfteval.core.records import ItemRecord
from sfteval.core.report import Report
from sfteval.report.build import build_report
from sfteval.report.gate import apply_gate, load_policy
from sfteval.report.terminal import render_report, run_line
from sfteval.report.terminal_verdict import verdict_panel

WIDTHS = (80, 120, 200)


@pytest.fixture(scope="module")
def report() -> Report:
    return build_report(run_info(), answer_records() + cluster_records(), probes(), seed=7)


@pytest.fixture(scope="module")
def demo() -> Report:
    return apply_gate(demo_report(), load_policy("default"))


def console(width: int, styles: bool = False) -> Console:
    return Console(
        record=True, width=width, file=io.StringIO(), force_terminal=styles, color_system="standard"
    )


def rendered(report: Report, width: int = 120, styles: bool = False, detail: bool = False) -> str:
    output = console(width, styles)
    render_report(report, output, detail=detail)
    return output.export_text(styles=styles)


def test_the_verdict_comes_first_then_the_headline_table(report):
    text = rendered(report)
    lines = text.splitlines()
    assert lines[0].startswith("sfteval · quick suite on /runs/sft-output · base + 2 variants · hf · 12.50 s")
    assert lines[1].startswith("╭─ verdict")
    assert text.index("Recommended: epoch-1") < text.index("headline metrics")
    assert "✖ excluded" in text and "✖ epoch-2: identical outputs, accuracy regression" in text
    assert "full per-metric tables: add --detail" in text
    assert "[" not in text.split("headline metrics")[1]  # no intervals in the compact table


def test_headline_table_shows_values_deltas_and_significance(report):
    text = rendered(report)
    row = next(line for line in text.splitlines() if line.strip().startswith("accuracy"))
    assert re.search(r"90\.0%\s+95\.0% \+5\.0\s+40\.0% -50\.0\*", row), row
    assert "clustered" in text and "alpaca" in text and "chatml" in text


def test_detail_shows_intervals_reasons_every_finding_and_notes(report):
    text = rendered(report, detail=True)
    base = stats.wilson_interval(36, 40)
    assert f"[{100 * base.low:.1f}, {100 * base.high:.1f}]" in text
    assert "[26.3, 55.4]" in text  # epoch-2: 16/40
    assert "Δ -50.0*" in text and "Δ -0.200*" in text
    assert "answers (v3)" in text and "clustered (v1)" in text
    assert "suite quick · engine hf · seed 7" in text and "/runs/sft-output/epoch-2" in text
    assert "rule: Candidates are the non-base variants" in text
    assert "· epoch-2 is excluded: error (answers): epoch-2 gives the same answer" in text
    assert "✖ error: epoch-2 gives the same answer to every item." in text
    assert "power (answers): accuracy: with 40 items" in text


def test_deltas_are_coloured_by_direction_and_bold_when_significant(report):
    text = rendered(report, styles=True, detail=True)
    assert "\x1b[1;31m-50.0*" in text  # worse, significant: bold red
    assert "\x1b[32m+5.0" in text  # better, not significant: green
    assert "\x1b[1;32m-0.200*" in text  # lower loss is better: bold green
    assert "\x1b[1m+2.00*" in text  # descriptive metric: no colour


@pytest.mark.parametrize("width", WIDTHS)
def test_at_every_width_names_stay_whole_and_intervals_on_one_line(demo, width):
    text = rendered(demo, width=width, detail=True)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    tables = text.split("headline metrics")[1].split("findings, one per variant")[0]
    assert "…" not in tables  # nothing cropped
    for probe in demo.probes:
        for info in probe.metrics:
            shown = any(v.value is not None for cell in probe.cells if (v := cell.metric(info.name)))
            if shown:
                assert re.search(rf"(^|\s){re.escape(info.name)}(\s|$)", tables, re.MULTILINE), info.name
    for line in tables.splitlines():
        assert line.count("[") == line.count("]"), line
    intervals = re.findall(r"\[[^\]\n]*\]", tables)
    assert intervals and all(re.fullmatch(r"\[-?[\d.,]+%?, -?[\d.,]+%?\]|\[no CI\]", i) for i in intervals)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_compact_view_fits_every_variant_beside_the_names(demo, width):
    text = rendered(demo, width=width)
    header = next(line for line in text.splitlines() if "probe / metric" in line)
    assert all(name in header for name in ("base", "epoch-1", "epoch-2", "epoch-3"))
    assert max(len(line) for line in text.splitlines()) <= width


def test_the_demo_verdict_block_fits_one_80_by_40_screen_and_names_no_defective_checkpoint(demo):
    output = console(80)
    output.print(run_line(demo))
    output.print(verdict_panel(demo, output))
    block = output.export_text()
    assert len(block.splitlines()) <= 40, block
    flowing = re.sub(r"\s+", " ", " ".join(line.strip("│ ") for line in block.splitlines()))
    assert (
        "✖ None is recommended: every epoch has the same defect. Epochs 1–3 make the training opening"
        in flowing
    )
    assert "'The sentiment is:' 291× → 100× → 67× likelier on off-task prompts" in flowing
    assert "epoch-3 0.0% -12.5 p=1.000 ✖ excluded" in flowing
    assert "✖ epoch-3: gate rule spurious-prefix-rate, prefix affinity" in flowing
    assert "gate failed (recommended)" in flowing
    assert "Recommended:" not in flowing and demo.recommendation.variant is None


@pytest.mark.parametrize("width", [20, 40])
def test_narrow_terminals_do_not_crash(report, width):
    text = rendered(report, width=width, detail=True)
    assert "verdict" in text


def test_incomplete_run_is_flagged_first():
    report = build_report(run_info(complete=False), answer_records(), {"answers": probes()["answers"]})
    assert "⚠ incomplete run" in rendered(report).splitlines()[1]


def test_names_that_look_like_markup_are_shown_literally():
    template = "[bold red]x[/bold red]"
    records = [r.model_copy(update={"template": template}) for r in answer_records(["base", "epoch-1"])] + [
        r.model_copy(update={"template": "plain"}) for r in answer_records(["base", "epoch-1"])
    ]
    report = build_report(run_info(["base", "epoch-1"]), records, {"answers": probes()["answers"]})
    assert template in rendered(report, width=160, detail=True)


def test_empty_report_renders():
    report = build_report(run_info(["base"]), [], probes())
    text = rendered(report, detail=True)
    assert "no item records" in text and "no recommendation" in text
    assert "no significant change in any headline metric" in text


def test_missing_cells_render_as_dashes():
    records = answer_records(["base", "epoch-1"]) + [
        ItemRecord(
            probe="answers", variant="epoch-1", template="other", item_id="x", cluster_id="x", metrics={}
        )
    ]
    report = build_report(run_info(["base", "epoch-1"]), records, {"answers": probes()["answers"]})
    assert "—" in rendered(report, detail=True)


def test_a_metric_without_values_under_a_template_gets_no_row() -> None:
    # Under alpaca the answers probe only measured length: no accuracy/loss rows for alpaca, a length row.
    lengths = [
        ItemRecord(
            probe="answers",
            variant=variant,
            template="alpaca",
            item_id=f"q{index}",
            cluster_id=f"q{index}",
            metrics={"length": 5},
        )
        for variant in ("base", "epoch-1", "epoch-2")
        for index in range(4)
    ]
    mixed = build_report(run_info(), answer_records() + lengths, {"answers": probes()["answers"]}, seed=7)
    text = rendered(mixed, width=200, detail=True).split("answers (v3)")[1].split("power (answers)")[0]
    sections = re.split(r"\n\s*(alpaca|chatml)\s*\n", text)
    by_template = dict(zip(sections[1::2], sections[2::2], strict=True))
    assert "length" in by_template["alpaca"] and "accuracy" not in by_template["alpaca"]
    assert "accuracy" in by_template["chatml"] and "length" in by_template["chatml"]
