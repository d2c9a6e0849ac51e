"""The paired comparisons the recommendation rule reads, computed from the item records when a report is built.

On the deciding metric, every non-base variant is compared with base and with every earlier non-base variant,
items paired on (template, item id) and clustered by cluster id (one prompt under several templates is one
cluster). They are stored in the report (`Recommendation.comparisons`), so `sfteval gate` can apply the rule again
under another policy without the records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sfteval.core.recommendation import PairedDifference, Recommendation
from sfteval.core.records import ItemRecord
from sfteval.core.results import Finding, FindingGroup, MetricInfo, ProbeResult
from sfteval.core.run_info import RunInfo, StatsSettings
from sfteval.core.variants import BASE
from sfteval.report.items import finite
from sfteval.report.pairs import compare_records
from sfteval.report.recommend import deciding_metric, recommend


def build_recommendation(
    run: RunInfo,
    results: Sequence[ProbeResult],
    records: Mapping[str, Mapping[str, Mapping[str, Sequence[ItemRecord]]]],
    findings: Sequence[Finding],
    groups: Sequence[FindingGroup],
    settings: StatsSettings,
) -> Recommendation | None:
    """The recommendation of a report being built, with the paired comparisons on its deciding metric.

    `records` holds every probe's records by template and variant, as the report builder groups them.
    """
    decider = deciding_metric(results)
    if decider is None:
        return None
    probe, metric = decider
    rows = [
        record
        for by_variant in records[probe.name].values()
        for kept in by_variant.values()
        for record in kept
    ]
    order = [variant.name for variant in run.variants]
    comparisons = deciding_comparisons(rows, metric, order, settings)
    return recommend(run, results, findings, comparisons, alpha=settings.alpha, groups=groups)


def deciding_comparisons(
    records: Sequence[ItemRecord], metric: MetricInfo, order: Sequence[str], settings: StatsSettings
) -> tuple[PairedDifference, ...]:
    """Each non-base variant vs base and vs every earlier non-base variant, on one probe's records of `metric`."""
    by_variant: dict[str, list[ItemRecord]] = {}
    for record in records:
        by_variant.setdefault(record.variant, []).append(record)
    present = [name for name in order if name in by_variant]
    others = [name for name in present if name != BASE]
    pairs = [(variant, BASE) for variant in others if BASE in by_variant]
    pairs += [(later, earlier) for index, later in enumerate(others) for earlier in others[:index]]
    compared = (_compare(by_variant[a], by_variant[b], a, b, metric, settings) for a, b in pairs)
    return tuple(comparison for comparison in compared if comparison is not None)


def _compare(
    records: Sequence[ItemRecord],
    reference: Sequence[ItemRecord],
    variant: str,
    reference_name: str,
    metric: MetricInfo,
    settings: StatsSettings,
) -> PairedDifference | None:
    """One pooled paired comparison, or None when no item has a value on both sides."""
    paired = compare_records(
        records,
        reference,
        lambda record: finite(record.metrics.get(metric.name)),
        settings,
        metric.binary or metric.fraction,
        f"{metric.name}, {variant} vs {reference_name}",
        key=lambda record: (record.template, record.item_id),
    )
    result = paired.comparison
    if result is None:
        return None
    return PairedDifference(
        variant=variant,
        reference=reference_name,
        delta=result.delta,
        low=paired.low,
        high=paired.high,
        p_value=result.p_value,
        test=result.test,
        n=result.n,
        n_clusters=result.n_clusters,
    )
