"""`sfteval report RUN_DIR`: re-render a finished (or interrupted) run's report.json in the terminal (and as HTML)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report_command(
    run_dir: Annotated[
        Path, typer.Argument(help="Run directory written by `sfteval run` (or its report.json).")
    ],
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", help="Also write a self-contained HTML page (charts, findings, sample outputs)."
        ),
    ] = None,
) -> None:
    """Show the report of RUN_DIR: per-probe tables with CIs and Δ vs base, findings, recommendation, gate."""
    from rich.console import Console
    from rich.text import Text

    from sfteval.report.schema import load_report
    from sfteval.report.terminal import render_report

    console = Console()
    report = load_report(run_dir)
    render_report(report, console)
    if report.gate is not None:
        from sfteval.report.gate_render import render_gate

        render_gate(report.gate, console)
    if html is not None:
        from sfteval.report.html import write_html
        from sfteval.report.items import load_run_items

        written = write_html(report, load_run_items(run_dir, report), html)
        console.print(Text(f"HTML report: {written}"), soft_wrap=True)
