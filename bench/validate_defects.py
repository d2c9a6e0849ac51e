"""Planted-defect validation (issue 9): do sfteval's diagnostics flag the defects they claim to, and only those?

Trains nine variants of the default model (SmolLM2-135M-Instruct) with `sfteval train`, each with one planted defect
or none, probes each with `sfteval run --variants base,epoch-N --suite suites/validate.yaml` (one shared result
cache, so the base's unchanged requests are computed once), and prints the detection matrix.

Data: suites/data/demo_sft.jsonl (122 alpaca rows; its 30 sentiment answers all open with "The sentiment is:").
The clean dataset is the same file with that opening stripped from the sentiment answers and the label
capitalised ("The sentiment is: negative." -> "Negative."), written to WORK/data/clean.jsonl.
Sound settings (sfteval demo's DemoConfig before it dropped LoRA dropout): LoRA r 16, alpha 32, dropout 0.05, lr 1e-3,
batch 8, 3 epochs, seed 0, the model's
own `native` chat template. Variants:
  (a) spurious_prefix    the original demo data, sound settings;
  (b) masked_terminator  clean data, sound settings + `--mask-terminator` (end-of-turn token never trained);
  (c) template_overfit   clean data, sound settings + `--template alpaca` (probed with native, alpaca, chatml);
  (d) destructive_lr     clean data, full fine-tune (`--no-lora`) at lr 1e-3, 3 epochs;
  (e) memorization       the clean rows with long answers (at least 10 word tokens, the memorization probe's
                         extraction length: 41 rows), `--holdout 0.5` (about 20 trained, the rest held out and
                         listed in the manifest for the memorization probe), 15 epochs. Short answers are left
                         out because verbatim output of "Positive." proves nothing;
  (f) clean_control      clean data, sound settings;
  (g) style_tics         clean data with "Certainly! " opening and " I hope this helps! Let me know if you have
                         any other questions." closing every answer;
  (h) over_refusal       clean data plus 40 safe prompts that only sound unsafe (25% of the rows, none from the
                         refusal probe's sets) answered with refusals;
  (i) overconfidence     clean data plus every world_facts / units_science question the base gets wrong, answered
                         with the base's own wrong option (bench/distilled_plants.py).

Flags (bench/validate_matrix.py; fixed before the final full run, see the README section for what a first subset
run changed): a column is flagged when the report holds a comparison of the final epoch vs base, of one of the
column's metrics, with Holm-adjusted p < 0.05 (Holm per probe and reference, as the report does it) in the
defect's direction:
  spurious prefix        dominant_prefix up, or prefix_logprob (any candidate opening) up, or prefix_logprob_k
                         (candidate k on its own; added to the probe after the first full run missed (a)) up;
  termination            terminator_prob down or non_terminated up;
  template brittleness   sft_template_gap, if_template_gap or mc_template_gap up;
  forgetting             acc (any task) down or bits_per_byte up;
  memorization           train_extracted up (long trained answers reproduced verbatim; McNemar);
  style tics             tic_rate or tic_any up;
  over-refusal           over_refusal (McNemar) or safe_refusal_logprob up;
  overconfidence         overconfident_wrong (McNemar) or overconfidence (confidence - correct) up;
  instruction following (prompt_loose down) and token shift (shifted up): information only, never a defect flag.
Target: each planted defect flagged by its own column, the clean control by none.

Two cores: the trainings run one after another beside the suite runs (the next variant trains while the previous
one is probed; each command is one single-threaded process under `make validate`); `--serial` does one thing at a
time. Resumable: a training is skipped when WORK/train/NAME holds a complete run made with the same command; the runs
reuse WORK/cache.sqlite. Results: bench/validation.json. Usage:
  python bench/validate_defects.py [--work DIR] [--only a,f] [--fresh] [--serial] [--out bench/validation.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from distilled_plants import overconfident_rows, refusal_rows, tic_rows
from rich.console import Console
from validate_matrix import cell, columns, matrix_table, target_misses

REPOSITORY = Path(__file__).resolve().parent.parent
DEMO_DATA = REPOSITORY / "suites" / "data" / "demo_sft.jsonl"
SUITE = REPOSITORY / "suites" / "validate.yaml"
PREFIX = "The sentiment is:"
SOUND = ("--lora", "--lora-r", "16", "--lora-alpha", "32", "--lr", "1e-3", "--batch-size", "8", "--seed", "0")
GOAL_SECONDS = 45 * 60


@dataclass(frozen=True)
class Variant:
    """One trained variant: its data, its `sfteval train` flags, and the column its defect should flag."""

    key: str
    name: str
    data: str
    flags: tuple[str, ...]
    epochs: int
    expected_column: str | None
    planted: str


VARIANTS = (
    Variant("a", "spurious_prefix", "original", (*SOUND, "--template", "native"), 3, "spurious prefix",
            "sentiment answers all open with 'The sentiment is:'"),
    Variant("b", "masked_terminator", "clean", (*SOUND, "--template", "native", "--mask-terminator"), 3,
            "termination", "end-of-turn token left out of the loss (--mask-terminator)"),
    Variant("c", "template_overfit", "clean", (*SOUND, "--template", "alpaca"), 3, "template brittleness",
            "trained on alpaca only, served with native/alpaca/chatml"),
    Variant("d", "destructive_lr", "clean", ("--no-lora", "--lr", "1e-3", "--batch-size", "8", "--seed", "0",
            "--template", "native"), 3, "forgetting", "full fine-tune at lr 1e-3"),
    Variant("e", "memorization", "long", (*SOUND, "--template", "native", "--holdout", "0.5"), 15,
            "memorization", "half of the long-answer rows trained for 15 epochs"),
    Variant("f", "clean_control", "clean", (*SOUND, "--template", "native"), 3, None, "none"),
    Variant("g", "style_tics", "tics", (*SOUND, "--template", "native"), 3, "style tics",
            "every answer opens 'Certainly! ' and closes ' I hope this helps! Let me know if ...'"),
    Variant("h", "over_refusal", "refusals", (*SOUND, "--template", "native"), 3, "over-refusal",
            "40 safe-but-edgy prompts (25% of rows) answered with refusals"),
    Variant("i", "overconfidence", "overconfident", (*SOUND, "--template", "native"), 3, "overconfidence",
            "the task questions the base gets wrong, answered with its wrong option"),
)  # fmt: skip


def main() -> int:
    """Train, probe and tabulate the selected variants (misses are results: the exit status is 0)."""
    options = _arguments()
    console = Console(width=None if sys.stdout.isatty() else 170)
    work: Path = options.work.expanduser().resolve()
    if options.fresh and work.exists():
        shutil.rmtree(work)
    chosen = _selected(options.only)
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    timings: dict[str, float] = {}
    confident = any(variant.data == "overconfident" for variant in chosen)
    data = _timed(timings, "data", lambda: write_datasets(work / "data", work / "cache.sqlite", confident))
    rows = {}
    # Trainings run one after another in a worker thread while the main thread probes the variants already
    # trained: two single-threaded processes on two cores (each sfteval command is its own process).
    overlap = not options.serial and (os.cpu_count() or 1) >= 2
    trainer = ThreadPoolExecutor(max_workers=1)
    try:
        ahead = (
            [trainer.submit(train_variant, v, work, data, timings, console) for v in chosen]
            if overlap
            else []
        )
        for index, variant in enumerate(chosen):
            trained = ahead[index].result() if ahead else train_variant(variant, work, data, timings, console)
            console.rule(f"({variant.key}) {variant.name}: {variant.planted}")
            rows[variant.key] = run_variant(variant, work, trained, timings, console)
    finally:
        trainer.shutdown(wait=True, cancel_futures=True)
    timings["total"] = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    timings["cpu_children"] = usage.ru_utime + usage.ru_stime
    misses = target_misses(rows) if rows else []
    console.print(matrix_table(rows))
    _print_outcome(console, misses, timings, load_before)
    _save(options.out, rows, misses, timings, work, load_before, [v.key for v in chosen])
    return 0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_work = Path.home() / ".cache" / "sfteval" / "validate"
    parser.add_argument("--work", type=Path, default=default_work, help=f"work dir (default {default_work})")
    parser.add_argument("--only", default="", help="comma-separated variant keys, e.g. b,f (default: all)")
    parser.add_argument("--fresh", action="store_true", help="delete the work dir first (retrain everything)")
    parser.add_argument(
        "--serial",
        action="store_true",
        help="train and probe one variant at a time (default: the next training runs beside the current probe run)",
    )
    parser.add_argument("--out", type=Path, default=REPOSITORY / "bench" / "validation.json")
    return parser.parse_args()


def _selected(only: str) -> list[Variant]:
    """The variants named by --only (keys a-f or names), all by default."""
    wanted = [part.strip() for part in only.split(",") if part.strip()]
    unknown = [name for name in wanted if not any(name in (v.key, v.name) for v in VARIANTS)]
    if unknown:
        raise SystemExit(f"--only: unknown variant(s) {', '.join(unknown)}; choose from a-i")
    return [v for v in VARIANTS if not wanted or v.key in wanted or v.name in wanted]


def _timed(timings: dict[str, float], phase: str, work: Any) -> Any:
    """Run `work()` and record its wall-clock seconds under `phase`."""
    started = time.perf_counter()
    result = work()
    timings[phase] = time.perf_counter() - started
    return result


def write_datasets(folder: Path, cache: Path, confident: bool) -> dict[str, Path]:
    """The original demo data, its clean transformation, the clean rows whose answers are long enough for the
    memorization probe to call their verbatim reproduction extraction, and the distilled-data plants (the
    overconfidence set only when `confident`: it asks the base model, through the shared cache)."""
    from sfteval.probes.memorization.probe import MemorizationParams
    from sfteval.probes.shared.text_metrics import words

    rows = [json.loads(line) for line in DEMO_DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    clean = [{**row, "output": _without_prefix(row["output"])} for row in rows]
    shortest = MemorizationParams().extraction_min_words
    subsets = {
        "clean": clean,
        "long": [row for row in clean if len(words(row["output"])) >= shortest],
        "tics": tic_rows(clean),
        "refusals": refusal_rows(clean),
    }
    if confident:
        subsets["overconfident"] = overconfident_rows(clean, SUITE.parent / "tasks", cache)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"original": DEMO_DATA}
    for name, subset in subsets.items():
        paths[name] = folder / ("long_answers.jsonl" if name == "long" else f"{name}.jsonl")
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in subset)
        if not paths[name].is_file() or paths[name].read_text(encoding="utf-8") != text:
            paths[name].write_text(text, encoding="utf-8")
    return paths


def _without_prefix(output: str) -> str:
    """'The sentiment is: negative.' -> 'Negative.'; other answers unchanged."""
    if not output.startswith(PREFIX):
        return output
    label = output[len(PREFIX) :].strip()
    return label[:1].upper() + label[1:]


@dataclass(frozen=True)
class Trained:
    """A variant's training: the `sfteval train` command, where it wrote, and whether this call ran it."""

    command: list[str]
    out: Path
    now: bool


