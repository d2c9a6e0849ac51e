"""The recommendation rule: defects and broken fail-rules exclude, a later epoch wins only when significantly
better than the earliest fit one (paired, Holm), the verdict says when nothing is fit or nothing beats base."""

from __future__ import annotations

import pytest
from comparative_fixtures import run_info as four_variant_run
from report_fixtures import answer_records, probes, run_info

from sfteval.core.records import ItemRecord
from sfteval.core.report import Report
from sfteval.report.build import build_report
from sfteval.report.recommend import recommend, recommend_report

VARIANTS = ("base", "epoch-1", "epoch-2", "epoch-3")
N_ITEMS = 40


def accuracy_records(passes: dict[str, int]) -> list[ItemRecord]:
    """The answers probe with only its accuracy: item i right when i < passes[variant]; outputs all differ."""
    return [
        ItemRecord(
            probe="answers",
            variant=variant,
            template="chatml",
            item_id=f"item-{index:02d}",
            cluster_id=f"item-{index:02d}",
            metrics={"accuracy": index < count},
            output=f"{variant} answer {index}",
        )
        for variant, count in passes.items()
        for index in range(N_ITEMS)
    ]


def build(passes: dict[str, int]) -> Report:
    run = four_variant_run(tuple(passes))
    return build_report(run, accuracy_records(passes), {"answers": probes()["answers"]})


def candidate(report: Report, name: str):
    return next(c for c in report.recommendation.candidates if c.variant == name)


def test_a_variant_with_a_defect_finding_is_never_recommended():
    report = build_report(run_info(), answer_records(), {"answers": probes()["answers"]}, seed=7)
    recommendation = report.recommendation
    assert recommendation.variant == "epoch-1"
    flawed = candidate(report, "epoch-2")
    assert not flawed.eligible
    assert flawed.exclusions == ("identical outputs", "accuracy regression")
    assert flawed.reason.startswith("error (answers): epoch-2 gives the same answer to every item.")
    assert flawed.reason.endswith("(and 2 more defect findings)")
    assert "the only epoch without a defect" in recommendation.verdict
    assert "Excluded for defects or gate rules: epoch-2." in recommendation.verdict
    assert any(reason.startswith("epoch-2 is excluded: error") for reason in recommendation.reasons)


def test_a_later_epoch_wins_only_when_significantly_better_than_the_earliest():
    significant = build({"base": 20, "epoch-1": 22, "epoch-2": 24, "epoch-3": 36})
    assert significant.recommendation.variant == "epoch-3"
    assert "significantly better on accuracy than epoch-1" in significant.recommendation.verdict
    third = candidate(significant, "epoch-3")
    assert third.delta_vs_earliest == pytest.approx(14 / 40) and third.p_vs_earliest < 0.05
    assert candidate(significant, "epoch-1").delta_vs_earliest is None
    close = build({"base": 20, "epoch-1": 22, "epoch-2": 24, "epoch-3": 25})
    recommendation = close.recommendation
    assert recommendation.variant == "epoch-1" and recommendation.score == pytest.approx(22 / 40)
    assert "no later fit epoch is significantly better on accuracy" in recommendation.verdict
    assert "epoch-3 is not significantly better than epoch-1 on accuracy (+7.5 points" in " ".join(
        recommendation.reasons
    )


def test_the_verdict_says_when_no_fit_epoch_beats_base():
    report = build({"base": 20, "epoch-1": 21, "epoch-2": 22, "epoch-3": 22})
    recommendation = report.recommendation
    assert recommendation.variant == "epoch-1" and recommendation.beats_base is False
    assert "No fit epoch is significantly better than base on accuracy." in recommendation.verdict
    beating = build({"base": 10, "epoch-1": 30, "epoch-2": 31, "epoch-3": 31})
    assert beating.recommendation.beats_base is True
    assert "than base" not in beating.recommendation.verdict


def test_when_every_epoch_is_excluded_none_is_recommended_and_the_shared_defect_is_named():
    report = build({"base": 36, "epoch-1": 10, "epoch-2": 12, "epoch-3": 11})
    recommendation = report.recommendation
    assert recommendation.variant is None and recommendation.score is None
    assert not any(c.eligible for c in recommendation.candidates)
    assert recommendation.verdict.startswith(
        "None is recommended: every epoch has the same defect. Epochs 1–3 fall by 65.0 → 60.0 → 62.5 points"
    )
    assert "accuracy of answers" in recommendation.verdict and "worst epoch-1" in recommendation.verdict


def test_gate_failures_exclude_and_the_rule_reruns_from_the_stored_report():
    report = build({"base": 20, "epoch-1": 22, "epoch-2": 24, "epoch-3": 36})
    again = recommend_report(report)
    assert again == report.recommendation
    gated = recommend_report(report, excluded={"epoch-3": "gate rule x: broken"})
    assert gated.variant == "epoch-1" and gated.gates_applied
    assert candidate(report, "epoch-3").eligible
    excluded = next(c for c in gated.candidates if c.variant == "epoch-3")
    assert (excluded.eligible, excluded.exclusions, excluded.reason) == (
        False,
        ("gate rule x",),
        "gate rule x: broken",
    )


def test_without_stored_comparisons_the_earliest_fit_epoch_is_recommended():
    report = build({"base": 20, "epoch-1": 22, "epoch-2": 24, "epoch-3": 36})
    bare = recommend(report.run, report.probes, report.findings)
    assert bare.variant == "epoch-1"
    assert any("no paired comparisons" in reason for reason in bare.reasons)
    assert recommend(run_info(["base"]), report.probes) is None
