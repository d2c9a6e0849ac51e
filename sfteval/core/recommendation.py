"""The recommendation's part of the report: which checkpoint to carry on with, the candidates and the evidence.

`sfteval.report.recommend` applies the rule; everything it reads is stored here too (the paired comparisons on the
deciding metric), so a saved report can be re-recommended under another gate policy without its item records.
"""

from __future__ import annotations

from pydantic import Field

from sfteval.core.run_info import Strict


class PairedDifference(Strict):
    """A paired comparison on the deciding metric, pooled over serving templates: delta = variant − reference.

    Items are paired on (template, item id) and clustered by cluster id, so one prompt under several templates
    counts as one cluster. The p-value is raw; the rule Holm-adjusts it within the comparisons it makes.
    """

    variant: str = Field(description="The later (or judged) variant.")
    reference: str = Field(description="The earlier variant, or base.")
    delta: float = Field(description="mean(variant) − mean(reference) over paired items.")
    low: float | None = Field(default=None, description="Lower CI bound of delta; None when unknown.")
    high: float | None = Field(default=None, description="Upper CI bound of delta; None when unknown.")
    p_value: float = Field(ge=0, le=1, description="Two-sided p-value of `test` (not adjusted).")
    test: str = Field(description="mcnemar_exact, paired_t or cluster_t (see sfteval.stats).")
    n: int = Field(ge=1, description="Paired items.")
    n_clusters: int = Field(ge=1, description="Distinct clusters among the paired items.")


class CandidateScore(Strict):
    """One variant's standing in the recommendation: its score, whether it may be recommended, and why not."""

    variant: str = Field(description="Variant name.")
    score: float | None = Field(
        description="The deciding metric, mean over serving templates; None without one."
    )
    eligible: bool = Field(
        default=True, description="False when a gate rule or a defect finding excluded it."
    )
    reason: str | None = Field(default=None, description="Why the variant is not eligible.")
    exclusions: tuple[str, ...] = Field(
        default=(),
        description="What excluded it, in short: 'gate rule NAME' for a broken fail-rule, the kind of each "
        "warning- or error-level finding ('prefix affinity', 'prompt_loose regression').",
    )
    delta_vs_base: float | None = Field(default=None, description="Paired Δ of the deciding metric vs base.")
    p_vs_base: float | None = Field(
        default=None, description="Holm-adjusted p of that Δ, over every candidate vs base."
    )
    delta_vs_earliest: float | None = Field(
        default=None, description="Paired Δ vs the earliest eligible candidate (None for that one itself)."
    )
    p_vs_earliest: float | None = Field(
        default=None, description="Holm-adjusted p of that Δ, over the eligible candidates vs the earliest."
    )


class Recommendation(Strict):
    """Which checkpoint to carry on with, by a documented rule, with the candidates and the reasons."""

    variant: str | None = Field(description="Recommended variant; None when no candidate is fit.")
    probe: str = Field(description="Probe whose headline metric decides.")
    metric: str = Field(description="The deciding metric.")
    score: float | None = Field(description="The recommended variant's score.")
    rule: str = Field(description="The rule, in words.")
    gates_applied: bool = Field(default=False, description="Whether gate verdicts restricted the candidates.")
    candidates: tuple[CandidateScore, ...] = Field(description="Every non-base variant, in run order.")
    verdict: str = Field(default="", description="The decision in one or two sentences.")
    reasons: tuple[str, ...] = Field(
        default=(), description="Why: exclusions, the significance tests, vs base."
    )
    beats_base: bool | None = Field(
        default=None,
        description="Whether the recommended variant is significantly better than base on the deciding metric "
        "(None without a recommendation or a base).",
    )
    comparisons: tuple[PairedDifference, ...] = Field(
        default=(),
        description="Paired comparisons on the deciding metric between every two non-base variants and of each "
        "with base, computed from the item records when the report was built.",
    )
