"""Build a Report from item records: per-cell metrics with CIs, paired comparisons, Holm, findings, recommendation.

Per (probe, template, metric), each non-base variant is compared with base and with the previous non-base variant
in run order, on items paired by `item_id` (diagnostics.md §6.3). Holm corrects each probe's comparisons against
one reference kind (vs base, vs previous epoch) as one family. A metric declared in `Probe.metrics` whose name `summarize()` returns is a probe-level summary: it is
reported with the declaration's direction but not compared per item.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from sfteval import stats
from sfteval.core.errors import UserError
from sfteval.core.metrics import MetricSpec
from sfteval.core.records import ItemRecord
from sfteval.core.report import Report
from sfteval.core.results import (
    CellResult,
    ComparisonResult,
    MetricInfo,
    MetricValue,
    ProbeResult,
    ProbeSlice,
    direction_of,
)
from sfteval.core.run_info import RunInfo, StatsSettings
from sfteval.core.variants import BASE
from sfteval.probes.base import Probe
from sfteval.report.finding_groups import group_findings
from sfteval.report.findings import comparison_findings, incomplete_run_finding, ordered, probe_findings
from sfteval.report.items import finite
from sfteval.report.pairs import compare_records
from sfteval.report.recommend_pairs import build_recommendation

# Keeps the power note meaningful when the reference scores 0% or 100% (the formula would give 0 points).
_MDE_BASELINE_RANGE = (0.05, 0.95)

ByVariant = dict[str, list[ItemRecord]]
ByTemplate = dict[str, ByVariant]


def build_report(
    run: RunInfo, records: Sequence[ItemRecord], probes: Mapping[str, Probe], seed: int = 0
) -> Report:
    """The report of a run from its item records and the probes (by name, in suite order) that produced them."""
    settings = StatsSettings(seed=seed)
    grouped = _group(run, records, probes)
    order = [variant.name for variant in run.variants]
    results, pending, notes = [], [], []
    for name, probe in probes.items():
        result = _probe_result(probe, grouped[name], order)
        results.append(result)
        specs = _per_item_specs(probe, result)
        probe_pending, probe_notes = _compare_probe(
            name, specs, grouped[name], order, settings, run.items_file
        )
        pending.extend(probe_pending)
        notes.extend(probe_notes if result.cells else [f"{name}: no item records"])
    comparisons = _holm_corrected(pending, settings.alpha)
    findings = incomplete_run_finding(run) + comparison_findings(comparisons, results)
    for (name, probe), result in zip(probes.items(), results, strict=True):
        probe_records = tuple(
            record for by_variant in grouped[name].values() for rows in by_variant.values() for record in rows
        )
        own = tuple(comparison for comparison in comparisons if comparison.probe == name)
        findings.extend(probe_findings(probe, ProbeSlice(run, result, own, probe_records)))
    sorted_findings = ordered(findings)
    groups = group_findings(sorted_findings, order)
    return Report(
        run=run,
        stats=settings,
        probes=tuple(results),
        comparisons=comparisons,
        findings=sorted_findings,
        finding_groups=groups,
        recommendation=build_recommendation(run, results, grouped, sorted_findings, groups, settings),
        notes=tuple(notes),
    )


def _group(run: RunInfo, records: Sequence[ItemRecord], probes: Mapping[str, Probe]) -> dict[str, ByTemplate]:
    """Records by probe → template (first-seen order) → variant, refusing unknown names and duplicate items."""
    for name, probe in probes.items():
        if name != probe.name:
            raise ValueError(f"probe registered as {name!r} is named {probe.name!r}")
    variants = {variant.name for variant in run.variants}
    grouped: dict[str, ByTemplate] = {name: {} for name in probes}
    seen: set[tuple[str, str, str, str]] = set()
    for record in records:
        key = (record.probe, record.template, record.variant, record.item_id)
        problem = _record_problem(record, grouped.keys(), variants, key in seen)
        if problem:
            raise UserError(f"{run.items_file}: item record of {record.probe}: {problem}")
        seen.add(key)
        grouped[record.probe].setdefault(record.template, {}).setdefault(record.variant, []).append(record)
    return grouped


def _record_problem(
    record: ItemRecord, probes: Collection[str], variants: Collection[str], duplicate: bool
) -> str | None:
    """Why a record cannot be placed in the report, or None."""
    if record.probe not in probes:
        return f"probe {record.probe!r} is not in the suite"
    if record.variant not in variants:
        return f"variant {record.variant!r} is not among the run's variants"
    if duplicate:
        return f"item {record.item_id!r} appears twice for {record.variant} under {record.template}"
    return None


def _probe_result(probe: Probe, by_template: ByTemplate, order: Sequence[str]) -> ProbeResult:
    """Metrics of every (variant, template) cell, variants in run order, and the probe's power note."""
    summaries = {
        (variant, template): probe.summarize(by_template[template][variant])
        for variant in order
        for template in by_template
        if variant in by_template[template]
    }
    summary_names = list(dict.fromkeys(name for summary in summaries.values() for name in summary))
    declared = {spec.name: spec for spec in probe.metrics}
    item_specs = [spec for spec in probe.metrics if spec.name not in summary_names]
    cells = tuple(
        _cell(variant, template, by_template[template][variant], item_specs, summary)
        for (variant, template), summary in summaries.items()
    )
    infos = [_metric_info(spec, per_item=True) for spec in item_specs]
    infos += [
        _metric_info(declared[name], per_item=False)
        if name in declared
        else MetricInfo(name=name, higher_is_better=None, per_item=False)
        for name in summary_names
    ]
    return ProbeResult(
        name=probe.name,
        version=probe.version,
        params=probe.params.model_dump(mode="json"),
        metrics=tuple(infos),
        templates=tuple(by_template),
        cells=cells,
        mde_note=_mde_note(item_specs, cells),
    )


