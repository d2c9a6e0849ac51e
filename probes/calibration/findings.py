"""calibration findings: a variant more confidently wrong than its base, by the share of answers wrong at high
confidence (the report's McNemar test) and by ECE (paired bootstrap on the same items, Holm over the variants)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sfteval import stats
from sfteval.core.formatting import format_p
from sfteval.core.records import ItemRecord
from sfteval.core.results import ComparisonResult, Finding, ProbeSlice
from sfteval.core.variants import BASE
from sfteval.probes.calibration.measures import EceDifference, paired_ece_difference
from sfteval.probes.calibration.metrics import NAME
from sfteval.probes.shared.sentences import finding, percent, records_by_cell, summary_value

ALPHA = 0.05


def calibration_findings(
    report_slice: ProbeSlice, bins: int, n_resamples: int, seed: int, threshold: float
) -> list[Finding]:
    """One warning per variant whose overconfident-wrong share or ECE rose significantly vs base.

    The finding is about `overconfident_wrong` when that headline comparison rose (so the report's generic
    "rose" sentence yields to this one), else about `ece`, which only the probe's own paired bootstrap tests.
    """
    cells = records_by_cell(report_slice.records)
    differences: dict[tuple[str, str], EceDifference] = {}
    for (variant, template), records in cells.items():
        base = cells.get((BASE, template))
        found = (
            None
            if variant == BASE or base is None
            else _ece_difference(records, base, bins, n_resamples, seed)
        )
        if found is not None:
            differences[(variant, template)] = found
    p_values = [difference.p_value for difference in differences.values()]
    adjusted = dict(zip(differences, stats.holm(p_values, ALPHA), strict=True))
    rising = {
        (c.variant, c.template): c
        for c in report_slice.comparisons
        if c.metric == "overconfident_wrong" and c.relation == "base" and c.significant and c.delta > 0
    }
    findings = []
    for key in dict.fromkeys([*differences, *rising]):
        difference, holm = differences.get(key), adjusted.get(key)
        ece_up = difference is not None and holm is not None and holm.significant and difference.delta > 0
        if not ece_up and key not in rising:
            continue
        holm_p = holm.adjusted_p if holm is not None else None
        message = _message(report_slice, key, difference, holm_p, rising.get(key), threshold)
        trend = _trend(report_slice, key, rising.get(key), holm_p, threshold)
        findings.append(finding("warning", "overconfidence", message, NAME, key[0], template=key[1], **trend))
    return findings


def _trend(
    report_slice: ProbeSlice,
    key: tuple[str, str],
    comparison: ComparisonResult | None,
    ece_p: float | None,
    threshold: float,
) -> dict[str, Any]:
    """The finding's metric and the fields that tell it once across epochs (value, value_text, claim, p)."""
    variant, template = key
    cell, base_cell = report_slice.result.cell(variant, template), report_slice.result.cell(BASE, template)
    if comparison is not None:
        wrong = summary_value(cell, "overconfident_wrong") or 0.0
        base = summary_value(base_cell, "overconfident_wrong")
        versus = "" if base is None else f" (base {percent(base)})"
        claim = f"answer {{value}} of multiple-choice questions wrong at confidence ≥ {percent(threshold)}{versus}"
        return {"metric": "overconfident_wrong", "value": wrong, "value_text": percent(wrong), "claim": claim,
                "adjusted_p": comparison.adjusted_p}  # fmt: skip
    ece = summary_value(cell, "ece") or 0.0
    base_ece = summary_value(base_cell, "ece")
    versus = "" if base_ece is None else f" (base {base_ece:.3f})"
    claim = f"are more confidently wrong than the base: expected calibration error {{value}}{versus}"
    return {"metric": "ece", "value": ece, "value_text": f"{ece:.3f}", "claim": claim, "adjusted_p": ece_p}


def _ece_difference(
    records: Sequence[ItemRecord], base: Sequence[ItemRecord], bins: int, n_resamples: int, seed: int
) -> EceDifference | None:
    """Paired ECE difference on the items both sides answered; None with fewer than two."""
    by_id = {record.item_id: record for record in base if record.metrics.get("confidence") is not None}
    pairs = [
        (r, by_id[r.item_id])
        for r in records
        if r.item_id in by_id and r.metrics.get("confidence") is not None
    ]
    if len(pairs) < 2:
        return None

    def sides(index: int) -> tuple[list[float], list[float]]:
        """(confidences, correctness) of one side (0: the variant, 1: the base) of the pairs."""
        chosen = [pair[index] for pair in pairs]
        confidences = [float(record.metrics["confidence"] or 0) for record in chosen]
        return confidences, [float(record.metrics["correct"] or 0) for record in chosen]

    return paired_ece_difference(sides(0), sides(1), bins, n_resamples, seed)


def _message(
    report_slice: ProbeSlice,
    key: tuple[str, str],
    difference: EceDifference | None,
    adjusted_p: float | None,
    comparison: ComparisonResult | None,
    threshold: float,
) -> str:
    """'epoch-3 is more confidently wrong than its base: 12% of its multiple-choice answers are wrong at …'."""
    variant, template = key
    cell, base_cell = report_slice.result.cell(variant, template), report_slice.result.cell(BASE, template)
    wrong, base_wrong = (
        summary_value(cell, "overconfident_wrong"),
        summary_value(base_cell, "overconfident_wrong"),
    )
    parts = []
    if wrong is not None and base_wrong is not None:
        tested = f"; McNemar {format_p(comparison.adjusted_p)} Holm" if comparison is not None else ""
        parts.append(
            f"{percent(wrong)} of its multiple-choice answers are wrong at confidence ≥ {percent(threshold)} "
            f"(base {percent(base_wrong)}{tested})"
        )
    if difference is not None:
        ece, base_ece = summary_value(cell, "ece"), summary_value(base_cell, "ece")
        shown_p = format_p(1.0 if adjusted_p is None else adjusted_p)
        parts.append(
            f"its expected calibration error is {ece or 0:.3f} (base {base_ece or 0:.3f}; {difference.delta:+.3f}, "
            f"95% CI [{difference.low:+.3f}, {difference.high:+.3f}], paired bootstrap {shown_p} Holm)"
        )
    confidence, accuracy = summary_value(cell, "confidence"), summary_value(cell, "correct")
    base_confidence, base_accuracy = (
        summary_value(base_cell, "confidence"),
        summary_value(base_cell, "correct"),
    )
    if None not in (confidence, accuracy, base_confidence, base_accuracy):
        parts.append(
            f"its mean confidence is {confidence:.2f} at {percent(accuracy or 0)} accuracy "
            f"(base {base_confidence:.2f} at {percent(base_accuracy or 0)})"
        )
    return (
        f"{variant} is more confidently wrong than its base: "
        + "; ".join(parts)
        + ". Confidence above accuracy "
        "comes from answers trained without the knowledge behind them (Gekhman et al. 2024) or from knowledge "
        "lost at unchanged confidence."
    )
