"""The Engine protocol: the only code that touches model weights for inference.

Engines take already-templated strings in batches (`sfteval.core.requests`) and return frozen results; a factory
builds one engine per variant and shares what it can between them (a loaded base model, a server).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from sfteval.core.requests import Generation, GenerationRequest, ProgressCallback, Score, ScoreRequest
from sfteval.core.variants import Variant


@runtime_checkable
class Engine(Protocol):
    """Batch-first inference interface shared by the hf and vllm engines and the cache."""

    name: str

    @property
    def fingerprint(self) -> str:
        """Identifies weights + adapter + dtype: equal fingerprints give equal results."""
        ...

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[Generation]: ...

    def score(
        self, requests: Sequence[ScoreRequest], progress: ProgressCallback | None = None
    ) -> list[Score]: ...


class EngineFactory(Protocol):
    """Builds engines for variants, sharing what it can between them (a loaded base model, a server)."""

    def engine(self, variant: Variant) -> Engine: ...

    def close(self) -> None: ...
