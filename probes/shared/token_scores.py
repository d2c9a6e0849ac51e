"""Per-token scores of a continuation as a probe should read them: without the context's trailing whitespace."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sfteval.core.requests import Score


@dataclass(frozen=True)
class TokenScores:
    """Per-token log-probs (and ranks, tokens) of a continuation, without the context's trailing whitespace."""

    logprobs: tuple[float, ...]
    ranks: tuple[int, ...] | None
    tokens: tuple[str, ...]

    @property
    def logprob(self) -> float:
        """Log-probability of the whole (trimmed) continuation."""
        return sum(self.logprobs)


def own_tokens(score: Score, context: str) -> TokenScores:
    """Drop leading whitespace tokens that the engine moved over from the end of the context.

    Engines follow lm-eval and score a context's trailing whitespace as part of the continuation; after a prompt
    template (ChatML's "assistant\\n") that token sits in the untrained prompt region, so its log-prob and rank say
    nothing about the response and would add noise to every comparison.
    """
    spaces = len(context) - len(context.rstrip())
    dropped = covered = 0
    while dropped < len(score.tokens):
        token = score.tokens[dropped]
        if token.strip() or covered + len(token) > spaces:
            break
        covered += len(token)
        dropped += 1
    ranks = None if score.ranks is None else tuple(score.ranks[dropped:])
    return TokenScores(tuple(score.token_logprobs[dropped:]), ranks, tuple(score.tokens[dropped:]))


def log_sum_exp(values: Sequence[float]) -> float:
    """log Σ exp(v): the log-probability of opening with any of several mutually exclusive continuations."""
    top = max(values)
    return top + math.log(sum(math.exp(value - top) for value in values))
