"""Frequent response openings: candidate prefixes from the manifest, or mined from a model's own outputs.

A spurious prefix is a whole phrase ("The sentiment is:"), not its first word: both sources grow an opening word by
word while nearly all of the responses that share it continue alike, and stop where they diverge.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from sfteval.probes.shared.text_metrics import opening, starts_with

MAX_WORDS = 5
"""Longest opening considered (the trainer's manifest records openings of 1-5 words)."""
CONTINUED = 0.9
"""An opening gives way to a longer one that at least this share of its responses continue with."""


def manifest_openings(manifest: Mapping[str, Any] | None, min_share: float, limit: int) -> tuple[str, ...]:
    """The most frequent training openings of 2+ words reaching `min_share`, as whole phrases, none extending another.

    The manifest lists every length of an opening ("The sentiment", "The sentiment is:", "The sentiment is:
    negative."); a shorter one gives way to a longer one that nearly all of its responses continue with, so the
    candidate is the whole fixed phrase. Candidates never extend each other, so their probabilities add up.
    """
    rows = [row for row in (manifest or {}).get("response_openings") or [] if isinstance(row, dict)]
    eligible = {
        row["opening"]: float(row.get("share", 0))
        for row in rows
        if isinstance(row.get("opening"), str)
        and len(row["opening"].split()) >= 2
        and float(row.get("share", 0)) >= min_share
    }
    whole = [
        text
        for text, share in eligible.items()
        if not any(
            other.startswith(text + " ") and longer >= CONTINUED * share for other, longer in eligible.items()
        )
    ]
    chosen: list[str] = []
    for text in sorted(whole, key=lambda text: (-eligible[text], -len(text.split()))):
        if len(chosen) < limit and not any(_nested(text, other) for other in chosen):
            chosen.append(text)
    return tuple(chosen)


def _nested(first: str, second: str) -> bool:
    """Whether one opening is the other or extends it word by word."""
    return (first + " ").startswith(second + " ") or (second + " ").startswith(first + " ")


def mine_opening(outputs: Sequence[str], min_share: float) -> str | None:
    """The variant's own fixed phrase: its most common 2-word opening when it reaches `min_share` of the outputs,
    extended word by word (up to 5) while nearly all of those outputs continue alike; as first written."""
    phrase = _most_common_opening(outputs, 2)
    if phrase is None or phrase[1] < min_share * len(outputs):
        return None
    for length in range(3, MAX_WORDS + 1):
        longer = _most_common_opening([text for text in outputs if starts_with(text, phrase[0])], length)
        if longer is None or longer[1] < CONTINUED * phrase[1]:
            break
        phrase = longer
    return phrase[0]


def _most_common_opening(outputs: Sequence[str], length: int) -> tuple[str, int] | None:
    """The most frequent `length`-word opening (case-folded for counting, as first written) and its count."""
    openings = [opening(text, length) for text in outputs if len(text.split()) >= length]
    if not openings:
        return None
    common, count = Counter(text.casefold() for text in openings).most_common(1)[0]
    return next(text for text in openings if text.casefold() == common), count
