"""Findings of the template_brittleness probe: the worst serving template per variant, spreads and gaps vs base.

E.g. "epoch-3: served with chatml instead of its alpaca training template, instruction following drops 31 points
(95% CI −40 to −22; same prompts)", "epoch-3: the serving-template spread of multiple-choice accuracy is 18
points vs 6 for base (+12, 95% CI 4 to 20): SFT made the model more brittle", and, from the report's Holm-adjusted
comparison of the per-item template gap vs base, "epoch-3 depends on its alpaca training template more than the
base: served with other templates it loses 0.84 nats/token more of what SFT taught (held-out SFT answers; …)".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sfteval.core.formatting import format_p
from sfteval.core.records import ItemRecord
from sfteval.core.results import ComparisonResult, Finding, ProbeSlice, Severity
from sfteval.core.variants import BASE
from sfteval.probes.shared.sentences import finding, summary_value
from sfteval.probes.template_brittleness.gaps import SFT_TAG, SOURCES
from sfteval.probes.template_brittleness.metrics import NAME
from sfteval.probes.template_brittleness.prompt_formats import spread_difference

ACROSS = "across-templates"
FORMATS = "formats"


@dataclass(frozen=True)
class Axis:
    """How findings speak about one axis: its name, what is lost, and its unit (points or nats/token)."""

    label: str
    lost: str
    points: bool
    # A template change smaller than this is not worth a sentence even when its interval excludes zero.
    min_drop: float

    def amount(self, value: float, sign: bool = False) -> str:
        """`31 points` / `0.84 nats/token`, signed (`+12`) when asked."""
        number = self.number(value)
        signed = number if number.startswith("-") else "+" + number
        return signed if sign else f"{number} {'points' if self.points else 'nats/token'}"

    def number(self, value: float) -> str:
        """A bare value in the axis's unit: `18` (points) or `0.84` (nats/token); never `-0`."""
        return str(round(100 * value)) if self.points else f"{round(value, 2) + 0.0:.2f}"


AXES = {
    "if": Axis("instruction following", "of instruction following", points=True, min_drop=0.05),
    "mc": Axis("multiple-choice accuracy", "of multiple-choice accuracy", points=True, min_drop=0.05),
    SFT_TAG: Axis("the log-prob of reference answers", "of what SFT taught", points=False, min_drop=0.1),
}


def delta_findings(report_slice: ProbeSlice) -> list[Finding]:
    """Per variant and family, the template with the largest paired drop vs the training template, if clear."""
    result = report_slice.result
    train = result.params.get("train_template") or report_slice.run.train_template
    if not train:
        return []
    findings = []
    for variant in dict.fromkeys(cell.variant for cell in result.cells):
        for family, axis in AXES.items():
            candidates = []
            for cell in result.cells:
                value = cell.metric(f"{family}_delta_vs_train")
                if cell.variant == variant and value is not None and value.value is not None:
                    candidates.append((value.value, cell.template, value))
            if not candidates:
                continue
            delta, template, value = min(candidates, key=lambda candidate: candidate[0])
            if (
                value.low is not None
                and value.high is not None
                and value.high < 0
                and delta <= -axis.min_drop
            ):
                instead = (
                    f"{train} (the run's training template)"
                    if variant == BASE
                    else f"its {train} training template"
                )
                message = (
                    f"{variant}: served with {template} instead of {instead}, {axis.label} "
                    f"drops {axis.amount(-delta)} (95% CI {axis.number(value.low)} to {axis.number(value.high)}; "
                    "same items)."
                )
                metric = f"{family}_delta_vs_train"
                # The base was not trained with the run's template: its drop is context, not a defect.
                severity: Severity = "info" if variant == BASE else "warning"
                findings.append(
                    finding(severity, "template_mismatch", message, NAME, variant, metric, template)
                )
    return findings


def spread_findings(report_slice: ProbeSlice) -> list[Finding]:
    """Per non-base variant, axis and family: its spread vs base's on the same items, when the CI excludes zero."""
    by_key: dict[tuple[str, str, str], dict[str, ItemRecord]] = {}
    for record in report_slice.records:
        if record.template in (ACROSS, FORMATS):
            family = record.item_id.split("/", 1)[0]
            by_key.setdefault((record.template, family, record.variant), {})[record.item_id] = record
    findings = []
    for (axis, family, variant), records in by_key.items():
        base = by_key.get((axis, family, BASE))
        if variant == BASE or not base:
            continue
        shared = sorted(records.keys() & base.keys())
        if len(shared) < 2:
            continue
        spread = _spread_finding(
            axis, family, variant, [records[i] for i in shared], [base[i] for i in shared]
        )
        if spread is not None:
            findings.append(spread)
    return findings


