"""Rich terminal rendering of a Report: a run line, the verdict block and one compact table of headline metrics;
with `detail`, the run's header, the candidates' reasons, every probe's full table, every finding and the notes.

All report text (variant, template and metric names, finding messages) goes through `Text` objects, never markup
strings, so names that look like rich markup are shown as they are. Tables never wrap a cell (terminal_tables).
"""

from __future__ import annotations

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sfteval.core.formatting import format_number
from sfteval.core.report import Report
from sfteval.core.results import Finding
from sfteval.report.terminal_tables import headline_table, probe_tables
from sfteval.report.terminal_verdict import SEVERITY_MARKS, verdict_panel


def render_report(report: Report, console: Console, detail: bool = False) -> None:
    """Print the report: verdict first, then the headline table; everything else with `detail`."""
    console.print(run_line(report))
    console.print(verdict_panel(report, console, detail))
    for table in headline_table(report, console):
        console.print(table)
    if not detail:
        hidden = len(report.notes)
        more = f" and {hidden} note{'s' if hidden != 1 else ''}" if hidden else ""
        console.print(Text(f"full per-metric tables{more}: add --detail", style="dim"))
        return
    console.print(_header(report))
    _print_reasons(report, console)
    for probe in report.probes:
        for table in probe_tables(report, probe, console):
            console.print(table)
        if probe.mde_note:
            console.print(Text(f"power ({probe.name}): {probe.mde_note}", style="dim"))
    _print_findings(report, console)
    for note in report.notes:
        console.print(Text(f"note: {note}", style="dim"))


def run_line(report: Report) -> Text:
    """'sfteval · quick suite on sfteval-demo/sft · base + 3 variants · hf · 612 s', and a warning if incomplete."""
    run = report.run
    others = len([variant for variant in run.variants if variant.name != "base"])
    variants = (
        f"{'base + ' if others < len(run.variants) else ''}{others} variant{'s' if others != 1 else ''}"
    )
    parts = [f"{run.suite_name} suite on {run.ckpt_dir}", variants, run.engine]
    if "total" in run.timings:
        parts.append(f"{format_number(run.timings['total'])} s")
    text = Text("sfteval · " + " · ".join(parts), style="dim")
    if not run.complete:
        text.append(
            "\n⚠ incomplete run: some results are missing; rerun the same command to resume", "bold yellow"
        )
    return text


def _header(report: Report) -> Panel:
    """Run metadata and the variants table."""
    run = report.run
    suite = run.suite_name + (f" ({run.suite_path})" if run.suite_path else "")
    facts = [f"suite {suite}", f"engine {run.engine}", f"seed {run.seed}", f"sfteval {run.sfteval_version}"]
    facts.append(run.created_at.strftime("%Y-%m-%d %H:%M %Z").strip())
    total = run.timings.get("total")
    cache = f"cache {run.cache_hits} hits, {run.cache_misses} computed"
    lines: list[Text | Table] = [
        Text(" · ".join(facts)),
        Text(f"checkpoints {run.ckpt_dir}"),
        Text(cache + ("" if total is None else f", {format_number(total)} s"), style="dim"),
    ]
    variants = Table(box=box.SIMPLE, show_edge=False, pad_edge=False)
    for column in ("variant", "kind", "epoch", "step", "fingerprint", "path"):
        variants.add_column(column, overflow="fold")
    for variant in run.variants:
        epoch = "" if variant.epoch is None else f"{variant.epoch:g}"
        step = "" if variant.step is None else str(variant.step)
        variants.add_row(variant.name, variant.kind, epoch, step, variant.fingerprint[:12], variant.path)
    lines.append(variants)
    return Panel(Group(*lines), title="run", title_align="left")


def _print_reasons(report: Report, console: Console) -> None:
    """The recommendation's rule and reasons."""
    recommendation = report.recommendation
    if recommendation is None:
        return
    console.print(Text("recommendation", style="bold"))
    console.print(Text(f"rule: {recommendation.rule}", style="dim"))
    for reason in recommendation.reasons:
        console.print(Text(f"· {reason}"))


def _print_findings(report: Report, console: Console) -> None:
    """Every finding, one per variant, most severe first (the verdict block groups them)."""
    console.print(Text("findings, one per variant", style="bold"))
    if not report.findings:
        console.print(Text("no significant change in any headline metric", style="dim"))
    for finding in report.findings:
        console.print(finding_line(finding))


def finding_line(finding: Finding) -> Text:
    """One finding, marked and coloured by its severity."""
    symbol, style = SEVERITY_MARKS[finding.severity]
    return Text.assemble((f"{symbol} {finding.severity}: ", style), finding.message)
