"""IFEval's keyword, language, length and content instructions (semantics of google-research's `instructions.py`).

Deliberate fixes of the reference, all affecting only odd kwargs: keywords, markers and splitters are matched
literally (`re.escape`), where the reference compiles them as regular expressions (so "(draft" crashes it and "a.b"
matches "axb"); missing kwargs and thresholds below 1 are errors, where the reference silently draws random ones.
"""

from __future__ import annotations

import re

from .base import (
    LANGUAGE_NAMES,
    Parameter,
    as_count,
    as_language,
    as_letter,
    as_relation,
    as_text,
    as_words,
    compare,
    register,
    show_words,
)
from .text import count_sentences, count_words, detect_language


@register(
    "keywords:existence",
    "Include the keywords {keywords} in the response.",
    Parameter("keywords", as_words, show_words),
)
def has_keywords(response: str, *, keywords: tuple[str, ...]) -> bool:
    """Every keyword occurs, case-insensitively, anywhere (also inside longer words)."""
    return all(re.search(re.escape(keyword), response, flags=re.IGNORECASE) for keyword in keywords)


@register(
    "keywords:frequency",
    "In your response, the word {keyword} should appear {relation} {frequency} times.",
    Parameter("keyword", as_text),
    Parameter("frequency", as_count),
    Parameter("relation", as_relation),
)
def has_keyword_frequency(response: str, *, keyword: str, frequency: int, relation: str) -> bool:
    """Case-insensitive, non-overlapping occurrences of the keyword, substrings included, as IFEval counts them."""
    occurrences = len(re.findall(re.escape(keyword), response, flags=re.IGNORECASE))
    return compare(occurrences, relation, frequency)


@register(
    "keywords:forbidden_words",
    "Do not include the keywords {forbidden_words} in the response.",
    Parameter("forbidden_words", as_words, show_words),
)
def avoids_words(response: str, *, forbidden_words: tuple[str, ...]) -> bool:
    """No forbidden word occurs as a whole word, case-insensitively."""
    return not any(
        re.search(rf"\b{re.escape(word)}\b", response, flags=re.IGNORECASE) for word in forbidden_words
    )


@register(
    "keywords:letter_frequency",
    "In your response, the letter {letter} should appear {let_relation} {let_frequency} times.",
    Parameter("letter", as_letter),
    Parameter("let_frequency", as_count),
    Parameter("let_relation", as_relation),
)
def has_letter_frequency(response: str, *, letter: str, let_frequency: int, let_relation: str) -> bool:
    return compare(response.lower().count(letter), let_relation, let_frequency)


@register(
    "language:response_language",
    "Your ENTIRE response should be in {language} language, no other language is allowed.",
    Parameter("language", as_language, LANGUAGE_NAMES.__getitem__),
)
def is_in_language(response: str, *, language: str) -> bool:
    """langdetect agrees; text it cannot classify counts as followed, as in IFEval."""
    detected = detect_language(response)
    return detected is None or detected == language


@register(
    "length_constraints:number_sentences",
    "Your response should contain {relation} {num_sentences} sentences.",
    Parameter("num_sentences", as_count),
    Parameter("relation", as_relation),
)
def has_sentence_count(response: str, *, num_sentences: int, relation: str) -> bool:
    return compare(count_sentences(response), relation, num_sentences)


@register(
    "length_constraints:number_paragraphs",
    "There should be {num_paragraphs} paragraphs. Paragraphs are separated with the markdown divider: ***",
    Parameter("num_paragraphs", as_count),
)
def has_divided_paragraphs(response: str, *, num_paragraphs: int) -> bool:
    """Exactly N non-empty pieces between `***` dividers; an empty piece between two dividers fails."""
    pieces = re.split(r"\s?\*\*\*\s?", response)
    if any(not piece.strip() for piece in pieces[1:-1]):
        return False
    return sum(1 for piece in pieces if piece.strip()) == num_paragraphs


@register(
    "length_constraints:number_words",
    "Answer with {relation} {num_words} words.",
    Parameter("num_words", as_count),
    Parameter("relation", as_relation),
)
def has_word_count(response: str, *, num_words: int, relation: str) -> bool:
    return compare(count_words(response), relation, num_words)


def _nth_within_count(*, num_paragraphs: int, nth_paragraph: int, first_word: str) -> None:
    if nth_paragraph > num_paragraphs:
        raise ValueError(f"nth_paragraph {nth_paragraph} exceeds num_paragraphs {num_paragraphs}")


@register(
    "length_constraints:nth_paragraph_first_word",
    "There should be {num_paragraphs} paragraphs. Paragraphs and only paragraphs are separated with each other "
    "by two new lines as if it was '\\n\\n' in python. Paragraph {nth_paragraph} must start with word {first_word}.",
    Parameter("num_paragraphs", as_count),
    Parameter("nth_paragraph", as_count),
    Parameter("first_word", lambda value: as_text(value).lower()),
    consistency=_nth_within_count,
)
def has_paragraph_first_word(
    response: str, *, num_paragraphs: int, nth_paragraph: int, first_word: str
) -> bool:
    """Paragraphs split on blank lines; the nth piece (empty pieces still hold their place) opens with the word."""
    paragraphs = response.split("\n\n")
    count = sum(1 for paragraph in paragraphs if paragraph.strip())
    if nth_paragraph > count or not paragraphs[nth_paragraph - 1].strip():
        return False
    word = paragraphs[nth_paragraph - 1].split()[0].lstrip("'").lstrip('"')
    opening = re.split(r"[.,?!'\"]", word, maxsplit=1)[0].lower()
    return count == num_paragraphs and opening == first_word


@register(
    "detectable_content:number_placeholders",
    "The response must contain at least {num_placeholders} placeholders represented by square brackets, "
    "such as [address].",
    Parameter("num_placeholders", as_count),
)
def has_placeholders(response: str, *, num_placeholders: int) -> bool:
    return len(re.findall(r"\[.*?\]", response)) >= num_placeholders


_POSTSCRIPT_PATTERNS = {"P.S.": r"p\.\s?s\.", "P.P.S": r"p\.\s?p\.\s?s"}


@register(
    "detectable_content:postscript",
    "At the end of your response, please explicitly add a postscript starting with {postscript_marker}",
    Parameter("postscript_marker", as_text),
)
def has_postscript(response: str, *, postscript_marker: str) -> bool:
    """The marker occurs anywhere, case-insensitively (IFEval's pattern is not anchored to a line start)."""
    pattern = _POSTSCRIPT_PATTERNS.get(postscript_marker, re.escape(postscript_marker.lower()))
    return re.search(pattern, response.lower()) is not None
