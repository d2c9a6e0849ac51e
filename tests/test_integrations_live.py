"""The callback's parts: which variants the live training model serves, state restored after probing, settings."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy
import pytest
import torch

from sfteval.core.errors import UserError
from sfteval.discovery import MANIFEST_NAME, discover
from sfteval.engines.config import EngineConfig
from sfteval.integrations.callback import resolve_base
from sfteval.integrations.live import LiveModelFactory, evaluation_mode, preserved_random_state
from sfteval.integrations.probing import Prober, ProbeSettings


def load(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path)


def save_checkpoint(model, tokenizer_dir: Path, path: Path) -> Path:
    from transformers import AutoTokenizer

    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(path)
    return path.resolve()


def test_a_full_model_serves_its_checkpoint_and_the_base_only_before_training(tiny_model_dir, tmp_path):
    model = load(tiny_model_dir).train()
    checkpoint = save_checkpoint(model, tiny_model_dir, tmp_path / "checkpoint-1")
    base = tiny_model_dir.resolve()
    factory = LiveModelFactory(EngineConfig(device="cpu"), model, base, checkpoint, pristine=False)
    with factory.runtime(checkpoint, None) as runtime:
        assert runtime.model is model and not model.training and not torch.is_grad_enabled()
    assert model.training
    with factory.runtime(base, None) as runtime:  # trained past the base: the base comes from disk
        assert runtime.model is not model
    before_training = LiveModelFactory(EngineConfig(device="cpu"), model, base, None, pristine=True)
    with before_training.runtime(base, None) as runtime:
        assert runtime.model is model
    other_dtype = LiveModelFactory(
        EngineConfig(device="cpu", dtype="bfloat16"), model, base, checkpoint, False
    )
    assert not other_dtype.runs_in_place
    with other_dtype.runtime(checkpoint, None) as runtime:
        assert runtime.model is not model and runtime.model.dtype == torch.bfloat16


def test_a_peft_model_serves_its_adapter_and_the_base_with_adapters_off(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(
        load(tiny_model_dir),
        LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False, task_type="CAUSAL_LM"),
    )
    checkpoint = save_checkpoint(model, tiny_model_dir, tmp_path / "checkpoint-1")
    base = tiny_model_dir.resolve()
    factory = LiveModelFactory(EngineConfig(device="cpu"), model, base, checkpoint, pristine=False)
    ids = torch.tensor([[5, 6, 7]])
    with factory.runtime(base, checkpoint) as runtime:
        assert runtime.model is model
        adapted = runtime.model(input_ids=ids).logits
    with factory.runtime(base, None) as runtime:
        assert runtime.model is model
        plain = runtime.model(input_ids=ids).logits
    with torch.no_grad():
        assert torch.equal(plain, load(tiny_model_dir)(input_ids=ids).logits)
    assert not torch.equal(adapted, plain)


def test_evaluation_mode_freezes_then_restores_each_flag(tiny_model_dir):
    model = load(tiny_model_dir).train()
    model.model.layers[0].eval()
    model.model.embed_tokens.weight.requires_grad_(False)
    training = {name: module.training for name, module in model.named_modules()}
    trainable = {name: parameter.requires_grad for name, parameter in model.named_parameters()}
    with evaluation_mode(model):
        assert not any(module.training for module in model.modules())
        assert not any(parameter.requires_grad for parameter in model.parameters())
        assert not torch.is_grad_enabled()
    assert {name: module.training for name, module in model.named_modules()} == training
    assert {name: parameter.requires_grad for name, parameter in model.named_parameters()} == trainable
    assert torch.is_grad_enabled() and not training["model.layers.0"] and training["model.layers.1"]


def test_random_states_are_restored_after_probing():
    def draw() -> tuple[float, float, float]:
        return random.random(), float(numpy.random.rand()), float(torch.rand(1))

    with preserved_random_state():
        inside = draw()
    assert draw() == inside


def test_bad_settings_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="every='weekly'"):
        ProbeSettings(every="weekly")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="gate_action='pause'"):
        ProbeSettings(gate_action="pause")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="engine vllm: max_length cannot be passed"):
        ProbeSettings(engine="vllm", engine_config=EngineConfig(max_length=512))
    with pytest.raises(UserError, match="unknown engine"):
        Prober(ProbeSettings(engine="tpu"))
    with pytest.raises(UserError, match="unknown suite 'quik'"):
        Prober(ProbeSettings(suite="quik"))
    with pytest.raises(UserError, match="gate policy file not found"):
        Prober(ProbeSettings(gate=tmp_path / "missing.yaml"))


def test_the_base_comes_from_the_argument_the_manifest_or_the_model(tiny_model_dir, tmp_path):
    model = load(tiny_model_dir)
    assert resolve_base(None, tmp_path, model) == tiny_model_dir.resolve()
    other = tmp_path / "other-base"
    other.mkdir()
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"base_model": str(other)}))
    assert resolve_base(None, tmp_path, model) == other.resolve()
    with pytest.raises(UserError, match="base=.*nowhere: directory not found"):
        resolve_base(tmp_path / "nowhere", tmp_path, model)
    model.name_or_path = "HuggingFaceTB/SmolLM2-135M"
    with pytest.raises(UserError, match="loaded from 'HuggingFaceTB/SmolLM2-135M'"):
        resolve_base(None, tmp_path / "elsewhere", model)


def test_before_the_first_checkpoint_discovery_finds_the_given_base_alone(tiny_model_dir, tmp_path):
    variants = discover(tmp_path, base=tiny_model_dir)
    assert [(variant.name, variant.path) for variant in variants] == [("base", tiny_model_dir.resolve())]
