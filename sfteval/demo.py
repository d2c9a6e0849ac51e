"""`sfteval demo`: the whole product on the embedded default model, from nothing but the repository.

Steps: materialise SmolLM2-135M-Instruct from its GGUF; LoRA-SFT it for three epochs on suites/data/demo_sft.jsonl
(122 varied alpaca rows whose sentiment answers all open with "The sentiment is:", a realistic planted flaw);
run the quick suite on base + every epoch; print the report, write report.html, and say how to look further.
Training is skipped when the output directory already holds a finished run on the same data (rerun with
`--retrain`), and the suite run resumes from its cache, so a second `sfteval demo` takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from sfteval.core.errors import UserError
from sfteval.discovery import MANIFEST_NAME

DEMO_DATA = Path("data") / "demo_sft.jsonl"
DEMO_SUITE = "quick"


@dataclass(frozen=True)
class DemoConfig:
    """Where the demo writes, and how it trains (LoRA on CPU-sized settings)."""

    out: Path = Path("sfteval-demo")
    epochs: int = 3
    learning_rate: float = 1e-3
    lora_rank: int = 16
    lora_dropout: float = 0.0
    batch_size: int = 8
    engine_batch_size: int = 32
    suite: str = DEMO_SUITE
    retrain: bool = False
    seed: int = 0

    @property
    def sft_dir(self) -> Path:
        return self.out / "sft"

    @property
    def run_dir(self) -> Path:
        return self.out / "run"


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced, with wall-clock seconds per phase."""

    sft_dir: Path
    run_dir: Path
    html: Path
    complete: bool
    timings: dict[str, float]


def run_demo(config: DemoConfig, console: Console) -> DemoResult:
    """Materialise the model, train, probe, report; returns where everything is."""
    from sfteval.default_model import default_model_path

    timings: dict[str, float] = {}
    data = demo_data_path()
    console.rule("1/3 default model")
    started = time.perf_counter()
    model = default_model_path()
    console.print(f"default model: {model}")
    timings["model"] = time.perf_counter() - started
    console.rule(f"2/3 LoRA SFT on {data.name}, {config.epochs} epochs")
    started = time.perf_counter()
    _train(config, model, data, console)
    timings["train"] = time.perf_counter() - started
    console.rule(f"3/3 {config.suite} suite on base + every epoch")
    started = time.perf_counter()
    report_complete, html = _probe(config, console)
    timings["probe"] = time.perf_counter() - started
    return DemoResult(config.sft_dir, config.run_dir, html, report_complete, timings)


def demo_data_path() -> Path:
    """suites/data/demo_sft.jsonl of the checkout (or installed suites data)."""
    from sfteval.core.shipped import suite_directories

    for directory in suite_directories():
        if (directory / DEMO_DATA).is_file():
            return directory / DEMO_DATA
    raise UserError(
        f"the demo dataset suites/{DEMO_DATA} is missing", hint="run the demo from a full checkout"
    )


def is_trained(sft_dir: Path, data: Path, epochs: int) -> bool:
    """Whether `sft_dir` holds a finished LoRA run with one checkpoint per epoch on exactly this data."""
    manifest_path = sft_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        return False
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        hashes = [entry["sha256"] for entry in manifest["data"]]
        checkpoints = manifest["checkpoints"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    complete = all((sft_dir / entry["path"]).is_dir() for entry in checkpoints)
    return hashes == [digest] and len(checkpoints) == epochs and complete


def _train(config: DemoConfig, model: Path, data: Path, console: Console) -> None:
    """LoRA SFT with the trainer's API, unless a finished identical run is already there."""
    if not config.retrain and is_trained(config.sft_dir, data, config.epochs):
        console.print(f"already trained: {config.sft_dir} (pass --retrain to train again)")
        return
    from sfteval.trainer.config import TrainConfig
    from sfteval.trainer.resources import use_free_cores
    from sfteval.trainer.run_summary import print_train_summary
    from sfteval.trainer.train import run_training

    use_free_cores()
    settings = TrainConfig(
        data=[data],
        out=config.sft_dir,
        model=model,
        epochs=config.epochs,
        lr=config.learning_rate,
        batch_size=config.batch_size,
        lora=True,
        lora_r=config.lora_rank,
        lora_alpha=2 * config.lora_rank,
        lora_dropout=config.lora_dropout,
        seed=config.seed,
    )
    print_train_summary(run_training(settings, console), console)


def _probe(config: DemoConfig, console: Console) -> tuple[bool, Path]:
    """Run the suite on base + epochs, gate it with the default policy (the verdict only: the demo's exit code
    stays 0), print the report, write report.html next to report.json."""
    from sfteval.core.report import REPORT_FILE, save_report
    from sfteval.core.run_info import ITEMS_FILE
    from sfteval.engines.config import EngineConfig
    from sfteval.report.gate import DEFAULT_POLICY, apply_gate, load_policy
    from sfteval.report.html import HTML_FILE, write_html
    from sfteval.report.items import load_items
    from sfteval.report.terminal import render_report
    from sfteval.runner import RunConfig, run_suite
    from sfteval.suite import load_suite

    run = RunConfig(
        ckpt_dir=config.sft_dir,
        suite=load_suite(config.suite),
        out_dir=config.run_dir,
        engine="hf",
        engine_config=EngineConfig(batch_size=config.engine_batch_size, threads="auto"),
    )
    result = run_suite(run, console)
    report = apply_gate(result.report, load_policy(DEFAULT_POLICY))
    save_report(report, config.run_dir / REPORT_FILE)
    render_report(report, console)
    html = write_html(report, load_items(config.run_dir / ITEMS_FILE), config.run_dir / HTML_FILE)
    return result.complete, html


def next_steps(result: DemoResult) -> list[str]:
    """The commands to look further at what the demo produced."""
    run = result.run_dir
    return [
        f"sfteval report {run} --detail              # every table, finding and note (--html out.html: a page)",
        f"open {result.html}                         # charts, findings and sample outputs",
        f"sfteval gate {run} --policy default        # CI gate: exit 1 when a fail-rule breaks",
        f"sfteval diff {run} {run} --variant epoch-1:epoch-3   # what changed between two checkpoints",
        f"sfteval inspect {result.sft_dir}           # the checkpoints the run found",
    ]
