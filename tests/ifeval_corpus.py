"""Generated cases for the IFEval agreement test: documents, their transformations and each type's kwargs."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from sfteval.probes.instruction_following import text
from sfteval.probes.instruction_following.checkers import instruction_ids


@dataclass(frozen=True)
class Case:
    label: str
    instruction_id: str
    kwargs: dict[str, Any]
    response: str


SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Water boils at 100 degrees Celsius at sea level.",
    "However, the results were mixed, and the team kept testing.",
    "Is this the right answer?",
    "What a wonderful day it was!",
    "Dr. Smith arrived at 5 p.m. on Monday.",
    "Prices rose 3.5 percent, e.g. for bread and milk.",
    "It works... mostly.",
    "They visited the U.S. last year.",
    "NASA launched a NEW rocket today.",
    "I DON'T think it's ready; we CANNOT ship it.",
    "The café served crème brûlée — delicious.",
    "Use the keyword banana twice: banana.",
    "Section 2 covers the details.",
    "Fill in [name] and [address] before sending.",
    'She said "hello" and left.',
    "Lists: apples, pears, plums.",
    "P.S. Don't forget the milk.",
    "my answer is yes.",
    "Any other questions?",
]
FOREIGN = {
    "es": "El tren sale de la estación a las nueve de la mañana y llega a Madrid por la tarde.",
    "fr": "La bibliothèque ouvre à neuf heures du matin et ferme à six heures du soir.",
    "de": "Wir freuen uns darauf, Sie nächste Woche auf der Konferenz in Berlin zu treffen.",
    "it": "Il treno per Roma parte dal binario quattro tra dieci minuti.",
    "pt": "O museu é gratuito para crianças com menos de doze anos de idade.",
    "ru": "Поезд в Москву отправляется с четвёртой платформы через десять минут.",
    "ja": "東京は日本の首都であり、多くの人々が毎日電車で通勤しています。",
    "hi": "पुस्तकालय सुबह नौ बजे खुलता है और शाम छह बजे बंद होता है।",
    "ko": "도서관은 아침 아홉 시에 문을 열고 저녁 여섯 시에 문을 닫습니다.",
    "fi": "Kirjasto aukeaa aamulla yhdeksältä ja sulkeutuu illalla kuudelta.",
}
ADVERSARIAL = [
    "", " ", "\n", "\n\n", "*", "**", "***", "******", "-", "* ", "*\n* item", "- a\n-b\n--- \n* c\n** d",
    "  * indented\n\t- tabbed\n*not a bullet*\n**bold line**", "***\n***", "a *** b *** c", "a\n***\n\n***\nb",
    '{"a": 1}', '```json\n{"a": [1, 2]}\n```', "```\n[1, 2]\n```", "```JSON\n{}\n```", 'Here it is:\n```json\n{"a": 1}\n```',
    '{"a": 1,}', "NaN", '"just a string"', "```json```", "```json\n```", '  {"nested": {"x": [true, null]}}  ',
    "First answer.\n******\nSecond answer.", "Same.\n******\nSame.", "******\nA\n******\nB\n******", "A\n******\n\n******\nB",
    '"Quoted answer."', '  "x"  ', '"', '""', '"unbalanced', "<<Title>>\nBody text.", "<< >>", "<<a\nb>>",
    "<<A>> middle <<B>>", "<<<Nested>>>", "Text. Any other questions?", 'Text. "Any other questions?"',
    "text any other questions?\n\n", "Any other questions? Yes.", "My answer is yes.", "my answer is yes.",
    "My answer is Yes", "I think... My answer is maybe.", "SECTION 1\nIntro\nSECTION 2\nBody", "Section1 a Section 22 b",
    "section 1 lower", "[a] [b] [c]", "[unclosed", "[]", "[\n]", "p.s. lowercase marker", "P.P.S late note",
    "P. S. spaced", "HELLO WORLD, THIS IS ALL CAPS.", "hello world, this is all lowercase.", "Hello, World",
    "Café naïve résumé — “quotes” ‘single’ «guillemets»", "👍 Great job! 🎉", "ÉTÉ ÇA VA", "straße", "ǅ title case",
    "\n\nLeading blank paragraph.\n\nSecond.", "One.\n\n\n\nTwo.", "Trailing space paragraph.  \n\n  Next one.",
]  # fmt: skip


def make_document(rng: random.Random) -> str:
    """A random markdown-ish response built from blocks that the checkers look at."""
    blocks = []
    for _ in range(rng.randint(1, 6)):
        kind = rng.choice(
            ["prose", "prose", "bullets", "highlight", "section", "title", "divider", "postscript"]
        )
        if kind == "prose":
            blocks.append(" ".join(rng.sample(SENTENCES, rng.randint(1, 4))))
        elif kind == "bullets":
            mark = rng.choice(["*", "-", "* ", "  -"])
            blocks.append("\n".join(f"{mark} {rng.choice(SENTENCES)}" for _ in range(rng.randint(1, 5))))
        elif kind == "highlight":
            word = rng.choice(["key point", "note", " ", "", "warning"])
            blocks.append(rng.choice([f"*{word}*", f"**{word}**", f"This is *{word}* here."]))
        elif kind == "section":
            blocks.append(f"{rng.choice(['Section', 'SECTION', 'section'])} {rng.randint(1, 4)}")
        elif kind == "title":
            blocks.append(f"<<{rng.choice(SENTENCES)[:20]}>>")
        elif kind == "divider":
            blocks.append(rng.choice(["***", "******", "---"]))
        else:
            blocks.append(rng.choice(["P.S. see you.", "P.P.S more.", "p.s. later"]))
    document = rng.choice(["\n", "\n\n", " "]).join(blocks)
    return transform(rng, document)


def transform(rng: random.Random, document: str) -> str:
    """Case changes, comma removal, quoting and intro/outro lines, which strict and loose scoring treat apart."""
    choice = rng.random()
    if choice < 0.12:
        document = document.upper()
    elif choice < 0.24:
        document = document.lower()
    if rng.random() < 0.15:
        document = document.replace(",", "")
    if rng.random() < 0.1:
        document = f'"{document}"'
    if rng.random() < 0.3:
        document = f"{rng.choice(['Sure! Here it is:', '**Answer**', 'OK'])}\n{document}"
    if rng.random() < 0.3:
        document = f"{document}\n{rng.choice(['Hope this helps!', '*', 'Any other questions?'])}"
    return document + rng.choice(["", "", "\n", "  "])


def corpus() -> list[str]:
    rng = random.Random(0)
    documents = [make_document(rng) for _ in range(90)]
    return ADVERSARIAL + documents + list(FOREIGN.values()) + [s.upper() for s in SENTENCES[:6]]


# ---- kwargs per instruction type, with boundary values around what the response actually has -------------------


def around(value: int) -> list[int]:
    """The thresholds where "less than" and "at least" flip: `value` and `value + 1`, at least 1 (the reference
    replaces a 0 threshold by a random one)."""
    return sorted({max(1, value), value + 1})


def words_of(response: str) -> list[str]:
    return re.findall(r"[A-Za-z]{3,}", response) or ["absent"]


def kwargs_for(instruction_id: str, response: str, rng: random.Random) -> list[dict[str, Any]]:
    words = words_of(response)
    relations = ["less than", "at least"]
    if instruction_id == "keywords:existence":
        return [
            {"keywords": rng.sample(words, min(2, len(words)))},
            {"keywords": [rng.choice(words), "zebra"]},
        ]
    if instruction_id == "keywords:forbidden_words":
        return [{"forbidden_words": [rng.choice(words).upper()]}, {"forbidden_words": ["zebra", "the"]}]
    if instruction_id == "keywords:frequency":
        keyword = rng.choice(words)
        count = len(re.findall(re.escape(keyword), response, flags=re.IGNORECASE))
        return [{"keyword": keyword, "frequency": n, "relation": r} for n in around(count) for r in relations]
    if instruction_id == "keywords:letter_frequency":
        letter = rng.choice("aeiostnrl")
        count = response.lower().count(letter)
        return [
            {"letter": letter, "let_frequency": n, "let_relation": r}
            for n in around(count)
            for r in relations
        ]
    if instruction_id == "language:response_language":
        return [{"language": language} for language in ("en", rng.choice(sorted(FOREIGN)))]
    if instruction_id == "length_constraints:number_words":
        count = text.count_words(response)
        return [{"num_words": n, "relation": r} for n in around(count) for r in relations]
    if instruction_id == "length_constraints:number_sentences":
        count = text.count_sentences(response)
        return [{"num_sentences": n, "relation": r} for n in around(count) for r in relations]
    if instruction_id == "change_case:capital_word_frequency":
        count = text.count_capital_words(response)
        return [{"capital_frequency": n, "capital_relation": r} for n in around(count) for r in relations]
    if instruction_id == "length_constraints:nth_paragraph_first_word":
        paragraphs = [p for p in response.split("\n\n") if p.strip()] or ["absent"]
        nth = rng.randint(1, len(paragraphs))
        first = (
            re.sub(r"[^\w]", "", paragraphs[nth - 1].split()[0] if paragraphs[nth - 1].split() else "x")
            or "x"
        )
        return [
            {"num_paragraphs": n, "nth_paragraph": min(nth, n), "first_word": word}
            for n in around(len(paragraphs))
            for word in (first, "zebra")
        ]
    if instruction_id == "startend:end_checker":
        tail = " ".join(response.split()[-2:]).strip('"') or "end"
        return [{"end_phrase": tail}, {"end_phrase": "Any other questions?"}]
    if instruction_id == "combination:repeat_prompt":
        head = response.strip()[: rng.randint(1, 40)].strip() or "Write"
        return [{"prompt_to_repeat": head}, {"prompt_to_repeat": head.upper() + " extra"}]
    if instruction_id == "detectable_content:postscript":
        return [{"postscript_marker": marker} for marker in ("P.S.", "P.P.S")]
    if instruction_id == "detectable_format:multiple_sections":
        count = len(re.findall(r"Section\s?\d", response))
        return [
            {"section_spliter": s, "num_sections": n} for s in ("Section", "SECTION") for n in around(count)
        ]
    counted = {
        "length_constraints:number_paragraphs": ("num_paragraphs", response.count("***") + 1),
        "detectable_content:number_placeholders": ("num_placeholders", response.count("[")),
        "detectable_format:number_bullet_lists": ("num_bullets", response.count("\n") + 1),
        "detectable_format:number_highlighted_sections": ("num_highlights", response.count("*") // 2),
    }
    if instruction_id in counted:
        key, estimate = counted[instruction_id]
        return [{key: n} for n in sorted({*around(estimate), 1, 2})]
    return [{}]


LANGUAGE_TYPES = {
    "language:response_language",
    "change_case:english_capital",
    "change_case:english_lowercase",
}


def build_cases() -> list[Case]:
    rng = random.Random(1)
    responses = corpus()
    cases = []
    for instruction_id in instruction_ids():
        # langdetect costs milliseconds per call and loose scoring calls it 8 times: use every third response.
        pool = responses[::3] if instruction_id in LANGUAGE_TYPES else responses
        for index, response in enumerate(pool):
            for variant, kwargs in enumerate(kwargs_for(instruction_id, response, rng)):
                label = f"{instruction_id}#{index}.{variant}"
                cases.append(Case(label, instruction_id, kwargs, response))
    return cases
