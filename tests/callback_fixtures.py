"""Tiny training runs with and without SftevalCallback: TRL's SFTTrainer and plain transformers.Trainer on CPU.

Every run is seeded and single-threaded, so two runs of the same settings give bit-identical losses: the callback
tests compare a run with the callback against one without, and the callback's records against `sfteval run`.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy
import tiny
from rich.console import Console

from sfteval.core.records import ItemRecord

SUITE = """\
probes:
  termination:
    limit: 6
    max_new_tokens: 16
  spurious_prefix:
    limit: 6
    max_new_tokens: 8
  token_shift:
    limit: 4
    max_new_tokens: 8
"""
WORDS = ("red", "green", "blue", "cat", "dog", "bird")


@dataclass(frozen=True)
class TrainedRun:
    """A finished training run: its output dir, run dir (with the callback), log history and end state."""

    out: Path
    run: Path | None
    log_history: list[dict[str, Any]]
    printed: str
    records: list[ItemRecord]
    random_state: tuple[Any, ...]
    model_state: tuple[bool, bool]

    @property
    def losses(self) -> list[tuple[float, float]]:
        return [(entry["loss"], entry["grad_norm"]) for entry in self.log_history if "loss" in entry]

    def sfteval_entries(self) -> dict[int, dict[str, Any]]:
        """Log-history entries holding sfteval/ metrics, by step."""
        return {
            entry["step"]: entry
            for entry in self.log_history
            if any(key.startswith("sfteval/") for key in entry)
        }


def base_with_dropout(path: Path) -> Path:
    """A tiny Llama whose attention dropout draws from torch's RNG while training (probing must not shift it)."""
    tiny.save_tiny_model(path)
    config = json.loads((path / "config.json").read_text())
    config["attention_dropout"] = 0.1
    (path / "config.json").write_text(json.dumps(config))
    return path


def write_suite(root: Path) -> Path:
    path = root / "suite.yaml"
    path.write_text(SUITE)
    return path


def conversations() -> Any:
    """24 prompt/completion conversations: repeat a word twice."""
    import datasets

    rows = [
        {
            "prompt": [{"role": "user", "content": f"say {word}"}],
            "completion": [{"role": "assistant", "content": f"{word} {word}"}],
        }
        for word in WORDS * 4
    ]
    return datasets.Dataset.from_list(rows)


def train_trl(root: Path, base: Path, probe: bool, lora: bool = False, **callback: Any) -> TrainedRun:
    """TRL SFTTrainer, 2 epochs, a checkpoint per epoch (gradient checkpointing on, TRL's default)."""
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    arguments = SFTConfig(
        output_dir=str(root / "out"), num_train_epochs=2, per_device_train_batch_size=4, learning_rate=1e-3,
        save_strategy="epoch", save_only_model=True, logging_steps=1, report_to="none", use_cpu=True,
        bf16=False, disable_tqdm=True, seed=0, gradient_checkpointing=True,
    )  # fmt: skip
    lora_config = LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.1, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
    )
    trainer = SFTTrainer(
        model=str(base),
        args=arguments,
        train_dataset=conversations(),
        peft_config=lora_config if lora else None,
    )
    return _train(trainer, root, probe, callback)


def train_plain(root: Path, base: Path, probe: bool, **callback: Any) -> TrainedRun:
    """transformers.Trainer with its own data collator; no save strategy (the callback's every='epoch' saves)."""
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainingArguments,
    )

    tokenizer = AutoTokenizer.from_pretrained(base)
    texts = [f"{word} is a word: {word} {word}" for word in WORDS * 4]
    dataset = [tokenizer(text) for text in texts]
    arguments = TrainingArguments(
        output_dir=str(root / "out"), num_train_epochs=2, per_device_train_batch_size=4, learning_rate=1e-3,
        save_strategy="no", save_only_model=True, logging_steps=1, report_to="none", use_cpu=True,
        disable_tqdm=True, seed=0,
    )  # fmt: skip
    trainer = Trainer(
        model=AutoModelForCausalLM.from_pretrained(base),
        args=arguments,
        train_dataset=dataset,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        processing_class=tokenizer,
    )
    return _train(trainer, root, probe, callback)


def _train(trainer: Any, root: Path, probe: bool, callback: dict[str, Any]) -> TrainedRun:
    from sfteval.integrations import SftevalCallback

    printed = io.StringIO()
    run = root / "run" if probe else None
    if probe:
        settings = {"suite": write_suite(root), "out": run, **callback}
        trainer.add_callback(
            SftevalCallback(**settings, trainer=trainer, console=Console(file=printed, width=200))
        )
    trainer.train()
    import torch

    model = trainer.model
    return TrainedRun(
        out=root / "out",
        run=run,
        log_history=list(trainer.state.log_history),
        printed=printed.getvalue(),
        records=read_records(run) if run is not None else [],
        random_state=(random.getstate(), numpy_state(), bytes(torch.random.get_rng_state().numpy())),
        model_state=(model.training, bool(getattr(model, "is_gradient_checkpointing", False))),
    )


def numpy_state() -> tuple[Any, ...]:
    kind, keys, position, has_gauss, gauss = numpy.random.get_state()
    return kind, keys.tobytes(), position, has_gauss, gauss


def read_records(run: Path) -> list[ItemRecord]:
    lines = (run / "items.jsonl").read_text().splitlines()
    return [ItemRecord.model_validate_json(line) for line in lines if line.strip()]


def sfteval_run(ckpt: Path, base: Path, suite: Path, out: Path) -> Any:
    """`sfteval run --ckpt CKPT --base BASE --suite SUITE --out OUT` in this process (engine hf, defaults): the run,
    with the default gate policy applied to its recommendation as the command applies it."""
    from dataclasses import replace

    from sfteval.report.gate import DEFAULT_POLICY, apply_gate, load_policy
    from sfteval.runner import RunConfig, run_suite
    from sfteval.suite import load_suite

    config = RunConfig(ckpt_dir=ckpt, suite=load_suite(suite), out_dir=out, engine="hf", base=base)
    result = run_suite(config, Console(file=io.StringIO()))
    return replace(result, report=apply_gate(result.report, load_policy(DEFAULT_POLICY)))


def comparable(report: Any) -> dict[str, Any]:
    """A report without what differs between two runs of the same thing: start time, timings, cache counts."""
    return report.model_dump(
        mode="json", exclude={"run": {"created_at", "timings", "cache_hits", "cache_misses"}}
    )
