"""`sfteval report RUN_DIR`: re-render a finished (or interrupted) run's report.json in the terminal (and as HTML).

`sfteval report --merge DIR [DIR ...] --out OUT` joins the run directories of `sfteval run --shard i/n` into one
run directory and shows its report.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sfteval.core.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console


def report_command(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(
            metavar="RUN_DIR...",
            help="Run directory written by `sfteval run` (or its report.json); with --merge, every shard's.",
        ),
    ],
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", help="Also write a self-contained HTML page (charts, findings, sample outputs)."
        ),
    ] = None,
    merge: Annotated[
        bool,
        typer.Option("--merge", help="Join the run dirs of `sfteval run --shard i/n` into one run at --out."),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="With --merge: where the merged report.json, items.jsonl, report.html go."
        ),
    ] = None,
    detail: Annotated[
        bool,
        typer.Option(
            "--detail", help="Also print every probe's full table, every finding, the gate's checks."
        ),
    ] = False,
) -> None:
    """Show the report of RUN_DIR: the verdict (recommendation, findings, gate) and the headline metrics."""
    from rich.console import Console

    console = Console()
    if merge:
        if out is None:
            raise UserError("--merge: name the merged run directory with --out OUT")
        merge_command(run_dirs, out, html, console, detail)
        return
    if out is not None:
        raise UserError("--out: only with --merge (sfteval report --merge DIR DIR ... --out OUT)")
    if len(run_dirs) != 1:
        raise UserError(
            f"give one run directory, not {len(run_dirs)}",
            hint="to join shards: --merge DIR DIR ... --out OUT",
        )
    show_report(run_dirs[0], html, console, detail)


def show_report(run_dir: Path, html: Path | None, console: Console, detail: bool = False) -> None:
    """Render one run's report, its gate verdicts, and optionally its HTML page."""
    from rich.text import Text

    from sfteval.core.report import load_report
    from sfteval.report.terminal import render_report

    report = load_report(run_dir)
    render_report(report, console, detail=detail)
    if detail and report.gate is not None:
        from sfteval.report.gate_render import render_gate

        render_gate(report.gate, console)
    if html is not None:
        from sfteval.report.html import write_html
        from sfteval.report.items import load_run_items

        written = write_html(report, load_run_items(run_dir, report), html)
        console.print(Text(f"HTML report: {written}"), soft_wrap=True)


def merge_command(
    run_dirs: list[Path], out: Path, html: Path | None, console: Console, detail: bool = False
) -> None:
    """Merge shard run directories into `out` (report.json, items.jsonl, report.html, run.log) and show it."""
    from rich.text import Text

    from sfteval.report.html import HTML_FILE, write_html
    from sfteval.report.merge import merge_shards
    from sfteval.report.terminal import render_report
    from sfteval.run_output import RunOutput

    if out.resolve() in {directory.resolve() for directory in run_dirs}:
        raise UserError(f"--out {out}: is one of the shards being merged; choose a new directory")
    merged = merge_shards(run_dirs)
    output = RunOutput(out)
    output.log(f"merge: {len(run_dirs)} shards: {', '.join(str(directory) for directory in run_dirs)}")
    output.append_records(merged.records)
    output.write_report(merged.report)
    render_report(merged.report, console, detail=detail)
    for shard in merged.incomplete:
        warning = (
            f"shard {shard.shard} ({shard.directory}) is incomplete: merged report marked incomplete; "
            "rerun that shard's command to resume, then merge again"
        )
        output.log(warning)
        console.print(Text(warning, style="yellow"), soft_wrap=True)
    for page in dict.fromkeys([out / HTML_FILE, *([html] if html is not None else [])]):
        write_html(merged.report, merged.records, page)
    console.print(
        Text(f"merged run directory: {out} (report.json, report.html, items.jsonl, run.log)"), soft_wrap=True
    )
