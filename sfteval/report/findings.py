"""Findings: plain sentences about what changed, from significant headline comparisons and from probes themselves.

Generic findings come from every Holm-significant comparison of a headline metric (warning when it got worse by at
least the metric's `negligible` amount, info otherwise). A probe adds its own through `Probe.findings(report_slice)`:
it receives a `ProbeSlice` (`sfteval.core.results`) with its results, comparisons and item records, and returns
`Finding`s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sfteval.core.formatting import format_delta, format_magnitude, format_number, format_p, format_value
from sfteval.core.results import ComparisonResult, Finding, ProbeResult, ProbeSlice
from sfteval.core.run_info import RunInfo
from sfteval.probes.base import Probe

_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
_CHANGE_WORDS = {"worse": "regression", "better": "improvement", "neutral": "change"}


def comparison_findings(
    comparisons: Iterable[ComparisonResult], probes: Sequence[ProbeResult]
) -> list[Finding]:
    """One finding per Holm-significant comparison of a headline metric."""
    by_name = {result.name: result for result in probes}
    return [
        _comparison_finding(comparison, by_name[comparison.probe])
        for comparison in comparisons
        if comparison.significant and comparison.headline
    ]


def probe_findings(probe: Probe, report_slice: ProbeSlice) -> list[Finding]:
    """The findings a probe contributes about its own results (checked to be Findings)."""
    contributed = list(probe.findings(report_slice))
    wrong = [finding for finding in contributed if not isinstance(finding, Finding)]
    if wrong:
        raise TypeError(f"probe {report_slice.result.name!r} returned {type(wrong[0]).__name__}, not Finding")
    return contributed


def incomplete_run_finding(run: RunInfo) -> list[Finding]:
    """A warning when the run was interrupted, since missing items make every number provisional."""
    if run.complete:
        return []
    message = (
        "The run is incomplete, so some variants or items are missing; rerun the same command to resume."
    )
    return [Finding(severity="warning", kind="incomplete_run", message=message)]


def ordered(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """Findings most severe first, keeping their order within a severity."""
    return tuple(sorted(findings, key=lambda finding: _SEVERITY_ORDER[finding.severity]))


def _comparison_finding(comparison: ComparisonResult, result: ProbeResult) -> Finding:
    """E.g. 'epoch-3: prompt_loose of instruction_following fell 12.5 points vs base (75.0% → 62.5%; …)'."""
    info = result.metric_info(comparison.metric)
    binary = info is not None and info.binary
    verb = "rose" if comparison.delta > 0 else "fell"
    under = f" under {comparison.template}" if len(result.templates) > 1 else ""
    before = _value(result, comparison.reference, comparison.template, comparison.metric)
    after = _value(result, comparison.variant, comparison.template, comparison.metric)
    values = f"{format_value(before, binary)} → {format_value(after, binary)}; "
    message = (
        f"{comparison.variant}: {comparison.metric} of {comparison.probe} {verb} "
        f"{format_magnitude(comparison.delta, binary)} vs {comparison.reference}{under} "
        f"({values}{format_p(comparison.adjusted_p)}, Holm-adjusted)."
    )
    threshold = info.negligible if info is not None else 0.0
    negligible = abs(comparison.delta) < threshold
    if negligible:
        message += f" The change is under {threshold:g}, too small to matter in practice."
    change = _CHANGE_WORDS[comparison.direction]
    return Finding(
        severity="warning" if comparison.direction == "worse" and not negligible else "info",
        kind=f"headline_{change}_vs_{comparison.relation}",
        message=message,
        probe=comparison.probe,
        variant=comparison.variant,
        metric=comparison.metric,
        template=comparison.template,
        value=abs(comparison.delta),
        value_text=_magnitude(comparison, binary),
        adjusted_p=comparison.adjusted_p,
        claim=_claim(comparison, binary, under),
    )


def _claim(comparison: ComparisonResult, binary: bool, under: str) -> str:
    """'fall by {value} points in prompt_loose of instruction_following vs base', for several epochs at once."""
    reference = "base" if comparison.relation == "base" else "the previous epoch"
    units = " points" if binary else ""
    verb = "change" if comparison.direction == "neutral" else "rise" if comparison.delta > 0 else "fall"
    return f"{verb} by {{value}}{units} in {comparison.metric} of {comparison.probe} vs {reference}{under}"


def _magnitude(comparison: ComparisonResult, binary: bool) -> str:
    """The size of the change as the claim writes it: signed when the direction is neutral ('+2.00')."""
    if comparison.direction == "neutral":
        return format_delta(comparison.delta, binary)
    return f"{100 * abs(comparison.delta):.1f}" if binary else format_number(abs(comparison.delta))


def _value(result: ProbeResult, variant: str, template: str, metric: str) -> float | None:
    """A cell's metric value, or None."""
    cell = result.cell(variant, template)
    value = None if cell is None else cell.metric(metric)
    return None if value is None else value.value
