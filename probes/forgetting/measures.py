"""Forgetting measures: bits per byte, a top-k lower bound of KL, per-item flips and their chance adjustment.

Pure functions of scores and 0/1 outcomes (no models, no lm-eval), so they are tested against exact references.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

# Per-document metrics that are 0/1 correctness, in the order an item's correctness is read from.
FLIP_METRICS = ("acc", "exact_match")


def bits_per_byte(logprob: float, text: str) -> float:
    """−log2 P(text) per UTF-8 byte (lm-eval's bits_per_byte for one document)."""
    return -logprob / (math.log(2) * len(text.encode("utf-8")))


def lumped_kl(reference: Sequence[tuple[int, float]], other: Sequence[tuple[int, float]]) -> float:
    """KL(reference ‖ other) over the tokens in both top-k lists plus one outcome for all other tokens.

    A lower bound of the exact KL (merging outcomes cannot increase it), equal to it when both lists hold the
    whole vocabulary.
    """
    reference_map, other_map = dict(reference), dict(other)
    shared = reference_map.keys() & other_map.keys()
    divergence = math.fsum(
        math.exp(reference_map[token]) * (reference_map[token] - other_map[token]) for token in shared
    )
    rest_reference = 1.0 - math.fsum(math.exp(reference_map[token]) for token in shared)
    rest_other = 1.0 - math.fsum(math.exp(other_map[token]) for token in shared)
    if rest_reference > 1e-9:
        divergence += rest_reference * (math.log(rest_reference) - math.log(max(rest_other, 1e-12)))
    return max(divergence, 0.0)


def mean_kl(
    reference: Sequence[Sequence[tuple[int, float]]], other: Sequence[Sequence[tuple[int, float]]]
) -> float:
    """Mean per-token lumped KL along a text scored by both models (same tokenizer, same positions)."""
    if len(reference) != len(other):
        raise ValueError(f"KL needs the same tokens: {len(reference)} vs {len(other)} positions")
    return math.fsum(map(lumped_kl, reference, other)) / len(reference)


def flips(metrics: Mapping[str, Any], base_metrics: Mapping[str, Any]) -> dict[str, int | None]:
    """`forgotten` on items the base got right, `gained` on items it got wrong (None where undefined)."""
    now, before = correct(metrics), correct(base_metrics)
    if now is None or before is None:
        return {}
    return {
        "forgotten": int(not now) if before else None,
        "gained": int(now) if not before else None,
    }


def chance_adjusted_flips(pairs: Sequence[tuple[bool, bool]], choices: int) -> tuple[float, float] | None:
    """(forgotten, gained) net of guessing, as shares of the items the base truly knew / did not know.

    Response model (Harmon et al. 2025): a model either knows an item or guesses uniformly among `choices`
    options (g = 1/choices). Items wrong before and after can only be unknown to both, so their share n00 gives
    the share unknown to both, U = n00 / (1 − g)²; of the observed 1→0 share F, U·g·(1 − g) is guessing luck, so
    the share truly forgotten is T = F / (1 − g) − U·g, and likewise for 0→1. T is divided by the share the base
    knew, K0 = (a0 − g) / (1 − g). Estimates are clipped to [0, 1]; None when K0 or 1 − K0 is not positive.
    """
    guess = 1.0 / choices
    n = len(pairs)
    if n == 0 or choices < 2:
        return None
    both_wrong = sum(1 for before, now in pairs if not before and not now) / n
    forgotten = sum(1 for before, now in pairs if before and not now) / n
    gained = sum(1 for before, now in pairs if not before and now) / n
    base_accuracy = sum(1 for before, _ in pairs if before) / n
    unknown_both = both_wrong / (1 - guess) ** 2
    known = (base_accuracy - guess) / (1 - guess)
    if known <= 0 or known >= 1:
        return None
    true_forgotten = forgotten / (1 - guess) - unknown_both * guess
    true_gained = gained / (1 - guess) - unknown_both * guess
    return clip(true_forgotten / known), clip(true_gained / (1 - known))


def correct(metrics: Mapping[str, Any]) -> bool | None:
    """The document's 0/1 correctness: the first of FLIP_METRICS it has."""
    value = next((metrics[name] for name in FLIP_METRICS if metrics.get(name) is not None), None)
    return None if value is None else bool(value)


def clip(value: float) -> float:
    return min(max(value, 0.0), 1.0)
