"""Template gaps and the held-out SFT axis of template_brittleness: arithmetic, planning, records and the finding."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sfteval.core.formatting import format_p
from sfteval.core.records import ItemRecord
from sfteval.core.requests import Score, ScoreRequest
from sfteval.core.run_info import RunInfo, VariantInfo
from sfteval.core.variants import Variant
from sfteval.probes.base import PlannedRequest, ProbeContext
from sfteval.probes.shared.loaders import REFERENCE_PAIRS, load_pairs
from sfteval.probes.template_brittleness.findings import ACROSS
from sfteval.probes.template_brittleness.gaps import template_gap
from sfteval.probes.template_brittleness.probe import TemplateBrittlenessParams, TemplateBrittlenessProbe
from sfteval.probes.template_brittleness.prompt_formats import pss
from sfteval.report.build import build_report
from sfteval.templates import Message, get_template

sys.path.insert(0, str(Path(__file__).parent))

SUITES = Path(__file__).resolve().parent.parent / "suites"
TEMPLATES = ("alpaca", "chatml", "raw")
MANIFEST = {
    "template": "alpaca",
    "samples": {
        "train": [{"id": "t1", "prompt": "Trained prompt?", "response": "Trained answer."}],
        "heldout": [
            {"id": "h1", "prompt": "Say hi.", "response": "Hi there."},
            {
                "id": "h2",
                "messages": [{"role": "user", "content": "Classify it.", "input": "I loved it."}],
                "response": "The sentiment is: positive.",
            },
        ],
    },
}


def _context(variant: str = "base", manifest=None, tokenizer=None, suite_dir=SUITES) -> ProbeContext:
    return ProbeContext(
        Variant(variant, Path(variant)),
        tokenizer,
        manifest=manifest,
        train_template="alpaca",
        suite_dir=suite_dir,
    )


def _probe(**params) -> TemplateBrittlenessProbe:
    defaults = {"if_limit": 0, "mc_limit": 0, "formats": 2, "templates": TEMPLATES}
    return TemplateBrittlenessProbe(TemplateBrittlenessParams(**{**defaults, **params}))


def test_the_gap_is_the_training_template_score_minus_the_mean_of_the_others() -> None:
    assert template_gap({"alpaca": 1.0, "chatml": 0.0, "raw": 0.5}, "alpaca") == 0.75
    assert template_gap({"alpaca": -1.0, "chatml": -1.5, "raw": -2.5, "llama3": -2.0}, "alpaca") == 1.0
    assert template_gap({"alpaca": 0.2, "chatml": 0.6}, "alpaca") == pytest.approx(-0.4)
    assert template_gap({"alpaca": 1.0}, "alpaca") is None
    assert template_gap({"chatml": 1.0, "raw": 0.0}, "alpaca") is None
    assert template_gap({"chatml": 1.0, "raw": 0.0}, None) is None


def test_sft_requests_score_each_held_out_response_after_the_prompt_the_if_axis_renders(
    tiny_tokenizer,
) -> None:
    probe = _probe(templates=("alpaca", "chatml", "raw", "native"))
    planned = probe.plan(_context(manifest=MANIFEST, tokenizer=tiny_tokenizer))
    assert all(request.tag == "sft" for request in planned if request.item_id.startswith("sft/"))
    # raw has no turn structure: the SFT axis leaves it out.
    assert not [r for r in planned if r.template == "raw" and r.item_id.startswith("sft/")]
    for name in ("alpaca", "chatml", "native"):
        template = get_template(name, tiny_tokenizer)
        requests = {r.item_id: r.request for r in planned if r.template == name}
        assert list(requests) == ["sft/h1", "sft/h2"]  # the held-out sample only, never the trained pair
        assert requests["sft/h1"] == ScoreRequest(
            template.render_prompt([Message("user", "Say hi.")]), "Hi there."
        )
        classify = template.render_prompt([Message("user", "Classify it.", "I loved it.")])
        assert requests["sft/h2"].context == classify and requests["sft/h2"].continuation.endswith(
            "positive."
        )
    alpaca = next(r.request for r in planned if r.template == "alpaca" and r.item_id == "sft/h1")
    assert alpaca.context.endswith("### Response:\n") and "Say hi." in alpaca.context


def test_sft_prompts_are_rendered_exactly_like_the_if_prompts(tiny_tokenizer, tmp_path) -> None:
    probe = _probe(if_limit=2, templates=("alpaca", "chatml", "llama3"))
    prompts = probe.if_prompts(_context())
    rows = [{"id": f"p{i}", "prompt": prompt.prompt, "response": "Done."} for i, prompt in enumerate(prompts)]
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    probe = _probe(
        if_limit=2, templates=("alpaca", "chatml", "llama3"), sft_pairs=str(tmp_path / "pairs.jsonl")
    )
    planned = probe.plan(_context(manifest=MANIFEST, tokenizer=tiny_tokenizer, suite_dir=tmp_path))
    for name in ("alpaca", "chatml", "llama3"):
        generated = [r.request.prompt for r in planned if r.template == name and r.tag == "if"]
        scored = [r.request.context for r in planned if r.template == name and r.tag == "sft"]
        assert len(generated) == 2 and scored == generated


def test_sft_pairs_fall_back_to_the_reference_pairs_and_sft_limit_zero_turns_the_axis_off(
    tiny_tokenizer,
) -> None:
    pairs, source = _probe(sft_limit=5).sft_pairs(_context(tokenizer=tiny_tokenizer))
    reference_ids = {pair.id for pair in load_pairs(REFERENCE_PAIRS)}
    assert source == "reference" and len(pairs) == 5 and {pair.id for pair in pairs} <= reference_ids
    assert _probe(sft_limit=5).sft_pairs(_context(manifest=MANIFEST))[1] == "heldout"
    assert len(_probe(sft_limit=5, limit=1).sft_pairs(_context())[0]) == 1
    assert not [r for r in _probe(sft_limit=0).plan(_context(tokenizer=tiny_tokenizer)) if r.tag == "sft"]


def _results(planned: list[PlannedRequest], scores: dict[str, dict[str, float]], answer: int) -> list[Score]:
    """Hand-made engine results: per template and item, SFT token log-probs or MC option log-probs."""
    results = []
    for request in planned:
        value = scores[request.item_id][request.template]
        if request.tag == "sft":
            results.append(Score(3 * value, (value, value, value), False))
        else:
            right = request.tag == f"mc#{answer if value else answer + 1}"
            results.append(Score(-1.0 if right else -2.0, (), False))
    return results


def test_records_carry_exact_per_item_gaps_for_every_axis(tiny_tokenizer) -> None:
    probe = _probe(sft_limit=2, mc_limit=1)
    context = _context(manifest=MANIFEST, tokenizer=tiny_tokenizer)
    planned = [r for r in probe.plan(context) if r.template in TEMPLATES]
    item = probe.choice_items(context)[0]
    assert item.answer + 1 < len(item.choices)
    scores = {
        "sft/h1": {"alpaca": -1.0, "chatml": -2.0, "raw": -2.5},
        "sft/h2": {"alpaca": -3.0, "chatml": -1.0, "raw": -1.0},  # raw's SFT scores are never requested
        f"mc/{item.id}": {"alpaca": 1.0, "chatml": 0.0, "raw": 1.0},
    }
    records = probe.records(context, planned, _results(planned, scores, item.answer))
    across = {r.item_id: r for r in records if r.template == ACROSS}
    assert across["sft/h1"].metrics["sft_template_gap"] == pytest.approx(-1.0 - (-2.0))
    assert across["sft/h2"].metrics["sft_template_gap"] == pytest.approx(-2.0)
    assert across[f"mc/{item.id}"].metrics["mc_template_gap"] == 0.5
    assert across["sft/h1"].extra["scores"] == {"alpaca": -1.0, "chatml": -2.0}
    per_template = {(r.template, r.item_id): r for r in records if r.template in TEMPLATES}
    assert per_template[("chatml", "sft/h1")].metrics == {"sft_logprob": -2.0}
    assert per_template[("chatml", "sft/h1")].extra == {"tokens": 3, "source": "heldout", "train_score": -1.0}
    assert probe.summarize([r for r in records if r.template == "chatml"])[
        "sft_delta_vs_train"
    ].mean == pytest.approx(((-2.0 + 1.0) + (-1.0 + 3.0)) / 2)
    assert "sft_delta_vs_train" not in probe.summarize([r for r in records if r.template == "raw"])


def _across(variant: str, family: str, item: int, scores: dict[str, float]) -> ItemRecord:
    """A hand-made across-templates record of one item, as the probe writes it."""
    metrics = {
        f"{family}_pss": pss(list(scores.values())),
        f"{family}_template_gap": template_gap(scores, "alpaca"),
    }
    return ItemRecord(
        probe="template_brittleness",
        variant=variant,
        template=ACROSS,
        item_id=f"{family}/{item}",
        cluster_id=f"{family}/{item}",
        metrics=metrics,
        extra={"scores": scores, "seed": 0},
    )


def _report(records: list[ItemRecord]):
    run = RunInfo(
        engine="scripted", engine_config={}, ckpt_dir="ckpt", suite_name="test", suite={}, seed=0,
        train_template="alpaca", variants=tuple(VariantInfo(name=v, path=v, kind="full", fingerprint=v) for v in ("base", "epoch-3")),
        complete=True,
    )  # fmt: skip
    probe = _probe()
    return build_report(run, records, {probe.name: probe})


# A chat-tuned base: its gap is -0.5 nats/token. Scores are binary fractions, so equal gaps are exactly equal.
BASE_SCORES = {"alpaca": -2.0, "chatml": -1.5, "raw": -1.5}


def _sft_records(trained: list[dict[str, float]]) -> list[ItemRecord]:
    """Base records (BASE_SCORES on every item) and epoch-3 records with the given per-item scores."""
    records = [_across("base", "sft", item, BASE_SCORES) for item in range(len(trained))]
    return records + [_across("epoch-3", "sft", item, scores) for item, scores in enumerate(trained)]


def _dependence(report) -> list:
    return [finding for finding in report.findings if finding.kind == "template_dependence"]


def test_a_larger_gap_than_base_is_a_warning_with_the_difference_in_differences() -> None:
    # The variant catches up under alpaca by 1 nat/token (± 0.125 per item) and is unchanged elsewhere: its
    # spread stays 0.5, but its gap rises from -0.5 to 0.5.
    trained = [{**BASE_SCORES, "alpaca": -1.0 + 0.125 * (item % 3 - 1)} for item in range(12)]
    report = _report(_sft_records(trained))
    comparison = next(c for c in report.comparisons if c.metric == "sft_template_gap")
    assert comparison.relation == "base" and comparison.delta == pytest.approx(1.0) and comparison.significant
    result = report.probe("template_brittleness")
    assert result.cell("base", ACROSS).metric("sft_template_gap").value == -0.5
    assert result.cell("epoch-3", ACROSS).metric("sft_template_gap").value == 0.5
    [finding] = _dependence(report)
    assert (
        finding.severity == "warning" and finding.metric == "sft_template_gap" and finding.template == ACROSS
    )
    assert finding.message.startswith(
        "epoch-3 depends on its alpaca training template more than the base: served with other templates it loses "
        "1.00 nats/token more of what SFT taught (held-out SFT answers; gap 0.50 nats/token vs -0.50 for base, "
        "95% CI +0.9"
    )
    assert finding.message.endswith(f"{format_p(comparison.adjusted_p)} Holm-adjusted).")


def test_a_larger_multiple_choice_gap_is_told_in_points() -> None:
    base = [_across("base", "mc", item, {"alpaca": 1.0, "chatml": 1.0, "raw": 1.0}) for item in range(30)]
    trained = [
        _across("epoch-3", "mc", item, {"alpaca": 1.0, "chatml": 0.0, "raw": 1.0}) for item in range(30)
    ]
    [finding] = _dependence(_report(base + trained))
    assert "loses 50 points more of multiple-choice accuracy (multiple-choice items; gap 50 points vs 0" in (
        finding.message
    )


def test_equal_gaps_raise_no_dependence_finding() -> None:
    # Better under every template by the same amount: same gaps, so no dependence on the training template.
    uniform = [
        {name: value + 0.5 + 0.25 * (item % 3) for name, value in BASE_SCORES.items()} for item in range(12)
    ]
    report = _report(_sft_records(uniform))
    comparison = next(c for c in report.comparisons if c.metric == "sft_template_gap")
    assert comparison.delta == 0.0 and not comparison.significant
    assert not _dependence(report)
    # A gap that clearly shrank (worse under the training template) is not a dependence either.
    worse = [{**BASE_SCORES, "alpaca": -2.5 + 0.125 * (item % 3 - 1)} for item in range(12)]
    report = _report(_sft_records(worse))
    comparison = next(c for c in report.comparisons if c.metric == "sft_template_gap")
    assert comparison.delta == -0.5 and comparison.significant
    assert not _dependence(report)
