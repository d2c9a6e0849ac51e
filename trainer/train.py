"""`sfteval train`: masked-loss SFT on transformers' Trainer, composed with our collator and callbacks."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

import sfteval
from sfteval.core.errors import UserError
from sfteval.templates import Template
from sfteval.tokenization import TokenizedExample
from sfteval.trainer.config import TrainConfig
from sfteval.trainer.data import Conversation, DataFile, load_data_files
from sfteval.trainer.encode import EncodedRow, EncodeSettings, MaskStats, encode_rows
from sfteval.trainer.manifest import DataEntry, Holdout, Samples, TrainManifest
from sfteval.trainer.preflight import check_answers, check_output_directory
from sfteval.trainer.resources import (
    Precision,
    load_tokenizer,
    resolve_model_path,
    resolve_precision,
    resolve_template,
)
from sfteval.trainer.summaries import (
    frequent_labels,
    response_openings,
    sample_pairs,
    split_holdout,
    trained_responses,
)
from sfteval.weights import load_causal_lm


@dataclass(frozen=True)
class PreparedData:
    """Everything decided before the model is loaded: tokenizer, template, encoded rows, held-out rows."""

    model_path: Path
    tokenizer: Any
    template: Template
    files: list[DataFile]
    rows: list[EncodedRow]
    heldout: list[Conversation]
    stats: MaskStats

    @property
    def examples(self) -> list[TokenizedExample]:
        return [row.example for row in self.rows if row.used and row.example is not None]


@dataclass(frozen=True)
class TrainResult:
    """What the end-of-run summary reports."""

    out_dir: Path
    checkpoints: list[str]
    steps: int
    runtime_s: float
    cpu_s: float
    tokens_seen: int
    final_loss: float | None
    losses: tuple[float, ...] = ()

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_seen / self.runtime_s if self.runtime_s > 0 else 0.0


def encode_settings(config: TrainConfig) -> EncodeSettings:
    return EncodeSettings(config.train_on, config.max_seq_len, config.truncation, config.mask_terminator)


def prepare_data(config: TrainConfig) -> PreparedData:
    """Load, split and encode the data; refuse a run that would train on nothing."""
    files = load_data_files(config.data)
    model_path = resolve_model_path(config.model)
    tokenizer = load_tokenizer(model_path)
    template = resolve_template(config.template, tokenizer)
    conversations = [conversation for data_file in files for conversation in data_file.conversations]
    train, heldout = split_holdout(conversations, config.holdout_rows(len(conversations)), config.seed)
    rows, stats = encode_rows(tokenizer, template, train, encode_settings(config))
    if stats.rows_used == 0:
        raise UserError(
            f"{files[0].path}: no row has trained tokens after templating and truncation "
            f"({stats.dropped_truncated} dropped as too long, {stats.dropped_no_trained_tokens} with no response tokens)",
            hint="check the data with `sfteval lint`, or raise --max-seq-len",
        )
    check_answers(rows, config.train_on, files[0].path)
    return PreparedData(model_path, tokenizer, template, files, rows, heldout, stats)


def hyperparameters(config: TrainConfig, precision: Precision, args: Any) -> dict[str, Any]:
    """The settings that shaped the run, as the Trainer resolved them."""
    world_size = args.world_size
    return {
        "epochs": config.epochs,
        "learning_rate": config.learning_rate,
        "batch_size": config.batch_size,
        "grad_accum": config.grad_accum,
        "world_size": world_size,
        "global_batch": config.batch_size * config.grad_accum * world_size,
        "batch_order": "length-grouped per global batch, reshuffled each epoch",
        "max_seq_len": config.max_seq_len,
        "truncation": config.truncation,
        "scheduler": config.scheduler,
        "warmup_ratio": config.warmup_ratio,
        "weight_decay": config.weight_decay,
        "optimizer": str(getattr(args.optim, "value", args.optim)),
        "max_grad_norm": args.max_grad_norm,
        "precision": precision,
        "seed": config.seed,
        "max_steps": config.max_steps,
        "mask_terminator": config.mask_terminator,
        "loss": "mean over trained tokens of the whole accumulation window (logits at trained positions only)",
    }


def build_manifest(config: TrainConfig, data: PreparedData, precision: Precision, args: Any) -> TrainManifest:
    """The manifest before any checkpoint exists."""
    used = [row.conversation for row in data.rows if row.used]
    responses = trained_responses(used, config.train_on)
    lora = (
        {
            "r": config.lora_r,
            "alpha": config.lora_alpha,
            "dropout": config.lora_dropout,
            "targets": config.lora_modules,
        }
        if config.lora
        else None
    )
    return TrainManifest(
        sfteval_version=sfteval.__version__,
        base_model=str(data.model_path),
        template=data.template.name,
        train_on=config.train_on,
        data=[DataEntry(path=str(f.path), sha256=f.sha256, rows=len(f.conversations)) for f in data.files],
        hyperparameters=hyperparameters(config, precision, args),
        lora=lora,
        checkpoints=[],
        mask_stats=data.stats.as_manifest(),
        response_openings=response_openings(responses),  # type: ignore[arg-type]
        labels=frequent_labels(responses),
        samples=Samples(
            train=sample_pairs(used, config.sample_size, config.seed),  # type: ignore[arg-type]
            heldout=sample_pairs(data.heldout, config.sample_size, config.seed),  # type: ignore[arg-type]
        ),
        holdout=Holdout(fraction=config.holdout, rows=len(data.heldout), seed=config.seed),
    )


def load_model(config: TrainConfig, model_path: Path) -> Any:
    """The base model in fp32 (autocast handles bf16), wrapped with LoRA adapters when asked."""
    import torch

    model = load_causal_lm(model_path, dtype=torch.float32)
    if not config.lora:
        return model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        task_type="CAUSAL_LM",
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_modules,
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as error:
        raise UserError(f"--lora-targets {','.join(config.lora_modules)}: {error}") from None


def training_arguments(config: TrainConfig, precision: Precision, count_tokens: bool = True) -> Any:
    """TrainingArguments: one checkpoint per epoch (model only, safetensors), log every step.

    `count_tokens=False` leaves the count of input tokens to `TokenCountCallback` (packed batches).
    """
    import torch
    from transformers import TrainingArguments

    on_cpu = not torch.cuda.is_available()
    return TrainingArguments(
        output_dir=str(config.out),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,
        lr_scheduler_type=config.scheduler,
        save_strategy="epoch",
        save_only_model=True,
        logging_strategy="steps",
        logging_steps=1,
        logging_nan_inf_filter=False,
        train_sampling_strategy="sequential",  # the dataset orders rows (length-grouped, per epoch)
        include_num_input_tokens_seen="non_padding" if count_tokens else "no",
        remove_unused_columns=False,
        bf16=precision == "bf16",
        use_cpu=on_cpu,
        ddp_backend="gloo" if on_cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
    )


def batch_collator(model: Any, tokenizer: Any) -> tuple[Any, list[Any]]:
    """Shared-prefix packing where the model's attention takes a 4D mask (see packing.py), else right padding.

    Returns the collator and the callbacks it needs (packing counts input tokens itself).
    """
    from sfteval.attention_masks import pair_weight
    from sfteval.trainer.callbacks import TokenCountCallback
    from sfteval.trainer.collate import PaddingCollator, pad_token_id
    from sfteval.trainer.loss import supports_logits_to_keep
    from sfteval.trainer.packing import PackingCollator, has_dropout, packing_mask_kind

    mask_kind = packing_mask_kind(model)
    if mask_kind is None:
        return PaddingCollator(pad_token_id(tokenizer), supports_logits_to_keep(model)), []
    collator = PackingCollator(
        pad_token_id(tokenizer), mask_kind, pair_weight(model), share_prefix=not has_dropout(model)
    )
    return collator, [TokenCountCallback(collator.counts)]


def run_training(
    config: TrainConfig, console: Console | None = None, setup: Callable[[Any], None] | None = None
) -> TrainResult:
    """Train, writing per-epoch checkpoints and the manifest; UserError (exit 2) on a non-finite loss.

    `setup` gets the Trainer before training starts (`sfteval train --probe` adds sfteval's callback there).
    """
    check_output_directory(Path(config.out))
    data = prepare_data(config)  # first: bad input fails before the heavy imports
    from transformers import PrinterCallback, ProgressCallback, Trainer
    from transformers.utils import logging as transformers_logging

    from sfteval.trainer.callbacks import ManifestCallback, NonFiniteLossCallback, RichProgressCallback
    from sfteval.trainer.collate import ExampleDataset
    from sfteval.trainer.loss import token_mean_loss

    transformers_logging.disable_progress_bar()
    console = console or Console()
    precision = resolve_precision(config.precision)
    model = load_model(config, data.model_path)
    collator, collator_callbacks = batch_collator(model, data.tokenizer)
    args = training_arguments(config, precision, count_tokens=not collator_callbacks)
    manifest = build_manifest(config, data, precision, args)
    guard = NonFiniteLossCallback()
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=ExampleDataset(data.examples, manifest.hyperparameters["global_batch"], config.seed),
        data_collator=collator,
        processing_class=data.tokenizer,
        compute_loss_func=token_mean_loss,
        callbacks=[ManifestCallback(Path(config.out), manifest), guard, RichProgressCallback(console)]
        + collator_callbacks,
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if setup is not None:
        setup(trainer)
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer.train()
    runtime, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if guard.bad_step is not None:
        raise UserError(
            f"training loss became non-finite at step {guard.bad_step} (epoch {guard.bad_epoch or 0:.2f}); "
            f"stopped, checkpoints already written in {config.out} are kept",
            hint="lower --lr or check the data with `sfteval lint`",
        )
    return _result(config, trainer, runtime, cpu)


def _result(config: TrainConfig, trainer: Any, runtime: float, cpu: float) -> TrainResult:
    """The run's summary figures from the Trainer's state."""
    state = trainer.state
    losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
    last_epoch = [
        entry["loss"]
        for entry in state.log_history
        if "loss" in entry and entry.get("epoch", 0) > math.ceil(state.epoch or 0) - 1
    ]
    final = last_epoch or losses[-1:]
    checkpoints = sorted(
        (path.name for path in Path(config.out).glob("checkpoint-*")),
        key=lambda name: int(name.split("-")[1]),
    )
    return TrainResult(
        out_dir=Path(config.out),
        checkpoints=checkpoints,
        steps=state.global_step,
        runtime_s=runtime,
        cpu_s=cpu,
        tokens_seen=int(state.num_input_tokens_seen or 0),
        final_loss=sum(final) / len(final) if final else None,
        losses=tuple(losses),
    )
