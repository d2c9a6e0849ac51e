"""Where a quick-suite second goes: the quick suite on base + one epoch of the demo, timed by phase and by probe.

Phases come from wrapping the engine's inner functions for the run (nothing is instrumented in the product):
tokenisation (the engines' Encoder), prefill (the first forward of each generation batch), decode steps (the
KV-cached forwards after it), scoring forwards, scoring post-processing (log-softmax, ranks, top-k, token strings),
cache I/O (sqlite lookups and stores), base re-scoring passes (the runner's second pass on the base model), probe
planning and record making, and report building; "other" is the rest of the wall time. Probes are timed by running
each alone on a fresh cache (one engine call per probe, so the time is its own), next to the full run. Achieved
FLOP/s of prefill and scoring (2 × parameters × tokens) is set against the machine's peak, measured by a matmul of
the shapes those forwards multiply.

    .venv/bin/python bench/profile_quick.py [--ckpt DIR] [--variants base,epoch-1] [--threads N]
        [--batch-size 32] [--skip-probes] [--json FILE]

Without --ckpt it trains one LoRA epoch of the demo data (as `sfteval demo` does) into a temporary directory.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PHASES = (
    "tokenisation",
    "prefill",
    "decode steps",
    "scoring forwards",
    "scoring post-processing",
    "cache I/O",
    "probe plan + records",
    "base re-scoring passes",
    "report building",
)


class Clock:
    """Seconds and counts per phase; nested timings count once, in the innermost phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.tokens: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list[float]] = []

    @contextmanager
    def phase(self, name: str, tokens: int = 0) -> Iterator[None]:
        started = time.perf_counter()
        self._stack.append([0.0])
        try:
            yield
        finally:
            inner = self._stack.pop()[0]
            elapsed = time.perf_counter() - started
            self.seconds[name] += elapsed - inner
            self.tokens[name] += tokens
            self.calls[name] += 1
            if self._stack:
                self._stack[-1][0] += elapsed

    def wrap(
        self,
        owner: Any,
        attribute: str,
        name: Callable[..., str] | str,
        tokens: Callable[..., int] | None = None,
    ):
        """Replace owner.attribute by a timed version; returns a function that restores it."""
        original = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            label = name(*args, **kwargs) if callable(name) else name
            with self.phase(label, tokens(*args, **kwargs) if tokens else 0):
                return original(*args, **kwargs)

        setattr(owner, attribute, timed)
        return lambda: setattr(owner, attribute, original)


MODE = {"engine": "score"}
"""Whether the engine is generating or scoring: a forward's phase depends on it (shared-context scoring uses a KV
cache too)."""


def forward_phase(
    runtime: Any, input_ids: Any, *args: Any, past_key_values: Any = None, **kwargs: Any
) -> str:
    if MODE["engine"] == "score":
        return "scoring forwards"
    return "decode steps" if past_key_values is not None else "prefill"


def in_mode(owner: Any, attribute: str, mode: str) -> Callable[[], None]:
    """Mark calls of owner.attribute as engine work of `mode`; returns the restorer."""
    original = getattr(owner, attribute)

    def marked(*args: Any, **kwargs: Any) -> Any:
        MODE["engine"] = mode
        return original(*args, **kwargs)

    setattr(owner, attribute, marked)
    return lambda: setattr(owner, attribute, original)


def forward_tokens(runtime: Any, input_ids: Any, *args: Any, **kwargs: Any) -> int:
    return int(input_ids.numel())


def packed_tokens(runtime: Any, rows: Any, *args: Any, **kwargs: Any) -> int:
    """Tokens of a packed scoring pass, padding included (rows × width, as `forward_tokens` counts)."""
    return len(rows) * max(len(row.input_ids) for row in rows)


def packed_prefill_tokens(runtime: Any, prompts: Any) -> int:
    """Tokens of a packed prefill (rows × width of the prefix-tree rows its prompts make)."""
    from sfteval.attention_masks import pair_weight
    from sfteval.engines.hf import packed
    from sfteval.engines.hf.batches import ScoreTarget

    feeds = [(ScoreTarget(0, len(prompt) - 1, (0,), False), tuple(prompt)) for prompt in prompts]
    return packed_tokens(runtime, packed.rows_of(packed.build_packs(feeds, pair_weight(runtime.model))))


