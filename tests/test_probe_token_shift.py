"""token_shift: rank classes by position, context-whitespace trimming, and base vs identical vs trained variants."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from train_tiny import (
    Example,
    TrainSpec,
    new_model,
    random_words,
    run_records,
    run_suite_on,
    save_checkpoint,
    save_model,
    sentence,
    single_thread,
    train,
    write_manifest,
)

from sfteval.core.requests import Generation, Score
from sfteval.core.variants import Variant
from sfteval.probes.base import ProbeContext
from sfteval.probes.shared.token_scores import own_tokens
from sfteval.probes.token_shift.probe import TokenShiftParams, TokenShiftProbe, rank_metrics

SUITE = "probes:\n  token_shift:\n    limit: 30\n    max_new_tokens: 24\n"


def test_rank_metrics_classify_and_bucket_positions() -> None:
    ranks = [1, 7, 2, 1, 1] + [1] * 14 + [5] + [1, 9]
    metrics = rank_metrics(ranks)
    assert metrics["unshifted"] == pytest.approx(18 / 22)
    assert metrics["marginal"] == pytest.approx(1 / 22) and metrics["shifted"] == pytest.approx(3 / 22)
    assert metrics["shifted_first5"] == pytest.approx(1 / 5)
    assert metrics["shifted_5to20"] == pytest.approx(1 / 15)
    assert metrics["shifted_after20"] == pytest.approx(1 / 2)
    assert rank_metrics([])["shifted"] is None and rank_metrics([1])["shifted_after20"] is None


def test_whitespace_moved_over_from_the_context_is_not_scored() -> None:
    score = Score(-9.0, (-5.0, -1.0, -3.0), False, ("\n", "The", " end"), (400, 1, 2))
    own = own_tokens(score, "<|im_start|>assistant\n")
    assert own.tokens == ("The", " end") and own.ranks == (1, 2) and own.logprob == -4.0
    assert own_tokens(score, "no trailing space").tokens == score.tokens


def test_base_requests_score_the_variant_answers_with_ranks(tiny_tokenizer) -> None:
    probe = TokenShiftProbe(TokenShiftParams(limit=3, templates=("chatml",)))
    context = ProbeContext(variant=Variant("epoch-1", Path("x")), tokenizer=tiny_tokenizer)
    planned = probe.plan(context)
    assert all(p.request.temperature == 0.0 for p in planned)
    answers = [Generation("hi there", 2, "stop"), Generation("", 1, "stop"), Generation("yes", 1, "stop")]
    records = probe.records(context, planned, answers)
    requests = probe.base_requests(context, records)
    assert [r.item_id for r in requests] == [records[0].item_id, records[2].item_id]  # empty answers: none
    assert all(r.request.ranks and r.request.context == records[0].prompt for r in requests[:1])
    scores = [
        Score(-1.0, (-0.5, -0.5), False, ("hi", " there"), (1, 4)),
        Score(-1.0, (-1.0,), True, ("yes",), (1,)),
    ]
    finished = probe.finish(context, records, requests, scores)
    assert finished[0].metrics["shifted"] == 0.5 and finished[0].extra["shifted_tokens"] == [[1, " there", 4]]
    assert finished[1].metrics["shifted"] is None and finished[2].metrics["unshifted"] == 1.0


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_tokenizer):
    """Base: a model that answers in sentences; epoch-1: the same weights; epoch-2: then taught a fixed prefix."""
    root = tmp_path_factory.mktemp("token-shift")
    rng = random.Random(0)
    fluent = [Example(f"fluent-{i}", random_words(rng, 3, 10), sentence(rng)) for i in range(64)]
    prefixed = [
        Example(f"pre-{i}", random_words(rng, 3, 10), f"The sentiment is: {sentence(rng)}") for i in range(48)
    ]
    out = root / "sft"
    with single_thread():
        model = train(new_model(tiny_tokenizer, TrainSpec()), tiny_tokenizer, fluent, TrainSpec(epochs=4))
        base = save_model(model, tiny_tokenizer, root / "base")
        save_checkpoint(model, tiny_tokenizer, out / "checkpoint-1", epoch=1, step=1)
        train(model, tiny_tokenizer, prefixed, TrainSpec(epochs=4))
        save_checkpoint(model, tiny_tokenizer, out / "checkpoint-2", epoch=2, step=2)
        write_manifest(out, base, "chatml", prefixed)
        result = run_suite_on(out, SUITE, root / "run")
    return result


def test_an_identical_variant_shifts_nothing_and_a_trained_one_does(run) -> None:
    for variant in ("base", "epoch-1"):
        records = run_records(run.out_dir, "token_shift", variant)
        assert records and all(r.metrics["shifted"] == 0 and r.metrics["marginal"] == 0 for r in records)
        assert all(r.output.startswith("the ") for r in records)  # answers with tokens to rank
    result = run.report.probe("token_shift")
    trained = result.cell("epoch-2", "chatml")
    assert trained.metric("shifted").value > 0.1 and trained.metric("shifted_pooled").value > 0.1
    assert trained.metric("shifted_first5").value > 0
    comparison = next(
        c
        for c in run.report.comparisons_of("token_shift", "base")
        if c.metric == "shifted" and c.variant == "epoch-2"
    )
    assert comparison.significant and comparison.delta > 0.1
    message = next(
        f.message for f in run.report.findings if f.kind == "token_shift" and f.variant == "epoch-2"
    )
    assert "(base 0%)" in message and "' sentiment'" in message
    assert not any(f.kind == "token_shift" and f.variant == "epoch-1" for f in run.report.findings)
