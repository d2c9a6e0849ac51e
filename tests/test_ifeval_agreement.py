"""Our IFEval checkers give the same strict and loose verdicts as lm-eval's reference implementation.

lm-eval's `instructions_util` imports `immutabledict` (not installed here: a one-function stand-in is injected) and
calls `nltk.download("punkt_tab")` at import (made a no-op: no network). Reference checkers that then need NLTK's
punkt data raise LookupError; those types are detected, listed and compared instead (a) against hand-labelled cases
in test_ifeval_checkers.py and (b) against the reference run on NLTK's own Punkt and Treebank code fed our English
parameters, which checks that our re-implementation of those algorithms is exact.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import random
import re
import sys
import types
from collections import Counter, defaultdict

import pytest
from ifeval_corpus import ADVERSARIAL, SENTENCES, Case, build_cases, corpus

from sfteval.probes.instruction_following import text
from sfteval.probes.instruction_following.checkers import instruction_ids
from sfteval.probes.instruction_following.conflicts import conflict_table
from sfteval.probes.instruction_following.evaluate import evaluate_prompt
from sfteval.probes.instruction_following.prompts import IFPrompt

#: Reference types that need NLTK's punkt data (sentence splitting; word_tokenize for capital words).
EXPECTED_NLTK_TYPES = {"length_constraints:number_sentences", "change_case:capital_word_frequency"}

#: Deliberate disagreements, by case label, with the reference bug each one fixes. The generated cases use plain
#: keywords and markers, where escaping them (our fix for the reference compiling kwargs as regexes) changes nothing,
#: so none is expected today; a new disagreement must be explained here or fixed.
DELIBERATE: dict[str, str] = {}


@pytest.fixture(scope="module")
def reference() -> types.SimpleNamespace:
    """lm-eval's ifeval registry and scoring utils, importable offline."""
    from langdetect import DetectorFactory

    DetectorFactory.seed = 0
    logging.getLogger("lm_eval.tasks.ifeval.instructions").setLevel(logging.CRITICAL)
    with pytest.MonkeyPatch.context() as patch:
        if importlib.util.find_spec("immutabledict") is None:
            stand_in = types.ModuleType("immutabledict")
            stand_in.immutabledict = lambda mapping: types.MappingProxyType(dict(mapping))
            patch.setitem(sys.modules, "immutabledict", stand_in)
        nltk = importlib.import_module("nltk")
        patch.setattr(nltk, "download", lambda *args, **kwargs: False)
        utils = importlib.import_module("lm_eval.tasks.ifeval.utils")
        registry = importlib.import_module("lm_eval.tasks.ifeval.instructions_registry")
        util = importlib.import_module("lm_eval.tasks.ifeval.instructions_util")
    return types.SimpleNamespace(utils=utils, registry=registry, util=util, nltk=nltk)


def reference_verdicts(reference: types.SimpleNamespace, case: Case) -> tuple[bool, bool]:
    example = reference.utils.InputExample(
        key=0, instruction_id_list=[case.instruction_id], prompt="", kwargs=[case.kwargs]
    )
    strict = reference.utils.test_instruction_following_strict(example, case.response)
    loose = reference.utils.test_instruction_following_loose(example, case.response)
    return strict.follow_instruction_list[0], loose.follow_instruction_list[0]


def our_verdicts(case: Case) -> tuple[bool, bool]:
    prompt = IFPrompt(0, "", (case.instruction_id,), (case.kwargs,))
    evaluation = evaluate_prompt(prompt, case.response)
    return evaluation.strict[0], evaluation.loose[0]


# ---- responses ------------------------------------------------------------------------------------------------

CASES = build_cases()


def test_there_are_enough_cases_for_every_type():
    per_type = Counter(case.instruction_id for case in CASES)
    assert len(CASES) >= 1000
    assert set(per_type) == set(instruction_ids())
    assert min(per_type.values()) >= 50, per_type


def needs_nltk_data(reference: types.SimpleNamespace) -> set[str]:
    """Reference types whose checker raises LookupError (missing punkt data) on ordinary text."""
    failing = set()
    for instruction_id in instruction_ids():
        case = next(case for case in CASES if case.instruction_id == instruction_id and case.response.strip())
        try:
            reference_verdicts(
                reference, Case("probe", instruction_id, case.kwargs, "Hello there. How are you?")
            )
        except LookupError:
            failing.add(instruction_id)
    return failing


def test_reference_types_needing_nltk_data_are_the_two_known_ones(reference):
    failing = needs_nltk_data(reference)
    # Where punkt data is installed nothing fails and every type is compared below.
    assert failing <= EXPECTED_NLTK_TYPES, failing


