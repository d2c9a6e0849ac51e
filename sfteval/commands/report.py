"""`sfteval report RUN_DIR`: re-render a finished (or interrupted) run's report.json in the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report_command(
    run_dir: Annotated[
        Path, typer.Argument(help="Run directory written by `sfteval run` (or its report.json).")
    ],
) -> None:
    """Show the report of RUN_DIR: per-probe tables with CIs and Δ vs base, findings and the recommendation."""
    from rich.console import Console

    from sfteval.report.schema import load_report
    from sfteval.report.terminal import render_report

    render_report(load_report(run_dir), Console())
