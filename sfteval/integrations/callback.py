"""SftevalCallback: sfteval's diagnostics while a transformers `Trainer` (or TRL's `SFTTrainer`) trains.

Before the first step it probes the base model; on each save (or each epoch end) it probes the checkpoint just
written and rewrites one run directory (report.json, items.jsonl, report.html: base + every checkpoint so far), logs
the new variant's headline metrics under `sfteval/` in the trainer's log history (and, given the trainer, to its
`report_to` integrations), prints the variant's findings, and with a gate policy stops training when the checkpoint
breaks a fail-rule. Only the main process probes; under DDP the others wait for its verdict. Training state (random
number generators, each module's training flag, gradient checkpointing) is as it was after every probe.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text
from transformers import TrainerCallback

from sfteval.core.errors import UserError
from sfteval.engines.base import EngineFactory
from sfteval.engines.config import EngineConfig
from sfteval.integrations.live import LiveModelFactory, is_peft_model, preserved_random_state
from sfteval.integrations.probing import Every, GateAction, ProbeOutcome, Prober, ProbeSettings
from sfteval.report.terminal import finding_line

CHECKPOINT_PREFIX = "checkpoint"  # transformers' PREFIX_CHECKPOINT_DIR


class SftevalCallback(TrainerCallback):
    """Probe base and every saved checkpoint with a suite while training; stop on a failing gate.

    Pass `trainer=` (as TRL's LogCompletionsCallback takes it) to send the `sfteval/` metrics to the trainer's
    `report_to` integrations too; without it they go to `trainer.state.log_history` only.
    """

    def __init__(
        self,
        suite: str | Path = "quick",
        out: str | Path = "sfteval-run",
        base: str | Path | None = None,
        every: Every = "save",
        gate: str | Path | None = None,
        gate_action: GateAction = "stop",
        engine: str = "hf",
        *,
        engine_config: EngineConfig | None = None,
        trainer: Any = None,
        console: Console | None = None,
    ) -> None:
        self.settings = ProbeSettings(
            suite=suite,
            out=Path(out),
            base=None if base is None else Path(base),
            every=every,
            gate=gate,
            gate_action=gate_action,
            engine=engine,
            engine_config=engine_config or EngineConfig(),
        )
        self.prober = Prober(self.settings)
        self.trainer = trainer
        self.console = console or Console()
        self.outcomes: list[ProbeOutcome] = []
        self._base: Path | None = None
        self._epoch_ended = False

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._base = resolve_base(self.settings.base, Path(args.output_dir), model)
        if state.is_world_process_zero:
            Path(args.output_dir).mkdir(parents=True, exist_ok=True)
            self._note_setup(args)
        self._probe(args, state, control, model, checkpoint=None)
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.settings.every == "epoch":
            self._epoch_ended = True
            control.should_save = True  # a checkpoint to probe, whatever the save strategy
        return control

    def on_save(self, args, state, control, model=None, **kwargs):
        if self.settings.every == "epoch" and not self._epoch_ended:
            return control
        self._epoch_ended = False
        checkpoint = Path(args.output_dir) / f"{CHECKPOINT_PREFIX}-{state.global_step}"
        self._probe(args, state, control, model, checkpoint)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.outcomes:
            out = self.settings.out
            seconds = sum(outcome.seconds for outcome in self.outcomes)
            self.console.print(
                f"sfteval: {len(self.outcomes)} probes took {seconds:.1f} s; run directory {out} "
                f"(report.json, report.html, items.jsonl); `sfteval report {out}`"
            )
        return control

    def _probe(self, args: Any, state: Any, control: Any, model: Any, checkpoint: Path | None) -> None:
        """Probe on the main process; every process gets its verdict (a failure there stops them all)."""
        error: BaseException | None = None
        stop = False
        if state.is_world_process_zero:
            try:
                stop = self._probe_on_main(args, state, control, model, checkpoint)
            except BaseException as caught:  # the other processes must hear of it before this one raises
                error = caught
        stop, failed = shared_verdict(stop, error is not None)
        if error is not None:
            raise error
        if failed:
            raise RuntimeError("sfteval: probing failed on the main process (its error is in its log)")
        if stop:
            control.should_training_stop = True

    def _probe_on_main(
        self, args: Any, state: Any, control: Any, model: Any, checkpoint: Path | None
    ) -> bool:
        """Run the suite, log and print what the new variant shows; True when its gate failure stops training."""
        assert self._base is not None
        factory = self._factory(args, model, checkpoint, pristine=state.global_step == 0)
        with preserved_random_state():
            outcome = self.prober.probe(Path(args.output_dir), self._base, checkpoint, factory)
        self.outcomes.append(outcome)
        self._log(args, state, control, outcome.metrics)
        stop = outcome.gate_failure is not None and self.settings.gate_action == "stop"
        self.console.print(outcome_panel(outcome, state.global_step, stop, self.settings.out))
        return stop

    def _factory(
        self, args: Any, model: Any, checkpoint: Path | None, pristine: bool
    ) -> EngineFactory | None:
        """The live-model factory for the in-process hf engine; None (engines from disk) when sharded or vllm."""
        if not self.prober.in_process or model is None or sharded_training(args):
            return None
        assert self._base is not None
        factory = LiveModelFactory(self.settings.engine_config, model, self._base, checkpoint, pristine)
        if not factory.runs_in_place and checkpoint is None:
            self.console.print(
                Text(
                    f"sfteval: the training model is not {factory.dtype} on {factory.device} as the engine "
                    "runs, so checkpoints are probed from their saved files (a second copy of the weights)",
                    style="yellow",
                )
            )
        return factory

    def _log(self, args: Any, state: Any, control: Any, metrics: dict[str, float]) -> None:
        """Record the metrics as `Trainer.log` does (log history, then every callback's on_log: report_to).

        Not through `trainer.log` itself: a subclass's log() may fold its own pending training metrics into the
        entry (TRL's does), which would move them out of the next training-loss entry.
        """
        logs: dict[str, float] = dict(metrics)
        if state.epoch is not None:
            logs["epoch"] = state.epoch
        state.log_history.append({**logs, "step": state.global_step})
        if self.trainer is not None:
            self.trainer.callback_handler.on_log(args, state, control, logs)

    def _note_setup(self, args: Any) -> None:
        """Say up front when settings mean fewer probes or logs than the user may expect."""
        if self.settings.every == "save" and str(args.save_strategy) in ("no", "SaveStrategy.NO"):
            self.console.print(
                Text(
                    "sfteval: save_strategy is 'no', so only the base is probed (use every='epoch')", "yellow"
                )
            )
        integrations = [name for name in (args.report_to or []) if name != "none"]
        if integrations and self.trainer is None:
            self.console.print(
                Text(
                    f"sfteval: pass trainer= to SftevalCallback to send sfteval/ metrics to {', '.join(integrations)}",
                    "yellow",
                )
            )


def resolve_base(base: Path | None, output_dir: Path, model: Any) -> Path:
    """The base model directory: `base`, else the sfteval manifest's, else the one the model was loaded from."""
    from sfteval.runner import read_manifest

    if base is not None:
        if not base.is_dir():
            raise UserError(f"base={base}: directory not found")
        return base.resolve()
    manifest = read_manifest(output_dir) or {}
    candidates = [manifest.get("base_model"), model_source(model)]
    for candidate in candidates:
        if isinstance(candidate, str) and candidate and Path(candidate).is_dir():
            return Path(candidate).resolve()
    raise UserError(
        f"cannot find the base model's directory (the model was loaded from {candidates[-1]!r})",
        hint="pass base=PATH to SftevalCallback: a local directory with safetensors weights",
    )


def model_source(model: Any) -> str | None:
    """Where the model's weights were loaded from: the adapter's base for peft models, else `name_or_path`."""
    if model is None:
        return None
    if is_peft_model(model):
        return model.peft_config[model.active_adapter].base_model_name_or_path
    return getattr(model, "name_or_path", None)


def sharded_training(args: Any) -> bool:
    """FSDP or DeepSpeed: no process holds the whole model, so checkpoints are probed from their files."""
    accelerate = ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED")
    from_environment = any(os.environ.get(name, "").lower() == "true" for name in accelerate)
    return bool(getattr(args, "fsdp", None)) or bool(getattr(args, "deepspeed", None)) or from_environment


def shared_verdict(stop: bool, failed: bool) -> tuple[bool, bool]:
    """The main process's (stop, failed) on every process; the others wait here while it probes."""
    import torch.distributed as distributed

    if not (distributed.is_available() and distributed.is_initialized()):
        return stop, failed
    verdict: list[Any] = [(stop, failed)]
    distributed.broadcast_object_list(verdict, src=0)
    return verdict[0]


def outcome_panel(outcome: ProbeOutcome, step: int, stopping: bool, out: Path) -> Panel:
    """One short block: the variant's findings and its gate failure, if any."""
    lines = [finding_line(finding) for finding in outcome.findings]
    if not lines:
        lines.append(Text(f"no findings about {outcome.variant}", style="dim"))
    if outcome.gate_failure is not None:
        action = "training stops" if stopping else "warning only (gate_action='warn')"
        lines.append(
            Text(f"✖ gate: {outcome.variant} fails {outcome.gate_failure}; {action}", style="bold red")
        )
    where = "before training" if outcome.variant == "base" else f"step {step}"
    return Panel(
        Group(*lines),
        title=f"sfteval · {outcome.variant} ({where}) · {outcome.seconds:.1f} s",
        title_align="left",
        subtitle=f"{out}/report.html",
        subtitle_align="right",
    )
