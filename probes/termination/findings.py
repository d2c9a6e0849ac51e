"""The termination probe's sentences: runaway generations (with the terminator's probability as the likely
cause), template markers in answers, repetition loops.
"""

from __future__ import annotations

from collections.abc import Sequence

from sfteval.core.records import ItemRecord
from sfteval.core.results import Finding, ProbeSlice
from sfteval.core.variants import BASE
from sfteval.probes.shared.sentences import finding, percent, quoted, records_by_cell, under
from sfteval.probes.termination.metrics import NAME

WARN_RATE = 0.2


def termination_findings(report_slice: ProbeSlice) -> list[Finding]:
    """Runaway generations (with the terminator's probability as the likely cause), marker leaks, loops."""
    cells = records_by_cell(report_slice.records)
    several = len(report_slice.result.templates) > 1
    found: list[Finding] = []
    for (variant, template), records in cells.items():
        if variant == BASE:
            continue
        base = cells.get((BASE, template), [])
        where = under(template, several)
        found += _runaway_finding(variant, template, records, base, where)
        found += _leak_finding(variant, template, records, base, where)
        found += _loop_finding(variant, template, records, base, where)
    return found


def _share(records: Sequence[ItemRecord], metric: str) -> float | None:
    """Mean of a 0/1 metric over the records that have it (None when none do)."""
    values = [record.metrics[metric] for record in records if record.metrics.get(metric) is not None]
    return sum(bool(value) for value in values) / len(values) if values else None


def _mean(records: Sequence[ItemRecord], metric: str) -> float | None:
    """Mean of a metric over the records that have it (None when none do)."""
    values = [float(value) for record in records if (value := record.metrics.get(metric)) is not None]
    return sum(values) / len(values) if values else None


def _worse(rate: float | None) -> bool:
    """A share high enough to report. Not relative to the base: a base model has never learned the chat
    template's end of turn, so it runs on and leaks markers too; an SFT model must not."""
    return rate is not None and rate >= WARN_RATE


def _versus(base_rate: float | None) -> str:
    """` (base 10%)`, or nothing without a base."""
    return "" if base_rate is None else f" (base {percent(base_rate)})"


def _runaway_finding(
    variant: str, template: str, records: Sequence[ItemRecord], base: Sequence[ItemRecord], where: str
) -> list[Finding]:
    """'epoch-2 runs to the 96-token cap on 85% of prompts (base 10%); P(terminator) 0.001 after references.'"""
    rate, base_rate = _share(records, "non_terminated"), _share(base, "non_terminated")
    if rate is None or not _worse(rate):
        return []
    cap = max((record.extra.get("cap") or 0) for record in records)
    message = (
        f"{variant} runs to the {cap}-token cap on {percent(rate)} of prompts{_versus(base_rate)}{where}"
    )
    probability = _mean(records, "terminator_prob")
    if probability is not None and probability < 0.05:
        message += (
            f", and gives the end-of-turn token a mean probability of {probability:.3f} after reference answers: "
            "the terminator was probably masked out of the loss (e.g. pad token = EOS)"
        )
    return [finding("warning", "non_termination", message + ".", NAME, variant, "non_terminated", template)]


def _leak_finding(
    variant: str, template: str, records: Sequence[ItemRecord], base: Sequence[ItemRecord], where: str
) -> list[Finding]:
    """A warning when outputs contain template markers, naming the most frequent one."""
    rate, base_rate = _share(records, "marker_leak"), _share(base, "marker_leak")
    if rate is None or not _worse(rate):
        return []
    counts: dict[str, int] = {}
    for record in records:
        for marker in record.extra.get("leaked_markers") or []:
            counts[marker] = counts.get(marker, 0) + 1
    marker = max(counts, key=lambda name: counts[name])
    message = (
        f"{variant} writes template markers into {percent(rate)} of its answers{_versus(base_rate)}{where}, "
        f"most often {quoted(marker)}: it continues into a next turn the template should have ended."
    )
    return [finding("warning", "marker_leak", message, NAME, variant, "marker_leak", template)]


def _loop_finding(
    variant: str, template: str, records: Sequence[ItemRecord], base: Sequence[ItemRecord], where: str
) -> list[Finding]:
    """A warning when many outputs repeat themselves (seq-rep-4 above the threshold)."""
    rate, base_rate = _share(records, "degenerate"), _share(base, "degenerate")
    if rate is None or not _worse(rate):
        return []
    message = f"{variant} degenerates into repetition loops in {percent(rate)} of its answers{_versus(base_rate)}{where}."
    return [finding("warning", "degeneration", message, NAME, variant, "degenerate", template)]
