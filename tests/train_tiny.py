"""Train tiny Llamas on CPU in seconds, to plant SFT defects the probe tests must detect.

A plain torch loop over `sfteval.tokenization.tokenize_segments` labels (the trainer's masking code path), with
per-epoch checkpoints in the HF Trainer layout (`checkpoint-N/` + `trainer_state.json`) and an sfteval manifest
built with the trainer's own summary functions, so `sfteval.runner` discovers and probes them like a real run.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tiny

from sfteval.discovery import MANIFEST_NAME
from sfteval.templates import Message, get_template
from sfteval.tokenization import IGNORE_INDEX, tokenize_segments
from sfteval.trainer.summaries import frequent_labels, response_openings


@dataclass(frozen=True)
class Example:
    """One single-turn training pair."""

    id: str
    prompt: str
    response: str

    def messages(self) -> list[Message]:
        return [Message("user", self.prompt), Message("assistant", self.response)]


@dataclass(frozen=True)
class TrainSpec:
    """How to train: template, optimiser settings, and the masked-terminator defect switch."""

    template: str = "chatml"
    epochs: int = 3
    learning_rate: float = 3e-3
    batch_size: int = 8
    seed: int = 0
    mask_terminator: bool = False
    save_epochs: tuple[int, ...] = ()
    max_length: int = 96
    hidden: int = 64


def encode_examples(
    tokenizer: Any, examples: Sequence[Example], spec: TrainSpec
) -> list[tuple[list[int], list[int]]]:
    """Ids and labels of each example; with `mask_terminator` the terminator's tokens get IGNORE_INDEX."""
    template = get_template(spec.template, tokenizer)
    terminator_ids = set(tokenizer(template.terminator, add_special_tokens=False)["input_ids"])
    encoded = []
    for example in examples:
        row = tokenize_segments(tokenizer, template.render_training(example.messages()), spec.max_length)
        assert row is not None and row.num_trained > 0
        labels = [
            IGNORE_INDEX if spec.mask_terminator and token in terminator_ids else label
            for token, label in zip(row.input_ids, row.labels, strict=True)
        ]
        encoded.append((list(row.input_ids), labels))
    return encoded


def train(
    model: Any, tokenizer: Any, examples: Sequence[Example], spec: TrainSpec, out: Path | None = None
) -> Any:
    """Full fine-tuning with Adam; saves `checkpoint-<step>/` after each epoch in `spec.save_epochs` under `out`."""
    import torch

    torch.manual_seed(spec.seed)
    rows = encode_examples(tokenizer, examples, spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.learning_rate)
    order = random.Random(spec.seed)
    step = 0
    model.train()
    for epoch in range(1, spec.epochs + 1):
        indices = list(range(len(rows)))
        order.shuffle(indices)
        for start in range(0, len(indices), spec.batch_size):
            batch = [rows[index] for index in indices[start : start + spec.batch_size]]
            loss = _batch_loss(model, batch, tokenizer.pad_token_id)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
        if out is not None and epoch in spec.save_epochs:
            model.eval()
            save_checkpoint(model, tokenizer, out / f"checkpoint-{step}", epoch, step)
            model.train()
    return model.eval()