def _cell(
    variant: str,
    template: str,
    records: Sequence[ItemRecord],
    specs: Sequence[MetricSpec],
    summary: Mapping[str, Any],
) -> CellResult:
    """One (variant, template) cell: per-item metrics in declaration order, then the probe's summaries."""
    item_metrics = tuple(_item_metric(spec, records) for spec in specs)
    summary_metrics = tuple(_summary_metric(name, value, len(records)) for name, value in summary.items())
    return CellResult(
        variant=variant, template=template, n_items=len(records), metrics=item_metrics + summary_metrics
    )


def _per_item_specs(probe: Probe, result: ProbeResult) -> list[MetricSpec]:
    """The probe's declared metrics that are means of item values (not summaries)."""
    per_item = {info.name for info in result.metrics if info.per_item}
    return [spec for spec in probe.metrics if spec.name in per_item]


def _metric_info(spec: MetricSpec, per_item: bool) -> MetricInfo:
    """The report's copy of a metric declaration."""
    return MetricInfo(
        name=spec.name,
        description=spec.description,
        higher_is_better=spec.higher_is_better,
        binary=spec.binary,
        fraction=spec.fraction or spec.binary,
        headline=spec.headline,
        per_item=per_item,
        negligible=spec.negligible,
    )


def _item_metric(spec: MetricSpec, records: Sequence[ItemRecord]) -> MetricValue:
    """Mean of one metric over items: Wilson (design-effect adjusted when clustered) for binary and fraction
    metrics, so the interval stays in [0, 1]; the (clustered) t interval for unbounded ones."""
    kept = [
        (value, record.cluster_id)
        for record in records
        if (value := finite(record.metrics.get(spec.name))) is not None
    ]
    missing = len(records) - len(kept)
    if not kept:
        return MetricValue(name=spec.name, value=None, n=0, missing=missing, method="no-data")
    values = [value for value, _ in kept]
    clusters = [cluster for _, cluster in kept]
    bounded = spec.binary or spec.fraction
    estimate = stats.proportion(values, clusters) if bounded else stats.mean_ci(values, clusters)
    return _from_estimate(spec.name, estimate, missing)


def _summary_metric(name: str, value: Any, n_records: int) -> MetricValue:
    """A probe-level summary: a plain number (no interval) or a stats.Estimate carrying its own interval."""
    if isinstance(value, stats.Estimate):
        return _from_estimate(name, value, missing=0)
    number = finite(value)
    return MetricValue(
        name=name, value=number, n=n_records, method="summary" if number is not None else "no-data"
    )


def _from_estimate(name: str, estimate: stats.Estimate, missing: int) -> MetricValue:
    """A MetricValue from a stats.Estimate; infinite bounds (fewer than two clusters) become None."""
    bounded = math.isfinite(estimate.low) and math.isfinite(estimate.high)
    return MetricValue(
        name=name,
        value=estimate.mean,
        low=estimate.low if bounded else None,
        high=estimate.high if bounded else None,
        n=estimate.n,
        n_clusters=estimate.n_clusters,
        missing=missing,
        method=estimate.method if bounded else "no-interval",
    )


