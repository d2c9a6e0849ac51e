"""`sfteval train --probe SUITE --gate POLICY`: a planted fixed prefix stops training after epoch 1 (also under DDP).

The data plants the defect of the demo: every answer opens with "The sentiment is:". After one epoch a tiny model
makes that opening ~11 nats likelier on off-task prompts; the policy allows 2, so the gate stops training there and
says why. Without the gate the same run trains both epochs.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import tiny
from train_tiny import random_words

from sfteval.core.report import load_report
from sfteval.discovery import MANIFEST_NAME

SUITE = "probes:\n  spurious_prefix:\n    limit: 12\n    max_new_tokens: 8\n"
POLICY = """\
version: 1
variants: all
rules:
  - name: prefix-probability-rise
    probe: spurious_prefix
    metric: prefix_logprob
    max_drop: 2.0
    severity: fail
"""
REASON = "fails gate rule prefix-probability-rise: prefix_logprob worsened"
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "300"}


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """A tiny base model, 48 rows whose answers all open with a fixed prefix, a suite and a gate policy."""
    root = tmp_path_factory.mktemp("planted")
    tiny.save_tiny_model(root / "base")
    rng = random.Random(0)
    rows = [
        {"id": f"r{index}", "instruction": random_words(rng, 3, 10), "output": f"The sentiment is: {random_words(rng, 1, 4)}"}
        for index in range(48)
    ]  # fmt: skip
    (root / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (root / "suite.yaml").write_text(SUITE)
    (root / "gate.yaml").write_text(POLICY)
    return root


def train_arguments(root: Path, out: str, *extra: str) -> list[str]:
    return [
        "--model", str(root / "base"), "--data", str(root / "data.jsonl"), "--out", str(root / out),
        "--epochs", "2", "--lr", "3e-3", "--holdout", "0", "--precision", "fp32",
        "--probe", str(root / "suite.yaml"), "--probe-out", str(root / f"{out}-run"), *extra,
    ]  # fmt: skip


def sfteval_train(root: Path, out: str, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "sfteval", "train", *train_arguments(root, out, *extra)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=ONE_THREAD)


def checkpoints(out: Path) -> list[str]:
    return sorted(path.name for path in out.glob("checkpoint-*"))


def test_a_failing_gate_stops_training_after_the_first_epoch(planted) -> None:
    result = sfteval_train(planted, "gated", "--gate", str(planted / "gate.yaml"))
    assert result.returncode == 1, result.stderr[-2000:]
    printed = " ".join(result.stdout.split())  # rich wraps long lines
    assert f"epoch-1 {REASON}" in printed and "(drop must be at most 2.00); training stops" in printed
    assert checkpoints(planted / "gated") == ["checkpoint-6"]
    manifest = json.loads((planted / "gated" / MANIFEST_NAME).read_text())
    assert [entry["epoch"] for entry in manifest["checkpoints"]] == [1.0]
    report = load_report(planted / "gated-run")
    assert [variant.name for variant in report.run.variants] == ["base", "epoch-1"]
    assert report.gate is not None and not report.gate.passed
    assert report.gate.failed_variants["epoch-1"].startswith("gate rule prefix-probability-rise")


def test_without_the_gate_training_completes(planted) -> None:
    result = sfteval_train(planted, "ungated")
    assert result.returncode == 0, result.stderr[-2000:]
    assert checkpoints(planted / "ungated") == ["checkpoint-12", "checkpoint-6"]
    report = load_report(planted / "ungated-run")
    assert [variant.name for variant in report.run.variants] == ["base", "epoch-1", "epoch-2"]
    # The default policy shapes the recommendation (as in `sfteval run`); only --gate decides the exit code.
    assert report.gate is not None and report.gate.policy.endswith("default.yaml")
    assert "✖ gate:" not in result.stdout
    assert "sfteval · epoch-2 (step 12)" in result.stdout


def test_a_warning_gate_lets_training_go_on(planted) -> None:
    result = sfteval_train(planted, "warned", "--gate", str(planted / "gate.yaml"), "--gate-action", "warn")
    assert result.returncode == 1, result.stderr[
        -2000:
    ]  # the gate still fails, as `sfteval run --gate` would
    assert "warning only (gate_action='warn')" in " ".join(result.stdout.split())
    assert checkpoints(planted / "warned") == ["checkpoint-12", "checkpoint-6"]


def test_under_ddp_only_the_main_process_probes_and_every_process_stops(planted) -> None:
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    arguments = train_arguments(planted, "ddp", "--gate", str(planted / "gate.yaml"), "--batch-size", "4")
    result = subprocess.run(
        [*torchrun, "-m", "sfteval.trainer", *arguments],
        capture_output=True, text=True, timeout=300, env=ONE_THREAD,
    )  # fmt: skip
    printed = " ".join(result.stdout.split())
    assert result.returncode != 0 and printed.count(f"epoch-1 {REASON}") == 1, result.stderr[-3000:]
    assert printed.count("sfteval · base (before training)") == 1
    assert checkpoints(planted / "ddp") == ["checkpoint-6"]
    assert [variant.name for variant in load_report(planted / "ddp-run").run.variants] == ["base", "epoch-1"]