def instrument(clock: Clock) -> list[Callable[[], None]]:
    """Wrap the inner functions of one run; returns the restorers."""
    from sfteval import runner
    from sfteval.cache import CachedEngine
    from sfteval.engines import encoding
    from sfteval.engines.hf import batches, decode, packed, shared_context
    from sfteval.engines.hf.engine import HFEngine

    restores = [
        in_mode(HFEngine, "generate", "generate"),
        in_mode(HFEngine, "score", "score"),
        clock.wrap(encoding.Encoder, "pair", "tokenisation"),
        clock.wrap(encoding.Encoder, "prompt_ids", "tokenisation"),
        clock.wrap(batches.Runtime, "forward", forward_phase, forward_tokens),
        clock.wrap(batches, "score_target", "scoring post-processing"),
        clock.wrap(shared_context, "score_target", "scoring post-processing"),
        clock.wrap(packed, "_logits", "scoring forwards", packed_tokens),
        clock.wrap(decode, "prefill_packed", "prefill", packed_prefill_tokens),
        clock.wrap(packed, "score_target", "scoring post-processing"),
        clock.wrap(CachedEngine, "_lookup", "cache I/O"),
        clock.wrap(CachedEngine, "_store", "cache I/O"),
        clock.wrap(runner, "_base_pass", "base re-scoring passes"),
        clock.wrap(runner, "build_report", "report building"),
    ]
    for method in ("plan", "records", "finish", "summarize"):
        from sfteval.probes.base import Probe

        for probe_class in _probe_classes(Probe):
            if method in vars(probe_class):
                restores.append(clock.wrap(probe_class, method, "probe plan + records"))
    return restores


def _probe_classes(base: type) -> list[type]:
    found, pending = [], list(base.__subclasses__())
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def run_suite(
    ckpt: Path, suite: Any, out: Path, variants: tuple[str, ...], batch_size: int
) -> tuple[float, Any]:
    """Wall seconds of one run of `suite` on a fresh cache, and its report."""
    from rich.console import Console

    from sfteval.engines.config import EngineConfig
    from sfteval.runner import RunConfig
    from sfteval.runner import run_suite as run

    config = RunConfig(
        ckpt_dir=ckpt,
        suite=suite,
        out_dir=out,
        engine="hf",
        engine_config=EngineConfig(device="cpu", batch_size=batch_size),
        variants=variants,
    )
    started = time.perf_counter()
    result = run(config, Console(file=io.StringIO()))
    return time.perf_counter() - started, result.report


def single_probe_suite(suite: Any, name: str) -> Any:
    """The suite with only probe `name` (its parameters and generation settings unchanged)."""
    from dataclasses import replace

    entry = next(probe for probe in suite.probes if probe.name == name)
    config = suite.config.model_copy(update={"probes": {name: suite.config.probes[name]}})
    return replace(suite, config=config, probes=(entry,))


def peak_flops(tokens: int, hidden: int, intermediate: int, repeats: int = 5) -> float:
    """FLOP/s of a float32 matmul shaped like the MLP of a forward over `tokens` tokens (the machine's peak here)."""
    import torch

    left, right = torch.randn(tokens, hidden), torch.randn(hidden, intermediate)
    torch.matmul(left, right)
    started = time.perf_counter()
    for _ in range(repeats):
        torch.matmul(left, right)
    return 2 * tokens * hidden * intermediate * repeats / (time.perf_counter() - started)


def model_shape(ckpt: Path) -> tuple[int, int, int]:
    """(parameters, hidden size, intermediate size) of the base model of `ckpt`."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from sfteval.discovery import discover

    base = next(variant for variant in discover(ckpt) if variant.is_base)
    config = AutoConfig.from_pretrained(base.path)
    with __import__("torch").device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters()), config.hidden_size, config.intermediate_size


def demo_ckpt(work: Path) -> Path:
    """One LoRA epoch of the demo data with the demo's settings (what `sfteval demo` trains first)."""
    from rich.console import Console

    from sfteval.default_model import default_model_path
    from sfteval.demo import DemoConfig, demo_data_path
    from sfteval.trainer.config import TrainConfig
    from sfteval.trainer.train import run_training

    demo = DemoConfig()
    settings = TrainConfig(
        data=[demo_data_path()],
        out=work / "sft",
        model=default_model_path(),
        epochs=1,
        lr=demo.learning_rate,
        batch_size=demo.batch_size,
        lora=True,
        lora_r=demo.lora_rank,
        lora_alpha=2 * demo.lora_rank,
        lora_dropout=demo.lora_dropout,
        seed=demo.seed,
    )
    run_training(settings, Console(file=io.StringIO()))
    return work / "sft"


