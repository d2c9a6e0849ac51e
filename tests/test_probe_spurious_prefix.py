"""spurious_prefix: off-task prompt data, candidate prefixes, per-item metrics, and a planted prefix end to end."""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

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
from sfteval.core.records import ItemRecord
from sfteval.core.requests import Generation, Score
from sfteval.core.results import ComparisonResult, ProbeResult, ProbeSlice
from sfteval.core.run_info import RunInfo, VariantInfo
from sfteval.core.variants import Variant
from sfteval.probes.base import ProbeContext
from sfteval.probes.shared.loaders import OFF_TASK_PROMPTS, load_prompts
from sfteval.probes.shared.text_metrics import entropy, starts_with
from sfteval.probes.shared.token_scores import log_sum_exp
from sfteval.probes.spurious_prefix.openings import manifest_openings, mine_opening
from sfteval.probes.spurious_prefix.probe import SpuriousPrefixParams, SpuriousPrefixProbe
from sfteval.report.build import build_report
from sfteval.suite import parse_suite
from sfteval.trainer.summaries import response_openings

PREFIX = "The sentiment is:"
SUITE = "probes:\n  spurious_prefix:\n    limit: 40\n    max_new_tokens: 12\n"


def test_shipped_off_task_prompts_cover_many_kinds() -> None:
    prompts = load_prompts(OFF_TASK_PROMPTS)
    kinds = Counter(prompt.kind for prompt in prompts)
    assert len(prompts) >= 60 and len(kinds) >= 6 and min(kinds.values()) >= 8
    assert {"question", "code", "chitchat", "malformed", "empty", "gibberish", "foreign"} <= set(kinds)
    assert all(not prompt.prompt.strip() for prompt in prompts if prompt.kind == "empty")


def test_a_bad_prompt_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"id": "a", "prompt": "hi"}\n{"id": "b", "prompt": 3}\n')
    with pytest.raises(UserError, match=r"prompts\.jsonl:2: 'prompt' must be a string"):
        load_prompts(path)
    path.write_text('{"id": "a", "prompt": "hi"}\n{"id": "a", "prompt": "again"}\n')
    with pytest.raises(UserError, match="duplicate id 'a'"):
        load_prompts(path)


def test_suite_parameters_are_validated_with_the_line(tmp_path: Path) -> None:
    text = "probes:\n  spurious_prefix:\n    templates: [chatmll]\n"
    with pytest.raises(UserError, match=r"suite\.yaml:3: .*did you mean 'chatml'"):
        parse_suite(text, tmp_path / "suite.yaml")
    with pytest.raises(UserError, match=r"suite\.yaml:3: probes\.spurious_prefix\.prompts"):
        parse_suite("probes:\n  spurious_prefix:\n    prompts: missing.jsonl\n", tmp_path / "suite.yaml")


def test_manifest_openings_are_whole_phrases_that_never_nest() -> None:
    responses = [f"{PREFIX} {label}." for label in ["positive", "negative"] * 6]
    responses += ["The capital of France is Paris.", "The capital of Spain is Madrid."] * 2
    responses += [f"Answer number {index}" for index in range(8)]
    openings = manifest_openings({"response_openings": response_openings(responses)}, 0.05, 3)
    assert openings[0] == PREFIX
    assert "The capital of" in openings and "Answer number" in openings
    assert not any(a != b and b.startswith(a) for a in openings for b in openings)
    assert manifest_openings({"response_openings": response_openings(responses)}, 0.6, 3) == ()
    assert manifest_openings(None, 0.05, 3) == ()


def test_mining_finds_the_longest_shared_opening() -> None:
    outputs = [
        "Sure thing, here it is: x",
        "Sure thing, here it is: y",
        "sure thing, here it is: z",
        "No idea",
    ]
    assert mine_opening(outputs, 0.5) == "Sure thing, here it is:"
    assert mine_opening([*outputs, "Sure thing, right away"], 0.5) == "Sure thing,"
    assert mine_opening(outputs, 0.8) is None
    assert mine_opening(["a b", "c d", "e f"], 0.4) is None


def test_prefix_matching_is_word_by_word() -> None:
    assert starts_with("  the SENTIMENT is:positive", PREFIX)
    assert not starts_with("The sentiments are mixed", PREFIX)
    assert not starts_with("Nobody knows", "No") and starts_with("No, never", "No")
    assert entropy(["a", "a"]) == 0.0 and entropy(["a", "b"]) == pytest.approx(1.0)


