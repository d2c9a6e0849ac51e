"""The report schema: one versioned pydantic document per run, written as `report.json` next to `items.jsonl`.

Every model forbids unknown keys and rejects NaN/infinity: a bound that cannot be computed (fewer than two
clusters) is None and the `method` field says why. This module imports only pydantic and sfteval core modules, so
probes may import `Finding` from it to contribute their own findings (see `sfteval.report.findings`).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sfteval import __version__
from sfteval.errors import UserError
from sfteval.variants import Variant

SCHEMA_VERSION = 1
REPORT_FILE = "report.json"
ITEMS_FILE = "items.jsonl"

Direction = Literal["better", "worse", "neutral"]
Severity = Literal["info", "warning", "error"]
Relation = Literal["base", "previous"]


class _Strict(BaseModel):
    """Base of every report model: immutable, unknown keys rejected, no NaN or infinity in float fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class VariantInfo(_Strict):
    """One probed model as it was when the run saw it."""

    name: str = Field(description="Variant name: base, epoch-1, ..., final.")
    path: str = Field(
        description="Directory of the full weights (kind=full) or of the PEFT adapter (kind=adapter)."
    )
    kind: Literal["full", "adapter"] = Field(
        description="full: complete weights; adapter: PEFT adapter on base_path."
    )
    base_path: str | None = Field(default=None, description="Base model directory an adapter applies to.")
    epoch: float | None = Field(default=None, description="Training epoch of the checkpoint, when known.")
    step: int | None = Field(default=None, description="Optimizer step of the checkpoint, when known.")
    fingerprint: str = Field(
        description="Engine fingerprint (weights + adapter + dtype) that keyed the cache."
    )

    @classmethod
    def from_variant(cls, variant: Variant, fingerprint: str) -> VariantInfo:
        """The report's view of a discovered Variant."""
        return cls(
            name=variant.name,
            path=str(variant.path),
            kind=variant.kind,
            base_path=None if variant.base_path is None else str(variant.base_path),
            epoch=variant.epoch,
            step=variant.step,
            fingerprint=fingerprint,
        )


class RunInfo(_Strict):
    """What was run, on what, with which settings, and how long it took."""

    sfteval_version: str = Field(default=__version__, description="sfteval version that produced the run.")
    created_at: datetime = Field(
        default_factory=lambda: datetime.now(timezone.utc), description="When the run started (UTC)."
    )
    engine: str = Field(description="Registered engine name (hf, vllm).")
    engine_config: dict[str, Any] = Field(description="Engine settings (EngineConfig as JSON).")
    ckpt_dir: str = Field(description="The SFT output directory whose variants were probed.")
    suite_name: str = Field(description="Suite name (e.g. quick) or the file's stem.")
    suite_path: str | None = Field(default=None, description="Suite YAML file, when it came from a file.")
    suite: dict[str, Any] = Field(description="The validated suite as JSON, so the run can be reproduced.")
    seed: int = Field(description="Seed of generation and of every resampling in the run.")
    train_template: str | None = Field(
        default=None, description="Template the model was trained with, if known."
    )
    variants: tuple[VariantInfo, ...] = Field(
        description="Probed variants in order: base first, then by epoch."
    )
    timings: dict[str, float] = Field(
        default_factory=dict, description="Wall-clock seconds per phase or variant."
    )
    complete: bool = Field(description="False when the run was interrupted: some results are missing.")
    cache_hits: int = Field(default=0, ge=0, description="Engine requests answered from the cache.")
    cache_misses: int = Field(default=0, ge=0, description="Engine requests computed by an engine.")
    items_file: str = Field(
        default=ITEMS_FILE, description="Item-records file, relative to the run directory."
    )
    shard: str | None = Field(
        default=None,
        pattern=r"^[0-9]+/[0-9]+$",
        description="'i/n' when the run probed only the i-th of n shares of the variants (`--shard`); "
        "None for a whole run or for shards merged by `sfteval report --merge`.",
    )


