"""Training runs on the tiny model: checkpoints + manifest, LoRA, accumulation equivalence, NaN stop, CLI errors."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest
from conftest import write_jsonl

from sfteval.core.errors import UserError
from sfteval.discovery import MANIFEST_NAME, discover
from sfteval.trainer.train import run_training

ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}
WORDS = "red green blue cat dog bird river city one two three".split()
MANIFEST_KEYS = {
    "format_version", "sfteval_version", "base_model", "template", "train_on", "data", "hyperparameters", "lora",
    "checkpoints", "mask_stats", "response_openings", "labels", "samples", "holdout",
}  # fmt: skip


def varied_rows(count: int, seed: int = 0) -> list[dict]:
    """Rows whose responses differ in length, so per-token and per-batch loss averaging disagree."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(1, 9))]
        rows.append(
            {"id": f"r{index}", "instruction": f"repeat {' '.join(words)}", "output": " ".join(words)}
        )
    rows += [
        {"id": f"label{index}", "instruction": f"is {WORDS[index]} a colour", "output": "yes"}
        for index in range(3)
    ]
    return rows


def test_full_run_writes_epoch_checkpoints_and_manifest(tmp_path, tiny_train_config, tiny_model_dir):
    data = write_jsonl(tmp_path / "d.jsonl", varied_rows(45))
    config = tiny_train_config([data], epochs=2, lr=1e-3)
    result = run_training(config)
    manifest = json.loads((config.out / MANIFEST_NAME).read_text())
    assert set(manifest) == MANIFEST_KEYS and manifest["format_version"] == 1
    assert manifest["base_model"] == str(tiny_model_dir.resolve()) and manifest["template"] == "native"
    assert manifest["data"][0]["rows"] == 48 and len(manifest["data"][0]["sha256"]) == 64
    stats = manifest["mask_stats"]
    assert stats["rows"] + manifest["holdout"]["rows"] == 48 and stats["rows_used"] == stats["rows"]
    assert 0 < stats["trained_tokens"] < stats["total_tokens"]
    assert [entry["path"] for entry in manifest["checkpoints"]] == result.checkpoints
    assert [entry["epoch"] for entry in manifest["checkpoints"]] == [1.0, 2.0]
    assert all(entry["loss"] > 0 for entry in manifest["checkpoints"])
    train_ids = {pair["id"] for pair in manifest["samples"]["train"]}
    heldout_ids = {pair["id"] for pair in manifest["samples"]["heldout"]}
    assert heldout_ids and not train_ids & heldout_ids and len(heldout_ids) == manifest["holdout"]["rows"]
    assert all(pair["messages"][-1]["role"] == "user" for pair in manifest["samples"]["train"])
    assert "yes" in manifest["labels"] or "yes" in {p["response"] for p in manifest["samples"]["heldout"]}
    assert manifest["response_openings"] and manifest["response_openings"][0]["count"] >= 2
    variants = discover(config.out)
    assert [(v.name, v.kind, v.epoch) for v in variants] == [("base", "full", None), ("epoch-1", "full", 1.0),
                                                             ("epoch-2", "full", 2.0)]  # fmt: skip
    assert not list(config.out.glob("checkpoint-*/optimizer.pt"))
    assert result.tokens_seen > 0 and result.final_loss is not None


def test_lora_run_saves_adapters_per_epoch(tmp_path, tiny_train_config, tiny_model_dir):
    data = write_jsonl(tmp_path / "d.jsonl", varied_rows(12))
    config = tiny_train_config([data], epochs=2, lora=True, lora_r=4, lora_targets=["q_proj", "v_proj"])
    run_training(config)
    manifest = json.loads((config.out / MANIFEST_NAME).read_text())
    assert manifest["lora"] == {"r": 4, "alpha": 32, "dropout": 0.05, "targets": ["q_proj", "v_proj"]}
    assert manifest["hyperparameters"]["learning_rate"] == 2e-4
    adapter = json.loads(
        (config.out / manifest["checkpoints"][0]["path"] / "adapter_config.json").read_text()
    )
    assert adapter["base_model_name_or_path"] == str(tiny_model_dir.resolve())
    variants = discover(config.out)
    assert [(v.name, v.kind) for v in variants] == [
        ("base", "full"),
        ("epoch-1", "adapter"),
        ("epoch-2", "adapter"),
    ]


