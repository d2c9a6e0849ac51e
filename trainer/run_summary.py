"""The end-of-run summary printed by `sfteval train`."""

from __future__ import annotations

import os

from rich.console import Console
from rich.table import Table

from sfteval.trainer.train import TrainResult


def print_train_summary(result: TrainResult, console: Console | None = None) -> None:
    """Time, throughput, final loss and where the checkpoints are (main process only under torchrun)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    console = console or Console()
    table = Table(title="training summary", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    minutes, seconds = divmod(result.runtime_s, 60)
    table.add_row("time", f"{int(minutes)}m {seconds:04.1f}s (process CPU {result.cpu_s:.0f}s)")
    table.add_row("steps", str(result.steps))
    table.add_row("tokens/s", f"{result.tokens_per_second:,.0f} ({result.tokens_seen:,} tokens)")
    table.add_row(
        "final loss", "n/a" if result.final_loss is None else f"{result.final_loss:.4f} (last epoch mean)"
    )
    table.add_row("checkpoints", ", ".join(result.checkpoints) or "none")
    table.add_row("output", str(result.out_dir))
    console.print(table)
