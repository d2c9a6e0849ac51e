"""Compare one variant of run A with one variant of run B, metric by metric: Δ = B − A with a CI and a p-value.

Per-item metrics are paired on (probe, template, item_id) when the two runs share items (same suite and data):
`stats.paired_compare` on the shared items (McNemar for independent binary items, else the paired (cluster)
bootstrap). Runs without shared items (different suites) are compared unpaired: an independent (cluster) bootstrap
of the difference of means when both items.jsonl files are there, else a normal approximation from the two reports'
confidence intervals (Welch-style, SE from each interval's half-width). Probe-level summaries have no item values,
so they get that normal approximation when both carry an interval, and Δ alone otherwise. Every tested row is part
of one Holm family, as in a report.
"""

from __future__ import annotations

import difflib
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sfteval import stats
from sfteval.core.errors import UserError
from sfteval.core.records import ItemRecord
from sfteval.core.report import Report, load_report
from sfteval.core.results import Direction, MetricInfo, MetricValue, ProbeResult
from sfteval.report.items import load_run_items, report_file
from sfteval.report.unpaired import Sample, independent_bootstrap, normal_from_intervals

DiffMode = Literal["paired", "unpaired"]
RecordKey = tuple[str, str]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DiffRow(_Strict):
    """One metric of one probe under one template, in run A and run B, and their difference."""

    probe: str = Field(description="Probe name.")
    metric: str = Field(description="Metric name.")
    template: str = Field(description="Serving template of both cells.")
    binary: bool = Field(description="Binary metric: values are fractions, shown in percent.")
    headline: bool = Field(description="A headline metric of the probe.")
    higher_is_better: bool | None = Field(description="Direction of improvement; None: descriptive.")
    value_a: float | None = Field(description="Run A's value (from its report).")
    value_b: float | None = Field(description="Run B's value (from its report).")
    delta: float | None = Field(description="B − A: over paired items when paired, else value_b − value_a.")
    low: float | None = Field(default=None, description="Lower CI bound of delta.")
    high: float | None = Field(default=None, description="Upper CI bound of delta.")
    p_value: float | None = Field(
        default=None, description="Two-sided p-value of `test`; None when untested."
    )
    adjusted_p: float | None = Field(default=None, description="Holm-adjusted over every tested row.")
    significant: bool = Field(default=False, description="adjusted_p <= alpha.")
    direction: Direction = Field(
        description="better/worse for B by the metric's direction; neutral otherwise."
    )
    mode: DiffMode = Field(description="paired: same items in both runs; unpaired: independent samples.")
    test: str = Field(
        description="mcnemar_exact, paired_t, cluster_t, independent_bootstrap, "
        "normal_from_intervals, or none (no interval to test with)."
    )
    n_pairs: int = Field(default=0, ge=0, description="Items paired across the runs (0 when unpaired).")
    n_a: int = Field(ge=0, description="Run A's items with a value.")
    n_b: int = Field(ge=0, description="Run B's items with a value.")


class DiffReport(_Strict):
    """Everything `sfteval diff` shows, also written as JSON with `--format json`."""

    run_a: str = Field(description="Run A's report.json.")
    run_b: str = Field(description="Run B's report.json.")
    variant_a: str = Field(description="Variant of run A compared.")
    variant_b: str = Field(description="Variant of run B compared.")
    suite_a: str = Field(description="Run A's suite name.")
    suite_b: str = Field(description="Run B's suite name.")
    alpha: float = Field(description="Family-wise error rate of the Holm correction.")
    confidence: float = Field(description="Confidence level of every interval.")
    rows: tuple[DiffRow, ...] = Field(description="Shared metrics, in run A's probe and metric order.")
    only_in_a: tuple[str, ...] = Field(description="Probes, metrics and templates present in run A only.")
    only_in_b: tuple[str, ...] = Field(description="Probes, metrics and templates present in run B only.")
    notes: tuple[str, ...] = Field(
        description="How rows were compared (paired or not) and what was left out."
    )


