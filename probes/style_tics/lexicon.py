"""The tic lexicon: known distilled-data phrases and words, and counting them in a response per 1,000 words.

Entries are JSONL rows `{"id", "kind", "text", "pattern"?}`. `kind` is one of opener (counted only where the
response begins), closer, phrase, hedge, word or contrast (the "not X, but Y" family, after slop-score's contrast
patterns). Without a `pattern` the text is matched as a whole phrase; a `pattern` is a case-insensitive regular
expression (e.g. a word with its inflections). Overlapping hits count once (the earliest, then the longest,
wins), so "plays a crucial role" is one tic, not two with "crucial".
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sfteval.core.errors import UserError
from sfteval.core.jsonl import read_jsonl

DATA_DIR = Path(__file__).parent / "data"
LEXICON = DATA_DIR / "lexicon.jsonl"
KINDS = ("opener", "closer", "phrase", "hedge", "word", "contrast")
_WORD = re.compile(r"\w+(?:'\w+)*")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})
_LEADING_MARKUP = re.compile(r"[\s*#>_\"'`-]*")


@dataclass(frozen=True)
class Entry:
    """One lexicon entry and its compiled expression."""

    id: str
    kind: str
    text: str
    expression: re.Pattern[str]


@dataclass(frozen=True)
class TicCount:
    """The tics found in one response: hits per entry text, and the response's word count."""

    hits: dict[str, int]
    words: int

    @property
    def total(self) -> int:
        return sum(self.hits.values())

    @property
    def rate(self) -> float | None:
        """Tics per 1,000 words (slop-score's scale); None for a response without words."""
        return 1000 * self.total / self.words if self.words else None


def load_lexicon(path: Path = LEXICON) -> tuple[Entry, ...]:
    """Validated entries; a bad row (unknown kind, bad regex, repeated id) is a UserError naming its line."""
    entries: list[Entry] = []
    seen: set[str] = set()
    for where, row in read_jsonl(path):
        entry_id, kind, text, pattern = row.get("id"), row.get("kind"), row.get("text"), row.get("pattern")
        if not isinstance(entry_id, str) or not entry_id or entry_id in seen:
            raise UserError(f"{where}: 'id' must be a non-empty string, unique in the file")
        if kind not in KINDS:
            raise UserError(f"{where}: 'kind' must be one of {', '.join(KINDS)}")
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{where}: 'text' must be a non-empty string")
        if pattern is not None and not isinstance(pattern, str):
            raise UserError(f"{where}: 'pattern' must be a string (a regular expression)")
        seen.add(entry_id)
        entries.append(Entry(entry_id, kind, text, _compile(pattern or _phrase_pattern(text), kind, where)))
    return tuple(entries)


def _phrase_pattern(text: str) -> str:
    """A whole-phrase expression for plain text: words separated by any spacing, word boundaries at the ends."""
    body = r"\s+".join(re.escape(part) for part in text.translate(_APOSTROPHES).split())
    start = r"\b" if re.match(r"\w", text) else ""
    end = r"\b" if re.search(r"\w$", text) else ""
    return f"{start}{body}{end}"


def _compile(pattern: str, kind: str, where: str) -> re.Pattern[str]:
    """Case-insensitive; an opener is anchored at the start of the response (after markup, see `count_tics`)."""
    anchored = f"^(?:{pattern})" if kind == "opener" else pattern
    if kind != "opener" and not pattern.startswith(r"\b") and re.match(r"\w", pattern):
        anchored = r"\b" + anchored
    try:
        return re.compile(anchored, re.IGNORECASE)
    except re.error as error:
        raise UserError(f"{where}: invalid 'pattern' ({error})") from None


def count_words(text: str) -> int:
    """Words of a response (runs of letters and digits, with inner apostrophes), punctuation excluded."""
    return len(_WORD.findall(text.translate(_APOSTROPHES)))


def count_tics(text: str, entries: tuple[Entry, ...]) -> TicCount:
    """Hits of every entry in `text`, overlapping hits counted once (longest first), and its word count."""
    normal = text.translate(_APOSTROPHES)
    body_start = _LEADING_MARKUP.match(normal)
    offset = body_start.end() if body_start else 0
    spans: list[tuple[int, int, str]] = []
    for entry in entries:
        if entry.kind == "opener":
            found = entry.expression.match(normal[offset:])
            spans.extend([(offset + found.start(), offset + found.end(), entry.text)] if found else [])
        else:
            spans.extend(
                (found.start(), found.end(), entry.text) for found in entry.expression.finditer(normal)
            )
    spans.sort(key=lambda span: (span[0], span[0] - span[1]))
    hits: Counter[str] = Counter()
    covered = -1
    for start, end, name in spans:
        if start >= covered:
            hits[name] += 1
            covered = end
    return TicCount(dict(hits), count_words(normal))
