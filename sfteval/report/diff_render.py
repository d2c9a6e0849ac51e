"""Renderers of a DiffReport: rich tables for the terminal, Markdown for CI comments, JSON for tools."""

from __future__ import annotations

from itertools import groupby

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sfteval.core.formatting import MISSING, format_delta, format_interval, format_p, format_value
from sfteval.report.diff import DiffReport, DiffRow

_DIRECTION_STYLES = {"better": "green", "worse": "red", "neutral": "dim"}
_DIRECTION_WORDS = {"better": "better", "worse": "worse", "neutral": ""}


def render_diff(diff: DiffReport, console: Console) -> None:
    """Print one table per probe, then what exists on one side only, then the notes."""
    console.print(Text(_title(diff), style="bold"))
    for probe, rows in groupby(diff.rows, key=lambda row: row.probe):
        console.print(_probe_table(probe, list(rows), diff))
    if not diff.rows:
        console.print(Text("the two runs share no metric for these variants", style="yellow"))
    for label, entries in (("only in A", diff.only_in_a), ("only in B", diff.only_in_b)):
        if entries:
            console.print(Text(f"{label}: {', '.join(entries)}", style="dim"))
    for note in diff.notes:
        console.print(Text(f"note: {note}", style="dim"))


def diff_markdown(diff: DiffReport) -> str:
    """A Markdown summary (GitHub-flavoured table) of the diff, for a pull-request comment or step summary."""
    lines = [
        f"### sfteval diff: {markdown_cell(_title(diff))}",
        "",
        f"Δ = B − A; `*` significant after Holm correction (α={diff.alpha:g}); "
        f"{100 * diff.confidence:g}% intervals.",
        "",
        "| probe | metric | template | A | B | Δ [CI] | p (Holm) | pairing |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for row in diff.rows:
        cells = (
            row.probe,
            ("**" + row.metric + "**") if row.headline else row.metric,
            row.template,
            format_value(row.value_a, row.binary),
            format_value(row.value_b, row.binary),
            _delta_text(row) + (" " + _direction_word(row) if row.significant else ""),
            MISSING if row.adjusted_p is None else format_p(row.adjusted_p),
            _pairing(row),
        )
        lines.append("| " + " | ".join(markdown_cell(cell) for cell in cells) + " |")
    for label, entries in (("Only in A", diff.only_in_a), ("Only in B", diff.only_in_b)):
        if entries:
            lines += ["", f"{label}: " + ", ".join(markdown_cell(entry) for entry in entries)]
    if diff.notes:
        lines += ["", *(f"- {markdown_cell(note)}" for note in diff.notes)]
    return "\n".join(lines) + "\n"


def diff_json(diff: DiffReport) -> str:
    """The diff as indented JSON (the DiffReport schema)."""
    return diff.model_dump_json(indent=2) + "\n"


def _title(diff: DiffReport) -> str:
    return f"A = {diff.variant_a} of {diff.run_a} ({diff.suite_a}) → B = {diff.variant_b} of {diff.run_b} ({diff.suite_b})"


def _probe_table(probe: str, rows: list[DiffRow], diff: DiffReport) -> Table:
    """metric | [template] | A | B | Δ [CI] | p (Holm) | pairing, Δ coloured by direction, bold when significant."""
    templates = list(dict.fromkeys(row.template for row in rows))
    several = len(templates) > 1
    table = Table(
        title=Text(probe + ("" if several else f" ({templates[0]})"), style="bold"),
        caption=Text(f"Δ = B − A (points for %); * significant after Holm (α={diff.alpha:g})", style="dim"),
        box=box.SIMPLE_HEAVY,
    )
    table.add_column("metric", no_wrap=True)
    if several:
        table.add_column("template", overflow="fold")
    for column in (diff.variant_a + " (A)", diff.variant_b + " (B)", "Δ [CI]", "p (Holm)"):
        table.add_column(Text(column), justify="right", overflow="fold")
    table.add_column("pairing", overflow="fold")
    for row in rows:
        style = _DIRECTION_STYLES[row.direction] + (" bold" if row.significant else "")
        table.add_row(
            Text(row.metric, style="bold" if row.headline else ""),
            *([Text(row.template)] if several else []),
            Text(format_value(row.value_a, row.binary)),
            Text(format_value(row.value_b, row.binary)),
            Text(_delta_text(row), style=style),
            Text(MISSING if row.adjusted_p is None else format_p(row.adjusted_p)),
            Text(_pairing(row, with_test=False), style="dim"),
        )
    return table


def _delta_text(row: DiffRow) -> str:
    """`-12.5 [-20.0, -5.0]*`, or `—` when there is no delta."""
    if row.delta is None:
        return MISSING
    interval = "" if row.low is None else " " + format_interval(row.low, row.high, row.binary)
    return format_delta(row.delta, row.binary) + interval + ("*" if row.significant else "")


def _direction_word(row: DiffRow) -> str:
    return _DIRECTION_WORDS[row.direction]


def _pairing(row: DiffRow, with_test: bool = True) -> str:
    """`paired n=40` or `unpaired 40 vs 30`, optionally with the test's name."""
    text = f"paired n={row.n_pairs}" if row.mode == "paired" else f"unpaired {row.n_a} vs {row.n_b}"
    return f"{text} · {row.test}" if with_test else text


def markdown_cell(text: str) -> str:
    """Text safe inside a Markdown table cell: pipes escaped, newlines flattened."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
