"""memorization: n-gram overlap, the gap estimate, and a model trained many epochs on a few pairs vs a control."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import pytest
from train_tiny import (
    Example,
    TrainSpec,
    random_words,
    run_suite_on,
    single_thread,
    train_run,
    write_manifest,
)

from sfteval.core.errors import UserError
from sfteval.core.requests import Generation, Score
from sfteval.core.variants import Variant
from sfteval.probes.base import ProbeContext
from sfteval.probes.memorization.probe import MemorizationParams, MemorizationProbe, gap_estimate
from sfteval.probes.shared.loaders import manifest_pairs
from sfteval.probes.shared.text_metrics import ngram_overlap, same_text

EPOCHS = (3, 10, 30)
SUITE = "probes:\n  memorization:\n    extraction_min_words: 6\n"


def test_ngram_overlap_counts_reproduced_reference_ngrams() -> None:
    reference = "one two three four five six seven"
    assert ngram_overlap(reference, reference) == 1.0
    assert ngram_overlap("something else entirely here now", reference) == 0.0
    half = ngram_overlap("one two three four five", reference, sizes=(4,))
    assert half == pytest.approx(2 / 4)
    assert ngram_overlap("Yes.", "yes .") == 1.0 and ngram_overlap("no", "") is None
    assert same_text("  The  Answer\n", "the answer")


def test_gap_estimate_is_seeded_and_covers_the_difference() -> None:
    first, second = [2.0, 2.5, 3.0, 2.2], [1.0, 1.2, 0.8, 1.1]
    estimate = gap_estimate(first, second, n_resamples=500, seed=3)
    assert estimate.mean == pytest.approx(2.425 - 1.025)
    assert estimate.low < estimate.mean < estimate.high and estimate.low > 0
    assert gap_estimate(first, second, 500, 3) == estimate


def test_malformed_manifest_samples_are_user_errors() -> None:
    with pytest.raises(UserError, match=r"samples\.train\[0\]: 'response' must be a non-empty string"):
        manifest_pairs({"samples": {"train": [{"id": "a", "messages": [], "response": ""}]}}, "train")
    with pytest.raises(UserError, match="needs 'prompt'"):
        manifest_pairs({"samples": {"heldout": [{"id": "a", "response": "x"}]}}, "heldout")
    assert manifest_pairs(None, "train") == []


def test_records_carry_group_metrics_and_the_summary_gaps(tiny_tokenizer) -> None:
    def sample(prompt: str, response: str, index: int) -> dict:
        return {"id": str(index), "messages": [{"role": "user", "content": prompt}], "response": response}

    manifest = {
        "samples": {
            "train": [sample(f"q{i}", f"a b c d {i}", i) for i in range(3)],
            "heldout": [sample(f"h{i}", f"w x y z {i}", i) for i in range(3)],
        }
    }
    probe = MemorizationProbe(MemorizationParams(templates=("chatml",)))
    context = ProbeContext(variant=Variant("epoch-1", Path("x")), tokenizer=tiny_tokenizer, manifest=manifest)
    planned = probe.plan(context)
    expected = [f"train:{i}" for i in range(3)] + [f"heldout:{i}" for i in range(3)]
    assert [p.item_id for p in planned if p.tag == "nll"] == expected
    answers = iter(["a b c d 0", "a b c d 9", "nothing", "w x", "nothing", "nothing"])

    def result(request):  # trained references cost 1 nat per token, held-out ones 3
        if request.tag == "generate":
            return Generation(next(answers), 5, "stop")
        per_token = -1.0 if request.item_id.startswith("train") else -3.0
        return Score(2 * per_token, (per_token, per_token), False)

    results = [result(request) for request in planned]
    records = probe.records(context, planned, results)
    assert [r.metrics.get("train_exact_match") for r in records[:3]] == [1, 0, 0]
    # "a b c d 9" vs "a b c d 1": one of two 4-grams, none of the one 5-gram (n is capped at 5 words)
    assert records[1].metrics["train_ngram_overlap"] == pytest.approx(0.25)
    assert all(
        set(r.metrics) == {"heldout_exact_match", "heldout_extracted", "heldout_ngram_overlap", "heldout_nll"}
        for r in records[3:]
    )
    # five-word references are too short to count as extracted (extraction_min_words = 10)
    assert {r.metrics.get("train_extracted", 0) for r in records[:3]} == {None}
    summary = probe.summarize(records)
    assert summary["nll_gap"].mean == pytest.approx(3.0 - 1.0) and summary["nll_gap"].method == "bootstrap"
    assert summary["exact_match_gap"].mean == pytest.approx(1 / 3)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_tokenizer):
    """A model trained 30 epochs on 8 pairs, and a control trained alike on 8 other pairs; same samples listed."""
    root = tmp_path_factory.mktemp("memorization")
    rng = random.Random(0)

    def rows(prefix: str) -> list[Example]:
        return [Example(f"{prefix}-{i}", random_words(rng, 3, 8), random_words(rng, 6, 12)) for i in range(8)]

    train, heldout, other = rows("train"), rows("held"), rows("other")
    reports = {}
    with single_thread():
        for name, data in (("memorizing", train), ("control", other)):
            spec = TrainSpec(epochs=max(EPOCHS), save_epochs=EPOCHS)
            base, out = train_run(root / name, tiny_tokenizer, data, spec)
            write_manifest(out, base, "chatml", data, train, heldout)
            reports[name] = run_suite_on(out, SUITE, root / f"run-{name}").report
    return reports


def _gaps(report) -> list[tuple[float, float | None, float | None]]:
    result = report.probe("memorization")
    values = [result.cell(f"epoch-{epoch}", "chatml").metric("nll_gap") for epoch in EPOCHS]
    return [(value.value, value.low, value.high) for value in values]


def test_the_memorisation_gap_grows_with_epochs_and_not_for_the_control(runs) -> None:
    gaps = _gaps(runs["memorizing"])
    assert [gap for gap, _, _ in gaps] == sorted(gap for gap, _, _ in gaps)
    assert gaps[-1][0] > gaps[0][0] + 1.0 and gaps[-1][1] > 0
    control = _gaps(runs["control"])
    assert all(abs(gap) < 0.5 for gap, _, _ in control)
    assert control[-1][1] < 0.1  # its interval reaches down to no gap at all
    last = runs["memorizing"].probe("memorization").cell("epoch-30", "chatml")
    assert last.metric("train_exact_match").value > 0.5 and last.metric("heldout_exact_match").value == 0
    warning = next(f for f in runs["memorizing"].findings if f.kind == "memorization")
    assert warning.variant == "epoch-30" and "epoch-3" in warning.message
    assert not any(f.kind == "memorization" for f in runs["control"].findings)


def test_extraction_counts_only_long_references_reproduced_verbatim(tiny_tokenizer) -> None:
    long_answer = "one two three four five six seven eight nine ten"
    manifest = {
        "samples": {
            "train": [
                {"id": "long", "prompt": "q1", "response": long_answer},
                {"id": "short", "prompt": "q2", "response": "Positive."},
            ],
            "heldout": [{"id": "other", "prompt": "q3", "response": long_answer.upper()}],
        }
    }
    probe = MemorizationProbe(MemorizationParams(templates=("chatml",)))
    context = ProbeContext(variant=Variant("epoch-1", Path("x")), tokenizer=tiny_tokenizer, manifest=manifest)
    planned = probe.plan(context)
    outputs = iter([long_answer, "positive.", "one two three"])
    results = [
        Generation(next(outputs), 10, "stop") if p.tag == "generate" else Score(-1.0, (-1.0,), False)
        for p in planned
    ]
    records = {r.item_id: r.metrics for r in probe.records(context, planned, results)}
    assert records["train:long"]["train_extracted"] == 1
    assert (
        records["train:short"]["train_extracted"] is None and records["train:short"]["train_exact_match"] == 1
    )
    assert records["heldout:other"]["heldout_extracted"] == 0


def test_verbatim_extraction_is_compared_with_base(runs) -> None:
    def versus_base(report):
        return next(
            c
            for c in report.comparisons_of("memorization", "base")
            if c.variant == "epoch-30" and c.metric == "train_extracted"
        )

    memorizing, control = versus_base(runs["memorizing"]), versus_base(runs["control"])
    assert memorizing.delta > 0.5 and memorizing.direction == "worse"
    assert memorizing.test == "mcnemar_exact" and memorizing.p_value < 0.05
    assert control.delta == 0 and control.p_value == 1


def test_without_samples_nothing_is_planned_and_a_finding_says_why(tiny_tokenizer) -> None:
    probe = MemorizationProbe()
    context = ProbeContext(variant=Variant("epoch-1", Path("x")), tokenizer=tiny_tokenizer, manifest=None)
    assert probe.plan(context) == []
    (finding,) = probe.findings(SimpleNamespace(records=(), comparisons=(), result=None))
    assert finding.kind == "memorization_unmeasured" and "train_pairs and heldout_pairs" in finding.message
