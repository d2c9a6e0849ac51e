"""`sfteval diff RUN_A RUN_B`: what changed between two runs (e.g. today's SFT and last week's), with paired CIs."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from sfteval.core.errors import UserError


class DiffFormat(str, Enum):
    """Output formats of `sfteval diff`."""

    table = "table"
    markdown = "markdown"
    json = "json"


def diff_command(
    run_a: Annotated[Path, typer.Argument(help="Run directory (or report.json) A, the reference.")],
    run_b: Annotated[Path, typer.Argument(help="Run directory (or report.json) B, compared with A.")],
    variant: Annotated[
        str | None,
        typer.Option(
            "--variant",
            help="A[:B]: the variant of run A (and of run B, default the same name); "
            "default: each run's recommended checkpoint.",
        ),
    ] = None,
    output_format: Annotated[
        DiffFormat, typer.Option("--format", help="table (terminal), markdown (CI comment) or json.")
    ] = DiffFormat.table,
    detail: Annotated[
        bool, typer.Option("--detail", help="Also show the unchanged detail metrics (json always has them).")
    ] = False,
) -> None:
    """What changed between two runs (first, in words), then every metric both share: Δ = B − A with CI, paired on
    shared items, Holm-corrected."""
    from rich.console import Console

    from sfteval.report.diff import diff_runs
    from sfteval.report.diff_render import diff_json, diff_markdown, render_diff

    variant_a, variant_b = split_variant(variant)
    diff = diff_runs(run_a, run_b, variant_a, variant_b)
    if output_format is DiffFormat.table:
        render_diff(diff, Console(), detail)
    elif output_format is DiffFormat.markdown:
        typer.echo(diff_markdown(diff, detail), nl=False)
    else:
        typer.echo(diff_json(diff), nl=False)


def split_variant(value: str | None) -> tuple[str | None, str | None]:
    """'epoch-2' -> (epoch-2, epoch-2); 'epoch-2:epoch-3' -> (epoch-2, epoch-3); None -> (None, None)."""
    if value is None:
        return None, None
    first, _, second = value.partition(":")
    if not first.strip() or (":" in value and not second.strip()):
        raise UserError(f"--variant {value!r}: expected A or A:B, e.g. epoch-2 or epoch-2:epoch-3")
    return first.strip(), (second or first).strip()
