"""Compare one variant of run A with one variant of run B, metric by metric: Δ = B − A with a CI and a p-value.

Per-item metrics are paired on (probe, template, item_id) when the two runs share items (same suite and data):
`stats.paired_compare` on the shared items (McNemar for independent binary items, else a paired t-test; Newcombe's
interval for binary and fraction metrics, the paired (cluster) bootstrap's otherwise). Runs without shared items
(different suites) are compared unpaired: an independent (cluster) bootstrap of the difference of means when both
items.jsonl files are there, else a normal approximation from the two reports' confidence intervals; a difference
of proportions then takes Newcombe's interval from the two sides' score intervals, so it stays in [−1, 1].
Probe-level summaries have no item values, so they get that approximation when both carry an interval, and Δ alone
otherwise.

A quantity a run defines relative to itself (the opening it learned) is measured in both runs by scoring the other
run's outputs for it (sfteval.report.diff_relative); the probe's own metrics measured against such run-relative
definitions are marked not comparable when the runs defined them differently. Every tested, comparable row is part
of one Holm family, and the significant ones lead the output in words (sfteval.report.diff_changes).
"""

from __future__ import annotations

import difflib
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sfteval import stats
from sfteval.core.errors import UserError
from sfteval.core.records import ItemRecord
from sfteval.core.report import Report, load_report
from sfteval.core.results import MetricInfo, MetricValue, ProbeResult, direction_of
from sfteval.report.diff_changes import what_changed
from sfteval.report.diff_model import DiffMode, DiffReport, DiffRow, RecordKey, RunSide
from sfteval.report.diff_relative import incomparable, relative_rows
from sfteval.report.items import finite, load_run_items, report_file
from sfteval.report.pairs import compare_records
from sfteval.report.unpaired import Sample, independent_bootstrap, normal_from_intervals


@dataclass(frozen=True)
class _Tested:
    """A row's statistics before Holm correction."""

    delta: float | None
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    test: str = "none"
    mode: DiffMode = "unpaired"
    n_pairs: int = 0


def diff_runs(
    path_a: Path, path_b: Path, variant_a: str | None = None, variant_b: str | None = None
) -> DiffReport:
    """Diff two runs (run directories or report.json files); variants default to each run's recommendation."""
    notes: list[str] = []
    side_a = load_side(path_a, variant_a, notes)
    side_b = load_side(path_b, variant_b, notes)
    settings = side_a.report.stats
    rows: list[DiffRow] = []
    only_a, only_b = _one_sided(side_a.report, side_b.report, side_a.variant, side_b.variant)
    for probe_a in side_a.report.probes:
        probe_b = side_b.report.probe(probe_a.name)
        if probe_b is not None:
            relative, same_definitions = relative_rows(probe_a.name, side_a, side_b, settings, notes)
            own = _probe_rows(probe_a, probe_b, side_a, side_b, notes)
            rows.extend(own if same_definitions else incomparable(own, probe_a.name, notes))
            rows.extend(relative)
    tested = [index for index, row in enumerate(rows) if row.p_value is not None and row.comparable]
    corrected = (
        stats.holm([rows[index].p_value or 0.0 for index in tested], alpha=settings.alpha) if tested else []
    )
    for index, result in zip(tested, corrected, strict=True):
        rows[index] = rows[index].model_copy(
            update={"adjusted_p": result.adjusted_p, "significant": result.significant}
        )
    return DiffReport(
        run_a=str(side_a.file),
        run_b=str(side_b.file),
        variant_a=side_a.variant,
        variant_b=side_b.variant,
        suite_a=side_a.report.run.suite_name,
        suite_b=side_b.report.run.suite_name,
        alpha=settings.alpha,
        confidence=settings.confidence,
        rows=tuple(rows),
        only_in_a=tuple(only_a),
        only_in_b=tuple(only_b),
        notes=tuple(dict.fromkeys(notes)),
        what_changed=what_changed(rows),
    )


def load_side(path: Path, variant: str | None, notes: list[str]) -> RunSide:
    """Load a run's report and the chosen variant's item records."""
    report = load_report(path)
    chosen = choose_variant(report, variant, report_file(path), notes)
    records = load_run_items(path, report)
    if records is None:
        notes.append(f"{report_file(path)}: no items.jsonl next to it, so its rows are compared unpaired")
        return RunSide(report_file(path), report, chosen, None)
    grouped: dict[RecordKey, list[ItemRecord]] = defaultdict(list)
    for record in records:
        if record.variant == chosen:
            grouped[(record.probe, record.template)].append(record)
    return RunSide(report_file(path), report, chosen, dict(grouped))


