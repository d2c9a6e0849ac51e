"""Small helpers for probes that explain their results in plain sentences (the report's `findings` hook)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sfteval.core.records import ItemRecord
from sfteval.core.results import Finding, ProbeSlice
from sfteval.core.variants import BASE


@dataclass(frozen=True)
class VariantCell:
    """One trained variant's records under one template, with the base's records there and how to say where."""

    variant: str
    template: str
    records: list[ItemRecord]
    base: list[ItemRecord]
    where: str
    """` under chatml` when the probe ran several serving templates, else ''."""


def variant_cells(report_slice: ProbeSlice) -> Iterator[VariantCell]:
    """Every (non-base variant, template) cell of a probe's records, in first-seen order."""
    cells = records_by_cell(report_slice.records)
    several = len(report_slice.result.templates) > 1
    for (variant, template), records in cells.items():
        if variant != BASE:
            base = cells.get((BASE, template), [])
            yield VariantCell(variant, template, records, base, under(template, several))


def records_by_cell(records: Iterable[ItemRecord]) -> dict[tuple[str, str], list[ItemRecord]]:
    """Records grouped by (variant, template), in first-seen order."""
    cells: dict[tuple[str, str], list[ItemRecord]] = {}
    for record in records:
        cells.setdefault((record.variant, record.template), []).append(record)
    return cells


def cells_by_variant(result: Any) -> dict[tuple[str, str], Any]:
    """A ProbeResult's cells keyed by (variant, template), in run order."""
    return {(cell.variant, cell.template): cell for cell in result.cells}


def summary_value(cell: Any, name: str) -> float | None:
    """The value of metric `name` in a report cell, or None when the cell or value is missing."""
    value = None if cell is None else cell.metric(name)
    return None if value is None else value.value


def percent(value: float) -> str:
    """`74%` (whole percent; `<1%` for small non-zero shares, so they do not read as zero)."""
    if 0 < value < 0.005:
        return "<1%"
    return f"{100 * value:.0f}%"


def quoted(text: str, width: int = 60) -> str:
    """Model text quoted for a sentence: newlines shown as \\n and long text cut with an ellipsis."""
    shown = text.replace("\n", "\\n")
    return repr(shown if len(shown) <= width else shown[: width - 1] + "…")


def under(template: str, several: bool) -> str:
    """` under chatml` when a probe ran several serving templates, else nothing."""
    return f" under {template}" if several else ""


def finding(
    severity: Any,
    kind: str,
    message: str,
    probe: str,
    variant: str,
    metric: str,
    template: str,
    **trend: Any,
) -> Finding:
    """A Finding about one metric of one variant under one template.

    `trend` takes the fields that let the report tell the finding once across epochs: value, value_text, claim
    (the sentence for several variants, {value} where the values go) and adjusted_p.
    """
    return Finding(
        severity=severity,
        kind=kind,
        message=message,
        probe=probe,
        variant=variant,
        metric=metric,
        template=template,
        **trend,
    )