class StatsSettings(_Strict):
    """How intervals and tests were computed, so every number can be reproduced."""

    confidence: float = Field(default=0.95, gt=0, lt=1, description="Confidence level of every interval.")
    alpha: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="Family-wise error rate of the Holm correction (one family per probe and reference).",
    )
    n_resamples: int = Field(default=2000, ge=1, description="Bootstrap resamples per comparison.")
    seed: int = Field(default=0, description="Seed of every bootstrap in the report.")
    correction: Literal["holm"] = Field(default="holm", description="Multiple-comparison correction used.")


class MetricInfo(_Strict):
    """A metric the probe reports: its meaning and which direction is good."""

    name: str = Field(description="Metric name as in the item records or the probe summary.")
    description: str = Field(default="", description="What the metric measures.")
    higher_is_better: bool | None = Field(
        description="True/False: direction of improvement; None: descriptive."
    )
    binary: bool = Field(default=False, description="Per-item values are 0/1; shown as a percentage.")
    headline: bool = Field(
        default=False, description="One of the probe's main metrics (findings, recommendation)."
    )
    per_item: bool = Field(default=True, description="True: mean of item values; False: probe-level summary.")
    negligible: float = Field(
        default=0.0,
        ge=0,
        description="A change smaller than this (metric units) is practically negligible: told as info, not a warning.",
    )


class MetricValue(_Strict):
    """One metric of one variant under one template, with its confidence interval."""

    name: str = Field(description="Metric name.")
    value: float | None = Field(
        description="Mean over items (or the summary value); None when no item had one."
    )
    low: float | None = Field(
        default=None, description="Lower CI bound (clipped to [0, 1] for binary metrics); None when unknown."
    )
    high: float | None = Field(
        default=None, description="Upper CI bound (clipped to [0, 1] for binary metrics); None when unknown."
    )
    n: int = Field(ge=0, description="Items with a finite value for this metric.")
    n_clusters: int = Field(default=0, ge=0, description="Distinct clusters among those items.")
    missing: int = Field(default=0, ge=0, description="Items whose value was absent, None or not finite.")
    method: str = Field(
        description="Interval method: wilson, t, clustered-t; 'no-interval' (fewer than two clusters), "
        "'no-data' (no item had a value), or 'summary' (probe-level value without interval)."
    )


class CellResult(_Strict):
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


class ProbeResult(_Strict):
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


