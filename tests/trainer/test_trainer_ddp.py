"""DDP: `torchrun --nproc_per_node 2 -m sfteval.trainer` on CPU (gloo) follows the single-process loss curve.

Same global batch (2 processes x 2 rows vs 1 process x 4 rows), same seed: the length-grouped sampler yields the
same order and accelerate hands consecutive micro-batches to the two ranks, and the loss is normalised by the
trained tokens of all ranks (average_tokens_across_devices), so every logged loss and gradient norm must agree
up to float summation order. Tolerance: relative 1e-4 (observed differences are about 1e-7).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_jsonl
from test_trainer_run import varied_rows

from sfteval.trainer.train import run_training

TOLERANCE = 1e-4


def log_history(out: Path) -> list[dict]:
    last = max(out.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    return [
        entry
        for entry in json.loads((last / "trainer_state.json").read_text())["log_history"]
        if "loss" in entry
    ]


@pytest.mark.skipif(
    shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun"
)
def test_two_process_ddp_matches_single_process(tmp_path, tiny_model_dir, tiny_train_config):
    data = write_jsonl(tmp_path / "d.jsonl", varied_rows(21))
    common = [
        "--model",
        str(tiny_model_dir),
        "--data",
        str(data),
        "--epochs",
        "2",
        "--lr",
        "1e-3",
        "--holdout",
        "0",
        "--precision",
        "fp32",
    ]
    torchrun = str(Path(sys.executable).parent / "torchrun")
    result = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "sfteval.trainer", *common,
         "--batch-size", "2", "--out", str(tmp_path / "ddp")],
        capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run_training(
        tiny_train_config([data], epochs=2, lr=1e-3, holdout=0, batch_size=4, out=tmp_path / "single")
    )
    distributed, single = log_history(tmp_path / "ddp"), log_history(tmp_path / "single")
    assert [entry["step"] for entry in distributed] == [entry["step"] for entry in single]
    assert len(single) == 12  # 24 rows / global batch 4 x 2 epochs
    for ours, reference in zip(distributed, single, strict=True):
        assert ours["loss"] == pytest.approx(reference["loss"], rel=TOLERANCE)
        assert ours["grad_norm"] == pytest.approx(reference["grad_norm"], rel=TOLERANCE)
    manifest = json.loads((tmp_path / "ddp" / "sfteval_manifest.json").read_text())
    assert manifest["hyperparameters"]["world_size"] == 2 and manifest["hyperparameters"]["global_batch"] == 4
