"""`sfteval demo`: train a LoRA SFT of the default model on a flawed demo dataset, probe it, report (CPU, minutes)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo_command(
    out: Annotated[
        Path, typer.Option("--out", help="Directory for the checkpoints (sft/) and the run (run/).")
    ] = Path("sfteval-demo"),
    retrain: Annotated[
        bool,
        typer.Option("--retrain", help="Train again even when OUT/sft already holds a finished demo run."),
    ] = False,
) -> None:
    """Fine-tune SmolLM2-135M with LoRA for 3 epochs on suites/data/demo_sft.jsonl, run the quick suite, report."""
    from rich.console import Console
    from rich.text import Text

    from sfteval.demo import DemoConfig, next_steps, run_demo

    console = Console()
    result = run_demo(DemoConfig(out=out, retrain=retrain), console)
    console.rule("look further")
    console.print(Text(f"report page: {result.html}", style="bold"))
    for line in next_steps(result):
        console.print(Text("  " + line))
    phases = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in result.timings.items())
    console.print(Text(f"demo time: {sum(result.timings.values()):.0f}s ({phases})", style="dim"))
    if not result.complete:
        raise typer.Exit(130)
