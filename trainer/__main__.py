"""`python -m sfteval.trainer [train flags]`, also the entry point under `torchrun -m sfteval.trainer`."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from sfteval.core.errors import UserError
from sfteval.trainer.commands import train_command


def main() -> None:
    """Run the train command; user errors print one line and exit 2, as in the `sfteval` CLI."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train_command)
    try:
        app()
    except UserError as error:
        Console(stderr=True).print(f"[bold red]error:[/bold red] {error}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
