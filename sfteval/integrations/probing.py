"""One probe of a training run: run the suite over the output dir so far, gate it, and say what the newest variant shows.

Each probe is a whole `sfteval run` over the output dir (`sfteval.runner.run_suite`, the runner's public entry
point), so the run directory is rewritten with base + every checkpoint so far; variants probed before are answered by
the result cache, keyed as `sfteval run --ckpt OUT` keys them. The hf engine runs in this process (on the live
training model, see `sfteval.integrations.live`); any other engine (vllm) runs `sfteval run` in a subprocess on the
saved checkpoint, so its GPU memory is freed when it returns.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rich.console import Console

from sfteval.core.errors import UserError
from sfteval.core.report import REPORT_FILE, Report, load_report, save_report
from sfteval.core.results import Finding
from sfteval.engines.base import EngineFactory
from sfteval.engines.config import EngineConfig
from sfteval.report.gate import DEFAULT_POLICY, LoadedPolicy, apply_gate, load_policy
from sfteval.suite import Suite, load_suite

IN_PROCESS_ENGINE = "hf"
Every = Literal["save", "epoch"]
GateAction = Literal["stop", "warn"]


@dataclass(frozen=True)
class ProbeSettings:
    """What the training callback runs: the suite, where the run directory goes, when to probe, the gate."""

    suite: str | Path = "quick"
    out: Path = Path("sfteval-run")
    base: Path | None = None
    every: Every = "save"
    gate: str | Path | None = None
    gate_action: GateAction = "stop"
    engine: str = IN_PROCESS_ENGINE
    engine_config: EngineConfig = field(default_factory=EngineConfig)

    def __post_init__(self) -> None:
        if self.every not in ("save", "epoch"):
            raise UserError(f"every={self.every!r}: probe at each 'save' or at each 'epoch' end")
        if self.gate_action not in ("stop", "warn"):
            raise UserError(f"gate_action={self.gate_action!r}: 'stop' training or only 'warn'")
        unsupported = {"max_length", "trust_remote_code"} & self.engine_config.model_fields_set
        if self.engine != IN_PROCESS_ENGINE and unsupported:
            raise UserError(
                f"engine {self.engine}: {', '.join(sorted(unsupported))} cannot be passed to `sfteval run`"
            )


@dataclass(frozen=True)
class ProbeOutcome:
    """A finished probe: the report, the variant it added, its headline metrics, findings and gate failure."""

    report: Report
    variant: str
    metrics: dict[str, float]
    findings: tuple[Finding, ...]
    gate_failure: str | None
    seconds: float


class Prober:
    """Runs the suite over a training output dir; the suite and gate policy load now, so bad input fails early."""

    def __init__(self, settings: ProbeSettings) -> None:
        from sfteval.engines import ENGINES

        ENGINES.get(settings.engine)
        self.settings = settings
        self.suite: Suite = load_suite(settings.suite)
        # As in `sfteval run`: the default policy shapes the recommendation; only an explicit gate stops training.
        self.policy: LoadedPolicy = load_policy(settings.gate or DEFAULT_POLICY)

    @property
    def in_process(self) -> bool:
        return self.settings.engine == IN_PROCESS_ENGINE

    def probe(
        self, ckpt_dir: Path, base: Path, checkpoint: Path | None, factory: EngineFactory | None
    ) -> ProbeOutcome:
        """Run the suite on base + every checkpoint in `ckpt_dir`; `checkpoint` (None: the base) is the new one."""
        started = time.perf_counter()
        if self.in_process:
            report = self._run(ckpt_dir, base, factory)
        else:
            report = run_in_subprocess(self.settings, self.suite, ckpt_dir, base)
        if self.in_process or self.settings.gate is not None:
            report = apply_gate(report, self.policy)
            save_report(report, self.settings.out / REPORT_FILE)
        _write_html(report, self.settings.out)
        variant = variant_at(report, checkpoint)
        failure = (
            None
            if report.gate is None or self.settings.gate is None
            else report.gate.failed_variants.get(variant)
        )
        return ProbeOutcome(
            report=report,
            variant=variant,
            metrics=headline_metrics(report, variant),
            findings=tuple(finding for finding in report.findings if finding.variant == variant),
            gate_failure=failure,
            seconds=time.perf_counter() - started,
        )

    def _run(self, ckpt_dir: Path, base: Path, factory: EngineFactory | None) -> Report:
        from sfteval.runner import RunConfig, run_suite

        config = RunConfig(
            ckpt_dir=ckpt_dir,
            suite=self.suite,
            out_dir=self.settings.out,
            engine=self.settings.engine,
            engine_config=self.settings.engine_config,
            base=base,
        )
        # The runner's progress bars would fight the trainer's own live display: they go to a buffer.
        result = run_suite(config, Console(file=io.StringIO()), engine_factory=factory)
        if not result.complete:
            raise KeyboardInterrupt
        return result.report


def _write_html(report: Report, out: Path) -> None:
    """report.html next to report.json, as `sfteval run` writes it."""
    from sfteval.core.run_info import ITEMS_FILE
    from sfteval.report.html import HTML_FILE, write_html
    from sfteval.report.items import load_items

    write_html(report, load_items(out / ITEMS_FILE), out / HTML_FILE)


def variant_at(report: Report, checkpoint: Path | None) -> str:
    """The name the run gave the variant saved in `checkpoint` (None: the base)."""
    if checkpoint is None:
        return "base"
    for variant in report.run.variants:
        if Path(variant.path).resolve() == checkpoint.resolve():
            return variant.name
    raise UserError(f"{checkpoint}: the checkpoint just saved holds no safetensors weights sfteval can probe")


def headline_metrics(report: Report, variant: str) -> dict[str, float]:
    """`sfteval/<probe>/<metric>[/<template>]` -> value, for every headline metric the variant has a value of."""
    metrics: dict[str, float] = {}
    for probe in report.probes:
        for info in probe.metrics:
            if not info.headline:
                continue
            for cell in probe.cells:
                value = cell.metric(info.name) if cell.variant == variant else None
                if value is not None and value.value is not None:
                    suffix = "" if cell.template == "-" else f"/{cell.template}"
                    metrics[f"sfteval/{probe.name}/{info.name}{suffix}"] = value.value
    return metrics


def _child_threads(config: EngineConfig) -> int | str:
    """The child's CPU threads: the configured choice, else this process's own count (float rounding of some
    matmuls depends on the thread count, and the child's records must equal in-process probing's bit for bit)."""
    if config.threads is not None:
        return config.threads
    import torch

    return torch.get_num_threads()


def run_in_subprocess(settings: ProbeSettings, suite: Suite, ckpt_dir: Path, base: Path) -> Report:
    """`sfteval run` in a child process on the saved checkpoints (its engine's GPU memory goes when it exits)."""
    config = settings.engine_config
    command = [
        sys.executable, "-m", "sfteval", "run", "--ckpt", str(ckpt_dir), "--base", str(base),
        "--suite", str(suite.path), "--engine", settings.engine, "--out", str(settings.out),
        "--device", config.device, "--dtype", config.dtype, "--batch-size", str(config.batch_size),
    ]  # fmt: skip
    for key, value in config.extra.items():
        command += ["--engine-arg", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    command += ["--threads", str(_child_threads(config))]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        last = (completed.stderr.strip() or completed.stdout.strip() or "no output").splitlines()[-1]
        raise UserError(
            f"sfteval run --engine {settings.engine} failed (exit {completed.returncode}): {last}"
        )
    return load_report(settings.out)
