"""Findings grouped by defect: one sentence per (probe, kind, metric, template) across the variants that show it.

Three near-identical warnings, one per epoch, hide the story; the trend over epochs is what a reader needs:
"epochs 1–3 make 'The sentiment is:' 245× → 82× → 58× likelier on off-task prompts than the base (all Holm
p < 0.001; worst epoch-1)". A probe enables that sentence by giving its findings a `claim` (the sentence for several
variants, with {value} where the trend goes) and a `value`/`value_text`; without them the group repeats the worst
variant's own sentence and names the others. The group's severity is the worst of its findings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sfteval.core.report import Report
from sfteval.core.results import Finding, FindingGroup

_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
_EPOCH_NAME = re.compile(r"^epoch-(\d+)$")
GroupKey = tuple[str | None, str, str | None, str | None]


def group_findings(findings: Iterable[Finding], variant_order: Sequence[str]) -> tuple[FindingGroup, ...]:
    """Groups most severe first (then in the order their first finding came), members in run order."""
    position = {name: index for index, name in enumerate(variant_order)}
    grouped: dict[GroupKey, list[Finding]] = {}
    for finding in findings:
        key = (finding.probe, finding.kind, finding.metric, finding.template)
        grouped.setdefault(key, []).append(finding)
    groups = [
        _group(sorted(members, key=lambda member: position.get(member.variant or "", len(position))))
        for members in grouped.values()
    ]
    kept = [group for group in groups if not _told_by_the_probe(group, groups)]
    return tuple(sorted(kept, key=lambda group: _SEVERITY_ORDER[group.severity]))


def _told_by_the_probe(group: FindingGroup, groups: Sequence[FindingGroup]) -> bool:
    """A generic "metric rose" group whose defect the probe's own sentences already tell, for the same variants.

    "epoch-3: dominant_prefix of spurious_prefix rose 75.0 points vs base" says less than "epoch-3 opens 75% of
    off-task answers with 'The sentiment is:'"; the generic finding stays in `Report.findings`.
    """
    if not group.kind.startswith("headline_"):
        return False
    return any(
        not other.kind.startswith("headline_")
        and (other.probe, other.metric, other.template) == (group.probe, group.metric, group.template)
        and set(group.variants) <= set(other.variants)
        and _SEVERITY_ORDER[other.severity] <= _SEVERITY_ORDER[group.severity]
        for other in groups
    )


def report_groups(report: Report) -> tuple[FindingGroup, ...]:
    """The report's findings grouped by defect (grouped here for reports written before groups were stored)."""
    if report.finding_groups or not report.findings:
        return report.finding_groups
    return group_findings(report.findings, [variant.name for variant in report.run.variants])


def subject(variants: Sequence[str]) -> str:
    """'epochs 1–3' for consecutive epochs, else the names: 'epoch-1 and epoch-3', 'epoch-2'."""
    numbers = [int(match.group(1)) for name in variants if (match := _EPOCH_NAME.match(name))]
    consecutive = len(numbers) == len(variants) > 2 and numbers == list(range(numbers[0], numbers[-1] + 1))
    if consecutive:
        return f"epochs {numbers[0]}–{numbers[-1]}"
    if len(variants) <= 1:
        return "".join(variants)
    return ", ".join(variants[:-1]) + " and " + variants[-1]


def _group(members: list[Finding]) -> FindingGroup:
    """One group from its findings (in run order)."""
    severity = min((member.severity for member in members), key=_SEVERITY_ORDER.__getitem__)
    variants = tuple(member.variant for member in members if member.variant is not None)
    worst = _worst(members, severity)
    first = members[0]
    return FindingGroup(
        severity=severity,
        kind=first.kind,
        probe=first.probe,
        metric=first.metric,
        template=first.template,
        message=_message(members, worst),
        variants=variants,
        values=tuple(member.value for member in members if member.variant is not None),
        worst=worst.variant if len(members) > 1 else first.variant,
    )


def _worst(members: Sequence[Finding], severity: str) -> Finding:
    """The most severe member with the largest value (the first of them when no member has a value)."""
    severest = [member for member in members if member.severity == severity]
    valued = [member for member in severest if member.value is not None]
    return max(valued, key=lambda member: member.value or 0.0) if valued else severest[0]


def _message(members: Sequence[Finding], worst: Finding) -> str:
    """The group's sentence: the trend when the findings carry a claim and values, else the worst one's own."""
    if len(members) == 1:
        return members[0].message
    variants = [member.variant or "" for member in members]
    claims = {member.claim for member in members}
    if len(claims) == 1 and worst.claim and all(member.value_text for member in members):
        trend = " → ".join(member.value_text or "" for member in members)
        sentence = f"{subject(variants)} {worst.claim.replace('{value}', trend)}"
        label = "largest" if worst.severity == "info" else "worst"
        detail = "; ".join(part for part in (_p_values(members), f"{label} {worst.variant}") if part)
        # "... (base 0%)" + "(worst epoch-3)" reads as "... (base 0%; worst epoch-3)".
        return f"{sentence[:-1]}; {detail})." if sentence.endswith(")") else f"{sentence} ({detail})."
    others = [
        f"{member.variant} ({member.value_text})" if member.value_text else str(member.variant)
        for member in members
        if member is not worst
    ]
    return f"{worst.message.rstrip('.')}; also {subject(others) if len(others) > 1 else others[0]}."


def _p_values(members: Sequence[Finding]) -> str:
    """'all Holm p < 0.001', 'all Holm p ≤ 0.02', or '' when some member rests on no test."""
    values = [member.adjusted_p for member in members]
    if any(value is None for value in values):
        return ""
    largest = max(value for value in values if value is not None)
    return "all Holm p < 0.001" if largest < 0.001 else f"all Holm p ≤ {largest:.2g}"
