"""Run directories on the tiny model for the reliability tests: a checkpoint dir, planted pickles, the CLI in-process."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sfteval.core.interrupts import TEST_VARIABLE


def full_checkpoint(model_dir: Path, root: Path) -> Path:
    """An HF Trainer output dir whose checkpoint-5/ (epoch 1) is a full copy of `model_dir`, its base."""
    checkpoint = root / "sft" / "checkpoint-5"
    shutil.copytree(model_dir, checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(json.dumps({**config, "_name_or_path": str(model_dir)}))
    (checkpoint / "trainer_state.json").write_text(json.dumps({"epoch": 1.0, "global_step": 5}))
    return root / "sft"


class Plant:
    """Unpickling this creates `marker`: proof that a file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def plant_pickle(path: Path, marker: Path) -> Path:
    """Write a pickle at `path` whose unpickling would create `marker` (as torch.load(weights_only=False) would)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(Plant(marker)))
    return path


def pickle_only_model(model_dir: Path, target: Path, marker: Path) -> Path:
    """A copy of `model_dir` whose weights are a planted `pytorch_model.bin` instead of model.safetensors."""
    shutil.copytree(model_dir, target, ignore=shutil.ignore_patterns("*.safetensors"))
    plant_pickle(target / "pytorch_model.bin", marker)
    return target


def invoke(arguments: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run `sfteval ARGUMENTS` through the console-script entry point in this process: (exit code, stdout, stderr)."""
    from sfteval.cli import main

    monkeypatch.setattr(sys, "argv", ["sfteval", *arguments])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else (0 if code is None else 1)), captured.out, captured.err


def sfteval_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "sfteval", "run", *arguments, "--engine", "hf", "--device", "cpu"]


def if_suite(tmp_path: Path, limit: int, max_new_tokens: int) -> Path:
    path = tmp_path / "if.yaml"
    path.write_text(
        f"generation: {{max_new_tokens: {max_new_tokens}}}\nprobes:\n  instruction_following: {{limit: {limit}}}\n"
    )
    return path


def run_process(command: list[str], phase: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `command`; with `phase`, the process signals itself there (sfteval.core.interrupts.TEST_VARIABLE)."""
    environment = {key: value for key, value in os.environ.items() if key != TEST_VARIABLE}
    if phase is not None:
        environment[TEST_VARIABLE] = phase
    # A shell that starts the test suite in the background (`make test &`) ignores SIGINT, and an ignored signal
    # stays ignored across exec: restore the default so the child's Python turns Ctrl-C into KeyboardInterrupt.
    return subprocess.run(
        command,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
