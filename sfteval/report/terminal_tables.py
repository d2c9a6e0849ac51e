"""Metric tables for the terminal that fit its width: cells never wrap, variants spill into further tables instead.

A metric name never breaks mid-word and an interval never spans two lines: every column is no-wrap, each line of a
cell is one unit (value, interval, Δ), and when the variants do not fit beside the metric names at the console's
width they are split over several tables, each repeating the names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from sfteval.core.formatting import format_delta, format_interval, format_value
from sfteval.core.report import Report
from sfteval.core.results import CellResult, ComparisonResult, MetricInfo, ProbeResult

DIRECTION_STYLES = {"better": "green", "worse": "red", "neutral": "dim"}
SIGNIFICANT_STYLES = {"better": "bold green", "worse": "bold red", "neutral": "bold"}

Row = tuple[Text, list[Text]]
"""A table row: its label and one cell per variant."""


def headline_table(report: Report, console: Console) -> list[Table]:
    """One compact table of every probe's headline metrics: value and Δ vs base (* significant) per variant."""
    variants = [variant.name for variant in report.run.variants]
    rows: list[Row] = []
    for probe in report.probes:
        infos = headline_metrics(probe)
        templates = [
            t for t in probe.templates if any(_value(probe, v, t, i) for v in variants for i in infos)
        ]
        deltas = base_deltas(report, probe)
        rows.append((Text(probe.name, style="bold"), [Text("") for _ in variants]))
        for info in infos:
            shown = [t for t in templates if any(_value(probe, v, t, info) for v in variants)]
            if len(shown) > 1:
                rows.append((Text(f" {info.name}"), [Text("") for _ in variants]))
            for template in shown:
                label = Text(f"   {template}", style="dim") if len(shown) > 1 else Text(f" {info.name}")
                cells = [
                    compact_cell(probe.cell(v, template), info, deltas.get((info.name, template, v)))
                    for v in variants
                ]
                rows.append((label, cells))
    title = f"headline metrics: value, Δ vs base (* significant, Holm α={report.stats.alpha:g})"
    return fitted_tables(console, title, "probe / metric", variants, rows)


def probe_tables(report: Report, probe: ProbeResult, console: Console) -> list[Table]:
    """Every metric of one probe: value, interval and Δ vs base on their own lines, one section per template."""
    variants = list(dict.fromkeys(cell.variant for cell in probe.cells))
    deltas = base_deltas(report, probe)
    rows: list[Row] = []
    sections: list[int] = []
    several = len(probe.templates) > 1
    for template in probe.templates:
        infos = [i for i in probe.metrics if any(_value(probe, v, template, i) for v in variants)]
        if several and infos:
            rows.append((Text(template, style="italic dim"), [Text("") for _ in variants]))
        for info in infos:
            name = Text(("  " if several else "") + info.name, style="bold" if info.headline else "")
            cells = [
                detail_cell(probe.cell(v, template), info, deltas.get((info.name, template, v)))
                for v in variants
            ]
            rows.append((name, cells))
        sections.append(len(rows))
    title = f"{probe.name} (v{probe.version})"
    if not rows:
        table = Table(title=Text(title, style="bold"), box=box.SIMPLE_HEAVY)
        table.add_column("metric")
        table.add_row(Text("no item records", style="dim"))
        return [table]
    return fitted_tables(console, title, "metric", variants, rows, sections)


def fitted_tables(
    console: Console,
    title: str,
    label: str,
    variants: Sequence[str],
    rows: Sequence[Row],
    sections: Sequence[int] = (),
) -> list[Table]:
    """Tables holding as many variant columns beside the labels as the console's width allows (at least one)."""
    tables: list[Table] = []
    start = 0
    while start < len(variants) or not tables:
        stop = start + 1
        while stop < len(variants) and _fits(
            console, _table(title, label, variants, rows, sections, start, stop + 1)
        ):
            stop += 1
        tables.append(_table(title, label, variants, rows, sections, start, stop))
        start = stop
    return tables


def _fits(console: Console, table: Table) -> bool:
    """Whether the table's widest rendering fits the console without wrapping or cropping."""
    unbounded = console.options.update_width(10 * console.width)
    return Measurement.get(console, unbounded, table).maximum <= console.width


def _table(
    title: str,
    label: str,
    variants: Sequence[str],
    rows: Sequence[Row],
    sections: Sequence[int],
    start: int,
    stop: int,
) -> Table:
    """The table of variants start..stop (all rows), no column ever wrapping."""
    shown = variants[start:stop]
    suffix = "" if (start, stop) == (0, len(variants)) else f" ({', '.join(shown)})"
    table = Table(
        title=Text(title + suffix, style="bold"), box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False
    )
    table.add_column(label, no_wrap=True)
    for variant in shown:
        table.add_column(Text(variant), justify="right", no_wrap=True)
    for index, (name, cells) in enumerate(rows):
        table.add_row(name, *cells[start:stop], end_section=index + 1 in sections and index + 1 < len(rows))
    return table


def headline_metrics(probe: ProbeResult) -> list[MetricInfo]:
    """The probe's headline metrics, or its first metric with a direction when it declares none."""
    headline = [info for info in probe.metrics if info.headline]
    directional = [info for info in probe.metrics if info.higher_is_better is not None]
    return headline or directional[:1] or list(probe.metrics[:1])


def base_deltas(report: Report, probe: ProbeResult) -> dict[tuple[str, str, str], ComparisonResult]:
    """(metric, template, variant) -> the comparison with base."""
    return {(c.metric, c.template, c.variant): c for c in report.comparisons_of(probe.name, "base")}


def compact_cell(cell: CellResult | None, info: MetricInfo, comparison: ComparisonResult | None) -> Text:
    """`62.5% -12.5*` on one line: the value and, for variants compared with base, the coloured Δ."""
    return _cell(cell, info, comparison, lambda text: text.append(" "), with_interval=False)


def detail_cell(cell: CellResult | None, info: MetricInfo, comparison: ComparisonResult | None) -> Text:
    """`62.5%` / `[55.1, 69.4]` / `Δ -12.5*`, each on its own line."""
    return _cell(cell, info, comparison, lambda text: text.append("\nΔ "), with_interval=True)


def _cell(
    cell: CellResult | None,
    info: MetricInfo,
    comparison: ComparisonResult | None,
    before_delta: Callable[[Text], object],
    with_interval: bool,
) -> Text:
    value = None if cell is None else cell.metric(info.name)
    if value is None or value.value is None:
        return Text("—", style="dim")
    text = Text(format_value(value.value, info.binary))
    if with_interval and value.method != "summary":
        text.append("\n" + format_interval(value.low, value.high, info.binary), style="dim")
    if comparison is not None:
        before_delta(text)
        styles = SIGNIFICANT_STYLES if comparison.significant else DIRECTION_STYLES
        marker = "*" if comparison.significant else ""
        text.append(
            f"{format_delta(comparison.delta, info.binary)}{marker}", style=styles[comparison.direction]
        )
    return text


def _value(probe: ProbeResult, variant: str, template: str, info: MetricInfo) -> bool:
    """Whether the cell has a value for the metric."""
    cell = probe.cell(variant, template)
    value = None if cell is None else cell.metric(info.name)
    return value is not None and value.value is not None
