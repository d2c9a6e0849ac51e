"""sfteval's trainer vs TRL's SFTTrainer (completion-only loss), back to back on the same model, data and batches.

Both runs: fp32, the same model, the same rows rendered by the same template (TRL gets them as prompt/completion
strings, the completion ending with the terminator, so it trains the same tokens), the same sequence length,
batch size, learning rate, step count and batch order (TRL reads the rows in the order sfteval's length-grouped
dataset yields them, with a sequential sampler), so their step-1 losses must agree. Everything else is each
trainer's default (TRL: gradient checkpointing on, its fused log-prob loss and metrics; sfteval: no checkpointing).

    .venv/bin/python bench/train_vs_trl.py [--model DIR] [--steps 8] [--batch-size 8] [--repeats 2] [--threads 1]

Prints tokens/s of each (non-padding input tokens / seconds of `trainer.train()`, by wall clock and by process
CPU time), the ratios, and the losses at step 1 and at the last step; writes them to --json. On a shared machine
pass --threads 1 (two threads on two busy cores oversubscribe, and the clock mostly measures waiting) and
--repeats 2 or more (sfteval and TRL alternate; medians are reported).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CAPITALS = {
    "France": "Paris",
    "Japan": "Tokyo",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Egypt": "Cairo",
    "Peru": "Lima",
}


def synthetic_rows(count: int, seed: int = 0) -> list[dict[str, str]]:
    """Instruction rows of varied prompt and response lengths (arithmetic, capitals, lists, rewrites)."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        kind = index % 4
        if kind == 0:
            a, b = rng.randint(2, 99), rng.randint(2, 99)
            rows.append({"instruction": f"What is {a} plus {b}?", "output": f"{a} plus {b} equals {a + b}."})
        elif kind == 1:
            country, capital = rng.choice(list(CAPITALS.items()))
            detail = " It is also the largest city in the country." * rng.randint(0, 3)
            rows.append(
                {
                    "instruction": f"What is the capital of {country}?",
                    "output": f"The capital is {capital}.{detail}",
                }
            )
        elif kind == 2:
            items = rng.sample(
                ["apples", "pears", "plums", "figs", "limes", "dates", "kiwis", "grapes"], rng.randint(2, 8)
            )
            rows.append(
                {
                    "instruction": "List these fruits, one per line.",
                    "input": ", ".join(items),
                    "output": "\n".join(items),
                }
            )
        else:
            words = " ".join(
                rng.choice(["the", "cat", "sat", "on", "a", "warm", "red", "mat"])
                for _ in range(rng.randint(4, 30))
            )
            rows.append(
                {"instruction": "Rewrite this in capital letters.", "input": words, "output": words.upper()}
            )
    return rows


