"""Learned phrases: what a variant says far more often than its base on the same prompts.

Candidates per response (Kobak et al.'s "excess words", with the base model on the same prompts as the reference
instead of a pre-LLM corpus): word 1-4-grams within a sentence with at least one content word, the opening sentence and the closing
sentence (and the closing two sentences, so a two-sentence sign-off is one phrase). A phrase's rate is the share of
responses that contain it (or open / close with it). The rate ratio variant / base gets a 95% Katz log interval with
0.5 added to every count, so a phrase the base never uses still gets a finite ratio. A phrase is learned when it
occurs in at least `min_count` responses and its interval lies above `min_ratio`. Learned phrases are ranked by the
interval's lower bound; a phrase nested in a higher-ranked one that it barely occurs without is folded into it, so
"I hope this helps!" is reported once, not with each of its n-grams, and overlapping n-grams that nearly always
occur together are joined into the longer phrase they form ("i'm sorry but i can't").
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

MAX_NGRAM = 4
MAX_SENTENCE_WORDS = 14
"""Longer opening / closing sentences are content, not a stock phrase."""
NESTED = 0.9
"""A phrase inside a higher-ranked one is folded into it when at least this share of its uses are inside it."""
TRAIN_SHARE_FLOOR = 0.02
"""Training shares below this are not kept in item records (a finding says "under 2%")."""
_Z = 1.959963984540054
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_TOKEN = re.compile(r"\w+(?:'\w+)*")
STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be because been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here hers
    him his how i if in into is it its itself just me more most my no nor not now of off on once only or other our
    out over own same she should so some such than that the their them then there these they this those through to
    too under until up very was we were what when where which while who whom why will with would you your yours
    s t don't it's i'm you're that's there's isn't""".split()
)


@dataclass(frozen=True)
class Phrase:
    """A candidate: its kind (ngram, opener, closer), normalised key and words, and the text as first written."""

    kind: str
    key: str
    text: str
    words: tuple[str, ...]


@dataclass(frozen=True)
class LearnedPhrase:
    """A phrase's counts in the variant's and the base's responses and its rate ratio with a 95% interval."""

    phrase: Phrase
    count: int
    total: int
    base_count: int
    base_total: int
    ratio: float
    low: float
    high: float

    @property
    def share(self) -> float:
        return self.count / self.total

    @property
    def base_share(self) -> float:
        return self.base_count / self.base_total


def tokens(text: str) -> tuple[str, ...]:
    """Case-folded word tokens (punctuation dropped), for n-grams and nesting."""
    return tuple(_TOKEN.findall(text.casefold().replace("\u2019", "'")))


def sentences(text: str) -> list[str]:
    """Sentences split after . ! ? and at line breaks, blank ones dropped."""
    return [part.strip() for part in _SENTENCE_END.split(text.strip()) if part.strip()]


def response_phrases(text: str) -> dict[str, Phrase]:
    """Every candidate phrase of one response, by key (each counted once per response)."""
    found: dict[str, Phrase] = {}
    parts = sentences(text)
    if parts:
        for kind, sentence in (("opener", parts[0]), ("closer", parts[-1])):
            _add_sentence(found, kind, sentence)
        if len(parts) >= 3:
            _add_sentence(found, "closer", " ".join(parts[-2:]))
    for part in parts:
        words = tokens(part)
        for size in range(1, MAX_NGRAM + 1):
            for start in range(len(words) - size + 1):
                gram = words[start : start + size]
                if (
                    any(word not in STOPWORDS and not word.isdigit() for word in gram)
                    and len("".join(gram)) > 2
                ):
                    key = "ngram:" + " ".join(gram)
                    found.setdefault(key, Phrase("ngram", key, " ".join(gram), gram))
    return found


def _add_sentence(found: dict[str, Phrase], kind: str, sentence: str) -> None:
    words = tokens(sentence)
    if 0 < len(words) <= MAX_SENTENCE_WORDS:
        key = f"{kind}:" + " ".join(sentence.casefold().split())
        found.setdefault(key, Phrase(kind, key, " ".join(sentence.split()), words))


def phrase_counts(texts: Iterable[str]) -> tuple[Counter[str], dict[str, Phrase]]:
    """In how many of `texts` each phrase occurs, and each phrase as first seen."""
    counts: Counter[str] = Counter()
    first: dict[str, Phrase] = {}
    for text in texts:
        phrases = response_phrases(text)
        counts.update(phrases.keys())
        for key, phrase in phrases.items():
            first.setdefault(key, phrase)
    return counts, first


def rate_ratio(count: int, total: int, base_count: int, base_total: int) -> tuple[float, float, float]:
    """Ratio of two rates with a 95% Katz log interval, 0.5 added to each count (Haldane)."""
    a, n, b, m = count + 0.5, total + 0.5, base_count + 0.5, base_total + 0.5
    ratio = (a / n) / (b / m)
    spread = _Z * math.sqrt(max(1 / a - 1 / n + 1 / b - 1 / m, 0.0))
    return ratio, ratio * math.exp(-spread), ratio * math.exp(spread)


