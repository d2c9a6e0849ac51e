"""Rich terminal rendering of a Report: run header, one table per probe, findings, recommendation, notes.

All report text (variant, template and metric names, finding messages) goes through `Text` objects, never markup
strings, so names that look like rich markup are shown as they are.
"""

from __future__ import annotations

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sfteval.core.formatting import format_delta, format_interval, format_number, format_value
from sfteval.core.report import Report
from sfteval.core.results import CellResult, ComparisonResult, Finding, MetricInfo, ProbeResult

_DIRECTION_STYLES = {"better": "green", "worse": "red", "neutral": "dim"}
_SIGNIFICANT_STYLES = {"better": "bold green", "worse": "bold red", "neutral": "bold"}
_SEVERITY_STYLES = {"error": ("✖", "bold red"), "warning": ("▲", "yellow"), "info": ("●", "cyan")}


def render_report(report: Report, console: Console) -> None:
    """Print the whole report to `console`."""
    console.print(_header(report))
    for probe in report.probes:
        console.print(_probe_table(report, probe))
        if probe.mde_note:
            console.print(Text(f"power ({probe.name}): {probe.mde_note}", style="dim"))
    console.print(_findings_panel(report.findings))
    console.print(_recommendation(report))
    for note in report.notes:
        console.print(Text(f"note: {note}", style="dim"))


def _header(report: Report) -> Panel:
    """Run metadata, the variants table and, for an interrupted run, a warning."""
    run = report.run
    suite = run.suite_name + (f" ({run.suite_path})" if run.suite_path else "")
    facts = [
        f"suite {suite}",
        f"engine {run.engine}",
        f"seed {run.seed}",
        f"sfteval {run.sfteval_version}",
        run.created_at.strftime("%Y-%m-%d %H:%M %Z").strip(),
    ]
    lines: list[Text | Table] = [
        Text(" · ".join(facts)),
        Text(f"checkpoints {run.ckpt_dir}"),
        Text(
            f"cache {run.cache_hits} hits, {run.cache_misses} computed" + _total_time(run.timings),
            style="dim",
        ),
    ]
    variants = Table(box=box.SIMPLE, show_edge=False, pad_edge=False)
    for column in ("variant", "kind", "epoch", "step", "fingerprint", "path"):
        variants.add_column(column, overflow="fold")
    for variant in run.variants:
        epoch = "" if variant.epoch is None else f"{variant.epoch:g}"
        step = "" if variant.step is None else str(variant.step)
        variants.add_row(variant.name, variant.kind, epoch, step, variant.fingerprint[:12], variant.path)
    lines.append(variants)
    if not run.complete:
        lines.append(
            Text(
                "⚠ incomplete run: some results are missing; rerun the same command to resume", "bold yellow"
            )
        )
    return Panel(Group(*lines), title="sfteval report", title_align="left")


def _total_time(timings: dict[str, float]) -> str:
    """`, 12.3 s` from the run's `total` timing, when the runner recorded one."""
    total = timings.get("total")
    return "" if total is None else f", {format_number(total)} s"


def _probe_table(report: Report, probe: ProbeResult) -> Table:
    """Rows = metrics (× templates), columns = variants; cells `value [CI]` with Δ vs base beneath."""
    variants = list(dict.fromkeys(cell.variant for cell in probe.cells))
    several_templates = len(probe.templates) > 1
    table = Table(
        title=Text(f"{probe.name} (v{probe.version})", style="bold"),
        caption=Text(
            f"Δ vs base (points for %); * significant after Holm correction (α={report.stats.alpha:g}); "
            "green better, red worse",
            style="dim",
        ),
        box=box.SIMPLE_HEAVY,
        show_lines=True,
    )
    table.add_column("metric", overflow="fold")
    if several_templates:
        table.add_column("template", overflow="fold")
    for variant in variants:
        table.add_column(variant, justify="right", overflow="fold")
    base_deltas = {(c.metric, c.template, c.variant): c for c in report.comparisons_of(probe.name, "base")}
    for info in probe.metrics:
        for template in probe.templates:
            if not any(_has_value(probe.cell(variant, template), info) for variant in variants):
                continue  # e.g. a spread metric under a single template: nothing to show
            name = Text(info.name, style="bold" if info.headline else "")
            cells = [
                _cell_text(
                    probe.cell(variant, template), info, base_deltas.get((info.name, template, variant))
                )
                for variant in variants
            ]
            table.add_row(name, *([Text(template)] if several_templates else []), *cells)
    if not probe.cells:
        table.add_row(Text("no item records", style="dim"))
    return table


def _has_value(cell: CellResult | None, info: MetricInfo) -> bool:
    value = None if cell is None else cell.metric(info.name)
    return value is not None and value.value is not None


def _cell_text(cell: CellResult | None, info: MetricInfo, comparison: ComparisonResult | None) -> Text:
    """`62.5% [55.1, 69.4]` and, for variants compared with base, `Δ -12.5*` coloured by direction."""
    value = None if cell is None else cell.metric(info.name)
    if value is None or value.value is None:
        return Text("—", style="dim")
    text = Text(format_value(value.value, info.binary))
    if value.method != "summary":
        text.append(" " + format_interval(value.low, value.high, info.binary), style="dim")
    if comparison is not None:
        marker = "*" if comparison.significant else ""
        styles = _SIGNIFICANT_STYLES if comparison.significant else _DIRECTION_STYLES
        style = styles[comparison.direction]
        text.append(f"\nΔ {format_delta(comparison.delta, info.binary)}{marker}", style=style)
    return text


def _findings_panel(findings: tuple[Finding, ...]) -> Panel:
    """Every finding as a line marked and coloured by severity."""
    if not findings:
        body: Text | Group = Text("no significant change in any headline metric", style="dim")
    else:
        body = Group(*(finding_line(finding) for finding in findings))
    return Panel(body, title="findings", title_align="left")


def finding_line(finding: Finding) -> Text:
    """One finding, marked and coloured by its severity."""
    symbol, style = _SEVERITY_STYLES[finding.severity]
    return Text.assemble((f"{symbol} {finding.severity}: ", style), finding.message)


def _recommendation(report: Report) -> Text:
    """The recommended checkpoint with its score and rule, or why there is none."""
    recommendation = report.recommendation
    if recommendation is None:
        return Text("no recommendation: no non-base variant or no headline metric to rank by", style="dim")
    if recommendation.variant is None:
        return Text(
            f"no recommendation: no eligible variant has a score (rule: {recommendation.rule})", "yellow"
        )
    probe = report.probe(recommendation.probe)
    info = None if probe is None else probe.metric_info(recommendation.metric)
    score = format_value(recommendation.score, info is not None and info.binary)
    return Text.assemble(
        ("recommended checkpoint: ", "bold"),
        (recommendation.variant, "bold green"),
        f" ({recommendation.metric} of {recommendation.probe} {score})",
        (f"\nrule: {recommendation.rule}", "dim"),
    )