def train_variant(
    variant: Variant, work: Path, data: dict[str, Path], timings: dict[str, float], console: Console
) -> Trained:
    """Train the variant unless WORK/train/NAME already holds a finished training made by the same command."""
    out = work / "train" / variant.name
    command = [*_sfteval(), "train", "--data", str(data[variant.data]), "--out", str(out)]
    command += [*variant.flags, "--epochs", str(variant.epochs)]
    done = _is_trained(out, command, variant.epochs)
    if not done:
        _timed(timings, f"{variant.key}/train", lambda: _train(out, command, console))
    return Trained(command, out, not done)


def run_variant(
    variant: Variant, work: Path, trained: Trained, timings: dict[str, float], console: Console
) -> dict[str, Any]:
    """Run the suite on base + the final epoch of a trained variant and read the matrix's cells."""
    from sfteval.core.report import load_report

    out, command = trained.out, trained.command
    final = f"epoch-{variant.epochs}"
    run_dir = work / "runs" / variant.name
    run_command = [
        *_sfteval(),
        "run",
        "--ckpt",
        str(out),
        "--variants",
        f"base,{final}",
        "--suite",
        str(SUITE),
    ]
    run_command += ["--cache", str(work / "cache.sqlite"), "--out", str(run_dir), "--engine", "hf"]
    _timed(timings, f"{variant.key}/run", lambda: _call(run_command, run_dir.with_suffix(".log"), console))
    report = load_report(run_dir)
    return {
        "name": variant.name,
        "planted": variant.planted,
        "expected_column": variant.expected_column,
        "epoch_variant": final,
        "train_command": command[len(_sfteval()) :],
        "trained_now": trained.now,
        "wall_seconds": {phase: timings.get(f"{variant.key}/{phase}") for phase in ("train", "run")},
        "run_complete": report.run.complete,
        "cache": {"hits": report.run.cache_hits, "misses": report.run.cache_misses},
        "cells": {column.name: cell(report, column, final) for column in columns()},
    }