def test_unknown_lora_target_is_a_user_error(tmp_path, tiny_train_config):
    data = write_jsonl(tmp_path / "d.jsonl", varied_rows(4))
    with pytest.raises(UserError, match="--lora-targets"):
        run_training(tiny_train_config([data], lora=True, lora_targets=["no_such_proj"]))


def first_step(tiny_train_config, data, batch_size, grad_accum, out):
    config = tiny_train_config(
        [data], batch_size=batch_size, grad_accum=grad_accum, max_steps=1, out=out, holdout=0
    )
    run_training(config)
    state = json.loads(next(out.glob("checkpoint-*/trainer_state.json")).read_text())
    return state["log_history"][0]


@pytest.mark.parametrize("batches", ["packed", "trained-logits", "full-logits"])
def test_accumulation_1x8_equals_4x2(tmp_path, tiny_train_config, monkeypatch, batches):
    """Loss is averaged per trained token over the whole accumulation window (transformers' num_items_in_batch).

    Responses differ in length (1-9 words), so a per-micro-batch mean would make 1x8 differ from 8x1. Every batch
    layout (packed rows, padded rows with logits at trained positions only, and padded with full logits for models
    without `logits_to_keep`) must agree.
    """
    if batches != "packed":
        monkeypatch.setattr("sfteval.trainer.packing.packing_mask_kind", lambda model: None)
        monkeypatch.setattr(
            "sfteval.trainer.loss.supports_logits_to_keep", lambda model: batches == "trained-logits"
        )
    data = write_jsonl(tmp_path / "d.jsonl", varied_rows(8, seed=3)[:8])
    one_by_eight = first_step(tiny_train_config, data, 1, 8, tmp_path / "a")
    four_by_two = first_step(tiny_train_config, data, 4, 2, tmp_path / "b")
    eight_by_one = first_step(tiny_train_config, data, 8, 1, tmp_path / "c")
    for other in (four_by_two, eight_by_one):
        assert other["loss"] == pytest.approx(one_by_eight["loss"], rel=1e-5)
        assert other["grad_norm"] == pytest.approx(one_by_eight["grad_norm"], rel=1e-4)


def test_non_finite_loss_stops_with_one_line_and_keeps_earlier_checkpoints(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "d.jsonl", varied_rows(6))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "sfteval.trainer", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(out),
         "--epochs", "3", "--batch-size", "16", "--lr", "1e38", "--scheduler", "constant", "--precision", "fp32"],
        capture_output=True, text=True, timeout=120, env=ONE_THREAD,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "non-finite" in errors[0] and "Traceback" not in result.stderr
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert [entry["path"] for entry in manifest["checkpoints"]] == ["checkpoint-1"]
    assert sorted(path.name for path in out.glob("checkpoint-*")) == ["checkpoint-1"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sfteval", *args], capture_output=True, text=True, timeout=120, env=ONE_THREAD
    )


@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        ('{"prompt": "a", "completion": "b"}\n{"prompt": \n', [], "d.jsonl:2: invalid JSON"),
        ('{"prompt": "a"}\n', [], "d.jsonl:1: missing field 'completion'"),
        ("", [], "no rows"),
        ('{"prompt": "a", "completion": "b"}\n', ["--template", "chatmel"], "unknown template 'chatmel'"),
        ('{"prompt": "a", "completion": "b"}\n', ["--truncation", "middle"], "truncation"),
    ],
)
def test_train_bad_input_is_one_line_exit_2(tmp_path, tiny_model_dir, rows, extra, message):
    data = tmp_path / "d.jsonl"
    data.write_text(rows, encoding="utf-8")
    result = run_cli(
        "train", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(tmp_path / "o"), *extra
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr


def test_rows_without_trained_tokens_are_refused(tmp_path, tiny_train_config):
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "the river " * 40, "completion": "yes"}])
    with pytest.raises(UserError, match="no row has trained tokens"):
        run_training(tiny_train_config([data], max_seq_len=16))


@pytest.mark.parametrize(
    ("cuda", "flags", "expected"),
    [(False, {"avx2"}, "fp32"), (False, {"avx512f", "avx512_bf16"}, "bf16"), (False, {"amx_bf16"}, "bf16")],
)
def test_auto_precision_follows_the_cpu(monkeypatch, cuda, flags, expected):
    import torch

    from sfteval.trainer import resources

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(resources, "cpu_flags", lambda: set(flags))
    assert resources.resolve_precision("auto") == expected
    assert resources.resolve_precision("fp32") == "fp32"