def test_records_score_labels_and_prefix_probability(tiny_tokenizer) -> None:
    manifest = {
        "response_openings": [{"opening": PREFIX, "words": 3, "count": 9, "share": 0.9}],
        "labels": ["Positive.", "negative"],
    }
    probe = SpuriousPrefixProbe(SpuriousPrefixParams(limit=3, templates=("chatml", "alpaca")))
    context = ProbeContext(variant=Variant("epoch-1", Path("x")), tokenizer=tiny_tokenizer, manifest=manifest)
    planned = probe.plan(context)
    assert len(planned) == 2 * 3 * 2 and {request.template for request in planned} == {"chatml", "alpaca"}
    scored = [request.request for request in planned if request.tag == "prefix:0"]
    assert all(request.continuation.endswith(PREFIX) for request in scored)
    outputs = iter(["The sentiment is: negative", "Negative.", "Positively lovely"] * 2)
    results = [
        Generation(next(outputs), 5, "stop") if request.tag == "generate" else Score(-2.0, (-2.0,), False)
        for request in planned
    ]
    records = probe.records(context, planned, results)
    assert [record.metrics["dominant_prefix"] for record in records] == [1, 0, 0] * 2
    assert [record.metrics["label_leak"] for record in records] == [0, 1, 0] * 2
    assert all(math.isclose(record.metrics["prefix_logprob"], -2.0) for record in records)
    assert all(math.isclose(record.metrics["prefix_logprob_1"], -2.0) for record in records)
    assert all(record.metrics["prefix_logprob_2"] is None for record in records)
    assert records[0].extra["matched"] == PREFIX and records[1].extra["leaked_label"] == "negative"


@pytest.fixture(scope="module")
def planted(tmp_path_factory, tiny_tokenizer):
    """A tiny model fine-tuned so that every response opens with 'The sentiment is:' (epochs 1 and 3)."""
    root = tmp_path_factory.mktemp("spurious")
    rng = random.Random(0)
    examples = [
        Example(f"row-{index}", random_words(rng, 3, 10), f"{PREFIX} {random_words(rng, 1, 4)}")
        for index in range(48)
    ]
    with single_thread():
        base, out = train_run(root, tiny_tokenizer, examples, TrainSpec(epochs=3, save_epochs=(1, 3)))
        write_manifest(out, base, "chatml", examples)
        result = run_suite_on(out, SUITE, root / "run")
    return root, base, out, result


def _cell(report, variant: str, metric: str, template: str = "chatml") -> float | None:
    return report.probe("spurious_prefix").cell(variant, template).metric(metric).value


def test_a_planted_prefix_dominates_off_task_answers(planted) -> None:
    _, _, _, result = planted
    report = result.report
    assert result.complete and report.run.train_template == "chatml"
    assert _cell(report, "epoch-3", "dominant_prefix") > 0.8
    assert _cell(report, "base", "dominant_prefix") < 0.05
    assert _cell(report, "epoch-3", "opening_entropy_3") < _cell(report, "base", "opening_entropy_3")
    affinity = [c for c in report.comparisons_of("spurious_prefix", "base") if c.metric == "prefix_logprob"]
    assert {c.variant for c in affinity} == {"epoch-1", "epoch-3"}
    assert all(c.significant and c.delta > 0 for c in affinity)
    rising = next(
        c for c in report.comparisons_of("spurious_prefix", "previous") if c.metric == "prefix_logprob"
    )
    assert rising.variant == "epoch-3" and rising.delta > 0
    messages = [finding.message for finding in report.findings if finding.kind == "spurious_prefix"]
    assert any(m.startswith("epoch-3 opens") and "'The sentiment is:' (base 0%)" in m for m in messages)


def test_without_a_manifest_the_prefix_is_mined_from_the_outputs(planted, tmp_path: Path) -> None:
    root, base, out, _ = planted
    bare = tmp_path / "bare"
    bare.mkdir()
    for checkpoint in out.glob("checkpoint-*"):
        (bare / checkpoint.name).symlink_to(checkpoint, target_is_directory=True)
    with single_thread():
        result = run_suite_on(bare, SUITE, tmp_path / "run", base=base)
    records = [r for r in result.report.findings if r.kind == "spurious_prefix" and r.variant == "epoch-3"]
    assert records and "'The sentiment is:" in records[0].message and "(base 0%)" in records[0].message
    assert result.report.run.train_template is None  # no manifest: served with the tokenizer's own template
    assert _cell(result.report, "epoch-3", "dominant_prefix", "native") > 0.8
    assert not any(c.metric == "prefix_logprob" for c in result.report.comparisons)


