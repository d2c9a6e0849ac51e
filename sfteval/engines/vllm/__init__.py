"""The vllm engine: vllm.LLM with LoRA requests, prompt log-probs and tensor/data parallelism (see `engine.py`)."""

from __future__ import annotations

from sfteval.engines import register_engine
from sfteval.engines.base import EngineFactory
from sfteval.engines.config import EngineConfig


@register_engine("vllm")
def make_vllm_factory(config: EngineConfig) -> EngineFactory:
    """The vllm engine's factory, or a UserError saying how to get vLLM when it is not installed."""
    from sfteval.engines.vllm.engine import make_factory

    return make_factory(config)
