"""Trainer callbacks: rich progress, the manifest's checkpoint list, and stopping on a non-finite loss."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import TrainerCallback

from sfteval.trainer.manifest import CheckpointEntry, TrainManifest, with_checkpoint, write_manifest
from sfteval.trainer.packing import TokenCounts


class RichProgressCallback(TrainerCallback):
    """One progress bar over optimizer steps with the latest loss, on the main process only."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.task: Any = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.progress = Progress(
            TextColumn("[bold]training[/bold] epoch {task.fields[epoch]:.2f}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=state.max_steps, epoch=0.0, loss="-")

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step, epoch=state.epoch or 0.0)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.progress is not None and logs and "loss" in logs:
            self.progress.update(self.task, loss=f"{logs['loss']:.4f}")

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class NonFiniteLossCallback(TrainerCallback):
    """Stops training at the first NaN/inf loss and blocks saving that step, so earlier checkpoints stay the last."""

    def __init__(self) -> None:
        self.bad_step: int | None = None
        self.bad_epoch: float | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss) and self.bad_step is None:
            self.bad_step, self.bad_epoch = state.global_step, state.epoch
        return self._halt(control)

    def on_epoch_end(self, args, state, control, **kwargs):
        return self._halt(control)

    def _halt(self, control):
        if self.bad_step is not None:
            control.should_training_stop = True
            control.should_save = False
        return control


class ManifestCallback(TrainerCallback):
    """After each checkpoint is written, record it (epoch, step, mean loss since the last one) in the manifest."""

    def __init__(self, out_dir: Path, manifest: TrainManifest) -> None:
        self.out_dir = out_dir
        self.manifest = manifest

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            write_manifest(self.out_dir, self.manifest)

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        previous = self.manifest.checkpoints[-1].step if self.manifest.checkpoints else 0
        losses = [
            entry["loss"]
            for entry in state.log_history
            if "loss" in entry and previous < entry.get("step", 0) <= state.global_step
        ]
        entry = CheckpointEntry(
            path=f"checkpoint-{state.global_step}",
            epoch=round(float(state.epoch or 0.0), 4),
            step=state.global_step,
            loss=sum(losses) / len(losses) if losses else None,
        )
        self.manifest = with_checkpoint(self.manifest, entry)
        write_manifest(self.out_dir, self.manifest)


class TokenCountCallback(TrainerCallback):
    """`state.num_input_tokens_seen` for packed batches: the input tokens of each trained batch, summed over ranks.

    Counted when the optimizer step ends, from the batches the collator built (`TokenCounts`): the batch accelerate
    builds ahead of a step that never runs (a stop at `max_steps`) is left out, as the Trainer's own count leaves it.
    """

    def __init__(self, counts: TokenCounts) -> None:
        self.counts = counts

    def on_step_end(self, args, state, control, **kwargs):
        tokens = self.counts.take(args.gradient_accumulation_steps)
        state.num_input_tokens_seen += summed_over_ranks(tokens, args.device)


def summed_over_ranks(value: int, device: Any) -> int:
    """`value` summed over the processes of a distributed run (itself in a single process)."""
    import torch
    import torch.distributed as distributed

    if not (distributed.is_available() and distributed.is_initialized()):
        return value
    total = torch.tensor(value, dtype=torch.long, device=device)
    distributed.all_reduce(total)
    return int(total.item())
