"""calibration findings: a variant more confidently wrong than its base, by ECE (paired bootstrap on the same
items, Holm over the variants) and by the share of answers wrong at high confidence (the report's McNemar test)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sfteval.probes.shared.sentences import BASE, finding, percent, records_by_cell, summary_value

from sfteval import stats
from sfteval.core.records import ItemRecord
from sfteval.core.formatting import format_p
from sfteval.core.results import ComparisonResult, Finding

from .measures import EceDifference, paired_ece_difference

if TYPE_CHECKING:
    from sfteval.core.results import ProbeSlice

NAME = "calibration"
ALPHA = 0.05


def calibration_findings(
    report_slice: ProbeSlice, bins: int, n_resamples: int, seed: int, threshold: float
) -> list[Finding]:
    """One warning per variant whose ECE or overconfident-wrong share rose significantly vs base."""
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
        message = _message(report_slice, key, difference, holm.adjusted_p if holm else None, rising.get(key),
                           threshold)  # fmt: skip
        findings.append(finding("warning", "overconfidence", message, NAME, key[0],
                                "ece" if ece_up else "overconfident_wrong", key[1]))  # fmt: skip
    return findings


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
    """'epoch-3 is confidently wrong more often than its base: 12% of answers wrong at confidence ≥ 90% …'."""
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
        parts.append(
            f"its expected calibration error is {ece or 0:.3f} (base {base_ece or 0:.3f}; {difference.delta:+.3f}, "
            f"95% CI [{difference.low:+.3f}, {difference.high:+.3f}], paired bootstrap {format_p(1.0 if adjusted_p is None else adjusted_p)} Holm)"
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
