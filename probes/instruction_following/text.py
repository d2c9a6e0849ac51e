"""Offline text measurements the checkers need: words, sentences, Treebank-style tokens, language.

IFEval counts sentences with NLTK's English Punkt model and capital words with `nltk.word_tokenize`; both need
NLTK data that air-gapped machines lack. This module re-implements the Punkt decision procedure (Kiss & Strunk 2006)
with a fixed English abbreviation list and a fixed list of words that start sentences, and the Penn Treebank word
splitting rules, so the counts agree with the reference on ordinary text without any downloaded data.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

# NLTK compiles its tokenizer patterns with the `regex` engine (a transformers dependency too), whose \w also
# covers combining marks: "पुस्तकालय" is one word there and four under `re`. Use it wherever NLTK does.
import regex

#: Abbreviations (lower case, final period removed) whose period does not end a sentence, as in Punkt's English model.
ABBREVIATIONS = frozenset(
    """
    mr mrs ms dr prof st jr sr rev hon gen gov sen rep lt col capt sgt maj adm cmdr
    inc ltd co corp bros messrs mfg assn dept univ
    vs etc e.g i.e cf al approx est viz
    u.s u.k u.s.a u.n e.u n.y d.c l.a a.m p.m ph.d
    jan feb mar apr jun jul aug sep sept oct nov dec
    mon tue tues wed thu thur thurs fri sat
    ave blvd mt ft fig vol no nos
    calif conn fla ill mass mich minn tenn tex wash ariz colo penn
    """.split()
)

#: Words that, capitalised after an abbreviation, ellipsis or initial, signal a new sentence (Punkt's orthographic
#: evidence: seen lower-case inside sentences and capitalised only at their start).
SENTENCE_STARTERS = frozenset(
    """
    the this that these those there then it its he she they we you his her their our your my
    but and so yet however also in on at for with as if when while after before because although
    some many most each every all what how why where who which here now today finally next
    """.split()
)

_SENTENCE_END = ".?!"
# Characters that cannot continue a word (Punkt's "non-word" class), curly quotes and guillemets included.
_NON_WORD = r"[)\";}\]*:@'({\[\u2018\u2019\u201c\u201d\xab\xbb?!]"
_MULTI_CHAR = r"(?:-{2,}|\.{2,}|(?:\.\s){2,}\.)"
_PUNKT_WORD = regex.compile(
    rf"""(
        {_MULTI_CHAR}
        |
        (?=[^(\"`{{\[:;&\#*@)}}\]\-,])\S+?
        (?=\s|$|{_NON_WORD}|{_MULTI_CHAR}|,(?=$|\s|{_NON_WORD}|{_MULTI_CHAR}))
        |
        \S
    )""",
    regex.VERBOSE,
)
_BREAK_CANDIDATE = regex.compile(rf"[{re.escape(_SENTENCE_END)}](?=(?P<after>{_NON_WORD}|\s+(?P<next>\S+)))")
_CLOSING_PUNCTUATION = regex.compile(
    r"[\"')\]}\u2018\u2019\u201c\u201d\xab\xbb]+?(?:\s+|(?=--)|$)", regex.MULTILINE
)
_NUMBER = regex.compile(r"^-?[.,]?\d[\d,.-]*\.?$")
_INITIAL = regex.compile(r"[^\W\d]\.$")
_ELLIPSIS = regex.compile(r"\.\.+$")
_INNER_PUNCTUATION = frozenset(";:,.!?")
# Punkt measures "the word before a candidate" back to the last ASCII whitespace character.
_ASCII_WHITESPACE = frozenset(" \t\n\r\x0b\x0c")


def count_words(text: str) -> int:
    """Number of `\\w+` runs, IFEval's word count (NLTK's RegexpTokenizer(r"\\w+"))."""
    return len(regex.findall(r"\w+", text))


def count_sentences(text: str) -> int:
    """Number of sentences as Punkt's English model would split the text."""
    return len(split_sentences(text))


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, split with the Punkt procedure and re-attached closing quotes/brackets."""
    return [text[start:stop] for start, stop in _realign(text, list(_raw_spans(text)))]


@dataclass(frozen=True)
class _Token:
    """A Punkt word token with the properties its decisions use."""

    text: str

    @property
    def kind(self) -> str:
        lowered = self.text.lower()
        return "##number##" if _NUMBER.match(lowered) else lowered

    @property
    def kind_without_period(self) -> str:
        kind = self.kind
        return kind[:-1] if len(kind) > 1 and kind.endswith(".") else kind

    @property
    def is_initial(self) -> bool:
        return _INITIAL.match(self.text) is not None


def _first_pass(token: _Token) -> tuple[bool, bool]:
    """(sentence break, abbreviation-or-ellipsis) from the token alone."""
    text = token.text
    if text in (".", "?", "!"):
        return True, False
    if _ELLIPSIS.match(text):
        return False, True
    if text.endswith(".") and not text.endswith(".."):
        stem = text[:-1].lower()
        if stem in ABBREVIATIONS or stem.split("-")[-1] in ABBREVIATIONS:
            return False, True
        return True, False
    return False, False


def _starts_sentence(token: _Token, token_breaks: bool) -> bool | None:
    """Orthographic evidence that `token` opens a sentence: True, False, or None when unknown."""
    if token.text in _INNER_PUNCTUATION:
        return False
    kind = token.kind_without_period if token_breaks else token.kind
    if token.text[0].isupper() and kind in SENTENCE_STARTERS:
        return True
    if token.text[0].islower():
        return False
    return None


def _breaks_after(token: _Token, following: _Token | None) -> bool:
    """Whether a sentence ends after `token`, given the token that follows it."""
    breaks, abbreviation = _first_pass(token)
    if following is None or not token.text.endswith("."):
        return breaks
    opens = _starts_sentence(following, _first_pass(following)[0])
    if abbreviation and not token.is_initial:
        return breaks or opens is True
    if token.is_initial or token.kind_without_period == "##number##":
        if opens is False:
            return False
        if opens is None and token.is_initial and following.text[0].isupper():
            return False
    return breaks


def _punkt_tokens(text: str) -> list[_Token]:
    """Punkt word tokens of every non-blank line."""
    return [_Token(word) for line in text.split("\n") if line.strip() for word in _PUNKT_WORD.findall(line)]


def _context_breaks(context: str) -> bool:
    """Whether a sentence break falls inside `context` before its last token."""
    tokens = _punkt_tokens(context)
    return any(_breaks_after(token, following) for token, following in zip(tokens, tokens[1:], strict=False))


def _candidates(text: str) -> Iterator[tuple[regex.Match[str], str]]:
    """Candidate break matches with their context; adjacent candidates ("?!", "!!!") collapse onto the last."""
    previous: tuple[regex.Match[str], int] | None = None
    for match in _BREAK_CANDIDATE.finditer(text):
        search_from, fallback = (previous[0].start(), previous[1]) if previous else (0, 0)
        before = text[search_from : match.start()]
        last_space = max((index for index, char in enumerate(before) if char in _ASCII_WHITESPACE), default=0)
        word_start = search_from + last_space + 1 if last_space else fallback
        if previous and previous[0].start() <= word_start:
            yield _with_context(text, *previous)
        previous = (match, word_start)
    if previous:
        yield _with_context(text, *previous)


def _with_context(text: str, match: regex.Match[str], word_start: int) -> tuple[regex.Match[str], str]:
    return match, text[word_start : match.start()] + match.group() + match.group("after")


def _raw_spans(text: str) -> Iterator[tuple[int, int]]:
    """Sentence spans before closing punctuation is moved back onto the sentence it ends."""
    last_break = 0
    for match, context in _candidates(text):
        if _context_breaks(context):
            yield last_break, match.end()
            last_break = match.start("next") if match.group("next") else match.end()
    yield last_break, len(text.rstrip())


def _realign(text: str, spans: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Move quotes/brackets that open a span back onto the previous sentence; drop empty spans."""
    shift = 0
    for index, (start, stop) in enumerate(spans):
        start += shift
        if index + 1 == len(spans):
            if text[start:stop]:
                yield start, stop
            continue
        next_start, next_stop = spans[index + 1]
        closing = _CLOSING_PUNCTUATION.match(text[next_start:next_stop])
        if closing:
            yield start, next_start + len(closing.group(0).rstrip())
            shift = closing.end()
        else:
            shift = 0
            if text[start:stop]:
                yield start, stop


# Penn Treebank splitting rules as applied by nltk.word_tokenize, in order; each pads a piece with spaces.
_TREEBANK_BEFORE = (
    (regex.compile(r"([«“‘„]|`+)"), r" \1 "),
    (regex.compile(r"^\""), r"``"),
    (regex.compile(r"(``)"), r" \1 "),
    (regex.compile(r"([ (\[{<])(\"|'{2})"), r"\1 `` "),
    (regex.compile(r"(?i)(?<!\w)(')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)"), r"\1 "),
    (regex.compile(r"([^.])(\.)([\]\)}>\"'»”’ ]*)\s*$"), r"\1 \2 \3 "),
    (regex.compile(r"([:,])([^\d])"), r" \1 \2"),
    (regex.compile(r"([:,])$"), r" \1 "),
    (regex.compile(r"\.{2,}"), r" \g<0> "),
    (regex.compile(r"[;@#$%&]"), r" \g<0> "),
    (regex.compile(r"[\u2012-\u2015]"), r" \g<0> "),
    (regex.compile(r"[?!]"), r" \g<0> "),
    (regex.compile(r"([^'])' "), r"\1 ' "),
    (regex.compile(r"\*"), r" \g<0> "),
    (regex.compile(r"[\]\[(){}<>]"), r" \g<0> "),
    (regex.compile(r"--"), r" -- "),
)
_TREEBANK_AFTER = (
    (regex.compile(r"([»”’])"), r" \1 "),
    (regex.compile(r"''"), " '' "),
    (regex.compile(r'"'), " '' "),
    (regex.compile(r"\s+"), " "),
    (regex.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
    (regex.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
    # NLTK compiles the contraction patterns with `re`.
    (re.compile(r"(?i)\b(can)(not)\b"), r" \1 \2 "),
    (re.compile(r"(?i)\b(d)('ye)\b"), r" \1 \2 "),
    (re.compile(r"(?i)\b(gim)(me)\b"), r" \1 \2 "),
    (re.compile(r"(?i)\b(gon)(na)\b"), r" \1 \2 "),
    (re.compile(r"(?i)\b(got)(ta)\b"), r" \1 \2 "),
    (re.compile(r"(?i)\b(lem)(me)\b"), r" \1 \2 "),
    (re.compile(r"(?i)\b(more)('n)\b"), r" \1 \2 "),
    (re.compile(r"(?i)\b(wan)(na)(?=\s)"), r" \1 \2 "),
    (re.compile(r"(?i) ('t)(is)\b"), r" \1 \2 "),
    (re.compile(r"(?i) ('t)(was)\b"), r" \1 \2 "),
)


def treebank_words(text: str) -> list[str]:
    """Word tokens as `nltk.word_tokenize` gives them, one sentence at a time (contractions and punctuation split)."""
    return [word for sentence in split_sentences(text) for word in _treebank_sentence(sentence)]


def _treebank_sentence(sentence: str) -> list[str]:
    for pattern, replacement in _TREEBANK_BEFORE:
        sentence = pattern.sub(replacement, sentence)
    sentence = f" {sentence} "
    for pattern, replacement in _TREEBANK_AFTER:
        sentence = pattern.sub(replacement, sentence)
    return sentence.split()


def count_capital_words(text: str) -> int:
    """Number of word tokens written entirely in capitals (IFEval's `capital_word_frequency` count)."""
    return sum(1 for word in treebank_words(text) if word.isupper())


@functools.lru_cache(maxsize=4096)
def detect_language(text: str) -> str | None:
    """ISO 639-1 code langdetect assigns to `text`, or None when it cannot decide.

    Seeded, so repeatable, hence cacheable: loose scoring asks again about the same variants.
    """
    from langdetect import DetectorFactory, detect
    from langdetect.lang_detect_exception import LangDetectException

    load_language_profiles()
    DetectorFactory.seed = 0
    try:
        return detect(text)
    except LangDetectException:
        return None


@functools.cache
def load_language_profiles() -> None:
    """Load langdetect's 55 language profiles now, whole: a Ctrl-C meanwhile waits for the load, then raises.

    langdetect loads them on the first `detect()` under a bare `except:` that turns KeyboardInterrupt into its own
    exception and leaves its factory with part of the profiles (French then detected as Catalan), so sfteval loads
    them itself, once, with interrupts deferred.
    """
    from langdetect.detector_factory import init_factory

    from sfteval.core.interrupts import deferred_interrupts, phase_reached

    with deferred_interrupts():
        phase_reached("language_profiles")
        init_factory()
