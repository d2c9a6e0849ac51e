"""The spurious_prefix probe's sentences: dominant prefixes and label leaks vs base, rising prefix affinity, collapsed
openings."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from sfteval.core.records import ItemRecord
from sfteval.core.results import ComparisonResult, Finding, ProbeSlice
from sfteval.core.variants import BASE
from sfteval.probes.shared.sentences import (
    VariantCell,
    cells_by_variant,
    finding,
    percent,
    quoted,
    summary_value,
    under,
    variant_cells,
)
from sfteval.probes.shared.text_metrics import starts_with
from sfteval.probes.spurious_prefix.metrics import NAME, candidate_metric

WARN_RATE = 0.5
WARN_RISE = 0.2
AFFINITY_WARN_NATS = 1.0
"""A significant rise of log P(training opening) by at least this much (×e) on off-task prompts is a warning."""


def prefix_findings(report_slice: ProbeSlice) -> list[Finding]:
    """Plain sentences: dominant prefixes and label leaks vs base, rising prefix affinity, collapsed openings."""
    several = len(report_slice.result.templates) > 1
    findings: list[Finding] = []
    warned: set[tuple[str, str]] = set()
    for cell in variant_cells(report_slice):
        found = _prefix_finding(cell)
        if found is not None:
            findings.append(found)
            warned.add((cell.variant, cell.template))
        findings.extend(_label_finding(cell))
    findings.extend(_affinity_findings(report_slice, warned, several))
    findings.extend(_entropy_findings(report_slice, several))
    return findings


def _rate(records: Sequence[ItemRecord], prefix: str) -> float | None:
    """Share of records whose output opens with `prefix` (None without records)."""
    if not records:
        return None
    return sum(starts_with(record.output or "", prefix) for record in records) / len(records)


def _prefix_finding(cell: VariantCell) -> Finding | None:
    """'epoch-3 opens 74% of off-task answers with 'The sentiment is:' (base 0%).' when it is common and new."""
    matched = Counter(record.extra.get("matched") for record in cell.records if record.extra.get("matched"))
    if not matched:
        return None
    prefix = str(matched.most_common(1)[0][0])
    rate = _rate(cell.records, prefix) or 0.0
    base_rate = _rate(cell.base, prefix)
    if rate < WARN_RATE or (base_rate is not None and rate - base_rate < WARN_RISE):
        return None
    versus = "" if base_rate is None else f" (base {percent(base_rate)})"
    message = (
        f"{cell.variant} opens {percent(rate)} of off-task answers with {quoted(prefix)}{versus}{cell.where}:"
        " it learned the training responses' opening as a fixed prefix, whatever the input."
    )
    claim = f"open {{value}} of off-task answers with {quoted(prefix)}{versus}{cell.where}"
    return finding(
        "warning", "spurious_prefix", message, NAME, cell.variant, "dominant_prefix", cell.template,
        value=rate, value_text=percent(rate), claim=claim,
    )  # fmt: skip


def _label_finding(cell: VariantCell) -> list[Finding]:
    """A warning when many off-task answers are (or start with) a training label."""
    leaks = [record for record in cell.records if record.metrics.get("label_leak")]
    rate = len(leaks) / len(cell.records) if cell.records else 0.0
    base_rate = (
        sum(bool(record.metrics.get("label_leak")) for record in cell.base) / len(cell.base)
        if cell.base
        else None
    )
    if rate < WARN_RISE or (base_rate is not None and rate - base_rate < WARN_RISE):
        return []
    label = Counter(record.extra.get("leaked_label") for record in leaks).most_common(1)[0][0]
    versus = "" if base_rate is None else f" (base {percent(base_rate)})"
    message = (
        f"{cell.variant} answers {percent(rate)} of off-task prompts with a training label, most often "
        f"{quoted(label)}{versus}{cell.where}."
    )
    claim = f"answer {{value}} of off-task prompts with a training label{versus}{cell.where}"
    return [
        finding(
            "warning", "label_leak", message, NAME, cell.variant, "label_leak", cell.template,
            value=rate, value_text=percent(rate), claim=claim,
        )
    ]  # fmt: skip


def _affinity_findings(
    report_slice: ProbeSlice, warned: set[tuple[str, str]], several: bool
) -> list[Finding]:
    """A candidate prefix got significantly more likely than under the base: a warning from AFFINITY_WARN_NATS on,
    else info. One finding per variant and template: the candidate with the largest significant rise; the
    any-candidate metric speaks only when no single candidate did.

    This is the cheap early sign: a model that made a training opening several times more likely on prompts where
    no opening belongs has learned it as a prefix, even while its greedy answers do not show it yet.
    """
    candidates: list[str] = next(
        (record.extra["candidates"] for record in report_slice.records if record.extra.get("candidates")), []
    )
    scored = {candidate_metric(k): prefix for k, prefix in enumerate(candidates, start=1)}
    rising: dict[tuple[str, str], list[ComparisonResult]] = {}
    for comparison in report_slice.comparisons:
        key = (comparison.variant, comparison.template)
        if (
            (comparison.metric != "prefix_logprob" and comparison.metric not in scored)
            or comparison.relation != "base"
            or not comparison.significant
            or comparison.delta <= 0
            or key in warned
        ):
            continue
        rising.setdefault(key, []).append(comparison)
    findings = []
    for found in rising.values():
        singles = [c for c in found if c.metric != "prefix_logprob"]
        comparison = max(singles or found, key=lambda c: c.delta)
        prefix = scored.get(comparison.metric)
        named = (
            f"the training opening {quoted(prefix)}"
            if prefix is not None
            else " ".join(["the training openings", *(quoted(candidate) for candidate in candidates)])
        )
        strong = comparison.delta >= AFFINITY_WARN_NATS
        ratio = math.exp(comparison.delta)
        claim = f"make {named} {{value}} likelier on off-task prompts than the base{under(comparison.template, several)}"
        message = (
            f"{comparison.variant} makes {named} {ratio:.1f}× more "
            f"likely on off-task prompts than the base (log-probability +{comparison.delta:.2f} nats, "
            f"p={comparison.adjusted_p:.2g} Holm{under(comparison.template, several)}): "
            + (
                "it is learning the opening as a fixed prefix, whatever the input."
                if strong
                else "an early sign of prefix learning, before it shows in generated answers."
            )
        )
        findings.append(
            finding(
                "warning" if strong else "info",
                "prefix_affinity",
                message,
                NAME,
                comparison.variant,
                comparison.metric,
                comparison.template,
                value=ratio,
                value_text=f"{ratio:.0f}×" if ratio >= 10 else f"{ratio:.1f}×",
                claim=claim,
                adjusted_p=comparison.adjusted_p,
            )
        )
    return findings


def _entropy_findings(report_slice: ProbeSlice, several: bool) -> list[Finding]:
    """An info when a variant's openings collapsed to at most half the base's entropy."""
    findings = []
    for (variant, template), cell in cells_by_variant(report_slice.result).items():
        base_cell = report_slice.result.cell(BASE, template)
        mine, base = summary_value(cell, "opening_entropy_3"), summary_value(base_cell, "opening_entropy_3")
        if variant == BASE or mine is None or base is None or base < 1 or mine > base / 2:
            continue
        message = (
            f"{variant}'s off-task answers start far more alike than the base's (entropy of the first three "
            f"words {mine:.2f} bits vs {base:.2f}{under(template, several)})."
        )
        findings.append(
            finding("info", "opening_collapse", message, NAME, variant, "opening_entropy_3", template)
        )
    return findings
