"""Text measures on model outputs: openings, prefix matching, entropy, repetition, n-gram overlap.

Everything works on word tokens (runs of letters/digits, or single punctuation marks, case-folded), not on a
model's tokens, so values are comparable across models and tokenizers.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence

_WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    """Case-folded word tokens: `"The sentiment is: Positive."` -> the, sentiment, is, :, positive, ."""
    return _WORD.findall(text.casefold())


def opening(text: str, count: int) -> str:
    """The first `count` whitespace-separated words of `text` as written (empty for blank text)."""
    return " ".join(text.split()[:count])


def starts_with(text: str, prefix: str) -> bool:
    """Whether `text` opens with `prefix`, word by word, ignoring case and spacing (never for an empty prefix)."""
    wanted = words(prefix)
    return bool(wanted) and words(text)[: len(wanted)] == wanted


def entropy(values: Iterable[Hashable]) -> float:
    """Shannon entropy (bits) of the empirical distribution of `values`; 0 for no values."""
    counts = Counter(values)
    total = sum(counts.values())
    return sum(count / total * math.log2(total / count) for count in counts.values()) if total else 0.0


def ngrams(tokens: Sequence[str], size: int) -> list[tuple[str, ...]]:
    """All contiguous `size`-grams of `tokens`, in order."""
    return [tuple(tokens[index : index + size]) for index in range(len(tokens) - size + 1)]


def repetition(tokens: Sequence[str], size: int = 4) -> float | None:
    """seq-rep-n (Welleck et al. 2019): 1 − distinct n-grams / n-grams; None when there is no n-gram."""
    grams = ngrams(tokens, size)
    return 1 - len(set(grams)) / len(grams) if grams else None


def distinct(tokens: Sequence[str], size: int = 2) -> float | None:
    """distinct-n (Li et al. 2016) of one response: distinct n-grams / n-grams; None when there is no n-gram."""
    grams = ngrams(tokens, size)
    return len(set(grams)) / len(grams) if grams else None


def ngram_overlap(output: str, reference: str, sizes: Sequence[int] = (4, 5, 6)) -> float | None:
    """Mean over n of the share of the reference's n-grams that the output contains (Slack & Al Moubayed 2025).

    An n longer than the reference is cut to its length, so a short reference counts only when fully reproduced;
    None for an empty reference.
    """
    reference_words, output_words = words(reference), words(output)
    if not reference_words:
        return None
    shares = []
    for size in dict.fromkeys(min(size, len(reference_words)) for size in sizes):
        wanted = ngrams(reference_words, size)
        present = set(ngrams(output_words, size))
        shares.append(sum(gram in present for gram in wanted) / len(wanted))
    return sum(shares) / len(shares)


def same_text(output: str, reference: str) -> bool:
    """Exact match up to case and spacing (a memorised response re-generated verbatim)."""
    return " ".join(output.split()).casefold() == " ".join(reference.split()).casefold()
