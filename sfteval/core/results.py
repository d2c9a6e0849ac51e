"""The measured side of a report: metric declarations and values per cell, paired comparisons, findings.

Every model forbids unknown keys and rejects NaN/infinity: a bound that cannot be computed (fewer than two clusters) is
None and the `method` field says why. Probes, the report builder and the renderers all import these types from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from sfteval.core.records import ItemRecord
from sfteval.core.run_info import RunInfo, Strict

Direction = Literal["better", "worse", "neutral"]
Severity = Literal["info", "warning", "error"]
Relation = Literal["base", "previous"]


def direction_of(higher_is_better: bool | None, delta: float | None) -> Direction:
    """better/worse by the metric's declared direction; neutral for descriptive metrics or no change."""
    if higher_is_better is None or not delta:
        return "neutral"
    return "better" if (delta > 0) == higher_is_better else "worse"


class MetricInfo(Strict):
    """A metric the probe reports: its meaning and which direction is good."""

    name: str = Field(description="Metric name as in the item records or the probe summary.")
    description: str = Field(default="", description="What the metric measures.")
    higher_is_better: bool | None = Field(
        description="True/False: direction of improvement; None: descriptive."
    )
    binary: bool = Field(default=False, description="Per-item values are 0/1; shown as a percentage.")
    fraction: bool = Field(
        default=False,
        description="Per-item values are fractions in [0, 1]: intervals stay in [0, 1] (binary metrics are too).",
    )
    headline: bool = Field(
        default=False, description="One of the probe's main metrics (findings, recommendation)."
    )
    per_item: bool = Field(default=True, description="True: mean of item values; False: probe-level summary.")
    negligible: float = Field(
        default=0.0,
        ge=0,
        description="A change smaller than this (metric units) is practically negligible: told as info, not a warning.",
    )


class MetricValue(Strict):
    """One metric of one variant under one template, with its confidence interval."""

    name: str = Field(description="Metric name.")
    value: float | None = Field(
        description="Mean over items (or the summary value); None when no item had one."
    )
    low: float | None = Field(
        default=None,
        description="Lower CI bound (inside [0, 1] for binary and fraction metrics); None when unknown.",
    )
    high: float | None = Field(
        default=None,
        description="Upper CI bound (inside [0, 1] for binary and fraction metrics); None when unknown.",
    )
    n: int = Field(ge=0, description="Items with a finite value for this metric.")
    n_clusters: int = Field(default=0, ge=0, description="Distinct clusters among those items.")
    missing: int = Field(default=0, ge=0, description="Items whose value was absent, None or not finite.")
    method: str = Field(
        description="Interval method: wilson, wilson-deff (clustered items: Wilson on the design-effect-adjusted n), "
        "t, clustered-t; 'no-interval' (fewer than two clusters), "
        "'no-data' (no item had a value), or 'summary' (probe-level value without interval)."
    )


class CellResult(Strict):
    """All metrics of one variant under one serving template."""

    variant: str = Field(description="Variant name.")
    template: str = Field(description="Serving template ('-' when the probe does not template prompts).")
    n_items: int = Field(ge=0, description="Item records of this variant and template.")
    metrics: tuple[MetricValue, ...] = Field(
        description="Per-item metrics in declaration order, then summaries."
    )

    def metric(self, name: str) -> MetricValue | None:
        """The metric called `name`, or None."""
        return next((value for value in self.metrics if value.name == name), None)


class ProbeResult(Strict):
    """One probe's results for every variant and template."""

    name: str = Field(description="Registered probe name.")
    version: int = Field(description="Probe version (metric definitions).")
    params: dict[str, Any] = Field(default_factory=dict, description="Probe parameters from the suite.")
    metrics: tuple[MetricInfo, ...] = Field(description="Metrics the probe reports, per-item ones first.")
    templates: tuple[str, ...] = Field(description="Templates seen in the records, in first-seen order.")
    cells: tuple[CellResult, ...] = Field(
        description="One cell per (variant, template), variants in run order."
    )
    mde_note: str | None = Field(
        default=None, description="Power note: smallest detectable change at 80% power."
    )

    def cell(self, variant: str, template: str) -> CellResult | None:
        """The cell of `variant` under `template`, or None."""
        return next((c for c in self.cells if c.variant == variant and c.template == template), None)

    def metric_info(self, name: str) -> MetricInfo | None:
        """The declaration of metric `name`, or None."""
        return next((info for info in self.metrics if info.name == name), None)


