"""IFEval's format, combination, start/end, case and punctuation instructions (semantics of its `instructions.py`)."""

from __future__ import annotations

import json
import re

from .base import Parameter, as_count, as_relation, as_text, compare, register
from .text import count_capital_words, detect_language

#: The three answers `detectable_format:constrained_response` accepts.
CONSTRAINED_ANSWERS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


@register(
    "detectable_format:number_bullet_lists",
    "Your answer must contain exactly {num_bullets} bullet points. Use the markdown bullet points such as:\n"
    "* This is point 1. \n* This is point 2",
    Parameter("num_bullets", as_count),
)
def has_bullet_count(response: str, *, num_bullets: int) -> bool:
    """Lines opening with `*` (not `**`) or `-`, counted exactly as IFEval's two multiline patterns do."""
    starred = re.findall(r"^\s*\*[^*].*$", response, flags=re.MULTILINE)
    dashed = re.findall(r"^\s*-.*$", response, flags=re.MULTILINE)
    return len(starred) + len(dashed) == num_bullets


@register(
    "detectable_format:constrained_response",
    "Answer with one of the following options: " + ", ".join(f'"{answer}"' for answer in CONSTRAINED_ANSWERS),
)
def has_constrained_answer(response: str) -> bool:
    return any(answer in response for answer in CONSTRAINED_ANSWERS)


@register(
    "detectable_format:number_highlighted_sections",
    "Highlight at least {num_highlights} sections in your answer with markdown, i.e. *highlighted section*.",
    Parameter("num_highlights", as_count),
)
def has_highlights(response: str, *, num_highlights: int) -> bool:
    """Non-blank `*...*` spans plus non-blank `**...**` spans on one line (a bold span counts once, via the second)."""
    single = [span for span in re.findall(r"\*[^\n*]*\*", response) if span.strip("*").strip()]
    double = [span for span in re.findall(r"\*\*[^\n*]*\*\*", response) if span[2:-2].strip()]
    return len(single) + len(double) >= num_highlights


@register(
    "detectable_format:multiple_sections",
    "Your response must have {num_sections} sections. Mark the beginning of each section with {section_spliter} X, "
    "such as:\n{section_spliter} 1\n[content of section 1]\n{section_spliter} 2\n[content of section 2]",
    Parameter("section_spliter", as_text),
    Parameter("num_sections", as_count),
)
def has_sections(response: str, *, section_spliter: str, num_sections: int) -> bool:
    """At least N "SPLITTER <number>" markers (case-sensitive)."""
    pieces = re.split(rf"\s?{re.escape(section_spliter)}\s?\d+\s?", response)
    return len(pieces) - 1 >= num_sections


@register(
    "detectable_format:json_format",
    "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.",
)
def is_json(response: str) -> bool:
    """The whole response parses as JSON once one pair of code fences (```json or ```) is removed."""
    text = response.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        text = text.removeprefix(fence)
    text = text.removesuffix("```").strip()
    try:
        json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: deeply nested input, which crashes the reference.
        return False
    return True


@register(
    "detectable_format:title",
    "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.",
)
def has_title(response: str) -> bool:
    return any(title.lstrip("<").rstrip(">").strip() for title in re.findall(r"<<[^\n]+>>", response))


@register(
    "combination:two_responses",
    "Give two different responses. Responses and only responses should be separated by 6 asterisk symbols: ******.",
)
def has_two_responses(response: str) -> bool:
    """Exactly two different non-blank parts around `******`; blank parts are allowed only at either end."""
    parts = response.split("******")
    if any(not part.strip() for part in parts[1:-1]):
        return False
    answers = [part.strip() for part in parts if part.strip()]
    return len(answers) == 2 and answers[0] != answers[1]


@register(
    "combination:repeat_prompt",
    "First repeat the request word for word without change, then give your answer (1. do not say any words or "
    "characters before repeating the request; 2. the request you need to repeat does not include this sentence)",
    Parameter("prompt_to_repeat", as_text),
)
def repeats_prompt(response: str, *, prompt_to_repeat: str) -> bool:
    return response.strip().lower().startswith(prompt_to_repeat.lower())


@register(
    "startend:end_checker",
    "Finish your response with this exact phrase {end_phrase}. No other words should follow this phrase.",
    Parameter("end_phrase", as_text),
)
def ends_with_phrase(response: str, *, end_phrase: str) -> bool:
    """Case-insensitive, ignoring surrounding whitespace and double quotes around the response."""
    return response.strip().strip('"').lower().endswith(end_phrase.lower())


@register("startend:quotation", "Wrap your entire response with double quotation marks.")
def is_quoted(response: str) -> bool:
    text = response.strip()
    return len(text) > 1 and text[0] == '"' and text[-1] == '"'


@register(
    "change_case:capital_word_frequency",
    "In your response, words with all capital letters should appear {capital_relation} {capital_frequency} times.",
    Parameter("capital_frequency", as_count),
    Parameter("capital_relation", as_relation),
)
def has_capital_word_frequency(response: str, *, capital_frequency: int, capital_relation: str) -> bool:
    return compare(count_capital_words(response), capital_relation, capital_frequency)


@register(
    "change_case:english_capital", "Your entire response should be in English, and in all capital letters."
)
def is_english_capitals(response: str) -> bool:
    """All cased characters upper-case and langdetect says English (or cannot tell, which IFEval lets pass)."""
    return response.isupper() and detect_language(response) in (None, "en")


@register(
    "change_case:english_lowercase",
    "Your entire response should be in English, and in all lowercase letters. No capital letters are allowed.",
)
def is_english_lowercase(response: str) -> bool:
    return response.islower() and detect_language(response) in (None, "en")


@register("punctuation:no_comma", "In your entire response, refrain from the use of any commas.")
def has_no_comma(response: str) -> bool:
    return "," not in response