class ComparisonResult(_Strict):
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
        description="Lower bound of the bootstrap CI of delta; None below two clusters."
    )
    high: float | None = Field(
        description="Upper bound of the bootstrap CI of delta; None below two clusters."
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


class Finding(_Strict):
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


class CandidateScore(_Strict):
    """One variant's standing in the best-epoch recommendation."""

    variant: str = Field(description="Variant name.")
    score: float | None = Field(description="Recommendation score; None when the variant has no value.")
    eligible: bool = Field(default=True, description="False when a gate excluded the variant.")
    reason: str | None = Field(default=None, description="Why the variant is not eligible.")


class Recommendation(_Strict):
    """Which checkpoint to carry on with, by a documented rule."""

    variant: str | None = Field(description="Recommended variant; None when no candidate has a score.")
    probe: str = Field(description="Probe whose headline metric decides.")
    metric: str = Field(description="The deciding metric.")
    score: float | None = Field(description="The recommended variant's score.")
    rule: str = Field(description="The rule, in words.")
    gates_applied: bool = Field(default=False, description="Whether gate verdicts restricted the candidates.")
    candidates: tuple[CandidateScore, ...] = Field(description="Every non-base variant, in run order.")


GateVerdict = Literal["pass", "fail", "warn", "skipped"]
GateCheckKind = Literal["min", "max", "max_drop", "min_gain", "not_worse_than_base"]


class GateCheck(_Strict):
    """One rule of a gate policy applied to one variant (and template): the value, the bound and the verdict."""

    rule: str = Field(description="Rule name from the policy file.")
    check: GateCheckKind = Field(
        description="Which bound: min, max, max_drop, min_gain or not_worse_than_base."
    )
    probe: str = Field(description="Probe the rule reads.")
    metric: str = Field(description="Metric the rule reads.")
    variant: str | None = Field(
        description="Variant checked; None when the rule was skipped for every variant."
    )
    template: str | None = Field(
        default=None, description="Serving template of the value; None when skipped."
    )
    severity: Literal["fail", "warn"] = Field(description="fail: blocks the gate; warn: reported only.")
    binary: bool = Field(
        default=False, description="Binary metric: value and bound are fractions (shown in %)."
    )
    value: float | None = Field(
        description="The value compared with the bound: the metric (min/max), its change vs base in the "
        "metric's good direction (max_drop: the drop, min_gain: the gain), or the Holm-adjusted p-value "
        "(not_worse_than_base); None when skipped."
    )
    bound: float | None = Field(description="The bound from the policy; None for not_worse_than_base.")
    verdict: GateVerdict = Field(
        description="pass; fail or warn (bound violated, by severity); skipped (metric, cell or base absent)."
    )
    message: str = Field(description="One sentence explaining the verdict.")


class GateResult(_Strict):
    """A report judged against a gate policy (`sfteval gate` or `sfteval run --gate`)."""

    policy: str = Field(description="Policy file the rules came from.")
    scope: str = Field(
        description="Which variants must pass: 'recommended' (the best checkpoint among those passing), "
        "'all' (every non-base variant) or a comma-separated list of names."
    )
    gated_variants: tuple[str, ...] = Field(description="Variants whose fail-rules decided the verdict.")
    failed_variants: dict[str, str] = Field(
        default_factory=dict,
        description="Variant -> the first fail-rule it broke (excluded from the recommendation).",
    )
    checks: tuple[GateCheck, ...] = Field(description="Every rule × variant × template, in policy order.")
    passed: bool = Field(description="True when every fail-severity check of the gated variants passed.")


class Report(_Strict):
    """The whole result of one run: metadata, per-probe metrics, comparisons, findings and a recommendation."""

    schema_version: int = Field(default=SCHEMA_VERSION, description="Version of this schema.")
    run: RunInfo = Field(description="Run metadata.")
    stats: StatsSettings = Field(default_factory=StatsSettings, description="Statistical settings.")
    probes: tuple[ProbeResult, ...] = Field(description="Per-probe results, in suite order.")
    comparisons: tuple[ComparisonResult, ...] = Field(
        description="Every paired comparison, Holm-corrected jointly."
    )
    findings: tuple[Finding, ...] = Field(default=(), description="Findings, most severe first.")
    recommendation: Recommendation | None = Field(default=None, description="Best-epoch recommendation.")
    notes: tuple[str, ...] = Field(default=(), description="Caveats: skipped comparisons, unpaired items.")
    gate: GateResult | None = Field(
        default=None, description="Gate verdicts, when the run was gated (`sfteval run --gate`); optional."
    )

    def probe(self, name: str) -> ProbeResult | None:
        """The results of probe `name`, or None."""
        return next((result for result in self.probes if result.name == name), None)

    def comparisons_of(self, probe: str, relation: Relation | None = None) -> tuple[ComparisonResult, ...]:
        """Comparisons of one probe, optionally only those against base or against the previous epoch."""
        return tuple(
            c for c in self.comparisons if c.probe == probe and (relation is None or c.relation == relation)
        )


def save_report(report: Report, path: Path) -> None:
    """Write the report as indented JSON atomically (temp file + rename), so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def load_report(path: Path) -> Report:
    """Read a report.json (or a run directory holding one); UserError naming the file when missing or invalid."""
    file = path / REPORT_FILE if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"no report found at {file}", hint="pass a run directory written by `sfteval run`")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        where = f":{error.lineno}" if isinstance(error, json.JSONDecodeError) else ""
        raise UserError(f"{file}{where}: not valid JSON ({error})") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise UserError(
            f"{file}: report schema version {version!r}, this sfteval reads version {SCHEMA_VERSION}"
        )
    try:
        return Report.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        raise UserError(f"{file}: invalid report at {location}: {first['msg']}") from None