def test_verdicts_agree_with_reference_strict_and_loose(reference):
    skipped = needs_nltk_data(reference)
    outcomes: dict[str, list[bool]] = defaultdict(list)
    unexplained = []
    for case in CASES:
        if case.instruction_id in skipped:
            continue
        agree = our_verdicts(case) == reference_verdicts(reference, case)
        outcomes[case.instruction_id].append(agree)
        if not agree and case.label not in DELIBERATE:
            unexplained.append((case.label, case.kwargs, case.response, our_verdicts(case)))
    assert not unexplained, json.dumps(unexplained[:5], ensure_ascii=False, indent=1)
    for instruction_id, agreements in outcomes.items():
        assert sum(agreements) / len(agreements) >= 0.99, instruction_id
    assert set(outcomes) == set(instruction_ids()) - skipped


@pytest.fixture()
def reference_on_nltk_code_with_our_parameters(reference, monkeypatch):
    """The reference with NLTK's own Punkt and Treebank code, given our abbreviations and sentence starters."""
    from nltk.tokenize.destructive import NLTKWordTokenizer
    from nltk.tokenize.punkt import _ORTHO_BEG_UC, _ORTHO_MID_LC, PunktParameters, PunktSentenceTokenizer

    parameters = PunktParameters()
    parameters.abbrev_types = set(text.ABBREVIATIONS)
    for word in text.SENTENCE_STARTERS:
        parameters.add_ortho_context(word, _ORTHO_MID_LC | _ORTHO_BEG_UC)
    punkt = PunktSentenceTokenizer(parameters)
    words = NLTKWordTokenizer()
    monkeypatch.setattr(reference.util, "_get_sentence_tokenizer", lambda: punkt)
    monkeypatch.setattr(
        reference.nltk,
        "word_tokenize",
        lambda value: [w for s in punkt.tokenize(value) for w in words.tokenize(s)],
    )
    return types.SimpleNamespace(reference=reference, punkt=punkt, words=words)


def test_sentence_and_capital_word_counts_match_nltk_code(reference_on_nltk_code_with_our_parameters):
    nltk_code = reference_on_nltk_code_with_our_parameters
    rng = random.Random(2)
    pieces = [
        *SENTENCES,
        *ADVERSARIAL,
        "Mr.",
        "J.",
        "1.",
        "...",
        "?!",
        "U.S.",
        "The",
        "it",
        ")",
        "“Yes.”",
        "\n",
    ]
    texts = corpus() + [
        "".join(rng.choice(pieces) + rng.choice([" ", "", "\n"]) for _ in range(12)) for _ in range(600)
    ]
    for sample in texts:
        assert text.split_sentences(sample) == nltk_code.punkt.tokenize(sample), sample
        expected_words = [w for s in nltk_code.punkt.tokenize(sample) for w in nltk_code.words.tokenize(s)]
        assert text.treebank_words(sample) == expected_words, sample


def test_nltk_dependent_types_agree_with_reference_on_nltk_code(reference_on_nltk_code_with_our_parameters):
    reference = reference_on_nltk_code_with_our_parameters.reference
    cases = [case for case in CASES if case.instruction_id in EXPECTED_NLTK_TYPES]
    disagreements = [
        case.label for case in cases if our_verdicts(case) != reference_verdicts(reference, case)
    ]
    assert len(cases) >= 200
    assert not disagreements


def test_conflicts_include_ifevals_table(reference):
    ifeval = reference.registry.conflict_make(
        {first: set(others) for first, others in reference.registry.INSTRUCTION_CONFLICTS.items()}
    )
    ours = conflict_table()
    assert all(others <= ours[first] for first, others in ifeval.items())


DELIBERATE_FIXES = [
    # The reference compiles the keyword as a regular expression: "(draft" is an invalid pattern (re.error).
    (Case("paren", "keywords:existence", {"keywords": ["(draft"]}, "See (draft) below."), True, re.error),
    # ... and "a.b" matches "axb", so the reference counts one occurrence where there is none.
    (
        Case("a.b", "keywords:frequency", {"keyword": "a.b", "frequency": 1, "relation": "at least"}, "axb"),
        False,
        None,
    ),
    # Nesting deeper than Python's recursion limit makes json.loads raise RecursionError, uncaught by the reference.
    (Case("deep", "detectable_format:json_format", {}, "[" * 100_000 + "]" * 100_000), False, RecursionError),
]


@pytest.mark.parametrize(
    ("case", "ours", "reference_error"), DELIBERATE_FIXES, ids=lambda value: getattr(value, "label", "")
)
def test_deliberate_fixes_differ_from_reference(reference, case, ours, reference_error):
    assert our_verdicts(case) == (ours, ours)
    if reference_error is not None:
        with pytest.raises(reference_error):
            reference_verdicts(reference, case)
    else:
        assert reference_verdicts(reference, case) == (not ours, not ours)
