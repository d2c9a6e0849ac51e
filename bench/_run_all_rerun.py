"""Figure 4 of bench/run_all.py: rerunning a suite after one more epoch computes only the new epoch's requests.

Trains 3 LoRA epochs of the default model on a slice of the demo data, runs a tiny suite with `sfteval run` on a
copy of the output directory without the last checkpoint (base + 2 epochs), then on the full directory with the
same `--out` (so the same cache), and reads run.log's per-variant `cache hits=… misses=…` lines of both runs.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _run_all_figures import DEMO_DATA, Sizes, progress, run_script, summary

EPOCHS = 3
VARIANT_LINE = re.compile(r"^\S+ (\S+): (\d+) records; cache hits=(\d+) misses=(\d+); ([\d.]+)s")
RUN_START = re.compile(r"^\S+ run: suite ")


def tiny_suite(sizes: Sizes) -> str:
    """A suite YAML with one generating and one scoring probe, CPU-sized."""
    return (
        "name: bench-rerun\n"
        "description: run_all.py figure 4 (rerun after adding an epoch).\n"
        "seed: 0\n"
        f"generation:\n  max_new_tokens: {sizes.rerun_new_tokens}\n"
        "probes:\n"
        f"  instruction_following:\n    limit: {sizes.rerun_if_limit}\n"
        f"  forgetting:\n    limit: {sizes.rerun_forgetting_limit}\n"
    )


def train(sizes: Sizes, work: Path) -> tuple[Path, float]:
    """LoRA SFT of the default model for 3 epochs on the first rows of the demo data: (output dir, seconds)."""
    from rich.console import Console

    from sfteval.trainer.config import TrainConfig
    from sfteval.trainer.train import run_training

    data = work / "data.jsonl"
    lines = DEMO_DATA.read_text(encoding="utf-8").splitlines(keepends=True)
    data.write_text("".join(lines[: sizes.rerun_rows]), encoding="utf-8")
    config = TrainConfig(
        data=[data], out=work / "sft", epochs=EPOCHS, lr=1e-3, batch_size=sizes.rerun_batch, lora=True,
        lora_r=16, lora_alpha=32, holdout=0, seed=0,
    )  # fmt: skip
    started = time.perf_counter()
    result = run_training(config, Console(quiet=True))
    if len(result.checkpoints) != EPOCHS:
        raise RuntimeError(f"expected {EPOCHS} checkpoints, got {result.checkpoints}")
    return work / "sft", time.perf_counter() - started


def without_last_checkpoint(sft: Path, target: Path) -> Path:
    """A copy of the training output without its last checkpoint-N/ (what the directory held an epoch earlier)."""
    checkpoints = sorted(sft.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    last = checkpoints[-1].name
    shutil.copytree(sft, target, ignore=lambda folder, names: [last] if Path(folder) == sft else [])
    return target


def sfteval_run(ckpt: Path, suite: Path, out: Path, threads: int) -> float:
    """`sfteval run` on `ckpt` into `out` (cache `out/cache.sqlite`); returns the process's wall seconds."""
    command = [sys.executable, "-m", "sfteval", "run", "--ckpt", str(ckpt), "--suite", str(suite),
               "--out", str(out), "--engine", "hf", "--device", "cpu", "--dtype", "float32"]  # fmt: skip
    started = time.perf_counter()
    run_script(command, threads)
    return time.perf_counter() - started


def variant_tallies(log: str) -> list[dict[str, dict[str, float]]]:
    """Per run in run.log (in order): variant name -> records, cache hits, misses, seconds."""
    runs: list[dict[str, dict[str, float]]] = []
    for line in log.splitlines():
        if RUN_START.match(line):
            runs.append({})
        elif (match := VARIANT_LINE.match(line)) and runs:
            name, records, hits, misses, seconds = match.groups()
            runs[-1][name] = {"records": int(records), "hits": int(hits), "misses": int(misses),
                              "seconds": float(seconds)}  # fmt: skip
    return runs


def rerun(sizes: Sizes, threads: int) -> dict[str, Any]:
    """First run on base + 2 epochs, rerun on base + 3 epochs with the same cache; tallies and wall times."""
    work = Path(tempfile.mkdtemp(prefix="run_all-rerun-"))
    try:
        sft, train_seconds = train(sizes, work)
        progress(f"trained {EPOCHS} LoRA epochs on {sizes.rerun_rows} rows in {train_seconds:.0f} s")
        partial = without_last_checkpoint(sft, work / "sft-first-epochs")
        suite = work / "bench-rerun.yaml"
        suite.write_text(tiny_suite(sizes), encoding="utf-8")
        first_seconds = sfteval_run(partial, suite, work / "run", threads)
        progress(f"first run (base + {EPOCHS - 1} epochs): {first_seconds:.1f} s")
        second_seconds = sfteval_run(sft, suite, work / "run", threads)
        progress(f"rerun (base + {EPOCHS} epochs): {second_seconds:.1f} s")
        runs = variant_tallies((work / "run" / "run.log").read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rerun_summary(runs, first_seconds, second_seconds, train_seconds, sizes)


def rerun_summary(
    runs: list[dict[str, dict[str, float]]], first_seconds: float, second_seconds: float,
    train_seconds: float, sizes: Sizes,
) -> dict[str, Any]:  # fmt: skip
    """Goal: every variant of the first run is answered from the cache; only the new epoch is computed."""
    if len(runs) != 2:
        raise RuntimeError(f"run.log holds {len(runs)} runs, expected 2")
    first, second = runs
    new = [name for name in second if name not in first]
    old_misses = sum(int(second[name]["misses"]) for name in first if name in second)
    new_misses = sum(int(second[name]["misses"]) for name in new)
    met = bool(new) and old_misses == 0 and new_misses > 0 and set(first) <= set(second)
    notes = [
        f"suite: instruction_following limit {sizes.rerun_if_limit} × {sizes.rerun_new_tokens} new tokens, "
        f"forgetting limit {sizes.rerun_forgetting_limit}; LoRA {EPOCHS} epochs on {sizes.rerun_rows} demo rows "
        f"(trained in {train_seconds:.0f} s)",
        f"first run: {_tallies(first)}",
        f"rerun: {_tallies(second)}",
        f"run.log totals: first {sum(v['seconds'] for v in first.values()):.1f} s, "
        f"rerun {sum(v['seconds'] for v in second.values()):.1f} s (variant passes only)",
    ]
    raw = {"first_run": first, "rerun": second, "new_variants": new, "old_variant_misses": old_misses,
           "new_variant_misses": new_misses, "first_run_seconds": first_seconds, "rerun_seconds": second_seconds,
           "train_seconds": train_seconds}  # fmt: skip
    return {
        "summary": summary(
            f"rerun {second_seconds:.0f} s ({', '.join(new) or 'no new variant'}: {new_misses} misses)",
            f"first run {first_seconds:.0f} s", f"old variants' misses {old_misses}; "
            f"rerun/first {second_seconds / first_seconds:.2f}×", "old variants' misses = 0", met, notes,
        ),
        "raw": raw,
    }  # fmt: skip


def _tallies(run: dict[str, dict[str, float]]) -> str:
    return "; ".join(f"{name} hits={int(v['hits'])} misses={int(v['misses'])}" for name, v in run.items())
