"""`sfteval gate RUN --policy FILE [--baseline OLD_RUN]`: judge a run against a gate policy (and against the last
accepted run); exit 0 pass, 1 fail, 2 bad input."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sfteval.core.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

    from sfteval.core.report import Report

PolicyOption = Annotated[
    str,
    typer.Option(
        "--policy",
        help="Gate policy YAML file, or a shipped policy name (default: suites/gates/default.yaml).",
    ),
]
JunitOption = Annotated[
    Path | None, typer.Option("--junit", help="Also write the checks as JUnit XML to this file.")
]
MarkdownOption = Annotated[
    Path | None, typer.Option("--markdown", help="Also write a Markdown summary (e.g. $GITHUB_STEP_SUMMARY).")
]
BaselineOption = Annotated[
    Path | None,
    typer.Option(
        "--baseline",
        help="A previous run (directory or report.json) to gate against: the policy's *_vs_baseline rules "
        "compare the chosen checkpoints on the items both runs share.",
    ),
]
VariantOption = Annotated[
    str | None,
    typer.Option("--variant", help="With --baseline: RUN's checkpoint to compare (default: recommended)."),
]
BaselineVariantOption = Annotated[
    str | None,
    typer.Option(
        "--baseline-variant", help="With --baseline: OLD_RUN's checkpoint (default: its recommended one)."
    ),
]


def gate_command(
    run_dir: Annotated[
        Path, typer.Argument(help="Run directory written by `sfteval run` (or its report.json).")
    ],
    policy: PolicyOption = "default",
    junit: JunitOption = None,
    markdown: MarkdownOption = None,
    baseline: BaselineOption = None,
    variant: VariantOption = None,
    baseline_variant: BaselineVariantOption = None,
) -> None:
    """Check every rule of the policy on the run's variants (and against --baseline); exit 1 when a fail-rule
    breaks, 2 on bad input."""
    from rich.console import Console

    from sfteval.core.report import load_report
    from sfteval.report.gate import apply_gate, load_policy
    from sfteval.report.gate_baseline import Baseline, apply_baseline

    if baseline is None and (variant is not None or baseline_variant is not None):
        raise UserError("--variant and --baseline-variant choose what to compare with --baseline OLD_RUN")
    report = load_report(run_dir)
    loaded = load_policy(policy)
    gated = apply_gate(report, loaded)
    if baseline is not None:
        gated = apply_baseline(gated, loaded, Baseline(run_dir, baseline, variant, baseline_variant))
    finish_gate(gated, Console(), junit, markdown)


def finish_gate(report: Report, console: Console, junit: Path | None, markdown: Path | None) -> None:
    """Print the gate table and recommendation, write the requested files, exit 1 when the gate failed."""
    from sfteval.report.gate_render import gate_junit, gate_markdown, recommendation_line, render_gate

    result = report.gate
    if result is None:
        raise ValueError("finish_gate needs a gated report (apply_gate)")
    render_gate(result, console)
    console.print(recommendation_line(report))
    for path, text in ((junit, gate_junit), (markdown, gate_markdown)):
        if path is not None:
            write_text(path, text(result))
    if not result.passed:
        raise typer.Exit(1)


def write_text(path: Path, text: str) -> None:
    """Write an output file; a path that cannot be written is a UserError naming it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise UserError(f"{path}: cannot write ({error})") from None
