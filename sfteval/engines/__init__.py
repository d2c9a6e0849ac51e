"""Engine registry: names -> factories that build one engine per variant. Backends import lazily (no torch here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sfteval.engines.base import Engine
from sfteval.engines.config import EngineConfig
from sfteval.registry import Registry
from sfteval.variants import Variant


class EngineFactory(Protocol):
    """Builds engines for variants, sharing what it can between them (a loaded base model, a server)."""

    def engine(self, variant: Variant) -> Engine: ...

    def close(self) -> None: ...


ENGINES: Registry[Callable[[EngineConfig], EngineFactory]] = Registry("engine")


@ENGINES.register("hf")
def _make_hf_factory(config: EngineConfig) -> EngineFactory:
    from sfteval.engines.hf import HFEngineFactory

    return HFEngineFactory(config)


@ENGINES.register("vllm")
def _make_vllm_factory(config: EngineConfig) -> EngineFactory:
    from sfteval.engines.vllm import make_factory

    return make_factory(config)


def make_engine_factory(name: str, config: EngineConfig) -> EngineFactory:
    """The factory of the engine registered as `name` (UserError with a suggestion when unknown)."""
    return ENGINES.get(name)(config)
