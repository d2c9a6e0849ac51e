"""The forgetting probe's sentences: per variant and task, what it forgot and gained (McNemar vs base)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sfteval.core.results import ComparisonResult, Finding, ProbeSlice
from sfteval.probes.forgetting.measures import FLIP_METRICS


def forgetting_findings(report_slice: ProbeSlice) -> list[Finding]:
    """One sentence per variant and task whose accuracy moved with McNemar p < 0.05 vs base."""
    findings = []
    for comparison in report_slice.comparisons:
        if (
            comparison.relation != "base"
            or comparison.metric not in FLIP_METRICS
            or comparison.p_value >= 0.05
        ):
            continue
        rows = [
            record.metrics
            for record in report_slice.records
            if record.variant == comparison.variant and record.template == comparison.template
        ]
        findings.append(_flip_finding(comparison, rows))
    return findings


def _flip_finding(comparison: ComparisonResult, rows: Sequence[Mapping[str, Any]]) -> Finding:
    """E.g. 'epoch-3 forgot 7.1% of world_facts items the base knew (9/127), gained 2/40; McNemar p=0.003.'"""
    forgotten = [row["forgotten"] for row in rows if row.get("forgotten") is not None]
    gained = [row["gained"] for row in rows if row.get("gained") is not None]
    share = sum(forgotten) / len(forgotten) if forgotten else 0.0
    adjusted = (
        f", Holm-adjusted {comparison.adjusted_p:.2g}" if comparison.adjusted_p != comparison.p_value else ""
    )
    message = (
        f"{comparison.variant} forgot {100 * share:.1f}% of {comparison.template} items the base model knew "
        f"({sum(forgotten)}/{len(forgotten)}) and gained {sum(gained)}/{len(gained)} it did not; "
        f"{comparison.metric} {100 * comparison.delta:+.1f} points (McNemar p={comparison.p_value:.2g}{adjusted})."
    )
    worse = comparison.direction == "worse"
    return Finding(
        severity="warning" if worse and comparison.significant else "info",
        kind="forgetting" if worse else "backward_transfer",
        message=message,
        probe=comparison.probe,
        variant=comparison.variant,
        metric=comparison.metric,
        template=comparison.template,
    )
