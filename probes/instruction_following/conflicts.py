"""Which instructions must not share a prompt: IFEval's conflict table plus the pairs we add, always symmetric."""

from __future__ import annotations

from .checkers import instruction_ids

#: Instructions that rule out every other instruction except the ones listed (IFEval's `INSTRUCTION_CONFLICTS`).
EXCLUSIVE: dict[str, frozenset[str]] = {
    # A fixed answer sentence leaves nothing else to constrain.
    "detectable_format:constrained_response": frozenset(),
    # A JSON document can still contain or avoid words, but not prose structure.
    "detectable_format:json_format": frozenset({"keywords:forbidden_words", "keywords:existence"}),
    "combination:two_responses": frozenset(
        {
            "keywords:forbidden_words",
            "keywords:existence",
            "language:response_language",
            "detectable_format:title",
            "punctuation:no_comma",
        }
    ),
    # Repeating the request fixes the opening; only content-neutral instructions combine with it.
    "combination:repeat_prompt": frozenset(
        {"keywords:existence", "detectable_format:title", "punctuation:no_comma"}
    ),
}

#: Pairs that conflict, with the reason; the first group is IFEval's, the second ours.
PAIRS: dict[frozenset[str], str] = {
    frozenset(pair): reason
    for pair, reason in [
        (("language:response_language", "detectable_format:multiple_sections"), "English section markers"),
        (("language:response_language", "keywords:existence"), "keywords are English"),
        (("language:response_language", "keywords:frequency"), "keywords are English"),
        (("language:response_language", "keywords:forbidden_words"), "keywords are English"),
        (("language:response_language", "startend:end_checker"), "end phrase is English"),
        (("language:response_language", "change_case:english_capital"), "asks for English"),
        (("language:response_language", "change_case:english_lowercase"), "asks for English"),
        (("length_constraints:number_paragraphs", "length_constraints:nth_paragraph_first_word"), "two paragraph schemes"),
        (("length_constraints:number_paragraphs", "length_constraints:number_sentences"), "IFEval's table"),
        (("detectable_format:multiple_sections", "detectable_format:number_highlighted_sections"), "IFEval's table"),
        (("change_case:capital_word_frequency", "change_case:english_lowercase"), "no capitals allowed"),
        (("change_case:capital_word_frequency", "change_case:english_capital"), "every word is capitalised"),
        (("change_case:english_lowercase", "change_case:english_capital"), "opposite cases"),
        (("startend:quotation", "detectable_format:title"), "IFEval's table"),
        # Ours:
        (("detectable_format:number_highlighted_sections", "detectable_format:number_bullet_lists"),
         "a *highlight* opening a line counts as a bullet"),
        (("keywords:letter_frequency", "language:response_language"), "the letter may not exist in that script"),
        (("change_case:capital_word_frequency", "language:response_language"), "the script may have no case"),
        (("length_constraints:number_words", "length_constraints:number_sentences"), "bounds drawn apart can contradict"),
        (("detectable_content:postscript", "startend:end_checker"), "both claim the end of the response"),
    ]
}  # fmt: skip


def conflicts(first: str, second: str) -> bool:
    """Whether two instruction ids must not appear in the same prompt (an id conflicts with itself)."""
    if first == second or frozenset((first, second)) in PAIRS:
        return True
    return any(
        exclusive in (first, second) and ({first, second} - {exclusive}).isdisjoint(allowed)
        for exclusive, allowed in EXCLUSIVE.items()
    )


def compatible(candidate: str, chosen: list[str]) -> bool:
    """Whether `candidate` conflicts with none of the instructions already chosen."""
    return not any(conflicts(candidate, other) for other in chosen)


def conflict_table() -> dict[str, frozenset[str]]:
    """Every instruction id mapped to the ids it conflicts with (itself included)."""
    ids = instruction_ids()
    return {first: frozenset(second for second in ids if conflicts(first, second)) for first in ids}