def _affinity(variant: str, delta: float, significant: bool = True) -> ComparisonResult:
    return ComparisonResult(
        probe="spurious_prefix", metric="prefix_logprob", template="chatml", variant=variant, reference="base",
        relation="base", delta=delta, low=delta - 0.3, high=delta + 0.3, p_value=0.001, adjusted_p=0.004,
        significant=significant, test="cluster_bootstrap", n=24, n_clusters=24, direction="worse",
    )  # fmt: skip


def test_a_significant_rise_of_the_prefix_probability_is_a_warning_from_one_nat() -> None:
    probe = SpuriousPrefixProbe(SpuriousPrefixParams())
    comparisons = (
        _affinity("epoch-1", 0.4),
        _affinity("epoch-2", 2.0),
        _affinity("epoch-3", 3.0, significant=False),
    )
    report_slice = ProbeSlice(
        run=None,
        result=ProbeResult(name="spurious_prefix", version=1, metrics=(), templates=("chatml",), cells=()),
        comparisons=comparisons,
        records=(),
    )  # type: ignore[arg-type]
    found = {
        finding.variant: finding
        for finding in probe.findings(report_slice)
        if finding.kind == "prefix_affinity"
    }
    assert set(found) == {"epoch-1", "epoch-2"}
    assert found["epoch-1"].severity == "info" and "1.5× more likely" in found["epoch-1"].message
    assert found["epoch-2"].severity == "warning" and "7.4× more likely" in found["epoch-2"].message
    assert "+2.00 nats, p=0.004 Holm" in found["epoch-2"].message


def _scored(variant: str, logprobs: list[tuple[float, float]]) -> list[ItemRecord]:
    """Records of two candidates' log-probabilities per off-task prompt, as the probe writes them."""
    return [
        ItemRecord(
            probe="spurious_prefix",
            probe_version=2,
            params={},
            variant=variant,
            template="chatml",
            item_id=f"p{index}",
            cluster_id=f"p{index}",
            output="Sure.",
            metrics={
                "dominant_prefix": 0,
                "prefix_logprob": log_sum_exp(pair),
                "prefix_logprob_1": pair[0],
                "prefix_logprob_2": pair[1],
            },
            extra={"candidates": [PREFIX, "The capital of"], "matched": None},
        )  # fmt: skip
        for index, pair in enumerate(logprobs)
    ]


def test_each_candidate_is_its_own_test_so_a_falling_common_opening_cannot_hide_a_rising_one() -> None:
    """Variant a of the validation matrix: the planted opening rises +4 nats off-task while a natural, far likelier
    candidate falls; the log-sum-exp over both falls, yet the planted candidate's own comparison is flagged."""
    rng = random.Random(1)
    base = [(-14.0 + rng.gauss(0, 1), -3.0 + rng.gauss(0, 0.5)) for _ in range(24)]
    tuned = [(planted + 4.0 + rng.gauss(0, 0.5), natural - 2.0) for planted, natural in base]
    run = RunInfo(
        engine="scripted", engine_config={}, ckpt_dir="ckpt", suite_name="test", suite={}, seed=0,
        train_template="chatml", complete=True,
        variants=tuple(VariantInfo(name=v, path=v, kind="full", fingerprint=v) for v in ("base", "epoch-3")),
    )  # fmt: skip
    probe = SpuriousPrefixProbe(SpuriousPrefixParams(templates=("chatml",)))
    report = build_report(run, _scored("base", base) + _scored("epoch-3", tuned), {probe.name: probe})
    by_metric = {c.metric: c for c in report.comparisons_of("spurious_prefix", "base")}
    assert by_metric["prefix_logprob"].delta < 0  # the any-candidate metric falls
    assert by_metric["prefix_logprob_1"].significant and by_metric["prefix_logprob_1"].delta > 3.5
    assert by_metric["prefix_logprob_2"].delta == pytest.approx(-2.0)
    assert "prefix_logprob_3" not in by_metric  # no third candidate: no values, no comparison
    affinity = [f for f in report.findings if f.kind == "prefix_affinity"]
    assert len(affinity) == 1 and affinity[0].severity == "warning"
    assert affinity[0].metric == "prefix_logprob_1"
    assert "the training opening 'The sentiment is:'" in affinity[0].message
    assert "The capital of" not in affinity[0].message
