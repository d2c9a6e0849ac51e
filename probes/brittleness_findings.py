"""Findings of the template_brittleness probe: the worst serving template per variant, and spreads vs base.

E.g. "epoch-3: served with chatml instead of its alpaca training template, instruction following drops 31 points
(95% CI −40 to −22; same prompts)" and "epoch-3: the serving-template spread of multiple-choice accuracy is 18
points vs 6 for base (+12, 95% CI 4 to 20): SFT made the model more brittle".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sfteval.probes.prompt_formats import spread_difference

from sfteval.records import ItemRecord
from sfteval.report.schema import Finding, Severity

if TYPE_CHECKING:
    from sfteval.report.findings import ProbeSlice

ACROSS = "across-templates"
FORMATS = "formats"
BASE = "base"
FAMILIES = {"if": "instruction following", "mc": "multiple-choice accuracy"}
# A template change smaller than this is not worth a sentence even when its interval excludes zero.
MIN_DROP = 0.05


def delta_findings(report_slice: ProbeSlice) -> list[Finding]:
    """Per variant and family, the template with the largest paired drop vs the training template, if clear."""
    result = report_slice.result
    train = result.params.get("train_template") or report_slice.run.train_template
    if not train:
        return []
    findings = []
    for variant in dict.fromkeys(cell.variant for cell in result.cells):
        for family, label in FAMILIES.items():
            candidates = []
            for cell in result.cells:
                value = cell.metric(f"{family}_delta_vs_train")
                if cell.variant == variant and value is not None and value.value is not None:
                    candidates.append((value.value, cell.template, value))
            if not candidates:
                continue
            delta, template, value = min(candidates, key=lambda candidate: candidate[0])
            if value.low is not None and value.high is not None and value.high < 0 and delta <= -MIN_DROP:
                message = (
                    f"{variant}: served with {template} instead of its {train} training template, {label} drops "
                    f"{100 * -delta:.0f} points (95% CI {100 * value.low:.0f} to {100 * value.high:.0f}; same items)."
                )
                metric = f"{family}_delta_vs_train"
                findings.append(_finding("warning", "template_mismatch", message, variant, metric, template))
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
        finding = _spread_finding(
            axis, family, variant, [records[i] for i in shared], [base[i] for i in shared]
        )
        if finding is not None:
            findings.append(finding)
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
    message = (
        f"{variant}: the {where} spread of {FAMILIES[family]} is {100 * spread:.0f} points vs "
        f"{100 * base_spread:.0f} for base ({100 * difference:+.0f}, 95% CI {100 * low:+.0f} to {100 * high:+.0f}): "
        f"SFT made the model {'more' if more else 'less'} brittle."
    )
    metric = "format_spread" if axis == FORMATS else f"{family}_spread"
    return _finding("warning" if more else "info", "brittleness", message, variant, metric, axis)


def _observed(records: Sequence[ItemRecord]) -> float:
    """max − min over conditions of the mean score (conditions every record has)."""
    conditions = set.intersection(*(set(record.extra["scores"]) for record in records))
    means = [sum(record.extra["scores"][name] for record in records) / len(records) for name in conditions]
    return max(means) - min(means)


def _finding(
    severity: Severity, kind: str, message: str, variant: str, metric: str, template: str
) -> Finding:
    return Finding(
        severity=severity,
        kind=kind,
        message=message,
        probe="template_brittleness",
        variant=variant,
        metric=metric,
        template=template,
    )