class ComparisonResult(Strict):
    """A paired comparison of one variant against a reference on the same items: delta = variant − reference."""

    probe: str = Field(description="Probe name.")
    metric: str = Field(description="Per-item metric compared.")
    template: str = Field(description="Serving template of both sides.")
    variant: str = Field(description="The variant being judged.")
    reference: str = Field(
        description="What it is compared with: 'base' or the previous epoch's variant name."
    )
    relation: Relation = Field(description="base: vs the base model; previous: vs the previous epoch.")
    delta: float = Field(description="mean(variant) − mean(reference) over paired items.")
    low: float | None = Field(
        description="Lower bound of the CI of delta (see `interval`); None below two clusters."
    )
    high: float | None = Field(
        description="Upper bound of the CI of delta (see `interval`); None below two clusters."
    )
    interval: str = Field(
        default="bootstrap",
        description="How the CI was made: bootstrap (paired, resampling clusters), newcombe or newcombe-deff "
        "(binary and fraction metrics: Newcombe's hybrid score interval, inside [−1, 1]).",
    )
    p_value: float = Field(ge=0, le=1, description="Two-sided p-value of the test named in `test`.")
    adjusted_p: float = Field(
        ge=0,
        le=1,
        description="Holm-adjusted p-value within its family: the probe's comparisons against the same reference kind.",
    )
    significant: bool = Field(description="adjusted_p <= alpha.")
    test: str = Field(description="mcnemar_exact, paired_t or cluster_t (see sfteval.stats).")
    n: int = Field(ge=1, description="Paired items.")
    n_clusters: int = Field(ge=1, description="Distinct clusters among the paired items.")
    unpaired: int = Field(default=0, ge=0, description="Items present on one side only or missing a value.")
    direction: Direction = Field(description="From the metric's higher_is_better and the sign of delta.")
    headline: bool = Field(default=False, description="The metric is one of the probe's headline metrics.")


class Finding(Strict):
    """One plain-sentence conclusion a reader should see."""

    severity: Severity = Field(
        description="info: worth knowing; warning: a likely regression; error: blocking."
    )
    kind: str = Field(description="Machine key, e.g. headline_regression, or a probe-defined kind.")
    message: str = Field(description="One sentence a reader can act on.")
    probe: str | None = Field(default=None, description="Probe the finding is about.")
    variant: str | None = Field(default=None, description="Variant the finding is about.")
    metric: str | None = Field(default=None, description="Metric the finding is about.")
    template: str | None = Field(default=None, description="Template the finding is about.")
    value: float | None = Field(
        default=None,
        description="The number the finding is about, larger = more pronounced (a rate, a ratio, a drop), so a "
        "finding repeated over epochs can be told as one trend and its worst epoch named.",
    )
    value_text: str | None = Field(
        default=None, description="The value as a sentence writes it: '245×', '74%'."
    )
    adjusted_p: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Holm-adjusted p-value of the test the finding rests on, if any.",
    )
    claim: str | None = Field(
        default=None,
        description="The sentence for several variants at once, without its subject and with {value} where the "
        "values go, e.g. \"make 'The sentiment is:' {value} likelier on off-task prompts than the base\".",
    )


class FindingGroup(Strict):
    """One defect (probe, kind, metric, template) across the variants that show it, told once with its trend."""

    severity: Severity = Field(description="The worst severity among the group's findings.")
    kind: str = Field(description="The findings' kind.")
    probe: str | None = Field(default=None, description="Probe the findings are about.")
    metric: str | None = Field(default=None, description="Metric the findings are about.")
    template: str | None = Field(default=None, description="Template the findings are about.")
    message: str = Field(
        description="One sentence for the whole group: the variants, the trend, the worst one."
    )
    variants: tuple[str, ...] = Field(description="Variants with the finding, in run order (empty: the run).")
    values: tuple[float | None, ...] = Field(description="Each variant's value (Finding.value), same order.")
    worst: str | None = Field(
        default=None, description="The variant where the defect is most pronounced (largest value)."
    )


@dataclass(frozen=True)
class ProbeSlice:
    """The part of a report a probe sees when it contributes findings (`Probe.findings`)."""

    run: RunInfo
    result: ProbeResult
    comparisons: tuple[ComparisonResult, ...]
    records: tuple[ItemRecord, ...]


@dataclass(frozen=True)
class RunRelativeMeasure:
    """A quantity one run defines relative to itself (the opening it learned, a tic phrase) that any item record
    can be scored for, so `sfteval diff` measures it in both runs on the same items (`Probe.run_relative_measures`).
    """

    name: str
    """Row name in a diff, e.g. "opens with 'The sentiment is:'"."""
    score: Callable[[ItemRecord], float | None]
    """The record's value in [0, 1] (e.g. 1 when its output opens with the phrase); None when it has no output."""
    higher_is_better: bool | None = False