def run_sfteval(model: Path, data: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    from sfteval.trainer.config import TrainConfig
    from sfteval.trainer.train import run_training

    config = TrainConfig(
        model=model, data=[data], out=out, epochs=100, max_steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, max_seq_len=args.max_seq_len, precision="fp32", holdout=0, seed=args.seed, sample_size=0,
    )  # fmt: skip
    result = run_training(config)
    return {"tokens": result.tokens_seen, "seconds": result.runtime_s, "cpu_seconds": result.cpu_s,
            "losses": list(result.losses)}  # fmt: skip


def sfteval_order(model: Path, data: Path, args: argparse.Namespace) -> list[tuple[str, str, list[int]]]:
    """(prompt, completion, input_ids) of each row in the order sfteval's dataset yields them in epoch 0."""
    from sfteval.trainer.collate import length_grouped_order
    from sfteval.trainer.config import TrainConfig
    from sfteval.trainer.train import prepare_data

    config = TrainConfig(
        model=model, data=[data], out=Path("unused"), holdout=0, max_seq_len=args.max_seq_len
    )
    rows = [row for row in prepare_data(config).rows if row.used]
    order = length_grouped_order(
        [len(row.full.input_ids) for row in rows], args.batch_size, args.seed, epoch=0
    )
    ordered = []
    for index in order:
        segments = rows[index].segments
        prompt = "".join(segment.text for segment in segments if not segment.trainable)
        completion = "".join(segment.text for segment in segments if segment.trainable)
        ordered.append((prompt, completion, list(rows[index].full.input_ids)))
    return ordered


def run_trl(
    model: Path, rows: list[tuple[str, str, list[int]]], out: Path, args: argparse.Namespace
) -> dict[str, Any]:
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(model)
    dataset = datasets.Dataset.from_list(
        [{"prompt": prompt, "completion": completion} for prompt, completion, _ in rows]
    )
    config = SFTConfig(
        output_dir=str(out), max_steps=args.steps, per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr, max_length=args.max_seq_len, completion_only_loss=True, bf16=False, fp16=False,
        use_cpu=True, logging_steps=1, save_strategy="no", report_to="none", seed=args.seed,
        train_sampling_strategy="sequential", include_num_input_tokens_seen="non_padding", disable_tqdm=True,
        gradient_checkpointing=not args.trl_no_gradient_checkpointing,
    )  # fmt: skip
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32),
        args=config, train_dataset=dataset, processing_class=tokenizer,
    )  # fmt: skip
    same = sum(
        list(item["input_ids"]) == ids for item, (_, _, ids) in zip(trainer.train_dataset, rows, strict=True)
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer.train()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {"tokens": int(trainer.state.num_input_tokens_seen), "seconds": seconds, "cpu_seconds": cpu_seconds,
            "losses": losses, "rows_tokenised_identically": f"{same}/{len(rows)}"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, default=None, help="model dir (default: the embedded default model)"
    )
    parser.add_argument("--rows", type=int, default=96)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-seq-len", type=int, default=512)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeats", type=int, default=1, help="alternating sfteval/TRL pairs; medians reported"
    )
    parser.add_argument(
        "--trl-no-gradient-checkpointing",
        action="store_true",
        help="turn off TRL's default gradient checkpointing",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "train_vs_trl.json")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    from sfteval.trainer.resources import resolve_model_path

    if args.threads:
        torch.set_num_threads(args.threads)
    model = resolve_model_path(args.model)
    work = Path(tempfile.mkdtemp(prefix="train_vs_trl-"))
    data = work / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in synthetic_rows(args.rows)), encoding="utf-8")
    rows = sfteval_order(model, data, args)
    runs: dict[str, list[dict[str, Any]]] = {"sfteval": [], "trl": []}
    for repeat in range(args.repeats):
        runs["sfteval"].append(run_sfteval(model, data, work / f"sfteval-{repeat}", args))
        runs["trl"].append(run_trl(model, rows, work / f"trl-{repeat}", args))
    summary = summarise(runs, args, model, torch.get_num_threads())
    args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print_summary(summary)


def summarise(
    runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace, model: Path, threads: int
) -> dict:
    """Medians over repeats of tokens/s (wall and CPU), the ratios, and the first repeat's losses."""
    summary: dict[str, Any] = {"model": str(model), "steps": args.steps, "batch_size": args.batch_size,
                               "max_seq_len": args.max_seq_len, "repeats": args.repeats, "precision": "fp32",
                               "threads": threads, "trl_gradient_checkpointing": not args.trl_no_gradient_checkpointing}  # fmt: skip
    for name, results in runs.items():
        summary[name] = {
            "tokens_per_second": statistics.median(r["tokens"] / r["seconds"] for r in results),
            "tokens_per_cpu_second": statistics.median(r["tokens"] / r["cpu_seconds"] for r in results),
            "tokens": results[0]["tokens"],
            "seconds": [round(r["seconds"], 2) for r in results],
            "cpu_seconds": [round(r["cpu_seconds"], 2) for r in results],
            "loss_step_1": results[0]["losses"][0],
            "loss_last_step": results[0]["losses"][-1],
        }
        if "rows_tokenised_identically" in results[0]:
            summary[name]["rows_tokenised_identically"] = results[0]["rows_tokenised_identically"]
    ours, theirs = summary["sfteval"], summary["trl"]
    summary["ratio"] = ours["tokens_per_second"] / theirs["tokens_per_second"]
    summary["ratio_cpu"] = ours["tokens_per_cpu_second"] / theirs["tokens_per_cpu_second"]
    summary["loss_step_1_difference"] = abs(ours["loss_step_1"] - theirs["loss_step_1"])
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    for name in ("sfteval", "trl"):
        item = summary[name]
        print(f"{name:8s} {item['tokens_per_second']:7.1f} tokens/s wall, {item['tokens_per_cpu_second']:7.1f} per CPU s "
              f"({item['tokens']} tokens; wall {item['seconds']} s; CPU {item['cpu_seconds']} s)  "
              f"loss step 1 {item['loss_step_1']:.5f}, last step {item['loss_last_step']:.5f}")  # fmt: skip
    print(f"ratio sfteval/trl: {summary['ratio']:.2f} wall, {summary['ratio_cpu']:.2f} CPU time; "
          f"|loss step 1 difference| {summary['loss_step_1_difference']:.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
