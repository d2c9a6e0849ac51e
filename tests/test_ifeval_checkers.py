"""IFEval checkers on hand-written cases; strict/loose evaluation and accuracy; the prompt loader and composer."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import pytest
from ifeval_cases import CASES

from sfteval.core.errors import UserError
from sfteval.probes.instruction_following import text
from sfteval.probes.instruction_following.checkers import get_checker, instruction_ids
from sfteval.probes.instruction_following.compose import compose, load_base_tasks, main
from sfteval.probes.instruction_following.conflicts import conflict_table, conflicts
from sfteval.probes.instruction_following.evaluate import (
    PromptEvaluation,
    accuracy,
    accuracy_by_family,
    accuracy_by_instruction,
    evaluate_prompt,
    response_variants,
)
from sfteval.probes.instruction_following.prompts import DEFAULT_PROMPTS, IFPrompt, load_prompts

IFEVAL_IDS = {
    "keywords:existence", "keywords:frequency", "keywords:forbidden_words", "keywords:letter_frequency",
    "language:response_language", "length_constraints:number_sentences", "length_constraints:number_paragraphs",
    "length_constraints:number_words", "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders", "detectable_content:postscript",
    "detectable_format:number_bullet_lists", "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections", "detectable_format:multiple_sections",
    "detectable_format:json_format", "detectable_format:title", "combination:two_responses",
    "combination:repeat_prompt", "startend:end_checker", "startend:quotation",
    "change_case:capital_word_frequency", "change_case:english_capital", "change_case:english_lowercase",
    "punctuation:no_comma",
}  # fmt: skip

#: One valid kwargs set per instruction, with a value its description must mention.
SAMPLE_KWARGS = {
    "keywords:existence": ({"keywords": ["river", "stone"]}, '"river", "stone"'),
    "keywords:frequency": (
        {"keyword": "data", "frequency": 3, "relation": "at least"},
        "data should appear at least 3",
    ),
    "keywords:forbidden_words": ({"forbidden_words": ["very"]}, '"very"'),
    "keywords:letter_frequency": (
        {"letter": "Q", "let_frequency": 2, "let_relation": "less than"},
        "letter q",
    ),
    "language:response_language": ({"language": "fi"}, "Finnish"),
    "length_constraints:number_sentences": (
        {"num_sentences": 4, "relation": "less than"},
        "less than 4 sentences",
    ),
    "length_constraints:number_paragraphs": ({"num_paragraphs": 3}, "3 paragraphs"),
    "length_constraints:number_words": ({"num_words": 120, "relation": "at least"}, "at least 120 words"),
    "length_constraints:nth_paragraph_first_word": (
        {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "However"},
        "Paragraph 2 must start with word however",
    ),
    "detectable_content:number_placeholders": ({"num_placeholders": 2}, "at least 2 placeholders"),
    "detectable_content:postscript": ({"postscript_marker": "P.P.S"}, "P.P.S"),
    "detectable_format:number_bullet_lists": ({"num_bullets": 4}, "exactly 4 bullet points"),
    "detectable_format:constrained_response": ({}, "My answer is maybe."),
    "detectable_format:number_highlighted_sections": ({"num_highlights": 2}, "at least 2 sections"),
    "detectable_format:multiple_sections": ({"section_spliter": "SECTION", "num_sections": 3}, "SECTION 1"),
    "detectable_format:json_format": ({}, "JSON"),
    "detectable_format:title": ({}, "<<poem of joy>>"),
    "combination:two_responses": ({}, "******"),
    "combination:repeat_prompt": ({"prompt_to_repeat": "Write a poem."}, "repeat the request"),
    "startend:end_checker": ({"end_phrase": "Is there anything else?"}, "Is there anything else?"),
    "startend:quotation": ({}, "double quotation marks"),
    "change_case:capital_word_frequency": (
        {"capital_frequency": 5, "capital_relation": "at least"},
        "at least 5 times",
    ),
    "change_case:english_capital": ({}, "all capital letters"),
    "change_case:english_lowercase": ({}, "all lowercase letters"),
    "punctuation:no_comma": ({}, "commas"),
}


def test_registry_holds_exactly_ifevals_25_ids():
    assert set(instruction_ids()) == IFEVAL_IDS == set(SAMPLE_KWARGS)


def test_unknown_id_suggests_the_closest():
    with pytest.raises(UserError, match="did you mean 'keywords:existence'"):
        get_checker("keywords:existance")


@pytest.mark.parametrize("instruction_id", sorted(IFEVAL_IDS))
def test_description_mentions_its_kwargs(instruction_id):
    kwargs, expected = SAMPLE_KWARGS[instruction_id]
    assert expected in get_checker(instruction_id).describe(**kwargs)


@pytest.mark.parametrize(
    ("instruction_id", "kwargs", "message"),
    [
        ("length_constraints:number_words", {"num_words": 100}, "missing"),
        ("length_constraints:number_words", {"num_words": 100, "relation": "at least", "x": 1}, "unexpected"),
        ("length_constraints:number_words", {"num_words": 100, "relation": "at most"}, "less than"),
        ("length_constraints:number_words", {"num_words": 0, "relation": "at least"}, "positive integer"),
        ("length_constraints:number_words", {"num_words": "100", "relation": "at least"}, "positive integer"),
        ("length_constraints:number_words", {"num_words": True, "relation": "at least"}, "positive integer"),
        (
            "keywords:letter_frequency",
            {"letter": "ab", "let_frequency": 2, "let_relation": "at least"},
            "letter",
        ),
        (
            "keywords:letter_frequency",
            {"letter": "é", "let_frequency": 2, "let_relation": "at least"},
            "letter",
        ),
        ("language:response_language", {"language": "xx"}, "ISO 639-1"),
        ("keywords:existence", {"keywords": []}, "non-empty list"),
        ("startend:end_checker", {"end_phrase": "   "}, "non-empty string"),
        (
            "length_constraints:nth_paragraph_first_word",
            {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "so"},
            "exceeds",
        ),
    ],
)
def test_bad_kwargs_are_user_errors_naming_the_instruction(instruction_id, kwargs, message):
    with pytest.raises(UserError, match=message) as error:
        get_checker(instruction_id).check("text", **kwargs)
    assert instruction_id in str(error.value)


def test_none_kwargs_are_dropped_and_integral_floats_accepted():
    checker = get_checker("length_constraints:number_words")
    assert checker.check("one two three", num_words=3.0, relation="at least", keyword=None)


@pytest.mark.parametrize(("instruction_id", "kwargs", "response", "expected"), CASES)
def test_checker_on_hand_written_case(instruction_id, kwargs, response, expected):
    assert get_checker(instruction_id).check(response, **kwargs) is expected


def test_every_checker_has_a_passing_and_a_failing_case():
    outcomes = {(case[0], case[3]) for case in CASES}
    assert outcomes == {(i, verdict) for i in IFEVAL_IDS for verdict in (True, False)}


SENTENCE_COUNTS = [
    ("Hello world. How are you? I am fine!", 3),
    ("", 0),
    ("   \n ", 0),
    ("No final punctuation here", 1),
    ("Mr. Smith went to Washington. He arrived at noon.", 2),
    ("I like fruit, e.g. apples and pears. They are healthy.", 2),
    ("The U.S. economy grew. Prices rose.", 2),
    ("Pi is about 3.14 in most uses. Yes.", 2),
    ("Wait... what happened?", 1),
    ("Really?! Yes.", 2),
    ('He said "Stop." Then he left.', 2),
    ("First line\nSecond line", 1),  # line breaks do not end sentences
    ("1. Apples\n2. Pears", 3),  # Punkt's known quirk: a list number before a capital is its own sentence
    ("See section 3. it explains more.", 1),
    ("The meeting is at 5 p.m. tomorrow.", 1),
    ("Visit example.com. It is great.", 2),
    ("J. K. Rowling wrote it. The end.", 2),
    ("Hello!!! Are you there???", 3),  # Punkt quirk: a run of three "?" at the end leaves a lone "?"
]


@pytest.mark.parametrize(("sample", "expected"), SENTENCE_COUNTS)
def test_sentence_count_on_hand_labelled_text(sample, expected):
    assert text.count_sentences(sample) == expected


def test_closing_quote_stays_with_its_sentence():
    assert text.split_sentences('He said "Stop." Then he left.') == ['He said "Stop."', "Then he left."]


CAPITAL_WORDS = [
    ("HELLO WORLD", 2),
    ("I DON'T KNOW", 4),  # I, DO, N'T, KNOW
    ("I CANNOT GO", 4),  # I, CAN, NOT, GO
    ("IT’S OK", 3),  # the curly apostrophe splits IT / ’ / S
    ("This is AT&T.", 2),
    ("NASA and the FBI", 2),
    ("**BOLD** text", 1),
    ("WELL-KNOWN fact", 1),
    ("well-KNOWN", 0),
    ("U.S.A. is big", 1),
    ("ÉTÉ", 1),
    ("123 456", 0),
]


@pytest.mark.parametrize(("sample", "expected"), CAPITAL_WORDS)
def test_capital_word_count_on_hand_labelled_text(sample, expected):
    assert text.count_capital_words(sample) == expected


def test_word_count_keeps_combining_marks_inside_words():
    assert text.count_words("पुस्तकालय सुबह नौ बजे") == 4
    assert text.count_words("don't stop-me now_ok 3.5") == 7


def test_language_detection_is_repeatable_and_none_without_letters():
    sample = "Das ist ein kurzer deutscher Satz über das Wetter."
    assert {text.detect_language(sample + " " * n) for n in range(5)} == {"de"}
    assert text.detect_language("1234 !!") is None


def make_prompt(*instructions: tuple[str, dict]) -> IFPrompt:
    return IFPrompt(
        key=7,
        prompt="Task.",
        instruction_id_list=tuple(i for i, _ in instructions),
        kwargs=tuple(k for _, k in instructions),
    )


def test_response_variants_are_ifevals_eight():
    variants = response_variants("Sure:\n**Body** line\nBye")
    assert variants == (
        "Sure:\n**Body** line\nBye",
        "**Body** line\nBye",
        "Sure:\n**Body** line",
        "**Body** line",
        "Sure:\nBody line\nBye",
        "Body line\nBye",
        "Sure:\nBody line",
        "Body line",
    )


def test_loose_forgives_intro_lines_and_markdown_but_strict_does_not():
    prompt = make_prompt(
        ("startend:quotation", {}), ("change_case:english_lowercase", {}), ("punctuation:no_comma", {})
    )
    response = 'Sure! Here it is:\n"**the weather is lovely today and we are going for a walk in the park**"'
    evaluation = evaluate_prompt(prompt, response)
    assert evaluation.strict == (False, False, True)
    assert evaluation.loose == (True, True, True)
    assert not evaluation.prompt_strict and evaluation.prompt_loose


def test_blank_response_follows_nothing():
    evaluation = evaluate_prompt(make_prompt(("punctuation:no_comma", {})), "  \n")
    assert evaluation.strict == (False,) and evaluation.loose == (False,)


def test_accuracy_pools_instructions_and_groups_by_family_and_id():
    evaluations = [
        PromptEvaluation(1, ("keywords:existence", "punctuation:no_comma"), (True, False), (True, True)),
        PromptEvaluation(2, ("keywords:frequency",), (False,), (False,)),
        PromptEvaluation(3, ("punctuation:no_comma",), (True,), (True,)),
    ]
    overall = accuracy(evaluations)
    assert (overall.prompt_strict, overall.prompt_loose) == (1 / 3, 2 / 3)
    assert (overall.instruction_strict, overall.instruction_loose) == (2 / 4, 3 / 4)
    assert (overall.prompts, overall.instructions) == (3, 4)
    families = accuracy_by_family(evaluations)
    assert (families["keywords"].strict, families["keywords"].loose, families["keywords"].instructions) == (
        0.5,
        0.5,
        2,
    )
    by_id = accuracy_by_instruction(evaluations)
    assert (by_id["punctuation:no_comma"].strict, by_id["punctuation:no_comma"].loose) == (0.5, 1.0)
    with pytest.raises(ValueError):
        accuracy([])


# ---- loader ---------------------------------------------------------------------------------------------------

IFEVAL_ROW = {
    "key": 1000,
    "prompt": "Write a 300+ word summary of the wikipedia page. Do not use any commas.",
    "instruction_id_list": ["punctuation:no_comma", "length_constraints:number_words"],
    "kwargs": [{}, {"num_words": 300, "relation": "at least", "keyword": None, "language": None}],
}


def write_lines(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "input_data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_loads_an_ifeval_row_dropping_none_kwargs(tmp_path):
    (prompt,) = load_prompts(write_lines(tmp_path, json.dumps(IFEVAL_ROW), ""))
    assert prompt.key == 1000 and prompt.item_id == "1000" and prompt.cluster_id == "1000"
    assert prompt.kwargs == ({}, {"num_words": 300, "relation": "at least"})


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({k: v for k, v in IFEVAL_ROW.items() if k != "kwargs"}), "missing field"),
        (
            json.dumps(
                {**IFEVAL_ROW, "instruction_id_list": ["punctuation:no_coma", "punctuation:no_comma"]}
            ),
            "did you mean",
        ),
        (json.dumps({**IFEVAL_ROW, "kwargs": [{}]}), "one object per instruction"),
        (json.dumps({**IFEVAL_ROW, "kwargs": [{}, {"num_words": 300}]}), "missing"),
        (json.dumps({**IFEVAL_ROW, "prompt": ""}), "'prompt'"),
        (json.dumps({**IFEVAL_ROW, "key": True}), "'key'"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, row, message):
    path = write_lines(tmp_path, json.dumps(IFEVAL_ROW), row)
    with pytest.raises(UserError, match=message) as error:
        load_prompts(path)
    assert f"{path}:2" in str(error.value)


def test_duplicate_keys_empty_and_missing_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="duplicate key"):
        load_prompts(write_lines(tmp_path, json.dumps(IFEVAL_ROW), json.dumps(IFEVAL_ROW)))
    with pytest.raises(UserError, match="no prompts"):
        load_prompts(write_lines(tmp_path, ""))
    with pytest.raises(UserError, match="cannot read"):
        load_prompts(str(tmp_path / "absent.jsonl"))


# ---- composed prompt set ----------------------------------------------------------------------------------------


def test_base_tasks_cover_many_kinds():
    tasks = load_base_tasks()
    assert len(tasks) >= 60 and len({task.task_id for task in tasks}) == len(tasks)
    assert len({task.kind for task in tasks}) >= 10


def test_shipped_prompts_are_the_seed_0_composition_and_load():
    shipped = load_prompts()
    assert shipped == compose(load_base_tasks(), seed=0)
    assert shipped[0].task_id and shipped[0].cluster_id == shipped[0].task_id
    assert DEFAULT_PROMPTS.read_text(encoding="utf-8").count("\n") == len(shipped)


def test_composition_is_seeded_sized_and_conflict_free():
    tasks = load_base_tasks()
    prompts = compose(tasks, count=220, seed=3)
    assert prompts == compose(tasks, count=220, seed=3) != compose(tasks, count=220, seed=4)
    assert len(prompts) == 220
    assert {len(p.instruction_id_list) for p in prompts} == {1, 2, 3}
    assert {i for p in prompts for i in p.instruction_id_list} == IFEVAL_IDS
    for prompt in prompts:
        assert not any(conflicts(a, b) for a, b in combinations(prompt.instruction_id_list, 2))
        for instruction_id, kwargs in zip(prompt.instruction_id_list, prompt.kwargs, strict=True):
            assert get_checker(instruction_id).describe(**kwargs) in prompt.prompt
            if instruction_id == "combination:repeat_prompt":
                assert prompt.prompt.startswith(kwargs["prompt_to_repeat"])
            if instruction_id == "detectable_format:constrained_response":
                assert prompt.task_id.startswith("decide-")


def test_compose_command_writes_loadable_rows(tmp_path, capsys):
    output = tmp_path / "prompts.jsonl"
    main(["--seed", "5", "--count", "12", "--output", str(output)])
    assert "wrote 12 prompts" in capsys.readouterr().out
    assert load_prompts(str(output)) == compose(load_base_tasks(), count=12, seed=5)


def test_conflict_table_is_symmetric_and_has_ifevals_pairs():
    table = conflict_table()
    assert all(first in table[second] for first in table for second in table[first])
    assert "change_case:english_capital" in table["change_case:english_lowercase"]
    assert "keywords:existence" not in table["detectable_format:json_format"]
    assert table["detectable_format:constrained_response"] == frozenset(IFEVAL_IDS)
