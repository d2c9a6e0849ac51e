"""Rich rendering of a report: numbers, Δ markers and colours, findings, recommendation, narrow terminals."""

from __future__ import annotations

import io

import pytest
from report_fixtures import answer_records, cluster_records, probes, run_info
from rich.console import Console

from sfteval import stats
from sfteval.core.records import ItemRecord
from sfteval.core.report import Report
from sfteval.report.build import build_report
from sfteval.report.terminal import render_report


@pytest.fixture(scope="module")
def report() -> Report:
    return build_report(run_info(), answer_records() + cluster_records(), probes(), seed=7)


def rendered(report: Report, width: int = 120, styles: bool = False) -> str:
    console = Console(
        record=True, width=width, file=io.StringIO(), force_terminal=styles, color_system="standard"
    )
    render_report(report, console)
    return console.export_text(styles=styles)


def test_tables_show_values_intervals_and_deltas(report):
    text = rendered(report)
    base = stats.wilson_interval(36, 40)
    assert f"90.0% [{100 * base.low:.1f}, {100 * base.high:.1f}]" in text
    assert "40.0% [26.3, 55.4]" in text
    assert "Δ -50.0*" in text and "Δ +5.0 " in text  # significant drop marked, insignificant gain not
    assert "Δ -0.200*" in text
    assert "answers (v3)" in text and "clustered (v1)" in text
    assert "alpaca" in text and "chatml" in text
    assert "opening_entropy" in text and "distinct_outputs" in text


def test_header_findings_recommendation_and_notes(report):
    text = rendered(report)
    assert "suite quick · engine hf · seed 7" in text
    assert "epoch-1-fing" in text and "/runs/sft-output/epoch-2" in text
    assert "cache 3 hits, 117 computed, 12.50 s" in text
    assert "✖ error: epoch-2 gives the same answer to every item." in text
    assert "▲ warning: epoch-2: accuracy of answers fell 50.0 points vs base" in text
    assert "recommended checkpoint: epoch-1 (accuracy of answers 95.0%)" in text
    assert "power (answers): accuracy: with 40 items" in text
    assert "incomplete" not in text


def test_deltas_are_coloured_by_direction_and_bold_when_significant(report):
    text = rendered(report, styles=True)
    assert "\x1b[1;31mΔ -50.0*" in text  # worse, significant: bold red
    assert "\x1b[32mΔ +5.0" in text  # better, not significant: green
    assert "\x1b[1;32mΔ -0.200*" in text  # lower loss is better: bold green
    assert "\x1b[1mΔ +2.00*" in text  # descriptive metric: no colour


def test_incomplete_run_is_flagged_in_the_header():
    report = build_report(run_info(complete=False), answer_records(), {"answers": probes()["answers"]})
    assert "⚠ incomplete run" in rendered(report)


@pytest.mark.parametrize("width", [20, 40, 80])
def test_narrow_terminals_do_not_crash(report, width):
    text = rendered(report, width=width)
    assert "findings" in text
    assert max(len(line) for line in text.splitlines()) <= width


def test_names_that_look_like_markup_are_shown_literally():
    template = "[bold red]x[/bold red]"
    records = [r.model_copy(update={"template": template}) for r in answer_records(["base", "epoch-1"])] + [
        r.model_copy(update={"template": "plain"}) for r in answer_records(["base", "epoch-1"])
    ]
    report = build_report(run_info(["base", "epoch-1"]), records, {"answers": probes()["answers"]})
    assert template in rendered(report, width=160)


def test_empty_report_renders():
    report = build_report(run_info(["base"]), [], probes())
    text = rendered(report)
    assert "no item records" in text and "no recommendation" in text
    assert "no significant change in any headline metric" in text


def test_missing_cells_render_as_dashes():
    records = answer_records(["base", "epoch-1"]) + [
        ItemRecord(
            probe="answers", variant="epoch-1", template="other", item_id="x", cluster_id="x", metrics={}
        )
    ]
    report = build_report(run_info(["base", "epoch-1"]), records, {"answers": probes()["answers"]})
    assert "—" in rendered(report)


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
    text = rendered(mixed, width=200)
    rows = {tuple(line.split()[:2]) for line in text.splitlines() if line.strip()}
    assert ("length", "alpaca") in rows and ("length", "chatml") in rows
    assert ("accuracy", "chatml") in rows and ("accuracy", "alpaca") not in rows
