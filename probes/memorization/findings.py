"""The memorization probe's sentences: the NLL gap's trend over epochs, and why there is none without samples."""

from __future__ import annotations

from typing import Any

from sfteval.core.results import Finding, ProbeSlice
from sfteval.core.variants import BASE
from sfteval.probes.memorization.metrics import GROUPS, NAME
from sfteval.probes.shared.sentences import cells_by_variant, finding, under

WARN_NLL_GAP = 0.5


def memorization_findings(report_slice: ProbeSlice) -> list[Finding]:
    """The NLL gap's trend over epochs, and a warning when the last variant's gap is large and certain."""
    groups = {record.extra.get("group") for record in report_slice.records}
    if groups != set(GROUPS):
        return [_missing_samples(groups)]
    cells = cells_by_variant(report_slice.result)
    several = len(report_slice.result.templates) > 1
    found: list[Finding] = []
    for template in report_slice.result.templates:
        series = [
            (variant, value)
            for (variant, cell_template), cell in cells.items()
            if cell_template == template and (value := cell.metric("nll_gap")) is not None
        ]
        trained = [
            (variant, value) for variant, value in series if variant != BASE and value.value is not None
        ]
        if not trained:
            continue
        variant, last = trained[-1]
        gap = last.value or 0.0
        if gap >= WARN_NLL_GAP and last.low is not None and last.low > 0:
            trend = " → ".join(
                f"{name} {value.value:.2f}" for name, value in series if value.value is not None
            )
            message = (
                f"{variant} fits its training responses {gap:.2f} nats/token better than held-out ones "
                f"(NLL gap {trend}{under(template, several)}): it is memorising its training data."
            )
            found.append(
                finding(
                    "warning", "memorization", message, NAME, variant, "nll_gap", template,
                    value=gap, value_text=f"{gap:.2f}",
                )
            )  # fmt: skip
    return found


def _missing_samples(groups: set[Any]) -> Finding:
    """Why there is no memorisation gap: no trained or no held-out sample to compare."""
    missing = " and ".join(group for group in GROUPS if group not in groups)
    message = (
        f"memorization has no {missing} pairs, so there is no train-vs-held-out gap: train with sfteval "
        "(its manifest samples both; it holds rows out from 40 rows on) or name train_pairs and heldout_pairs."
    )
    return Finding(severity="info", kind="memorization_unmeasured", message=message, probe=NAME)
