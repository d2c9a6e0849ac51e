"""The hf engine: transformers (+ peft adapters sharing one loaded base) on CPU or one GPU (see `engine.py`)."""

from __future__ import annotations

from sfteval.engines import register_engine
from sfteval.engines.base import EngineFactory
from sfteval.engines.config import EngineConfig


@register_engine("hf")
def make_hf_factory(config: EngineConfig) -> EngineFactory:
    """The hf engine's factory (imports torch and transformers on first use)."""
    from sfteval.engines.hf.engine import HFEngineFactory

    return HFEngineFactory(config)