def _spread_finding(
    axis: str, family: str, variant: str, records: Sequence[ItemRecord], base: Sequence[ItemRecord]
) -> Finding | None:
    difference, low, high = spread_difference(
        [record.extra["scores"] for record in records],
        [record.extra["scores"] for record in base],
        [record.cluster_id for record in records],
        seed=records[0].extra.get("seed", 0),
    )
    if low <= 0 <= high:
        return None
    more = difference > 0
    where = "serving-template" if axis == ACROSS else "prompt-format"
    spread, base_spread = _observed(records), _observed(base)
    unit = AXES[family]
    message = (
        f"{variant}: the {where} spread of {unit.label} is {unit.amount(spread)} vs {unit.number(base_spread)} "
        f"for base ({unit.amount(difference, sign=True)}, 95% CI {unit.amount(low, sign=True)} to "
        f"{unit.amount(high, sign=True)}): SFT made the model {'more' if more else 'less'} brittle."
    )
    metric = "format_spread" if axis == FORMATS else f"{family}_spread"
    return finding("warning" if more else "info", "brittleness", message, NAME, variant, metric, axis)


def gap_findings(report_slice: ProbeSlice) -> list[Finding]:
    """A warning per variant and axis whose template gap exceeds base's (Holm-significant paired comparison)."""
    train = report_slice.result.params.get("train_template") or report_slice.run.train_template
    findings = []
    for comparison in report_slice.comparisons:
        family = comparison.metric.removesuffix("_template_gap")
        if (
            family in AXES
            and comparison.metric != family
            and comparison.relation == "base"
            and comparison.significant
            and comparison.delta > 0
        ):
            findings.append(_gap_finding(report_slice, comparison, AXES[family], train or "training"))
    return findings


def _gap_finding(report_slice: ProbeSlice, comparison: ComparisonResult, axis: Axis, train: str) -> Finding:
    """E.g. "epoch-3 depends on its alpaca training template more than the base: … 0.84 nats/token more …"."""
    family = comparison.metric.removesuffix("_template_gap")
    gap, base_gap = (
        summary_value(report_slice.result.cell(variant, comparison.template), comparison.metric)
        for variant in (comparison.variant, comparison.reference)
    )
    observed = (
        f"gap {axis.amount(gap)} vs {axis.number(base_gap)} for base, "
        if gap is not None and base_gap is not None
        else ""
    )
    interval = (
        f"95% CI {axis.amount(comparison.low, sign=True)} to {axis.amount(comparison.high, sign=True)}, "
        if comparison.low is not None and comparison.high is not None
        else ""
    )
    message = (
        f"{comparison.variant} depends on its {train} training template more than the base: served with other "
        f"templates it loses {axis.amount(comparison.delta)} more {axis.lost} ({_items(report_slice, family)}; "
        f"{observed}{interval}{format_p(comparison.adjusted_p)} Holm-adjusted)."
    )
    return finding(
        "warning",
        "template_dependence",
        message,
        NAME,
        comparison.variant,
        comparison.metric,
        comparison.template,
    )


def _items(report_slice: ProbeSlice, family: str) -> str:
    """What the gap was measured on, in words."""
    if family != SFT_TAG:
        return "instruction-following prompts" if family == "if" else "multiple-choice items"
    sources = {
        record.extra.get("source")
        for record in report_slice.records
        if record.item_id.startswith(f"{family}/")
    }
    source = next(iter(sources - {None}), "heldout")
    return SOURCES.get(source, SOURCES["heldout"])


def _observed(records: Sequence[ItemRecord]) -> float:
    """max − min over conditions of the mean score (conditions every record has)."""
    conditions = set.intersection(*(set(record.extra["scores"]) for record in records))
    means = [sum(record.extra["scores"][name] for record in records) / len(records) for name in conditions]
    return max(means) - min(means)
