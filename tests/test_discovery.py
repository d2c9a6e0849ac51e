"""Discovery of base / checkpoint / final variants in synthetic and real trainer output dirs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sfteval.core.errors import UserError
from sfteval.discovery import MANIFEST_NAME, discover


def _full(path: Path, name_or_path: str | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.safetensors").write_bytes(b"\0")
    config = {"model_type": "llama"}
    if name_or_path:
        config["_name_or_path"] = name_or_path
    (path / "config.json").write_text(json.dumps(config))
    return path


def _adapter(path: Path, base: str | None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter_model.safetensors").write_bytes(b"\0")
    (path / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": base, "peft_type": "LORA"})
    )
    return path


def _state(path: Path, epoch: float) -> None:
    (path / "trainer_state.json").write_text(json.dumps({"epoch": epoch, "global_step": 1}))


def test_hf_trainer_adapter_checkpoints_sorted_numerically(tmp_path):
    base = _full(tmp_path / "base")
    out = tmp_path / "out"
    for step, epoch in ((100, 10.0), (20, 2.0), (10, 1.0)):
        _adapter(out / f"checkpoint-{step}", str(base))
        _state(out / f"checkpoint-{step}", epoch)
    variants = discover(out)
    assert [v.name for v in variants] == ["base", "epoch-1", "epoch-2", "epoch-10"]
    assert [v.step for v in variants[1:]] == [10, 20, 100]
    assert all(v.kind == "adapter" and v.base_path == base.resolve() for v in variants[1:])
    assert variants[0].path == base.resolve()


def test_final_model_and_manifest_base(tmp_path):
    base = _full(tmp_path / "base")
    out = _full(tmp_path / "out")
    _full(out / "checkpoint-5")
    _state(out / "checkpoint-5", 1.0)
    (out / MANIFEST_NAME).write_text(json.dumps({"base_model": str(base)}))
    variants = discover(out)
    assert [(v.name, v.kind) for v in variants] == [("base", "full"), ("epoch-1", "full"), ("final", "full")]


def test_torchtune_epoch_dirs(tmp_path):
    out = tmp_path / "tt"
    _full(out / "epoch_0")
    _full(out / "epoch_1")
    variants = discover(out, base=_full(tmp_path / "base"))
    assert [(v.name, v.epoch) for v in variants] == [("base", None), ("epoch-1", 1.0), ("epoch-2", 2.0)]


def test_step_names_when_epochs_repeat(tmp_path):
    out = tmp_path / "out"
    for step in (3, 6):
        _full(out / f"checkpoint-{step}")
        _state(out / f"checkpoint-{step}", 0.5)
    assert [v.name for v in discover(out)] == ["step-3", "step-6"]


def test_base_from_config_name_or_path(tmp_path):
    base = _full(tmp_path / "base")
    out = tmp_path / "out"
    _full(out / "checkpoint-1", name_or_path=str(base))
    _state(out / "checkpoint-1", 1.0)
    assert discover(out)[0].path == base.resolve()


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: None, "directory not found"),
        (lambda p: p.mkdir(), "no model weights found"),
        (
            lambda p: _adapter(p / "checkpoint-1", "/nowhere/base"),
            "tried base_model_name_or_path='/nowhere/base'",
        ),
        (lambda p: (p.mkdir(), (p / "pytorch_model.bin").write_bytes(b"x")), "safetensors only"),
    ],
)
def test_errors(tmp_path, setup, message):
    out = tmp_path / "out"
    setup(out)
    with pytest.raises(UserError, match=message):
        discover(out)


def test_corrupt_trainer_state_names_file_and_line(tmp_path):
    out = tmp_path / "out"
    _full(out / "checkpoint-1")
    (out / "checkpoint-1" / "trainer_state.json").write_text('{\n"epoch": 1,\n oops}')
    with pytest.raises(UserError, match=r"trainer_state.json:3: invalid JSON"):
        discover(out)


def test_real_trainer_lora_epoch_checkpoints(tmp_path, tiny_model_dir):
    """A directory written by transformers' Trainer (save_strategy=epoch) with a LoRA model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    rows = [{"input_ids": torch.arange(1, 9), "labels": torch.arange(1, 9)} for _ in range(4)]
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        num_train_epochs=2,
        per_device_train_batch_size=2,
        save_strategy="epoch",
        report_to=[],
        use_cpu=True,
        logging_strategy="no",
        disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=rows).train()
    variants = discover(tmp_path / "out")
    assert [(v.name, v.kind, v.epoch) for v in variants] == [
        ("base", "full", None),
        ("epoch-1", "adapter", 1.0),
        ("epoch-2", "adapter", 2.0),
    ]
    assert variants[0].path == Path(tiny_model_dir).resolve()
