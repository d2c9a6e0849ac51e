"""Engine fingerprints: stable for equal content, changed by any retrained tensor, cheap on large files."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from sfteval.core.errors import UserError
from sfteval.engines.fingerprint import FILE_SAMPLE_BYTES, TENSOR_SAMPLE_BYTES, fingerprint_model


def fingerprint(*directories: Path, dtype: str = "float32", engine: str = "hf") -> str:
    return fingerprint_model(list(directories), dtype=dtype, engine=engine)


def edit_weights(directory: Path, name: str, delta: float) -> None:
    path = directory / "model.safetensors"
    tensors = load_file(path)
    tensors[name] = tensors[name] + delta
    save_file(tensors, path, metadata={"format": "pt"})


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


def test_stable_and_independent_of_location(tiny_model_dir, model_copy):
    assert fingerprint(tiny_model_dir) == fingerprint(tiny_model_dir)
    assert fingerprint(model_copy) == fingerprint(tiny_model_dir)


@pytest.mark.parametrize(
    "name", ["model.embed_tokens.weight", "model.layers.1.mlp.down_proj.weight", "model.norm.weight"]
)
def test_changes_when_any_tensor_changes(tiny_model_dir, model_copy, name):
    edit_weights(model_copy, name, delta=1e-3)
    assert fingerprint(model_copy) != fingerprint(tiny_model_dir)


def test_changes_with_config_dtype_engine_and_adapter(tiny_model_dir, model_copy, tmp_path):
    original = fingerprint(tiny_model_dir)
    assert fingerprint(tiny_model_dir, dtype="bfloat16") != original
    assert fingerprint(tiny_model_dir, engine="vllm") != original
    adapter_one, adapter_two = tmp_path / "adapter-one", tmp_path / "adapter-two"
    for seed, adapter in enumerate((adapter_one, adapter_two)):
        adapter.mkdir()
        (adapter / "adapter_config.json").write_text(json.dumps({"r": 4}))
        torch.manual_seed(seed)
        save_file({"lora_B.weight": torch.randn(8, 4)}, adapter / "adapter_model.safetensors")
    with_one, with_two = fingerprint(tiny_model_dir, adapter_one), fingerprint(tiny_model_dir, adapter_two)
    assert len({original, with_one, with_two}) == 3
    config = json.loads((model_copy / "config.json").read_text())
    (model_copy / "config.json").write_text(json.dumps({**config, "rope_theta": 1234.0}))
    assert fingerprint(model_copy) != original


def write_large_file(directory: Path, data: bytearray) -> Path:
    """A safetensors file with one uint8 tensor holding `data` (written by hand: header + raw bytes)."""
    header = json.dumps(
        {"big": {"dtype": "U8", "shape": [len(data)], "data_offsets": [0, len(data)]}}
    ).encode()
    directory.mkdir(exist_ok=True)
    path = directory / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(data))
    return path


def test_samples_instead_of_reading_whole_files(tmp_path):
    """Only sampled windows are read: a byte far from every window leaves the hash alone, one inside changes it."""
    size = 8 * 1024 * 1024
    data = bytearray(size)
    write_large_file(tmp_path / "model", data)
    original = fingerprint(tmp_path / "model")
    data[size // 4] = 1
    write_large_file(tmp_path / "model", data)
    assert fingerprint(tmp_path / "model") == original
    data[size // 2] = 1
    write_large_file(tmp_path / "model", data)
    assert fingerprint(tmp_path / "model") != original
    assert 3 * FILE_SAMPLE_BYTES + 3 * TENSOR_SAMPLE_BYTES < size // 10


def test_bad_directories_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        fingerprint(tmp_path / "missing")
    with pytest.raises(UserError, match="no \\*.safetensors"):
        fingerprint(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(UserError, match="model.safetensors: not a safetensors file"):
        fingerprint(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", 2) + b"[]")
    with pytest.raises(UserError, match="unreadable safetensors header"):
        fingerprint(tmp_path)
