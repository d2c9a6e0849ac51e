"""The `sfteval train` and `sfteval lint` commands (typer). Light: torch loads only when a command runs.

Every option defaults to None, meaning "not given", so a YAML value is overridden only by a flag the user typed
(an explicit `--no-lora` beats `lora: true`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sfteval.core.errors import UserError

Option = typer.Option
ConfigOption = Annotated[Path | None, Option("--config", help="YAML file of settings; flags override it.")]
DataOption = Annotated[
    list[Path] | None, Option("--data", help="Training file (JSONL/JSON/Parquet); repeatable.")
]
ModelOption = Annotated[
    Path | None, Option("--model", help="Base model dir (default: the embedded default model).")
]
TemplateOption = Annotated[
    str | None,
    Option("--template", help="Template name (default: native if the tokenizer has one, else alpaca)."),
]
TrainOnOption = Annotated[
    str | None, Option("--train-on", help="Train all assistant turns or the last (default: all).")
]
MaxSeqLenOption = Annotated[
    int | None, Option("--max-seq-len", help="Longest row in tokens (default: 2048).")
]
TruncationOption = Annotated[
    str | None,
    Option("--truncation", help="Overlong rows: drop them, or keep_start (cut the end) (default: drop)."),
]
MaskTerminatorOption = Annotated[
    bool | None,
    Option(
        "--mask-terminator/--train-terminator",
        help="Defect switch for validation: leave the end-of-turn token untrained (the model never learns to stop).",
    ),
]


def _targets(value: str | None) -> list[str] | None:
    return None if value is None else [name.strip() for name in value.split(",") if name.strip()]


def train_command(
    config: ConfigOption = None,
    data: DataOption = None,
    out: Annotated[Path | None, Option("--out", help="Output dir for checkpoints and the manifest.")] = None,
    model: ModelOption = None,
    template: TemplateOption = None,
    train_on: TrainOnOption = None,
    epochs: Annotated[int | None, Option("--epochs", help="Passes over the data (default: 3).")] = None,
    lr: Annotated[float | None, Option("--lr", help="Learning rate (default: 2e-5 full, 2e-4 LoRA).")] = None,
    batch_size: Annotated[
        int | None, Option("--batch-size", help="Rows per device per micro-batch (default: 8).")
    ] = None,
    grad_accum: Annotated[
        int | None, Option("--grad-accum", help="Micro-batches per optimizer step (default: 1).")
    ] = None,
    max_seq_len: MaxSeqLenOption = None,
    truncation: TruncationOption = None,
    lora: Annotated[
        bool | None, Option("--lora/--no-lora", help="Train LoRA adapters instead of all weights.")
    ] = None,
    lora_r: Annotated[int | None, Option("--lora-r", help="LoRA rank (default: 16).")] = None,
    lora_alpha: Annotated[int | None, Option("--lora-alpha", help="LoRA alpha (default: 32).")] = None,
    lora_dropout: Annotated[
        float | None, Option("--lora-dropout", help="LoRA dropout (default: 0.05).")
    ] = None,
    lora_targets: Annotated[
        str | None,
        Option(
            "--lora-targets", help="Comma-separated module names (default: all attention/MLP projections)."
        ),
    ] = None,
    holdout: Annotated[
        float | None,
        Option(
            "--holdout", help="Fraction of rows held out of training (default: 0.1 from 40 rows, max 200)."
        ),
    ] = None,
    seed: Annotated[
        int | None, Option("--seed", help="Seed for order, split, samples and init (default: 0).")
    ] = None,
    warmup_ratio: Annotated[
        float | None, Option("--warmup-ratio", help="Linear warmup share of steps (default: 0).")
    ] = None,
    weight_decay: Annotated[
        float | None, Option("--weight-decay", help="AdamW weight decay (default: 0).")
    ] = None,
    scheduler: Annotated[
        str | None, Option("--scheduler", help="linear, cosine or constant (default: linear).")
    ] = None,
    precision: Annotated[
        str | None,
        Option(
            "--precision", help="auto, fp32 or bf16 (default: auto = bf16 where CUDA or the CPU has bf16)."
        ),
    ] = None,
    max_steps: Annotated[
        int | None, Option("--max-steps", help="Stop after this many optimizer steps.")
    ] = None,
    mask_terminator: MaskTerminatorOption = None,
    probe: Annotated[
        str | None,
        Option(
            "--probe", help="Suite to run on base + each checkpoint while training (quick, standard, FILE)."
        ),
    ] = None,
    probe_out: Annotated[
        Path | None, Option("--probe-out", help="Run directory of --probe (default: as `sfteval run`).")
    ] = None,
    gate: Annotated[
        str | None,
        Option("--gate", help="With --probe: gate policy; a checkpoint breaking a fail-rule stops training."),
    ] = None,
    gate_action: Annotated[
        str, Option("--gate-action", help="What a failing --gate does: stop training, or warn.")
    ] = "stop",
) -> None:
    """Fine-tune a model with response-only loss; one checkpoint per epoch plus sfteval_manifest.json."""
    flags: dict[str, Any] = dict(locals())
    for key in ("config", "probe", "probe_out", "gate", "gate_action"):
        flags.pop(key)
    flags["lora_targets"] = _targets(lora_targets)
    from sfteval.trainer.config import load_train_config

    settings = load_train_config(config, flags)
    if probe is not None:
        from sfteval.integrations.train_probe import ProbeOptions, train_with_probe

        return train_with_probe(settings, ProbeOptions(probe, probe_out, gate, gate_action))
    if gate is not None:
        raise UserError("--gate needs --probe SUITE (the gate judges the probed checkpoints)")
    from sfteval.trainer.resources import use_free_cores
    from sfteval.trainer.run_summary import print_train_summary
    from sfteval.trainer.train import run_training

    use_free_cores()
    print_train_summary(run_training(settings))


def lint_command(
    config: ConfigOption = None,
    data: DataOption = None,
    model: ModelOption = None,
    template: TemplateOption = None,
    train_on: TrainOnOption = None,
    max_seq_len: MaxSeqLenOption = None,
    truncation: TruncationOption = None,
    mask_terminator: MaskTerminatorOption = None,
    show: Annotated[int, Option("--show", help="Print N rows with their trained tokens highlighted.")] = 0,
    json_path: Annotated[
        Path | None, Option("--json", help="Also write the findings as JSON to this file.")
    ] = None,
) -> None:
    """Audit data + tokenizer + template as training would see them; exit 1 on any error-level finding."""
    flags: dict[str, Any] = dict(locals())
    for key in ("config", "show", "json_path"):
        flags.pop(key)
    from sfteval.trainer.lint.config import load_lint_config

    settings = load_lint_config(config, flags)
    from sfteval.trainer.lint.render import print_lint_report, write_lint_json
    from sfteval.trainer.lint.run import run_lint

    report = run_lint(settings, show=show)
    print_lint_report(report, show=show)
    if json_path is not None:
        write_lint_json(report, json_path)
    if report.has_errors:
        raise typer.Exit(1)
