"""Run-relative quantities in a diff: what one run defined for itself (the opening it learned, a tic phrase) is
scored on both runs' outputs, paired on the same items, so it gets a Δ and a test.

Each run's spurious_prefix records carry the candidate prefixes that run matched against (from its own manifest
or its own outputs), so a clean run and its twin trained with a fixed opening measure different things under the
same metric name: the clean run's `dominant_prefix` is empty. Scoring both runs' outputs for every phrase either run
defined (`Probe.run_relative_measures`) needs no model: the outputs are in items.jsonl. The probe's own
run-relative metrics (`Probe.run_relative_metrics`) stay in the table, marked not comparable, when the runs
defined different phrases.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sfteval.core.records import ItemRecord
from sfteval.core.results import RunRelativeMeasure, direction_of
from sfteval.core.run_info import StatsSettings
from sfteval.report.diff_model import DiffRow, RunSide
from sfteval.report.pairs import compare_records

if TYPE_CHECKING:
    from sfteval.probes.base import Probe


def relative_rows(
    probe: str, side_a: RunSide, side_b: RunSide, settings: StatsSettings, notes: list[str]
) -> tuple[list[DiffRow], bool]:
    """Rows of every run-relative measure either run defined for `probe`, and whether both defined the same."""
    probe_class = _probe_class(probe)
    if probe_class is None or side_a.records is None or side_b.records is None:
        return [], True
    records_a = {template: rows for (name, template), rows in side_a.records.items() if name == probe}
    records_b = {template: rows for (name, template), rows in side_b.records.items() if name == probe}
    defined_a = {m.name: m for m in probe_class.run_relative_measures(_all(records_a))}
    defined_b = {m.name: m for m in probe_class.run_relative_measures(_all(records_b))}
    rows = []
    for name, measure in {**defined_a, **defined_b}.items():
        by = "A and B" if name in defined_a and name in defined_b else "A" if name in defined_a else "B"
        for template in [t for t in records_a if t in records_b]:
            row = _measured(
                probe, template, measure, by, (records_a[template], records_b[template]), settings
            )
            if row is None:
                notes.append(f"{probe} ({template}): {name} could not be paired (the runs share no items)")
            else:
                rows.append(row)
    return rows, defined_a.keys() == defined_b.keys()


def incomparable(rows: Sequence[DiffRow], probe: str, notes: list[str]) -> list[DiffRow]:
    """The probe's run-relative metrics marked not comparable (left out of tests and 'what changed')."""
    probe_class = _probe_class(probe)
    relative = set(probe_class.run_relative_metrics) if probe_class is not None else set()
    marked = [
        row.model_copy(update={"comparable": False, "p_value": None}) if row.metric in relative else row
        for row in rows
    ]
    if any(not row.comparable for row in marked):
        notes.append(
            f"{probe}: {', '.join(sorted(relative))} are measured against what each run defined for itself, "
            "and the runs defined different things; the 'opens with …' rows score both runs for each"
        )
    return marked


def _measured(
    probe: str,
    template: str,
    measure: RunRelativeMeasure,
    defined_by: str,
    records: tuple[Sequence[ItemRecord], Sequence[ItemRecord]],
    settings: StatsSettings,
) -> DiffRow | None:
    """The measure on both runs' records of one template, paired on item ids (Δ = B − A), or None."""
    records_a, records_b = records
    where = f"{probe} ({template})"
    paired = compare_records(records_b, records_a, measure.score, settings, True, where, same_run=False)
    result = paired.comparison
    if result is None:
        return None
    return DiffRow(
        probe=probe,
        metric=measure.name,
        template=template,
        binary=True,
        headline=True,
        higher_is_better=measure.higher_is_better,
        value_a=float(paired.pairing.b_values.mean()),
        value_b=float(paired.pairing.a_values.mean()),
        delta=result.delta,
        low=paired.low,
        high=paired.high,
        p_value=result.p_value,
        direction=direction_of(measure.higher_is_better, result.delta),
        mode="paired",
        test=result.test,
        n_pairs=result.n,
        n_a=len(records_a),
        n_b=len(records_b),
        defined_by=defined_by,
    )


def _all(by_template: dict[str, list[ItemRecord]]) -> list[ItemRecord]:
    return [record for rows in by_template.values() for record in rows]


def _probe_class(name: str) -> type[Probe] | None:
    """The registered probe class, or None for a probe this sfteval does not know (a report from elsewhere)."""
    from sfteval.probes import PROBES

    return PROBES.get(name) if name in PROBES else None