def choose_variant(report: Report, requested: str | None, file: Path, notes: list[str]) -> str:
    """The named variant (did-you-mean when unknown), else the recommended one, else the last in run order."""
    names = [variant.name for variant in report.run.variants]
    if not names:
        raise UserError(f"{file}: the report has no variants to compare")
    if requested is not None:
        if requested not in names:
            close = difflib.get_close_matches(requested, names, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"variants: {', '.join(names)}"
            raise UserError(f"{file}: no variant named {requested!r}", hint=hint)
        return requested
    recommended = report.recommendation.variant if report.recommendation else None
    if recommended is not None:
        return recommended
    notes.append(f"{file}: no recommended checkpoint, comparing its last variant {names[-1]}")
    return names[-1]


def _one_sided(
    report_a: Report, report_b: Report, variant_a: str, variant_b: str
) -> tuple[list[str], list[str]]:
    """Probes, `probe.metric` and `probe (template)` entries that exist on one side only."""
    found: tuple[list[str], list[str]] = ([], [])
    sides = (
        (report_a, variant_a, report_b, variant_b, found[0]),
        (report_b, variant_b, report_a, variant_a, found[1]),
    )
    for report, variant, other, other_variant, bucket in sides:
        for probe in report.probes:
            counterpart = other.probe(probe.name)
            if counterpart is None:
                bucket.append(probe.name)
                continue
            bucket.extend(
                f"{probe.name}.{info.name}"
                for info in probe.metrics
                if counterpart.metric_info(info.name) is None
            )
            theirs = {cell.template for cell in counterpart.cells if cell.variant == other_variant}
            bucket.extend(
                f"{probe.name} ({cell.template})"
                for cell in probe.cells
                if cell.variant == variant and cell.template not in theirs
            )
    return found


def _probe_rows(
    probe_a: ProbeResult, probe_b: ProbeResult, side_a: RunSide, side_b: RunSide, notes: list[str]
) -> list[DiffRow]:
    """Rows for every metric and template both runs have for the chosen variants."""
    rows = []
    for template in probe_a.templates:
        cell_a, cell_b = probe_a.cell(side_a.variant, template), probe_b.cell(side_b.variant, template)
        if cell_a is None or cell_b is None:
            continue
        for info in probe_a.metrics:
            info_b = probe_b.metric_info(info.name)
            value_a, value_b = cell_a.metric(info.name), cell_b.metric(info.name)
            if info_b is None or value_a is None or value_b is None:
                continue
            if value_a.value is None and value_b.value is None:
                continue
            per_item = info.per_item and info_b.per_item
            tested = _test(
                probe_a.name, template, info, (value_a, value_b), (side_a, side_b), per_item, notes
            )
            rows.append(_row(probe_a.name, template, info, value_a, value_b, tested))
    return rows


def _row(
    probe: str, template: str, info: MetricInfo, value_a: MetricValue, value_b: MetricValue, tested: _Tested
) -> DiffRow:
    """The DiffRow of one metric before Holm correction."""
    return DiffRow(
        probe=probe,
        metric=info.name,
        template=template,
        binary=info.binary,
        headline=info.headline,
        higher_is_better=info.higher_is_better,
        value_a=value_a.value,
        value_b=value_b.value,
        delta=tested.delta,
        low=tested.low,
        high=tested.high,
        p_value=tested.p_value,
        direction=direction_of(info.higher_is_better, tested.delta),
        mode=tested.mode,
        test=tested.test,
        n_pairs=tested.n_pairs,
        n_a=value_a.n,
        n_b=value_b.n,
    )


def _test(
    probe: str,
    template: str,
    info: MetricInfo,
    values: tuple[MetricValue, MetricValue],
    sides: tuple[RunSide, RunSide],
    per_item: bool,
    notes: list[str],
) -> _Tested:
    """Paired on shared items when possible, else independent bootstrap, else the normal approximation."""
    side_a, side_b = sides
    if per_item and side_a.records is not None and side_b.records is not None:
        records_a = side_a.records.get((probe, template), [])
        records_b = side_b.records.get((probe, template), [])
        if records_a and records_b:
            return _from_items(probe, template, info, records_a, records_b, side_a.report, notes)
    return _from_intervals(values[0], values[1], side_a.report.stats.confidence, info)


def _from_items(
    probe: str,
    template: str,
    info: MetricInfo,
    records_a: Sequence[ItemRecord],
    records_b: Sequence[ItemRecord],
    report: Report,
    notes: list[str],
) -> _Tested:
    """Paired comparison on shared item ids, or an independent bootstrap when the runs share none."""
    # Run B first: paired_compare's delta is mean(a) − mean(b) = B − A.
    paired = compare_records(
        records_b,
        records_a,
        lambda record: finite(record.metrics.get(info.name)),
        report.stats,
        info.binary or info.fraction,
        f"{probe} ({template})",
        same_run=False,
    )
    pairs, result = paired.pairing, paired.comparison
    if pairs.unmatched_a == len(records_b) and pairs.unmatched_b == len(records_a):
        notes.append(f"{probe} ({template}): the runs share no items, so its rows are compared unpaired")
        return _independent(records_a, records_b, info, report)
    if pairs.unmatched_a or pairs.unmatched_b:
        shared = len(records_a) - pairs.unmatched_b
        notes.append(
            f"{probe} ({template}): Δ over the {shared} items both runs have "
            f"({pairs.unmatched_b} of run A's and {pairs.unmatched_a} of run B's are on one side only)"
        )
    if result is None:
        return _Tested(delta=None, mode="paired")
    return _Tested(
        delta=result.delta,
        low=paired.low,
        high=paired.high,
        p_value=result.p_value,
        test=result.test,
        mode="paired",
        n_pairs=result.n,
    )


def _independent(
    records_a: Sequence[ItemRecord], records_b: Sequence[ItemRecord], info: MetricInfo, report: Report
) -> _Tested:
    """Independent (cluster) bootstrap of mean(B) − mean(A) on two item sets that share nothing; for proportions
    the CI is Newcombe's from each side's (design-effect) Wilson interval."""
    sample_a, sample_b = _sample(records_a, info.name), _sample(records_b, info.name)
    if not sample_a.values or not sample_b.values:
        return _Tested(delta=None)
    settings = report.stats
    result = independent_bootstrap(
        sample_a, sample_b, settings.n_resamples, settings.confidence, settings.seed
    )
    low, high = result.low, result.high
    if info.binary or info.fraction:
        side_a = stats.proportion(sample_a.values, sample_a.clusters, settings.confidence)
        side_b = stats.proportion(sample_b.values, sample_b.clusters, settings.confidence)
        if math.isfinite(side_a.low) and math.isfinite(side_b.low):
            interval = stats.independent_difference(_bounds(side_a), _bounds(side_b))
            low, high = interval.low, interval.high
    return _Tested(delta=result.delta, low=low, high=high, p_value=result.p_value, test=result.test)


def _bounds(estimate: stats.Estimate) -> tuple[float, float, float]:
    return estimate.mean, estimate.low, estimate.high


def _sample(records: Sequence[ItemRecord], metric: str) -> Sample:
    """Finite values of `metric` and their cluster ids."""
    kept = [
        (value, record.cluster_id)
        for record in records
        if (value := finite(record.metrics.get(metric))) is not None
    ]
    return Sample([value for value, _ in kept], [cluster for _, cluster in kept])


def _from_intervals(
    value_a: MetricValue, value_b: MetricValue, confidence: float, info: MetricInfo
) -> _Tested:
    """Unpaired normal approximation from the two reports' intervals (see sfteval.report.unpaired); a difference
    of proportions gets Newcombe's interval from the two score intervals instead of the normal one."""
    if value_a.value is None or value_b.value is None:
        return _Tested(delta=None)
    side_a = (value_a.value, value_a.low, value_a.high)
    side_b = (value_b.value, value_b.low, value_b.high)
    result = normal_from_intervals(side_a, side_b, confidence)
    low, high = result.low, result.high
    bounds = (value_a.low, value_a.high, value_b.low, value_b.high)
    if (info.binary or info.fraction) and low is not None and all(bound is not None for bound in bounds):
        interval = stats.independent_difference(
            (value_a.value, value_a.low or 0.0, value_a.high or 1.0),
            (value_b.value, value_b.low or 0.0, value_b.high or 1.0),
        )
        low, high = interval.low, interval.high
    return _Tested(delta=result.delta, low=low, high=high, p_value=result.p_value, test=result.test)
