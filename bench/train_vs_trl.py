"""sfteval's trainer vs TRL's SFTTrainer (completion-only loss), on the same model, data and batches.

Both runs: fp32, the same model, the same rows rendered by the same template (TRL gets them as prompt/completion
strings, the completion ending with the terminator, so it trains the same tokens), the same sequence length,
batch size, learning rate, step count and batch order (TRL reads the rows in the order sfteval's length-grouped
dataset yields them, with a sequential sampler), so their step-1 losses must agree. Everything else is each
trainer's default (TRL: gradient checkpointing on unless --trl-no-gradient-checkpointing, its fused log-prob loss
and metrics; sfteval: no checkpointing, shared-prefix packing, and its end-of-run checkpoint write, which TRL is
not asked for). --trl-padding-free adds TRL with `padding_free=True` on the same batches (rows of a batch
flattened into one, sequences told apart by position ids; `max_length=None`, as TRL requires without packing; no
row here is near --max-seq-len), --trl-packing TRL with `packing=True` (best-fit decreasing: whole rows packed
into sequences of up to --max-seq-len tokens, one sequence per step; other groupings of rows, so its step-1 loss
is not comparable); both without gradient checkpointing, and both run on CPU with sdpa attention.

    .venv/bin/python bench/train_vs_trl.py [--model DIR] [--steps 8] [--batch-size 8] [--repeats 2] [--threads 1]
        [--trl-no-gradient-checkpointing] [--trl-padding-free] [--trl-packing]

Each run is a fresh process, sfteval and the TRL configurations alternating, so peak memory (the process's max
RSS, model load included; `rss_at_train_start_mib` is the RSS when training starts) is each run's own. Prints
tokens/s of each (input tokens of the trained rows, counted from the data and the same for all runs but TRL's
packing, which counts its own sequences, / seconds of `trainer.train()`, by wall clock and by process CPU time),
the ratios, the losses at step 1 and at the last step and the 1-minute load average before and after; writes
them to --json. On a shared machine pass --threads 1 (two threads on two busy cores oversubscribe, and the clock
mostly measures waiting) and --repeats 2 or more (medians are reported).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("sfteval", "trl", "trl_padding_free", "trl_packing")
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


def rss_mib() -> float:
    """This process's resident memory now."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_sfteval(model: Path, data: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    from transformers import TrainerCallback

    from sfteval.trainer.config import TrainConfig
    from sfteval.trainer.train import run_training

    marks: dict[str, float] = {}

    class LastStep(TrainerCallback):
        def on_step_end(self, *_: Any, **__: Any) -> None:
            marks["last_step_end"] = time.perf_counter()

    def setup(trainer: Any) -> None:
        marks["rss_at_train_start_mib"], marks["train_start"] = rss_mib(), time.perf_counter()
        trainer.add_callback(LastStep())

    config = TrainConfig(
        model=model, data=[data], out=out, epochs=100, max_steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, max_seq_len=args.max_seq_len, precision="fp32", holdout=0, seed=args.seed, sample_size=0,
    )  # fmt: skip
    result = run_training(config, setup=setup)
    after_last_step = result.runtime_s - (marks["last_step_end"] - marks["train_start"])
    return {"own_token_count": result.tokens_seen, "seconds": result.runtime_s, "cpu_seconds": result.cpu_s,
            "losses": list(result.losses), "rss_at_train_start_mib": marks["rss_at_train_start_mib"],
            "seconds_after_last_step": after_last_step}  # fmt: skip


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
    model: Path,
    rows: list[tuple[str, str, list[int]]],
    out: Path,
    args: argparse.Namespace,
    side: str,
) -> dict[str, Any]:
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(model)
    dataset = datasets.Dataset.from_list(
        [{"prompt": prompt, "completion": completion} for prompt, completion, _ in rows]
    )
    padding_free, packing = side == "trl_padding_free", side == "trl_packing"
    checkpointing = side == "trl" and not args.trl_no_gradient_checkpointing
    config = SFTConfig(
        output_dir=str(out), max_steps=args.steps, learning_rate=args.lr, padding_free=padding_free,
        per_device_train_batch_size=1 if packing else args.batch_size, packing=packing,
        max_length=None if padding_free else args.max_seq_len, completion_only_loss=True, bf16=False, fp16=False,
        use_cpu=True, logging_steps=1, save_strategy="no", report_to="none", seed=args.seed,
        train_sampling_strategy="sequential", include_num_input_tokens_seen="non_padding", disable_tqdm=True,
        gradient_checkpointing=checkpointing,
    )  # fmt: skip
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32),
        args=config, train_dataset=dataset, processing_class=tokenizer,
    )  # fmt: skip
    if packing:  # sequences of up to max_seq_len tokens, each holding whole rows; one per step, cycling
        sequences = trainer.train_dataset
        trained = sum(len(sequences[step % len(sequences)]["input_ids"]) for step in range(args.steps))
        same = "n/a (packed sequences)"
    else:
        trained = sum(len(ids) for _, _, ids in rows[: args.steps * args.batch_size])
        matches = sum(
            list(item["input_ids"]) == ids
            for item, (_, _, ids) in zip(trainer.train_dataset, rows, strict=True)
        )
        same = f"{matches}/{len(rows)}"
    rss_at_start = rss_mib()
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer.train()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {"own_token_count": int(trainer.state.num_input_tokens_seen), "seconds": seconds,
            "cpu_seconds": cpu_seconds, "losses": losses, "rss_at_train_start_mib": rss_at_start,
            "tokens": trained, "rows_tokenised_identically": same, "gradient_checkpointing": checkpointing,
            "padding_free": padding_free or packing, "packing": packing,
            "attention": trainer.model.config._attn_implementation}  # fmt: skip


