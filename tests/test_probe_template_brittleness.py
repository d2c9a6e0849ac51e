"""The template_brittleness probe: per-template scores, deltas vs the training template, PSS, spreads, findings."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from sfteval.core.records import ItemRecord
from sfteval.core.requests import Generation, GenerationRequest, Score, ScoreRequest
from sfteval.core.run_info import RunInfo, VariantInfo
from sfteval.core.variants import Variant
from sfteval.probes.base import ProbeContext
from sfteval.probes.instruction_following import evaluate_prompt
from sfteval.probes.shared.loaders import load_choice_items
from sfteval.probes.template_brittleness.findings import ACROSS, FORMATS
from sfteval.probes.template_brittleness.probe import TemplateBrittlenessParams, TemplateBrittlenessProbe
from sfteval.probes.template_brittleness.prompt_formats import (
    pss,
    sample_formats,
    spread_difference,
    spread_estimate,
)
from sfteval.report.build import build_report

SUITES = Path(__file__).resolve().parent.parent / "suites"
ITEMS = load_choice_items(SUITES / "tasks/world_facts.jsonl")
ANSWERS = {item.question: item.choices[item.answer] for item in ITEMS}
CHOICES = {item.question: item.choices for item in ITEMS}


class TemplateSensitiveEngine:
    """Knows every answer when the prompt carries one of `good_markers` (or for every prompt when None).

    A scored continuation that is no option of a known question is an SFT reference response: −1 nat per token
    when known, else −2.
    """

    name = "scripted"
    fingerprint = "scripted"

    def __init__(self, good_markers: tuple[str, ...] | None) -> None:
        self.good_markers = good_markers

    def _knows(self, prompt: str) -> bool:
        return self.good_markers is None or any(marker in prompt for marker in self.good_markers)

    def score(self, requests: Sequence[ScoreRequest], progress=None) -> list[Score]:
        results = []
        for request in requests:
            continuation = request.continuation.strip()
            question = next((q for q in ANSWERS if q in request.context and continuation in CHOICES[q]), None)
            if question is None:
                value = -1.0 if self._knows(request.context) else -2.0
                results.append(Score(2 * value, (value, value), False))
                continue
            right = request.continuation.strip() == ANSWERS[question]
            results.append(Score(-1.0 if right == self._knows(request.context) else -3.0, (), False))
        return results

    def generate(self, requests: Sequence[GenerationRequest], progress=None) -> list[Generation]:
        return [Generation("a short reply." if self._knows(r.prompt) else "", 3, "stop") for r in requests]


def _records(probe: TemplateBrittlenessProbe, variant: str, engine, tokenizer) -> list[ItemRecord]:
    from sfteval.engines.lmeval import execute

    context = ProbeContext(
        Variant(variant, Path(variant)), tokenizer, train_template="alpaca", suite_dir=SUITES
    )
    planned = probe.plan(context)
    return probe.records(context, planned, execute(engine, [item.request for item in planned]))


def _report(probe: TemplateBrittlenessProbe, records: list[ItemRecord], variants: Sequence[str]):
    run = RunInfo(
        engine="scripted", engine_config={}, ckpt_dir="ckpt", suite_name="test", suite={}, seed=0,
        train_template="alpaca", variants=tuple(VariantInfo(name=v, path=v, kind="full", fingerprint=v) for v in variants),
        complete=True,
    )  # fmt: skip
    return build_report(run, records, {probe.name: probe})


def test_plan_covers_every_template_and_format_with_the_training_template_first(tiny_tokenizer) -> None:
    probe = TemplateBrittlenessProbe(TemplateBrittlenessParams(if_limit=2, mc_limit=3, formats=8))
    context = ProbeContext(
        Variant("base", Path("b")), tiny_tokenizer, train_template="zephyr", suite_dir=SUITES
    )
    assert list(probe.templates(context)) == ["zephyr", "native", "raw", "alpaca", "chatml", "llama3"]
    planned = probe.plan(context)
    templates = list(dict.fromkeys(request.template for request in planned))
    assert templates == [
        "zephyr",
        "native",
        "raw",
        "alpaca",
        "chatml",
        "llama3",
        *(f"format-{i}" for i in range(8)),
    ]
    per_template = [request for request in planned if request.template == "chatml"]
    assert sum(isinstance(r.request, GenerationRequest) for r in per_template) == 2
    assert sum(r.tag.startswith("mc#") for r in per_template) == 3 * 4
    assert sum(r.tag == "sft" for r in per_template) == 24
    assert all(
        r.request.context.endswith("<|im_start|>assistant\n") for r in per_template if r.tag.startswith("mc")
    )


def test_native_is_skipped_for_a_tokenizer_without_a_chat_template_unless_asked_for() -> None:
    import tiny

    from sfteval.core.errors import UserError

    tokenizer = tiny.build_tokenizer(chat_template=None)
    context = ProbeContext(Variant("base", Path("b")), tokenizer, suite_dir=SUITES)
    assert "native" not in TemplateBrittlenessProbe().templates(context)
    with pytest.raises(UserError, match="no chat template"):
        TemplateBrittlenessProbe(TemplateBrittlenessParams(templates=("native",))).templates(context)


def test_records_score_each_template_and_pair_them_with_the_training_template(tiny_tokenizer) -> None:
    params = TemplateBrittlenessParams(
        if_limit=3, mc_limit=6, formats=3, templates=("alpaca", "chatml", "raw")
    )
    probe = TemplateBrittlenessProbe(params)
    records = _records(probe, "epoch-1", TemplateSensitiveEngine(("### Instruction:",)), tiny_tokenizer)
    by_cell = {(r.template, r.item_id): r for r in records}
    mc_ids = [
        f"mc/{item.id}"
        for item in probe.choice_items(ProbeContext(Variant("b", Path("b")), None, suite_dir=SUITES))
    ]
    assert all(by_cell[("alpaca", item)].metrics["mc_correct"] == 1.0 for item in mc_ids)
    assert all(by_cell[("chatml", item)].metrics["mc_correct"] == 0.0 for item in mc_ids)
    assert by_cell[("chatml", mc_ids[0])].extra["train_score"] == 1.0
    assert "train_score" not in by_cell[("alpaca", mc_ids[0])].extra
    assert by_cell[(ACROSS, mc_ids[0])].metrics == {"mc_pss": pytest.approx(2 / 3), "mc_template_gap": 1.0}
    assert by_cell[(FORMATS, mc_ids[0])].metrics == {"format_pss": 0.0, "format_accuracy": 0.0}
    if_record = next(r for r in records if r.template == "alpaca" and r.item_id.startswith("if/"))
    prompt = next(
        p
        for p in probe.if_prompts(ProbeContext(Variant("b", Path("b")), None))
        if f"if/{p.item_id}" == if_record.item_id
    )
    evaluation = evaluate_prompt(prompt, "a short reply.")
    assert if_record.metrics["if_instruction_loose"] == sum(evaluation.loose) / len(evaluation.loose)
    chatml = probe.summarize([r for r in records if r.template == "chatml"])
    assert chatml["mc_delta_vs_train"].mean == -1.0
    spreads = probe.summarize([r for r in records if r.template == ACROSS])
    assert spreads["mc_spread"].mean == 1.0


def test_an_alpaca_only_model_is_reported_more_brittle_than_its_base(tiny_tokenizer) -> None:
    params = TemplateBrittlenessParams(
        if_limit=0, mc_limit=30, formats=4, templates=("alpaca", "chatml", "raw")
    )
    probe = TemplateBrittlenessProbe(params)
    records = _records(probe, "base", TemplateSensitiveEngine(None), tiny_tokenizer)
    records += _records(probe, "epoch-1", TemplateSensitiveEngine(("### Instruction:",)), tiny_tokenizer)
    report = _report(probe, records, ["base", "epoch-1"])
    messages = [finding.message for finding in report.findings if finding.probe == probe.name]
    expected = "epoch-1: served with chatml instead of its alpaca training template, multiple-choice accuracy drops 100"
    assert any(message.startswith(expected) for message in messages)
    assert any(
        m.startswith(
            "epoch-1: the serving-template spread of multiple-choice accuracy is 100 points vs 0 for base"
        )
        and m.endswith("SFT made the model more brittle.")
        for m in messages
    )
    result = report.probe(probe.name)
    assert result.cell("epoch-1", ACROSS).metric("mc_spread").value == 1.0
    assert result.cell("base", ACROSS).metric("mc_spread").value == 0.0


def test_pss_is_the_mean_pairwise_disagreement() -> None:
    assert pss([1, 0, 1]) == pytest.approx(2 / 3)
    assert pss([1, 1, 1, 1]) == 0.0
    assert pss([0.5, 1.0]) == 0.5
    values = [random.Random(3).random() for _ in range(5)]
    pairs = list(itertools.combinations(values, 2))
    assert pss(values) == pytest.approx(sum(abs(a - b) for a, b in pairs) / len(pairs))


def test_spread_estimate_brackets_the_observed_spread_and_pairs_differences() -> None:
    rng = random.Random(0)
    scores = [{"a": float(rng.random() < 0.8), "b": float(rng.random() < 0.5)} for _ in range(200)]
    estimate = spread_estimate(scores, [str(i) for i in range(200)], seed=0)
    observed = abs(sum(s["a"] for s in scores) - sum(s["b"] for s in scores)) / 200
    assert estimate.mean == pytest.approx(observed)
    assert estimate.low < estimate.mean < estimate.high and estimate.method == "bootstrap"
    flat = [{"a": s["a"], "b": s["a"]} for s in scores]
    difference, low, high = spread_difference(scores, flat, [str(i) for i in range(200)], seed=0)
    assert difference == pytest.approx(observed) and 0 < low < high
    clustered = spread_estimate(scores, [str(i // 4) for i in range(200)], seed=0)
    assert clustered.n_clusters == 50 and clustered.method == "cluster-bootstrap"


def test_formats_are_seeded_distinct_and_keep_newline_separators_on_newline_spaces() -> None:
    formats = sample_formats(12, seed=7)
    assert formats == sample_formats(12, seed=7) and formats != sample_formats(12, seed=8)
    assert (
        len({(f.separator, f.space, f.casing, f.wrapper, f.numbering, f.option_gap) for f in formats}) == 12
    )
    assert all("\n" in f.space for f in formats if "\n" in f.separator)
    rendered = formats[0].render("Q?", ["x", "y"])
    assert "Q?" in rendered and rendered.index("x") < rendered.index("y")


def test_a_model_trained_on_one_template_only_is_flagged_template_dependent_end_to_end(
    tmp_path: Path, tiny_tokenizer
) -> None:
    """A tiny Llama trained from a random base on alpaca alone: its held-out SFT answers become much likelier under
    alpaca than under chatml (markers it never saw), the base has no such gap, and the report says so."""
    from train_tiny import (
        Example,
        TrainSpec,
        run_suite_on,
        sentence,
        single_thread,
        train_run,
        write_manifest,
    )

    rng = random.Random(3)
    examples = [Example(f"r{index}", f"where is it {index}?", sentence(rng)) for index in range(64)]
    trained, heldout = examples[:48], examples[48:]
    suite = (
        "probes:\n  template_brittleness:\n    templates: [alpaca, chatml]\n"
        "    if_limit: 0\n    mc_limit: 0\n    sft_limit: 16\n"
    )
    with single_thread():
        base, out = train_run(
            tmp_path, tiny_tokenizer, trained, TrainSpec(template="alpaca", save_epochs=(3,))
        )
        write_manifest(out, base, "alpaca", trained, samples_heldout=heldout)
        report = run_suite_on(out, suite, tmp_path / "run").report
    gap = next(
        c for c in report.comparisons_of("template_brittleness", "base") if c.metric == "sft_template_gap"
    )
    assert gap.n == 16 and gap.significant and gap.delta > 0.3  # measured: +0.42 nats/token
    warnings = [f for f in report.findings if f.kind == "template_dependence"]
    assert [f.metric for f in warnings] == ["sft_template_gap"]
    assert warnings[0].message.startswith(
        "epoch-3 depends on its alpaca training template more than the base"
    )
