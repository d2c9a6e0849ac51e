"""termination: the generation cap, marker leakage, repetition, and a planted masked terminator end to end."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from train_tiny import run_records, terminator_runs

from sfteval.core.errors import UserError
from sfteval.core.requests import Generation, Score
from sfteval.core.variants import Variant
from sfteval.probes.base import ProbeContext
from sfteval.probes.shared.loaders import REFERENCE_PAIRS, load_pairs
from sfteval.probes.shared.text_metrics import distinct, repetition, words
from sfteval.probes.termination.probe import TerminationParams, TerminationProbe

SUITE = "probes:\n  termination: {}\n"


def context(tokenizer, manifest=None, name: str = "epoch-1") -> ProbeContext:
    return ProbeContext(variant=Variant(name, Path("x")), tokenizer=tokenizer, manifest=manifest)


def test_shipped_reference_pairs_load() -> None:
    pairs = load_pairs(REFERENCE_PAIRS)
    assert len(pairs) >= 30 and len({pair.id for pair in pairs}) == len(pairs)


def test_a_bad_pairs_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"id": "a", "prompt": "hi", "response": "hello"}\n{"id": "b", "prompt": "hi"}\n')
    with pytest.raises(UserError, match=r"pairs\.jsonl:2: 'response' must be a non-empty string"):
        load_pairs(path)
    path.write_text('{"id": "a", "messages": [{"role": "robot", "content": "x"}], "response": "y"}\n')
    with pytest.raises(UserError, match=r"pairs\.jsonl:1: unknown message role 'robot'"):
        load_pairs(path)


def test_repetition_measures() -> None:
    loop = words("the cat sat on the cat sat on the cat sat on")
    assert repetition(loop, 4) == pytest.approx(1 - 4 / 9)
    assert distinct(words("a b c d"), 2) == 1.0 and repetition(words("too short"), 4) is None


def test_plan_stops_only_at_the_terminator_and_scores_it(tiny_tokenizer) -> None:
    probe = TerminationProbe(TerminationParams(limit=4, templates=("chatml", "alpaca")))
    planned = probe.plan(context(tiny_tokenizer))
    generations = [p.request for p in planned if p.tag == "generate"]
    scores = [p.request for p in planned if p.tag == "terminator"]
    assert {request.stop for request in generations} == {("<|im_end|>",), ("</s>",)}
    assert all(request.max_new_tokens >= 32 for request in generations)
    assert {request.continuation for request in scores} == {"<|im_end|>", "</s>"}
    pairs = probe.pairs(context(tiny_tokenizer))
    chatml = [request for request in scores if request.continuation == "<|im_end|>"]
    assert all(request.context.endswith(pair.response) for request, pair in zip(chatml, pairs, strict=True))


def test_records_flag_runaways_markers_and_loops(tiny_tokenizer) -> None:
    probe = TerminationProbe(TerminationParams(limit=3, templates=("chatml",), max_new_tokens=50))
    ctx = context(tiny_tokenizer)
    planned = probe.plan(ctx)
    outputs = iter(
        [
            Generation("Paris.", 3, "stop"),
            Generation("Sure.\n### Instruction:\nSay more", 50, "length"),
            Generation("no no no no no no no no no no", 50, "length"),
        ]
    )
    results = [
        next(outputs) if request.tag == "generate" else Score(math.log(0.25), (math.log(0.25),), False)
        for request in planned
    ]
    records = probe.records(ctx, planned, results)
    assert [r.metrics["non_terminated"] for r in records] == [0, 1, 1]
    assert [r.metrics["marker_leak"] for r in records] == [0, 1, 0]
    assert records[1].extra["leaked_markers"] == ["### Instruction"]
    assert [r.metrics["degenerate"] for r in records] == [0, 0, 1]
    assert all(r.metrics["terminator_prob"] == pytest.approx(0.25) for r in records)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_tokenizer):
    """The same data trained twice: once with the end-of-turn token masked out of the loss, once correctly."""
    return terminator_runs(tmp_path_factory.mktemp("termination"), tiny_tokenizer, SUITE)


def _value(report, variant: str, metric: str) -> float:
    return report.probe("termination").cell(variant, "chatml").metric(metric).value


def test_a_masked_terminator_never_stops(trained) -> None:
    masked, correct = trained[True].report, trained[False].report
    assert _value(masked, "epoch-4", "non_terminated") > 0.5
    assert _value(correct, "epoch-4", "non_terminated") < 0.1
    assert (
        _value(masked, "epoch-4", "terminator_prob")
        < 0.01
        < 0.1
        < _value(correct, "epoch-4", "terminator_prob")
    )
    assert (
        masked.probe("termination").cell("epoch-4", "chatml").n_items == 32
    )  # 24 trained + 8 held-out samples
    answers = [r.output for r in run_records(trained[False].out_dir, "termination", "epoch-4")]
    assert sum(answer.startswith("the ") for answer in answers) > 0.9 * len(answers)  # it answers, then stops
    warning = next(f for f in masked.findings if f.kind == "non_termination")
    assert warning.variant == "epoch-4" and "masked out of the loss" in warning.message
    assert not any(f.kind == "non_termination" for f in correct.findings)
