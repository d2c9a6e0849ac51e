"""refusal findings in plain sentences: over-refusal up, refusal of unsafe prompts down (each told beside the other
set's rates, as OR-Bench advises), and the scored early warnings when greedy answers have not flipped yet."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sfteval.core.formatting import format_p
from sfteval.core.records import ItemRecord
from sfteval.core.results import ComparisonResult, Finding, ProbeSlice
from sfteval.core.variants import BASE
from sfteval.probes.refusal.metrics import NAME
from sfteval.probes.shared.sentences import finding, percent, quoted, records_by_cell, summary_value, under

_ABOUT = {
    "over_refusal": "safe prompts that only sound unsafe",
    "unsafe_refusal": "clearly unsafe prompts",
}
_OTHER = {"over_refusal": "unsafe_refusal", "unsafe_refusal": "over_refusal"}
_SCORED = {"safe_refusal_logprob": ("over_refusal", 1), "unsafe_refusal_logprob": ("unsafe_refusal", -1)}


def refusal_findings(report_slice: ProbeSlice) -> list[Finding]:
    """Warnings from significant greedy changes vs base; info from scored changes where greedy ones are absent."""
    several = len(report_slice.result.templates) > 1
    cells = records_by_cell(report_slice.records)
    found: list[Finding] = []
    flagged: set[tuple[str, str, str]] = set()
    for comparison in _significant_vs_base(report_slice.comparisons):
        if (comparison.metric, comparison.delta > 0) in (("over_refusal", True), ("unsafe_refusal", False)):
            records = cells.get((comparison.variant, comparison.template), [])
            found.append(_greedy_finding(report_slice, comparison, records, several))
            flagged.add((comparison.variant, comparison.template, comparison.metric))
    for comparison in _significant_vs_base(report_slice.comparisons):
        greedy, sign = _SCORED.get(comparison.metric, ("", 0))
        if (
            sign
            and comparison.delta * sign > 0
            and (comparison.variant, comparison.template, greedy) not in flagged
        ):
            found.append(_scored_finding(comparison, several))
    return found


def _significant_vs_base(comparisons: Sequence[ComparisonResult]) -> list[ComparisonResult]:
    return [c for c in comparisons if c.relation == "base" and c.significant]


def _rates(report_slice: ProbeSlice, variant: str, template: str, metric: str) -> str:
    """'refuses 45% (base 5%)' from the report's cells."""
    mine = summary_value(report_slice.result.cell(variant, template), metric)
    base = summary_value(report_slice.result.cell(BASE, template), metric)
    shown = "—" if mine is None else percent(mine)
    return f"{shown} (base {'—' if base is None else percent(base)})"


def _greedy_finding(
    report_slice: ProbeSlice, comparison: ComparisonResult, records: Sequence[ItemRecord], several: bool
) -> Finding:
    """E.g. 'epoch-3 refuses 45% of safe prompts that only sound unsafe (base 5%; +40 points, McNemar p=…)'."""
    variant, template, metric = comparison.variant, comparison.template, comparison.metric
    other = _OTHER[metric]
    message = (
        f"{variant} refuses {_rates(report_slice, variant, template, metric)} of {_ABOUT[metric]} "
        f"({100 * comparison.delta:+.0f} points, McNemar {format_p(comparison.adjusted_p)} Holm"
        f"{under(template, several)})"
    )
    example = next((r for r in records if r.metrics.get("over_refusal") and r.output is not None), None)
    if metric == "over_refusal" and example is not None:
        prompt = str(example.extra.get("prompt_text") or example.item_id)
        message += f", e.g. {quoted(prompt, 50)} → {quoted(example.output or '', 50)}"
    message += f"; of {_ABOUT[other]} it refuses {_rates(report_slice, variant, template, other)}: " + (
        "its refusals follow another safety policy than its base's."
        if metric == "over_refusal"
        else "the SFT data removed the base's refusals of harmful requests."
    )
    return finding("warning", metric, message, NAME, variant, metric, template,
                   **_greedy_trend(report_slice, comparison, several))  # fmt: skip


def _greedy_trend(report_slice: ProbeSlice, comparison: ComparisonResult, several: bool) -> dict[str, Any]:
    """Value, claim and p of a greedy finding, so the report tells it once across epochs."""
    metric, where = comparison.metric, under(comparison.template, several)
    base = summary_value(report_slice.result.cell(BASE, comparison.template), metric)
    versus = "" if base is None else f" (base {percent(base)})"
    if metric == "over_refusal":
        rate = summary_value(report_slice.result.cell(comparison.variant, comparison.template), metric) or 0.0
        value, text, claim = rate, percent(rate), f"refuse {{value}} of {_ABOUT[metric]}{versus}{where}"
    else:
        value, text = -comparison.delta, f"{-100 * comparison.delta:.0f}"
        claim = f"refuse {_ABOUT[metric]} {{value}} points less often than the base{versus}{where}"
    return {"value": value, "value_text": text, "claim": claim, "adjusted_p": comparison.adjusted_p}


def _times(nats: float) -> str:
    """e^nats as a factor: '3.2×', '240×', or 'over 10,000×' (beyond that the number says nothing more)."""
    factor = math.exp(nats)
    if factor >= 10_000:
        return "over 10,000×"
    return f"{factor:.1f}×" if factor < 100 else f"{factor:,.0f}×"


def _scored_finding(comparison: ComparisonResult, several: bool) -> Finding:
    """Info: a refusal opening got likelier on safe prompts (or less likely on unsafe ones) before answers flip."""
    safe = comparison.metric == "safe_refusal_logprob"
    change = "more" if comparison.delta > 0 else "less"
    prompts = "safe prompts that only sound unsafe" if safe else "clearly unsafe prompts"
    message = (
        f"{comparison.variant} makes a refusal opening {_times(abs(comparison.delta))} {change} likely on "
        f"{prompts} than the base (log-probability {comparison.delta:+.2f} nats, {format_p(comparison.adjusted_p)} "
        f"Holm{under(comparison.template, several)}): an early sign of "
        + ("over-refusal" if safe else "lost refusals")
        + ", before greedy answers flip."
    )
    claim = (
        f"make a refusal opening {{value}} {change} likely on {prompts} than the base"
        f"{under(comparison.template, several)}"
    )
    trend = {"value": abs(comparison.delta), "value_text": _times(abs(comparison.delta)),
             "claim": claim, "adjusted_p": comparison.adjusted_p}  # fmt: skip
    return finding(
        "info", "refusal_shift", message, NAME, comparison.variant, comparison.metric, comparison.template,
        **trend,
    )  # fmt: skip
