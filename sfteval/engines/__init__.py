"""Engines: names -> factories that build one engine per variant, found by scanning this package.

Each engine is a subpackage whose `__init__` registers a factory with `@register_engine("name")`; the factory imports
the backend lazily, so importing this package (and scanning it) never imports torch or vLLM.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from sfteval.core.registry import Registry
from sfteval.engines.base import EngineFactory
from sfteval.engines.config import EngineConfig

FactoryMaker = Callable[[EngineConfig], EngineFactory]
ENGINES: Registry[FactoryMaker] = Registry("engine")


def register_engine(name: str) -> Callable[[FactoryMaker], FactoryMaker]:
    """Decorator for an engine package's factory maker: makes the engine nameable with `--engine NAME`."""
    return ENGINES.register(name)


def make_engine_factory(name: str, config: EngineConfig) -> EngineFactory:
    """The factory of the engine registered as `name` (UserError with a suggestion when unknown)."""
    return ENGINES.get(name)(config)


def _import_engine_packages() -> None:
    """Import every engine subpackage: each registers its factory maker."""
    for module in pkgutil.iter_modules(__path__):
        if module.ispkg:
            importlib.import_module(f"{__name__}.{module.name}")


_import_engine_packages()
