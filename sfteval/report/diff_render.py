"""Renderers of a DiffReport: rich tables for the terminal, Markdown for CI comments, JSON for tools.

Both lead with "what changed" (significant changes in words, largest first). The tables then show the rows worth
reading — headline metrics, significant changes, run-relative measures, rows that could not be compared — and
collapse the unchanged detail metrics behind `--detail` (the JSON always holds every row).
"""

from __future__ import annotations

from itertools import groupby

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sfteval.core.formatting import MISSING, format_delta, format_interval, format_p, format_value
from sfteval.report.diff import DiffReport, DiffRow

_DIRECTION_STYLES = {"better": "green", "worse": "red", "neutral": "dim"}
_DIRECTION_WORDS = {"better": "better", "worse": "worse", "neutral": ""}


def render_diff(diff: DiffReport, console: Console, detail: bool = False) -> None:
    """Print what changed, one table per probe, then what exists on one side only, then the notes."""
    console.print(Text(_title(diff), style="bold"))
    console.print(_changes_panel(diff))
    hidden = 0
    for probe, rows in groupby(diff.rows, key=lambda row: row.probe):
        group = list(rows)
        shown = [row for row in group if detail or worth_showing(row)]
        hidden += len(group) - len(shown)
        if shown:
            console.print(_probe_table(probe, shown, diff))
    if hidden:
        console.print(Text(f"{hidden} unchanged detail metrics not shown: add --detail", style="dim"))
    if not diff.rows:
        console.print(Text("the two runs share no metric for these variants", style="yellow"))
    for label, entries in (("only in A", diff.only_in_a), ("only in B", diff.only_in_b)):
        if entries:
            console.print(Text(f"{label}: {', '.join(entries)}", style="dim"))
    for note in diff.notes:
        console.print(Text(f"note: {note}", style="dim"))


def diff_markdown(diff: DiffReport, detail: bool = False) -> str:
    """A Markdown summary of the diff (what changed, then a GitHub-flavoured table), for a PR comment or summary."""
    changes = [f"- {markdown_cell(sentence)}" for sentence in diff.what_changed] or [
        "- no significant change"
    ]
    lines = [
        f"### sfteval diff: {markdown_cell(_title(diff))}",
        "",
        "**What changed**",
        "",
        *changes,
        "",
        f"Δ = B − A; `*` significant after Holm correction (α={diff.alpha:g}); "
        f"{100 * diff.confidence:g}% intervals.",
        "",
        "| probe | metric | template | A | B | Δ [CI] | p (Holm) | pairing |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    shown = [row for row in diff.rows if detail or worth_showing(row)]
    for row in shown:
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
    if len(shown) < len(diff.rows):
        lines += ["", f"{len(diff.rows) - len(shown)} unchanged detail metrics not shown (`--detail`)."]
    for label, entries in (("Only in A", diff.only_in_a), ("Only in B", diff.only_in_b)):
        if entries:
            lines += ["", f"{label}: " + ", ".join(markdown_cell(entry) for entry in entries)]
    if diff.notes:
        lines += ["", *(f"- {markdown_cell(note)}" for note in diff.notes)]
    return "\n".join(lines) + "\n"


def diff_json(diff: DiffReport) -> str:
    """The diff as indented JSON (the DiffReport schema)."""
    return diff.model_dump_json(indent=2) + "\n"


def worth_showing(row: DiffRow) -> bool:
    """Headline metrics, significant changes, run-relative measures and rows that could not be compared."""
    return row.headline or row.significant or row.defined_by is not None or not row.comparable


def _changes_panel(diff: DiffReport) -> Panel:
    """The significant changes in words, largest first."""
    if not diff.what_changed:
        body: Text | Group = Text(
            "no significant change (Holm-corrected) in any metric both runs share", "dim"
        )
    else:
        body = Group(*(Text(f"• {sentence}") for sentence in diff.what_changed))
    return Panel(body, title="what changed", title_align="left")


def _title(diff: DiffReport) -> str:
    return f"A = {diff.variant_a} of {diff.run_a} ({diff.suite_a}) → B = {diff.variant_b} of {diff.run_b} ({diff.suite_b})"


def _probe_table(probe: str, rows: list[DiffRow], diff: DiffReport) -> Table:
    """metric | A | B | Δ [CI] | p (Holm) with the pairing beneath; no column wraps (template rows as sections)."""
    templates = list(dict.fromkeys(row.template for row in rows))
    several = len(templates) > 1
    table = Table(
        title=Text(probe + ("" if several else f" ({templates[0]})"), style="bold"),
        caption=Text(f"Δ = B − A (points for %); * significant after Holm (α={diff.alpha:g})", style="dim"),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("metric", no_wrap=True)
    for column in ("A", "B", "Δ [CI]", "p (Holm)"):
        table.add_column(Text(column), justify="right", no_wrap=True)
    for template in templates:
        if several:
            table.add_row(Text(template, style="italic dim"))
        for row in (row for row in rows if row.template == template):
            style = _DIRECTION_STYLES[row.direction] + (" bold" if row.significant else "")
            p_value = MISSING if row.adjusted_p is None else format_p(row.adjusted_p)
            table.add_row(
                Text(("  " if several else "") + row.metric, style="bold" if row.headline else ""),
                Text(format_value(row.value_a, row.binary)),
                Text(format_value(row.value_b, row.binary)),
                Text(_delta_text(row).replace(" [", "\n[", 1), style=style),
                Text(p_value).append("\n" + _pairing(row, with_test=False), style="dim"),
            )
    return table


def _delta_text(row: DiffRow) -> str:
    """`-12.5 [-20.0, -5.0]*`, or `—` when there is no delta (or it compares unlike things)."""
    if row.delta is None or not row.comparable:
        return MISSING
    interval = "" if row.low is None else " " + format_interval(row.low, row.high, row.binary)
    return format_delta(row.delta, row.binary) + interval + ("*" if row.significant else "")


def _direction_word(row: DiffRow) -> str:
    return _DIRECTION_WORDS[row.direction]


def _pairing(row: DiffRow, with_test: bool = True) -> str:
    """`paired n=40` or `unpaired 40 vs 30` (optionally with the test's name), or why it is not compared."""
    if not row.comparable:
        return "not comparable"
    text = f"paired n={row.n_pairs}" if row.mode == "paired" else f"unpaired {row.n_a} vs {row.n_b}"
    if row.defined_by is not None:
        text = f"n={row.n_pairs}, from {row.defined_by}"
    return f"{text} · {row.test}" if with_test else text


def markdown_cell(text: str) -> str:
    """Text safe inside a Markdown table cell: pipes escaped, newlines flattened."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
