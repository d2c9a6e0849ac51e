"""A scripted engine for runner tests: results depend only on the variant and the request, so records are exact."""

from __future__ import annotations

from collections.abc import Sequence

from sfteval.core.requests import Generation, GenerationRequest, ProgressCallback, Score, ScoreRequest
from sfteval.core.variants import Variant
from sfteval.engines import ENGINES
from sfteval.engines.config import EngineConfig


class ScriptedEngine:
    """Subclasses say what a variant answers (`answer`) and may watch requests (`before`); a shorter
    continuation scores higher, and the base scores 0.5 nats above every trained variant."""

    name = "scripted"
    tokenizer = None

    def __init__(self, variant: Variant) -> None:
        self.variant = variant

    @property
    def fingerprint(self) -> str:
        return f"{self.name}:{self.variant.name}:{self.variant.path}"

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[Generation]:
        self.before(requests)
        return [self.answer(request) for request in requests]

    def score(
        self, requests: Sequence[ScoreRequest], progress: ProgressCallback | None = None
    ) -> list[Score]:
        self.before(requests)
        penalty = 0.0 if self.variant.is_base else 0.5
        return [Score(-len(request.continuation) - penalty, (-1.0,), False) for request in requests]

    def before(self, requests: Sequence[GenerationRequest] | Sequence[ScoreRequest]) -> None:
        """Called with every batch before it is answered (to count requests or simulate a Ctrl-C)."""

    def answer(self, request: GenerationRequest) -> Generation:
        raise NotImplementedError


def register_scripted(name: str, engine: type[ScriptedEngine]) -> None:
    """Make `engine` available as `--engine NAME` (one engine per variant, nothing shared)."""

    class Factory:
        def __init__(self, config: EngineConfig) -> None:
            self.config = config

        def engine(self, variant: Variant) -> ScriptedEngine:
            return engine(variant)

        def close(self) -> None:
            pass

    engine.name = name
    ENGINES.add(name, Factory)