def table(rows: list[tuple[str, float, str]], total: float) -> str:
    lines = ["| part | seconds | share | detail |", "|---|---|---|---|"]
    for name, seconds, detail in rows:
        lines.append(f"| {name} | {seconds:.1f} | {100 * seconds / total:.0f} % | {detail} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, help="SFT output dir (default: train one demo epoch)")
    parser.add_argument("--variants", default="base,epoch-1")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--batch-size", type=int, default=32, help="engine batch size (the demo's: 32)")
    parser.add_argument("--skip-probes", action="store_true", help="no single-probe runs (phases only)")
    parser.add_argument("--json", type=Path, help="write the numbers here too")
    options = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    if options.threads:
        torch.set_num_threads(options.threads)
        os.environ["OMP_NUM_THREADS"] = str(
            options.threads
        )  # the hf engine keeps it (else it measures free cores)
    from sfteval.suite import load_suite

    work = Path(tempfile.mkdtemp(prefix="sfteval-profile-"))
    ckpt = options.ckpt or demo_ckpt(work)
    variants = tuple(name.strip() for name in options.variants.split(","))
    suite = load_suite("quick")
    load_before = os.getloadavg()[0]
    clock = Clock()
    restores = instrument(clock)
    try:
        wall, report = run_suite(ckpt, suite, work / "full", variants, options.batch_size)
    finally:
        for restore in reversed(restores):
            restore()
    measured = sum(clock.seconds.values())
    rows = [(name, clock.seconds.get(name, 0.0), _detail(clock, name)) for name in PHASES]
    rows.append(("other (runner, probes' Python outside plan/records, model loading)", wall - measured, ""))
    parameters, hidden, intermediate = model_shape(ckpt)
    peak = peak_flops(512, hidden, intermediate)
    flops = {
        name: 2 * parameters * clock.tokens[name] / clock.seconds[name]
        for name in ("prefill", "scoring forwards", "decode steps")
        if clock.seconds.get(name)
    }
    print(
        f"quick suite on {', '.join(variants)} of {ckpt}: {wall:.1f} s wall, threads {torch.get_num_threads()}, "
        f"load before {load_before:.2f}, after {os.getloadavg()[0]:.2f}"
    )
    print(table(rows, wall))
    print(f"\npeak (float32 matmul 512×{hidden} · {hidden}×{intermediate}): {peak / 1e9:.1f} GFLOP/s")
    for name, value in flops.items():
        print(
            f"{name}: {value / 1e9:.1f} GFLOP/s achieved ({100 * value / peak:.0f} % of peak; "
            f"{clock.tokens[name]} tokens in {clock.calls[name]} forwards)"
        )
    by_probe: dict[str, float] = {}
    if not options.skip_probes:
        for entry in suite.probes:
            seconds, _ = run_suite(
                ckpt, single_probe_suite(suite, entry.name), work / entry.name, variants, options.batch_size
            )
            by_probe[entry.name] = seconds
        print("\n| probe alone (fresh cache) | seconds | share of their sum |\n|---|---|---|")
        total = sum(by_probe.values())
        for name, seconds in sorted(by_probe.items(), key=lambda item: -item[1]):
            print(f"| {name} | {seconds:.1f} | {100 * seconds / total:.0f} % |")
        print(f"| sum of single-probe runs | {total:.1f} | vs the full run's {wall:.1f} s |")
    if options.json:
        options.json.write_text(
            json.dumps(
                {
                    "wall": wall,
                    "variants": variants,
                    "threads": torch.get_num_threads(),
                    "phases": dict(clock.seconds),
                    "tokens": dict(clock.tokens),
                    "calls": dict(clock.calls),
                    "peak_flops": peak,
                    "flops": flops,
                    "by_probe": by_probe,
                    "timings": report.run.timings,
                },
                indent=2,
            )
        )
    return 0


def _detail(clock: Clock, name: str) -> str:
    calls, tokens = clock.calls.get(name, 0), clock.tokens.get(name, 0)
    if not calls:
        return ""
    return f"{calls} calls" + (f", {tokens} tokens" if tokens else "")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
