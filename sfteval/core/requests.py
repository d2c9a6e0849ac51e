"""Engine requests and results: frozen, hashable, with a stable `key()` the cache uses with the engine's fingerprint.

Probes build requests and read results; engines and the cache execute them. They live in the core so that probes
never import an engine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

FinishReason = Literal["stop", "length"]
ProgressCallback = Callable[[int], None]
"""Called with the number of requests just finished (for progress bars)."""


@dataclass(frozen=True)
class GenerationRequest:
    """Generate a continuation of `prompt` (a finished, templated string)."""

    prompt: str
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()

    def key(self) -> str:
        return "gen:" + json.dumps(asdict(self), sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class Generation:
    """One generated continuation. `text` excludes the stop string / EOS that ended it."""

    text: str
    num_tokens: int
    finish_reason: FinishReason


@dataclass(frozen=True)
class ScoreRequest:
    """Log-probability of `continuation` given `context` (both plain strings, already templated)."""

    context: str
    continuation: str
    ranks: bool = False
    top_k: int = 0

    def key(self) -> str:
        fields = asdict(self)
        if not self.top_k:
            del fields[
                "top_k"
            ]  # requests without top-k keep the cache keys they had before the field existed
        return "score:" + json.dumps(fields, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class Score:
    """Scoring result for one request.

    `token_logprobs[i]` is log P(continuation token i | context, earlier tokens); `logprob` is their sum;
    `is_greedy` is True when every continuation token is the argmax; `ranks[i]` (1 = argmax) when requested.
    `tokens` are the continuation's token strings (decoded one by one). When the request set `top_k`,
    `top_logprobs[i]` holds the k most likely (token id, log-prob) pairs at continuation position i, most likely
    first (next-token distributions, e.g. for KL to the base model).
    """

    logprob: float
    token_logprobs: tuple[float, ...]
    is_greedy: bool
    tokens: tuple[str, ...] = ()
    ranks: tuple[int, ...] | None = None
    top_logprobs: tuple[tuple[tuple[int, float], ...], ...] | None = None

    @property
    def num_tokens(self) -> int:
        return len(self.token_logprobs)


EngineRequest = GenerationRequest | ScoreRequest
EngineResult = Generation | Score