@dataclass(frozen=True)
class RunSide:
    """One side of a diff: its report, its item records of the chosen variant (None without items.jsonl)."""

    file: Path
    report: Report
    variant: str
    records: dict[RecordKey, list[ItemRecord]] | None


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
            rows.extend(_probe_rows(probe_a, probe_b, side_a, side_b, notes))
    tested = [index for index, row in enumerate(rows) if row.p_value is not None]
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
    direction: Direction = "neutral"
    if tested.delta and info.higher_is_better is not None:
        direction = "better" if (tested.delta > 0) == info.higher_is_better else "worse"
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
        direction=direction,
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
            return _from_items(probe, template, info.name, records_a, records_b, side_a.report, notes)
    return _from_intervals(values[0], values[1], side_a.report.stats.confidence)


def _from_items(
    probe: str,
    template: str,
    metric: str,
    records_a: Sequence[ItemRecord],
    records_b: Sequence[ItemRecord],
    report: Report,
    notes: list[str],
) -> _Tested:
    """Paired comparison on shared item ids, or an independent bootstrap when the runs share none."""
    settings = report.stats
    # Run B first: paired_compare's delta is mean(a) − mean(b) = B − A.
    try:
        pairs = stats.pairing(
            records_b, records_a, value=lambda record: _finite(record.metrics.get(metric)), cluster=None
        )
    except ValueError as error:
        raise UserError(f"{probe} ({template}): {error}") from None
    if pairs.unmatched_a == len(records_b) and pairs.unmatched_b == len(records_a):
        notes.append(f"{probe} ({template}): the runs share no items, so its rows are compared unpaired")
        return _independent(records_a, records_b, metric, report)
    if pairs.unmatched_a or pairs.unmatched_b:
        shared = len(records_a) - pairs.unmatched_b
        notes.append(
            f"{probe} ({template}): Δ over the {shared} items both runs have "
            f"({pairs.unmatched_b} of run A's and {pairs.unmatched_a} of run B's are on one side only)"
        )
    if not pairs.ids:
        return _Tested(delta=None, mode="paired")
    clusters = {record.item_id: record.cluster_id for record in records_a}
    result = stats.paired_compare(
        pairs.a_values,
        pairs.b_values,
        [clusters[str(item)] for item in pairs.ids],
        seed=settings.seed,
        n_resamples=settings.n_resamples,
        confidence=settings.confidence,
    )
    bounded = math.isfinite(result.low) and math.isfinite(result.high)
    return _Tested(
        delta=result.delta,
        low=result.low if bounded else None,
        high=result.high if bounded else None,
        p_value=result.p_value,
        test=result.test,
        mode="paired",
        n_pairs=result.n,
    )


def _independent(
    records_a: Sequence[ItemRecord], records_b: Sequence[ItemRecord], metric: str, report: Report
) -> _Tested:
    """Independent (cluster) bootstrap of mean(B) − mean(A) on two item sets that share nothing."""
    sample_a, sample_b = _sample(records_a, metric), _sample(records_b, metric)
    if not sample_a.values or not sample_b.values:
        return _Tested(delta=None)
    settings = report.stats
    result = independent_bootstrap(
        sample_a, sample_b, settings.n_resamples, settings.confidence, settings.seed
    )
    return _Tested(
        delta=result.delta, low=result.low, high=result.high, p_value=result.p_value, test=result.test
    )


def _sample(records: Sequence[ItemRecord], metric: str) -> Sample:
    """Finite values of `metric` and their cluster ids."""
    kept = [
        (value, record.cluster_id)
        for record in records
        if (value := _finite(record.metrics.get(metric))) is not None
    ]
    return Sample([value for value, _ in kept], [cluster for _, cluster in kept])


def _from_intervals(value_a: MetricValue, value_b: MetricValue, confidence: float) -> _Tested:
    """Unpaired normal approximation from the two reports' intervals (see sfteval.report.unpaired)."""
    if value_a.value is None or value_b.value is None:
        return _Tested(delta=None)
    result = normal_from_intervals(
        (value_a.value, value_a.low, value_a.high), (value_b.value, value_b.low, value_b.high), confidence
    )
    return _Tested(
        delta=result.delta, low=result.low, high=result.high, p_value=result.p_value, test=result.test
    )


def _finite(value: float | int | bool | None) -> float | None:
    """A per-item value as a float, or None when absent or not finite."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