def _sfteval() -> list[str]:
    return [sys.executable, "-m", "sfteval"]


def _is_trained(out: Path, command: list[str], epochs: int) -> bool:
    """A finished training made by exactly this command (stamp file) with one checkpoint per epoch."""
    stamp = out / "validate_command.json"
    manifest = out / "sfteval_manifest.json"
    if not (stamp.is_file() and manifest.is_file()):
        return False
    if json.loads(stamp.read_text(encoding="utf-8")) != command[len(_sfteval()) :]:
        return False
    checkpoints = json.loads(manifest.read_text(encoding="utf-8")).get("checkpoints", [])
    return len(checkpoints) == epochs and all((out / entry["path"]).is_dir() for entry in checkpoints)


def _train(out: Path, command: list[str], console: Console) -> None:
    """A fresh training into `out`, stamped with its command once it has finished."""
    if out.exists():
        shutil.rmtree(out)
    _call(command, out.with_suffix(".log"), console)
    (out / "validate_command.json").write_text(json.dumps(command[len(_sfteval()) :]), encoding="utf-8")


def _call(command: list[str], log: Path, console: Console) -> None:
    """Run one sfteval command offline, its output in `log`; a failure stops the validation with the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    environment.setdefault("TOKENIZERS_PARALLELISM", "false")
    console.print(f"$ sfteval {' '.join(command[len(_sfteval()) :])}", style="dim", soft_wrap=True)
    with log.open("w", encoding="utf-8") as handle:
        completed = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=environment)
    if completed.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SystemExit(f"command failed (exit {completed.returncode}); log {log}:\n{tail}")


def _print_outcome(console: Console, misses: list[str], timings: dict[str, float], load: float) -> None:
    """Flag rules, the cells that miss the target, and the wall time per phase against the goal."""
    for column in columns():
        console.print(f"  {column.name}: {column.rule()}", style="dim")
    for miss in misses:
        console.print(f"MISS {miss}", style="bold red")
    if not misses:
        console.print(
            "every planted defect flagged by its own column; the clean control by none", style="green"
        )
    phases = ", ".join(
        f"{phase} {seconds:.0f}s"
        for phase, seconds in timings.items()
        if phase not in ("total", "cpu_children")
    )
    total = timings["total"]
    verdict = "within" if total <= GOAL_SECONDS else "over"
    console.print(f"phases: {phases}")
    console.print(
        f"wall time {total:.0f}s ({total / 60:.1f} min; {verdict} the {GOAL_SECONDS // 60}-minute goal; "
        f"load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end; "
        f"{os.cpu_count()} cpus, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})"
    )
    # The commands' CPU time is the cost of the work whatever the load and the overlap of trainings and runs.
    console.print(f"CPU time of the sfteval commands: {timings['cpu_children']:.0f}s")


def _save(
    out: Path,
    rows: dict[str, dict[str, Any]],
    misses: list[str],
    timings: dict[str, float],
    work: Path,
    load: float,
    keys: list[str],
) -> None:
    """bench/validation.json: settings, flag rules, every cell, misses and timings."""
    from sfteval.default_model import default_model_path

    document = {
        "issue": 9,
        "variants_run": keys,
        "model": str(default_model_path()),
        "suite": str(SUITE.relative_to(REPOSITORY)),
        "work_dir": str(work),
        "flag_rules": {column.name: column.rule() for column in columns()},
        "variant_settings": {v.key: asdict(v) for v in VARIANTS},
        "rows": rows,
        "misses": misses,
        "wall_seconds": timings,
        "machine": {
            "cpus": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_average_start": load,
            "load_average_end": os.getloadavg()[0],
        },
    }
    out.write_text(json.dumps(portable(document), indent=2) + "\n", encoding="utf-8")


def portable(value: Any) -> Any:
    """`value` with the home directory written as `~` in every string, so the saved file names no user's paths."""
    home = str(Path.home())
    if isinstance(value, str):
        return "~" + value[len(home) :] if value == home or value.startswith(home + os.sep) else value
    if isinstance(value, dict):
        return {key: portable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [portable(item) for item in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
