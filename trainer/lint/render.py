"""Printing a lint report with rich (findings, tables, highlighted rows) and writing it as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from sfteval.core.errors import UserError
from sfteval.trainer.lint.results import LintReport, ShownRow

LEVEL_STYLES = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def print_lint_report(report: LintReport, show: int = 0, console: Console | None = None) -> None:
    """Findings first (errors, then warnings), then the summary tables, then `show` highlighted rows."""
    console = console or Console()
    console.print(
        f"[bold]sfteval lint[/bold]: {report.rows} rows, template {report.template}, model {report.model}"
    )
    if report.findings:
        findings = RichTable(title="findings")
        for column in ("level", "check", "count", "examples", "meaning"):
            findings.add_column(column, overflow="fold")
        for item in report.findings:
            findings.add_row(
                Text(item.level, style=LEVEL_STYLES[item.level]), item.check, str(item.count),
                ", ".join(item.examples), item.message,
            )  # fmt: skip
        console.print(findings)
    for table in report.tables:
        if table.rows:
            rich_table = RichTable(title=table.title)
            for column in table.columns:
                rich_table.add_column(column)
            for row in table.rows:
                rich_table.add_row(*row)
            console.print(rich_table)
    for row in report.shown[:show]:
        console.print(highlighted(row, marked=console.color_system is None))
    errors = sum(item.level == "error" for item in report.findings)
    warnings = sum(item.level == "warning" for item in report.findings)
    verdict = "[bold red]FAIL[/bold red]" if errors else "[bold green]OK[/bold green]"
    console.print(f"{verdict}: {errors} error finding(s), {warnings} warning(s)")


def highlighted(row: ShownRow, marked: bool = False) -> Text:
    """The row's tokens: trained ones on green (alternating shades show token boundaries), masked ones dim.

    With `marked` (no colour, e.g. output piped to a file) each trained run is also wrapped in ⟦ ⟧.
    """
    text = Text(f"--- {row.id}: {row.trained_tokens}/{row.total_tokens} tokens trained ---\n", style="bold")
    previous = False
    for index, (piece, trained) in enumerate(row.pieces):
        if marked and trained != previous:
            text.append("⟦" if trained else "⟧")
        shade = "on dark_green" if index % 2 == 0 else "on green4"
        text.append(piece, style=f"bold white {shade}" if trained else "dim")
        previous = trained
    if marked and previous:
        text.append("⟧")
    return text


def write_lint_json(report: LintReport, path: Path) -> None:
    """The report (without the shown rows) as JSON, for CI artefacts."""
    payload = report.model_dump(mode="json", exclude={"shown"})
    payload["has_errors"] = report.has_errors
    try:
        path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as error:
        raise UserError(f"--json {path}: cannot write ({error})") from None