def run_worker(args: argparse.Namespace) -> None:
    """One run in this (fresh) process; its result and peak RSS go to --worker-output."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    work = args.worker_output.parent
    model = Path(json.loads((work / "model.json").read_text(encoding="utf-8")))
    rows = [tuple(row) for row in json.loads((work / "rows.json").read_text(encoding="utf-8"))]
    out = work / f"{args.worker_output.stem}-out"
    if args.worker == "sfteval":
        result = run_sfteval(model, work / "data.jsonl", out, args)
        result["tokens"] = sum(len(row[2]) for row in rows[: args.steps * args.batch_size])
    else:
        result = run_trl(model, rows, out, args, args.worker)  # type: ignore[arg-type]
    result["peak_rss_mib"] = peak_rss_mib()
    args.worker_output.write_text(json.dumps(result), encoding="utf-8")


def run_in_process(side: str, repeat: int, work: Path) -> dict[str, Any]:
    """Run one side in a fresh Python process with this invocation's settings."""
    output = work / f"{side}-{repeat}.json"
    command = [sys.executable, __file__, *sys.argv[1:], "--worker", side, "--worker-output", str(output)]
    subprocess.run(command, check=True)
    return json.loads(output.read_text(encoding="utf-8"))


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
        "--repeats", type=int, default=1, help="alternating sfteval/TRL runs; medians reported"
    )
    parser.add_argument(
        "--trl-no-gradient-checkpointing",
        action="store_true",
        help="turn off TRL's default gradient checkpointing",
    )
    parser.add_argument(
        "--trl-padding-free",
        action="store_true",
        help="also run TRL with padding_free=True (no gradient checkpointing)",
    )
    parser.add_argument(
        "--trl-packing",
        action="store_true",
        help="also run TRL with packing=True (bfd): one sequence of up to --max-seq-len tokens per step",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "train_vs_trl.json")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--worker-output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.worker:
        run_worker(args)
        return
    load_before = os.getloadavg()[0]
    from sfteval.trainer.resources import resolve_model_path

    model = resolve_model_path(args.model)
    work = Path(tempfile.mkdtemp(prefix="train_vs_trl-"))
    data = work / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in synthetic_rows(args.rows)), encoding="utf-8")
    rows = sfteval_order(model, data, args)
    (work / "rows.json").write_text(json.dumps(rows), encoding="utf-8")
    (work / "model.json").write_text(json.dumps(str(model)), encoding="utf-8")
    extra = {"trl_padding_free": args.trl_padding_free, "trl_packing": args.trl_packing}
    sides = ["sfteval", "trl", *(side for side, wanted in extra.items() if wanted)]
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for repeat in range(args.repeats):
        for side in sides:
            runs[side].append(run_in_process(side, repeat, work))
    summary = summarise(runs, args, model)
    summary["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0]}
    args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print_summary(summary)


def side_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over repeats of tokens/s (wall and CPU) and peak RSS; the first repeat's losses."""
    first = results[0]
    tokens = first["tokens"]
    summary = {
        "tokens_per_second": statistics.median(tokens / r["seconds"] for r in results),
        "tokens_per_cpu_second": statistics.median(tokens / r["cpu_seconds"] for r in results),
        "tokens": tokens,
        "own_token_count": first["own_token_count"],
        "seconds": [round(r["seconds"], 2) for r in results],
        "cpu_seconds": [round(r["cpu_seconds"], 2) for r in results],
        "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in results),
        "rss_at_train_start_mib": statistics.median(r["rss_at_train_start_mib"] for r in results),
        "loss_step_1": first["losses"][0],
        "loss_last_step": first["losses"][-1],
    }
    for key in (
        "rows_tokenised_identically",
        "gradient_checkpointing",
        "padding_free",
        "packing",
        "attention",
    ):
        if key in first:
            summary[key] = first[key]
    if "seconds_after_last_step" in first:
        summary["seconds_after_last_step"] = [round(r["seconds_after_last_step"], 2) for r in results]
    return summary


def compare(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float]:
    return {
        "ratio": ours["tokens_per_second"] / theirs["tokens_per_second"],
        "ratio_cpu": ours["tokens_per_cpu_second"] / theirs["tokens_per_cpu_second"],
        "loss_step_1_difference": abs(ours["loss_step_1"] - theirs["loss_step_1"]),
        "peak_rss_ratio": ours["peak_rss_mib"] / theirs["peak_rss_mib"],
    }


def summarise(runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace, model: Path) -> dict:
    """Settings, each side's medians, and sfteval's ratios against `trl` (top level) and the other TRL modes.

    TRL's packing trains other groupings of rows (whole rows packed into sequences), so its step-1 loss is not
    comparable and its tokens are those of its own sequences.
    """
    summary: dict[str, Any] = {"model": str(model), "steps": args.steps, "batch_size": args.batch_size,
                               "max_seq_len": args.max_seq_len, "repeats": args.repeats, "precision": "fp32",
                               "threads": args.threads, "trl_gradient_checkpointing": not args.trl_no_gradient_checkpointing}  # fmt: skip
    for side, results in runs.items():
        summary[side] = side_summary(results)
    summary.update(compare(summary["sfteval"], summary["trl"]))
    for side in SIDES[2:]:
        if side in summary:
            summary[side].update(compare(summary["sfteval"], summary[side]))
    if "trl_packing" in summary:
        summary["trl_packing"]["loss_step_1_difference"] = None
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    for name in SIDES:
        if name not in summary:
            continue
        item = summary[name]
        print(f"{name:16s} {item['tokens_per_second']:6.1f} tokens/s wall, {item['tokens_per_cpu_second']:6.1f} per CPU s "
              f"({item['tokens']} tokens; wall {item['seconds']} s; CPU {item['cpu_seconds']} s)  loss step 1 "
              f"{item['loss_step_1']:.6f}, last {item['loss_last_step']:.6f}; peak RSS {item['peak_rss_mib']:.0f} MiB "
              f"(at train start {item['rss_at_train_start_mib']:.0f})")  # fmt: skip
    for name in SIDES[1:]:
        item = summary if name == "trl" else summary.get(name)
        if item is not None:
            difference = item["loss_step_1_difference"]
            loss = "n/a (other batches)" if difference is None else f"{difference:.2e}"
            print(f"sfteval/{name}: {item['ratio']:.2f} wall, {item['ratio_cpu']:.2f} CPU time; |loss step 1 "
                  f"difference| {loss}; peak RSS ratio {item['peak_rss_ratio']:.2f}")  # fmt: skip
    load = summary["load_average_1min"]
    print(f"load average (1 min): {load['before']:.2f} before, {load['after']:.2f} after")


if __name__ == "__main__":
    main()