def learned_phrases(
    outputs: Sequence[str], base_outputs: Sequence[str], min_count: int = 3, min_ratio: float = 1.0
) -> list[LearnedPhrase]:
    """The variant's phrases whose rate is credibly above the base's (see the module docstring), ranked."""
    if not outputs or not base_outputs:
        return []
    counts, first = phrase_counts(outputs)
    base_counts, _ = phrase_counts(base_outputs)
    learned = [
        found
        for key, count in counts.items()
        if count >= min_count
        and (
            found := _learned(first[key], count, len(outputs), base_counts.get(key, 0), len(base_outputs))
        ).low
        > min_ratio
    ]
    kept = _fold_nested(_ranked(learned))
    joined = _join_overlapping(kept, outputs, base_outputs)
    return kept if joined == kept else _fold_nested(_ranked(joined))


def _learned(phrase: Phrase, count: int, total: int, base_count: int, base_total: int) -> LearnedPhrase:
    return LearnedPhrase(
        phrase, count, total, base_count, base_total, *rate_ratio(count, total, base_count, base_total)
    )


def _ranked(learned: Sequence[LearnedPhrase]) -> list[LearnedPhrase]:
    """By the interval's lower bound; ties: longer phrases, closers, openers, then n-grams, then more uses."""
    kind_order = {"closer": 0, "opener": 1, "ngram": 2}
    return sorted(
        learned,
        key=lambda p: (-p.low, -len(p.phrase.words), kind_order[p.phrase.kind], -p.count, p.phrase.key),
    )


def _join_overlapping(
    kept: Sequence[LearnedPhrase], outputs: Sequence[str], base_outputs: Sequence[str]
) -> list[LearnedPhrase]:
    """Join two n-grams where the second starts with (at least two of) the last words of the first into one phrase,
    when nearly all their uses are that phrase ("i'm sorry but i" + "but i can't" -> "i'm sorry but i can't")."""
    joined = list(kept)
    for _ in range(len(kept)):
        found = next(
            (
                (first, second, words)
                for first in joined
                for second in joined
                if first is not second
                and first.phrase.kind == second.phrase.kind == "ngram"
                and (words := _overlap(first.phrase.words, second.phrase.words))
                and _containing(outputs, words) >= NESTED * max(first.count, second.count)
            ),
            None,
        )
        if found is None:
            break
        first, second, words = found
        phrase = Phrase("ngram", "ngram:" + " ".join(words), " ".join(words), words)
        merged = _learned(
            phrase,
            _containing(outputs, words),
            len(outputs),
            _containing(base_outputs, words),
            len(base_outputs),
        )
        joined = [merged if p is first else p for p in joined if p is not second]
    return joined


def _overlap(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    """first + the rest of second, when second starts with two or more of first's last words (longest overlap);
    empty otherwise."""
    for size in range(min(len(first), len(second) - 1), 1, -1):
        if first[-size:] == second[:size]:
            return first + second[size:]
    return ()


def _containing(texts: Sequence[str], words: tuple[str, ...]) -> int:
    """How many texts hold `words` as a run within one sentence."""
    return sum(any(_inside(words, part) for part in _sentence_tokens(text)) for text in texts)


@functools.lru_cache(maxsize=4096)
def _sentence_tokens(text: str) -> tuple[tuple[str, ...], ...]:
    return tuple(tokens(part) for part in sentences(text))


def _fold_nested(ranked: Sequence[LearnedPhrase]) -> list[LearnedPhrase]:
    """Drop a phrase inside a kept one that it rarely occurs without; a longer phrase that (nearly always) carries
    kept ones takes the place of the first of them and the others go."""
    kept: list[LearnedPhrase] = []
    for candidate in ranked:
        words = candidate.phrase.words
        if any(_inside(words, k.phrase.words) and k.count >= NESTED * candidate.count for k in kept):
            continue
        carried = [
            index
            for index, k in enumerate(kept)
            if _inside(k.phrase.words, words) and candidate.count >= NESTED * k.count
        ]
        if carried:
            kept[carried[0]] = candidate
            kept = [k for index, k in enumerate(kept) if index not in carried[1:]]
        else:
            kept.append(candidate)
    return kept


def _inside(part: tuple[str, ...], whole: tuple[str, ...]) -> bool:
    """Whether `part` occurs as a contiguous run of words in `whole` (equal words count: an n-gram that is a whole
    closing sentence is that sentence)."""
    size = len(part)
    return 0 < size <= len(whole) and any(
        whole[start : start + size] == part for start in range(len(whole) - size + 1)
    )


def training_shares(texts: Sequence[str]) -> dict[str, float]:
    """Share of the training responses that contain (or open / close with) each phrase."""
    counts, _ = phrase_counts(texts)
    return {key: count / len(texts) for key, count in counts.items()} if texts else {}


def present_shares(output: str, shares: Mapping[str, float], floor: float) -> dict[str, float]:
    """The training shares (at least `floor`) of the phrases present in one output, to keep in its record."""
    return {key: round(shares[key], 4) for key in response_phrases(output) if shares.get(key, 0.0) >= floor}
