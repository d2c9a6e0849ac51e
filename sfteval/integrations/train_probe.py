"""`sfteval train --probe SUITE [--gate POLICY]`: train with sfteval's callback, then show the run's report.

The callback (sfteval.integrations) probes base + each epoch checkpoint while training and rewrites one run
directory, by default the one `sfteval run --ckpt OUT --suite SUITE` would write, so a later `sfteval run` finds
every result in its cache. A checkpoint breaking a fail-rule of the gate stops training; the command then exits 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from sfteval.trainer.config import TrainConfig


@dataclass(frozen=True)
class ProbeOptions:
    """The probing flags of `sfteval train`."""

    suite: str
    out: Path | None = None
    gate: str | None = None
    gate_action: str = "stop"


def train_with_probe(config: TrainConfig, options: ProbeOptions) -> None:
    """Train with the callback attached; print the training summary, the report and the gate (exit 1 on failure)."""
    from sfteval.commands.gate import finish_gate
    from sfteval.commands.run import default_out_dir
    from sfteval.core.report import load_report
    from sfteval.integrations import SftevalCallback
    from sfteval.report.terminal import render_report
    from sfteval.suite import load_suite
    from sfteval.trainer.run_summary import print_train_summary
    from sfteval.trainer.train import run_training

    console = Console()
    out = options.out or default_out_dir(config.out, load_suite(options.suite).name, None)
    callback = SftevalCallback(  # the suite and the policy are checked here, before any training
        suite=options.suite,
        out=out,
        gate=options.gate,
        gate_action=options.gate_action,  # type: ignore[arg-type]  # ProbeSettings rejects other values
        console=console,
    )

    def attach(trainer: Any) -> None:
        callback.trainer = trainer
        trainer.add_callback(callback)

    result = run_training(config, console, setup=attach)
    print_train_summary(result, console)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    report = load_report(out)
    render_report(report, console)
    if (
        options.gate is not None
    ):  # as in `sfteval run`: the default policy shapes the advice, an explicit gate the exit
        finish_gate(report, console, junit=None, markdown=None)
