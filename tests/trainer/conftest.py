"""Fixtures for the trainer and lint tests: fixture data paths, JSONL writing, a tiny training config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "trainer"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture()
def trainer_data() -> Path:
    return DATA_DIR


@pytest.fixture()
def tiny_train_config(tiny_model_dir, tmp_path):
    """A TrainConfig factory on the tiny model (fp32), writing under tmp_path."""
    from sfteval.trainer.config import TrainConfig

    def build(data: list[Path], **overrides) -> TrainConfig:
        values = {
            "model": tiny_model_dir,
            "data": data,
            "out": tmp_path / "out",
            "epochs": 1,
            "batch_size": 4,
            "precision": "fp32",  # exact comparisons must not depend on whether this CPU has bf16
        }
        values.update(overrides)
        return TrainConfig(**values)

    return build


@pytest.fixture(autouse=True)
def single_torch_thread():
    """Tiny models run fastest on one thread; on a busy 2-core machine more threads oversubscribe (~15x slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