def _mde_note(specs: Sequence[MetricSpec], cells: Sequence[CellResult]) -> str | None:
    """Power note for the first binary headline metric (else first binary one), at the first cell's accuracy."""
    binary = [spec for spec in specs if spec.binary]
    spec = next((spec for spec in binary if spec.headline), binary[0] if binary else None)
    if spec is None:
        return None
    values = [
        value for cell in cells if (value := cell.metric(spec.name)) is not None and value.value is not None
    ]
    if not values:
        return None
    reference = values[0]
    low, high = _MDE_BASELINE_RANGE
    note = stats.mde_note(reference.n_clusters, baseline=min(max(reference.value or 0.0, low), high))
    counted = (
        " (counting clusters, since items within one are correlated)"
        if reference.n_clusters < reference.n
        else ""
    )
    return f"{spec.name}: {note}{counted}"


def _pairs(present: Sequence[str]) -> Iterator[tuple[str, str, str]]:
    """(variant, reference, relation) for each non-base variant: vs base, and vs the previous non-base variant."""
    others = [name for name in present if name != BASE]
    for index, variant in enumerate(others):
        if BASE in present:
            yield variant, BASE, "base"
        if index > 0:
            yield variant, others[index - 1], "previous"


def _compare_probe(
    name: str,
    specs: Sequence[MetricSpec],
    by_template: ByTemplate,
    order: Sequence[str],
    settings: StatsSettings,
    items_file: str,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Uncorrected comparisons of one probe, and notes about items that could not be paired."""
    pending: list[dict[str, Any]] = []
    notes: list[str] = []
    for template, by_variant in by_template.items():
        present = [variant for variant in order if variant in by_variant]
        for variant, reference, relation in _pairs(present):
            ids = {record.item_id for record in by_variant[variant]}
            reference_ids = {record.item_id for record in by_variant[reference]}
            if ids != reference_ids:
                notes.append(
                    f"{name} ({template}): {len(ids ^ reference_ids)} items of {variant} vs {reference} "
                    "exist on one side only and were left out of the comparison"
                )
            for spec in specs:
                where = f"{items_file}: {name} ({template}), {variant} vs {reference}"
                compared = _compare(spec, by_variant[variant], by_variant[reference], settings, where)
                if compared is not None:
                    pending.append(
                        {
                            "probe": name,
                            "template": template,
                            "variant": variant,
                            "reference": reference,
                            "relation": relation,
                            **compared,
                        }
                    )
    return pending, notes


def _compare(
    spec: MetricSpec,
    records: Sequence[ItemRecord],
    reference_records: Sequence[ItemRecord],
    settings: StatsSettings,
    where: str,
) -> dict[str, Any] | None:
    """One paired comparison's fields before correction, or None when no item has a value on both sides."""
    paired = compare_records(
        records,
        reference_records,
        lambda record: finite(record.metrics.get(spec.name)),
        settings,
        spec.binary or spec.fraction,
        where,
    )
    result = paired.comparison
    if result is None:
        return None
    return {
        "metric": spec.name,
        "delta": result.delta,
        "low": paired.low,
        "high": paired.high,
        "interval": result.interval,
        "p_value": result.p_value,
        "test": result.test,
        "n": result.n,
        "n_clusters": result.n_clusters,
        "unpaired": paired.unpaired,
        "direction": direction_of(spec.higher_is_better, result.delta),
        "headline": spec.headline,
    }


def _holm_corrected(pending: Sequence[dict[str, Any]], alpha: float) -> tuple[ComparisonResult, ...]:
    """ComparisonResults with Holm-adjusted p-values, one family per probe and reference (vs base, vs previous).

    Each diagnostic answers its own question ("did the prefix get more likely?", "did it forget?"), so Holm
    controls the family-wise error of each diagnostic's comparisons against one reference, across its metrics,
    templates and variants. One family over the whole report (~300 comparisons for the quick suite on base + 3
    epochs) would make a CPU-sized sample unable to show anything.
    """
    families: dict[tuple[str, str], list[int]] = {}
    for index, fields in enumerate(pending):
        families.setdefault((fields["probe"], fields["relation"]), []).append(index)
    adjusted: dict[int, stats.HolmResult] = {}
    for indices in families.values():
        corrected = stats.holm([pending[index]["p_value"] for index in indices], alpha=alpha)
        adjusted.update(zip(indices, corrected, strict=True))
    return tuple(
        ComparisonResult(
            **fields, adjusted_p=adjusted[index].adjusted_p, significant=adjusted[index].significant
        )
        for index, fields in enumerate(pending)
    )
