"""The figures of bench/run_all.py: each runs in its own process and returns {"summary": ..., "raw": ...}.

A summary is what RESULTS.md shows: the sfteval and reference numbers, the ratio, the goal and whether it is met,
and notes (agreement checks). `raw` keeps every number measured. Figures that have their own benchmark script
(scoring, training, demo) run it as a subprocess and parse what it prints or writes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DEMO_DATA = ROOT / "suites" / "data" / "demo_sft.jsonl"


@dataclass(frozen=True)
class Sizes:
    """Workload sizes of every figure; `quick()` shrinks them for a smoke check."""

    generation_prompts: int = 32
    generation_new_tokens: int = 64
    generation_batch: int = 16
    generation_repeats: int = 2
    scoring_limit: int | None = None
    scoring_batch: int = 32
    scoring_5shot_limit: int | None = 60
    scoring_repeats: int = 2
    training_rows: int = 96
    training_steps: int = 6
    training_batch: int = 8
    training_repeats: int = 2
    rerun_rows: int = 24
    rerun_batch: int = 8
    rerun_if_limit: int = 8
    rerun_new_tokens: int = 32
    rerun_forgetting_limit: int = 5

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            generation_prompts=8, generation_new_tokens=16, generation_batch=4, generation_repeats=1,
            scoring_limit=12, scoring_5shot_limit=8, scoring_repeats=1, training_rows=16, training_steps=2, training_batch=4, training_repeats=1,
            rerun_rows=8, rerun_batch=4, rerun_if_limit=3, rerun_new_tokens=8, rerun_forgetting_limit=2,
        )  # fmt: skip


def summary(
    sfteval: str, reference: str, result: str, goal: str, met: bool | None, notes: list[str]
) -> dict[str, Any]:
    """One row of the results table (`met` None: the figure has no pass/fail goal)."""
    return {
        "sfteval": sfteval,
        "reference": reference,
        "result": result,
        "goal": goal,
        "met": met,
        "notes": notes,
    }


def run_script(command: list[str], threads: int) -> subprocess.CompletedProcess[str]:
    """Run a benchmark script with OMP_NUM_THREADS set (threads 0: unset, sfteval chooses from the load); its output
    is captured and its failure raised."""
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if threads <= 0:
        environment = {
            key: value
            for key, value in os.environ.items()
            if key not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
        }
    environment.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, cwd=ROOT)
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited {completed.returncode}:\n"
            f"{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
        )
    return completed


def progress(message: str) -> None:
    print(f"    {message}", flush=True)


# --- 1. generation overhead ---------------------------------------------------------------------------------


def chat_prompts(tokenizer: Any, count: int) -> list[str]:
    """The first `count` demo instructions rendered with the model's own chat template (generation prompt open)."""
    rows = [json.loads(line) for line in DEMO_DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    prompts = []
    for row in rows[:count]:
        content = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
        messages = [{"role": "user", "content": content}]
        prompts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    return prompts


def raw_generate(
    model: Any, tokenizer: Any, batches: list[list[str]], new_tokens: int
) -> list[tuple[str, int]]:
    """transformers `model.generate`, greedy, on left-padded batches: (text up to EOS, tokens incl. EOS) per prompt."""
    from transformers import GenerationConfig

    from sfteval.tokenization import encode_text

    eos = sorted({tokenizer.eos_token_id, *_as_list(model.generation_config.eos_token_id)} - {None})
    config = GenerationConfig(
        max_new_tokens=new_tokens, do_sample=False, eos_token_id=eos, pad_token_id=tokenizer.eos_token_id
    )
    results = []
    for batch in batches:
        encoded = [encode_text(tokenizer, prompt) for prompt in batch]
        inputs = tokenizer.pad({"input_ids": encoded}, padding_side="left", return_tensors="pt")
        output = model.generate(**inputs, generation_config=config)
        for row in output[:, inputs["input_ids"].shape[1] :].tolist():
            ended = next((index for index, token in enumerate(row) if token in eos), None)
            tokens = row if ended is None else row[:ended]
            text = tokenizer.decode(tokens, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            results.append((text, len(row) if ended is None else ended + 1))
    return results


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _timed(function: Any, *arguments: Any) -> tuple[Any, float, float]:
    """(result, wall seconds, process CPU seconds) of `function(*arguments)`."""
    started, cpu_started = time.perf_counter(), time.process_time()
    result = function(*arguments)
    return result, time.perf_counter() - started, time.process_time() - cpu_started


def generation(sizes: Sizes, threads: int) -> dict[str, Any]:
    """sfteval's hf engine behind a fresh CachedEngine vs transformers' generate on the same batches."""
    import torch

    from sfteval.cache import CachedEngine
    from sfteval.core.requests import GenerationRequest
    from sfteval.core.variants import Variant
    from sfteval.default_model import default_model_path
    from sfteval.engines.config import EngineConfig
    from sfteval.engines.hf.engine import HFEngineFactory

    torch.set_num_threads(threads)
    factory = HFEngineFactory(
        EngineConfig(device="cpu", dtype="float32", batch_size=sizes.generation_batch, threads=threads)
    )
    engine = factory.engine(Variant("base", default_model_path()))
    prompts = chat_prompts(engine.tokenizer, sizes.generation_prompts)
    requests = [GenerationRequest(prompt, max_new_tokens=sizes.generation_new_tokens) for prompt in prompts]
    engine.generate([GenerationRequest(prompts[0], max_new_tokens=1)])  # loads the model outside the timing
    # CachedEngine sends chunks of `batch` prompts, longest (in characters) first; the raw side gets the same.
    ordered = sorted(prompts, key=lambda prompt: -len(prompt))
    batches = [ordered[start : start + sizes.generation_batch] for start in range(0, len(ordered), sizes.generation_batch)]  # fmt: skip
    timings: dict[str, list[tuple[float, float]]] = {"raw": [], "sfteval": []}
    work = Path(tempfile.mkdtemp(prefix="run_all-generation-"))
    outputs: dict[str, Any] = {}
    for repeat in range(sizes.generation_repeats):
        cached = CachedEngine(engine, work / f"cache-{repeat}.sqlite", chunk_size=sizes.generation_batch)
        calls = {
            "raw": (raw_generate, factory.base_model, engine.tokenizer, batches, sizes.generation_new_tokens),
            "sfteval": (cached.generate, requests),
        }
        # Alternate which side goes first, so neither always runs on a warmer (or busier) machine.
        for name in sorted(calls, reverse=repeat % 2 == 1):
            outputs[name], wall, cpu = _timed(*calls[name])
            timings[name].append((wall, cpu))
        cached.close()
        progress(
            f"repeat {repeat + 1}: raw generate {timings['raw'][-1][0]:.1f} s, sfteval {timings['sfteval'][-1][0]:.1f} s"
        )
    shutil.rmtree(work, ignore_errors=True)
    raw_by_prompt = dict(zip(ordered, outputs["raw"], strict=True))
    return generation_summary(
        prompts, outputs["sfteval"], raw_by_prompt, timings, sizes, torch.get_num_threads()
    )


def generation_summary(
    prompts: list[str], ours: list[Any], raw_by_prompt: dict[str, tuple[str, int]],
    timings: dict[str, list[tuple[float, float]]], sizes: Sizes, threads: int,
) -> dict[str, Any]:  # fmt: skip
    """Tokens/s of both sides (median over repeats), the overhead and whether the texts are identical."""
    tokens = sum(generation.num_tokens for generation in ours)
    raw_tokens = sum(count for _, count in raw_by_prompt.values())
    same = sum(
        generation.text == raw_by_prompt[prompt][0] for prompt, generation in zip(prompts, ours, strict=True)
    )
    seconds = {name: statistics.median(wall for wall, _ in values) for name, values in timings.items()}
    ours_rate, raw_rate = tokens / seconds["sfteval"], raw_tokens / seconds["raw"]
    overhead = (seconds["sfteval"] / seconds["raw"] - 1) * 100
    cpu = {name: statistics.median(cpu for _, cpu in values) for name, values in timings.items()}
    cpu_overhead = (cpu["sfteval"] / cpu["raw"] - 1) * 100
    raw = {
        "prompts": len(prompts), "max_new_tokens": sizes.generation_new_tokens, "batch_size": sizes.generation_batch,
        "repeats": sizes.generation_repeats, "threads": threads, "tokens_sfteval": tokens, "tokens_raw": raw_tokens,
        "seconds": {name: [round(wall, 2) for wall, _ in values] for name, values in timings.items()},
        "cpu_seconds": {name: [round(cpu, 2) for _, cpu in values] for name, values in timings.items()},
        "tokens_per_second_sfteval": ours_rate, "tokens_per_second_raw": raw_rate,
        "overhead_percent": overhead, "cpu_overhead_percent": cpu_overhead, "identical_texts": same,
    }  # fmt: skip
    notes = [
        f"{len(prompts)} prompts × {sizes.generation_new_tokens} new tokens, batch {sizes.generation_batch}, greedy, "
        f"fp32; median of {sizes.generation_repeats} alternating repeat(s); model load excluded from both",
        f"identical texts: {same}/{len(prompts)}; tokens generated: sfteval {tokens}, raw {raw_tokens}; "
        f"overhead by process CPU time {cpu_overhead:+.1f} %",
    ]
    return {
        "summary": summary(
            f"{ours_rate:.1f} tok/s", f"{raw_rate:.1f} tok/s (model.generate)",
            f"overhead {overhead:+.1f} %; texts identical {same}/{len(prompts)}", "≤ 10 %", overhead <= 10, notes,
        ),
        "raw": raw,
    }  # fmt: skip


# --- 2. scoring vs lm-eval, 3. trainer vs TRL, 5. demo -------------------------------------------------------


def last_json_object(text: str) -> dict[str, Any]:
    """The JSON object a script printed last (score_vs_lmeval.py ends with `json.dumps(result, indent=2)`)."""
    start = text.rfind("\n{\n")
    return json.loads(text[start + 1 :] if start >= 0 else text[text.index("{") :])


def scoring(sizes: Sizes, threads: int) -> dict[str, Any]:
    """bench/score_vs_lmeval.py zero-shot: lm-eval's evaluator with HFLM vs with sfteval's engine, same task."""
    return _scoring(sizes.scoring_limit, 0, sizes, threads)


def scoring_5shot(sizes: Sizes, threads: int) -> dict[str, Any]:
    """The same with 5 few-shot examples per prompt (how MMLU-style MC evals run): long shared contexts."""
    return _scoring(sizes.scoring_5shot_limit, 5, sizes, threads)


def _scoring(limit: int | None, num_fewshot: int, sizes: Sizes, threads: int) -> dict[str, Any]:
    from sfteval.default_model import default_model_path

    command = [sys.executable, str(BENCH / "score_vs_lmeval.py"), "--model", str(default_model_path()),
               "--threads", str(threads), "--batch-size", str(sizes.scoring_batch), "--num-fewshot", str(num_fewshot),
               "--repeats", str(sizes.scoring_repeats)]  # fmt: skip
    if limit is not None:
        command += ["--limit", str(limit)]
    result = last_json_object(run_script(command, threads).stdout)
    ours, theirs = result["sfteval_seconds"], result["hflm_seconds"]
    identical = result["identical_accuracies"] and result["max_abs_loglikelihood_diff"] <= 1e-4
    notes = [
        f"task {result['task']} ({result['num_fewshot']}-shot): {result['documents']} documents, {result['requests']} requests, batch "
        f"{result['batch_size']}; median of {result['repeats']} alternating repeat(s) (wall: HFLM "
        f"{', '.join(str(run['wall']) for run in result['hflm_runs'])} s, sfteval "
        f"{', '.join(str(run['wall']) for run in result['sfteval_runs'])} s); CPU-time ratio {result['speedup_cpu']:.2f}×",
        f"per-item results identical: {'yes' if identical else 'NO'} (accuracies identical: "
        f"{result['identical_accuracies']}; max |Δ log-likelihood| {result['max_abs_loglikelihood_diff']:.1e}); "
        f"through the cache: cold {result['sfteval_cache_cold_seconds']['wall']} s, warm "
        f"{result['sfteval_cache_warm_seconds']['wall']} s, agrees: {result['cache_agrees']}",
    ]
    return {
        "summary": summary(
            f"{ours['wall']} s", f"{theirs['wall']} s (lm-eval HFLM)", f"{result['speedup_wall']:.2f}× faster",
            "≥ 3×", result["speedup_wall"] >= 3 and identical, notes,
        ),
        "raw": result,
    }  # fmt: skip


def training(sizes: Sizes, threads: int) -> dict[str, Any]:
    """bench/train_vs_trl.py: sfteval's trainer vs TRL's SFTTrainer on the same rows and batches."""
    with tempfile.TemporaryDirectory(prefix="run_all-training-") as folder:
        output = Path(folder) / "train_vs_trl.json"
        command = [sys.executable, str(BENCH / "train_vs_trl.py"), "--threads", str(threads),
                   "--rows", str(sizes.training_rows), "--steps", str(sizes.training_steps),
                   "--batch-size", str(sizes.training_batch), "--repeats", str(sizes.training_repeats),
                   "--trl-no-gradient-checkpointing", "--trl-padding-free", "--json", str(output)]  # fmt: skip
        run_script(command, threads)
        result = json.loads(output.read_text(encoding="utf-8"))
    ours, theirs, padding_free = result["sfteval"], result["trl"], result["trl_padding_free"]
    notes = [
        f"{result['steps']} steps × batch {result['batch_size']}, fp32, {ours['tokens']} tokens; median of "
        f"{result['repeats']} repeat(s); TRL gradient checkpointing: {result['trl_gradient_checkpointing']}",
        f"CPU-time ratio {result['ratio_cpu']:.2f}×; |loss step 1 difference| {result['loss_step_1_difference']:.1e}; "
        f"rows tokenised identically: {theirs.get('rows_tokenised_identically', 'n/a')}",
        f"vs TRL padding_free=True: {padding_free['ratio']:.2f}× (goal ≥ 1.2×); peak RSS {ours['peak_rss_mib']:.0f} "
        f"MiB vs TRL {theirs['peak_rss_mib']:.0f} MiB",
    ]
    return {
        "summary": summary(
            f"{ours['tokens_per_second']:.1f} tok/s", f"{theirs['tokens_per_second']:.1f} tok/s (TRL SFTTrainer)",
            f"{result['ratio']:.2f}×", "≥ 1.5×", result["ratio"] >= 1.5 and padding_free["ratio"] >= 1.2, notes,
        ),
        "raw": result,
    }  # fmt: skip


def demo(sizes: Sizes, threads: int) -> dict[str, Any]:
    """bench/demo_time.py: `sfteval demo --retrain` from a clean directory (the same in quick mode)."""
    # The product's own thread choice (the free cores, measured), as a user's demo runs: no OMP_NUM_THREADS.
    output = run_script([sys.executable, str(BENCH / "demo_time.py")], 0).stdout
    wall = float(_search(r"demo wall time: ([\d.]+) s", output))
    cpu = float(_search(r"demo CPU time: ([\d.]+) s", output))
    phases = re.search(r"demo time: .*", output)
    notes = [
        f"`sfteval demo --retrain` with its own thread choice (no OMP_NUM_THREADS); CPU time {cpu:.0f} s",
        f"phases: {phases.group(0) if phases else 'not printed'}",
    ]
    raw = {"wall_seconds": wall, "cpu_seconds": cpu, "output": output}
    return {
        "summary": summary(f"{wall:.0f} s ({wall / 60:.1f} min)", "—", f"{wall / 60:.1f} min", "≤ 5 min",
                           wall <= 5 * 60, notes),
        "raw": raw,
    }  # fmt: skip


def _search(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"pattern {pattern!r} not found in:\n{text[-3000:]}")
    return match.group(1)