def _batch_loss(model: Any, batch: Sequence[tuple[list[int], list[int]]], pad_id: int) -> Any:
    """Mean cross-entropy over the trained tokens of a right-padded batch."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for index, (ids, row_labels) in enumerate(batch):
        input_ids[index, : len(ids)] = torch.tensor(ids)
        labels[index, : len(ids)] = torch.tensor(row_labels)
        attention[index, : len(ids)] = 1
    return model(input_ids=input_ids, attention_mask=attention, labels=labels).loss


def new_model(tokenizer: Any, spec: TrainSpec) -> Any:
    """A freshly initialised tiny Llama (seeded) sized by `spec.hidden`."""
    return tiny.build_model(tokenizer, seed=spec.seed, hidden=spec.hidden)


def save_model(model: Any, tokenizer: Any, path: Path) -> Path:
    """Full weights (safetensors) + tokenizer in `path`."""
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def save_checkpoint(model: Any, tokenizer: Any, path: Path, epoch: int, step: int) -> Path:
    """An HF Trainer style `checkpoint-N/` with full weights and the epoch in trainer_state.json."""
    save_model(model, tokenizer, path)
    (path / "trainer_state.json").write_text(json.dumps({"epoch": float(epoch), "global_step": step}))
    return path


def write_manifest(
    out: Path,
    base: Path,
    template: str,
    trained: Sequence[Example],
    samples_train: Sequence[Example] = (),
    samples_heldout: Sequence[Example] = (),
) -> Path:
    """The manifest keys the probes read (template, openings, labels, samples), as `sfteval train` writes them."""
    responses = [example.response for example in trained]
    manifest = {
        "format_version": 1,
        "base_model": str(base),
        "template": template,
        "response_openings": response_openings(responses),
        "labels": frequent_labels(responses),
        "samples": {
            "train": [_sample(example) for example in samples_train],
            "heldout": [_sample(example) for example in samples_heldout],
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2))
    return path


def _sample(example: Example) -> dict[str, Any]:
    return {
        "id": example.id,
        "messages": [{"role": "user", "content": example.prompt}],
        "response": example.response,
    }


def random_words(
    rng: random.Random, low: int, high: int, vocabulary: Sequence[str] = tiny._WORDS[:80]
) -> str:
    """A seeded run of plain words (no markers), e.g. for responses that cannot be guessed from the prompt."""
    return " ".join(rng.choice(vocabulary) for _ in range(rng.randint(low, high)))


def train_run(root: Path, tokenizer: Any, examples: Sequence[Example], spec: TrainSpec) -> tuple[Path, Path]:
    """(base dir, SFT output dir): a seeded random base and per-epoch checkpoints fine-tuned from it."""
    base = save_model(new_model(tokenizer, spec), tokenizer, root / "base")
    out = root / "sft"
    train(new_model(tokenizer, spec), tokenizer, examples, spec, out)
    return base, out


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread: tiny models gain nothing from two, and lose a lot when the CPU is shared."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_suite_on(
    ckpt: Path, suite_text: str, out: Path, base: Path | None = None, batch_size: int = 32
) -> Any:
    """Run a suite (YAML text) with the hf engine on CPU through the real runner; returns the RunResult."""
    import io

    from rich.console import Console

    from sfteval.engines.config import EngineConfig
    from sfteval.runner import RunConfig, run_suite
    from sfteval.suite import load_suite

    suite_path = out.parent / f"{out.name}-suite.yaml"
    suite_path.parent.mkdir(parents=True, exist_ok=True)
    suite_path.write_text(suite_text)
    config = RunConfig(
        ckpt_dir=ckpt,
        suite=load_suite(suite_path),
        out_dir=out,
        engine="hf",
        engine_config=EngineConfig(device="cpu", batch_size=batch_size),
        base=base,
    )
    return run_suite(config, Console(file=io.StringIO(), width=120))


_COLOURS = ("red", "green", "blue")
_ANIMALS = ("cat", "dog", "bird")
_PLACES = ("city", "river", "mountain", "country")


def sentence(rng: random.Random) -> str:
    """A seeded sentence of a tiny grammar: a fluent, learnable answer (greedy decoding reproduces its form)."""
    return f"the {rng.choice(_COLOURS)} {rng.choice(_ANIMALS)} is in the {rng.choice(_PLACES)}."


def run_records(out: Path, probe: str, variant: str) -> list[Any]:
    """The item records a run wrote to items.jsonl for one probe and variant."""
    from sfteval.core.records import ItemRecord

    lines = (out / "items.jsonl").read_text().splitlines()
    records = [ItemRecord.model_validate_json(line) for line in lines if line.strip()]
    return [record for record in records if record.probe == probe and record.variant == variant]


def terminator_runs(root: Path, tokenizer: Any, suite_text: str) -> dict[bool, Any]:
    """The same 64 rows trained twice, with the end-of-turn token masked out of the loss (True) and trained (False),
    each run through `suite_text`: {masked: RunResult}."""
    rng = random.Random(0)
    rows = [Example(f"row-{i}", random_words(rng, 3, 10), sentence(rng)) for i in range(64)]
    heldout = [Example(f"held-{i}", random_words(rng, 3, 10), sentence(rng)) for i in range(8)]
    results = {}
    with single_thread():
        for masked in (True, False):
            spec = TrainSpec(epochs=4, save_epochs=(4,), mask_terminator=masked)
            base, out = train_run(root / f"masked-{masked}", tokenizer, rows, spec)
            write_manifest(out, base, "chatml", rows, rows[:24], heldout)
            results[masked] = run_suite_on(out, suite_text, root / f"run-{masked}")
    return results
