"""The report: one versioned pydantic document per run, written as `report.json` next to `items.jsonl`.

It gathers the run's metadata (`sfteval.core.run_info`), the measured results and findings (`sfteval.core.results`),
the recommendation and gate verdicts. Reading one back names the file and the first invalid field.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from sfteval.core.errors import UserError
from sfteval.core.recommendation import Recommendation
from sfteval.core.results import ComparisonResult, Finding, FindingGroup, ProbeResult, Relation
from sfteval.core.run_info import RunInfo, StatsSettings, Strict

SCHEMA_VERSION = 1
REPORT_FILE = "report.json"


GateVerdict = Literal["pass", "fail", "warn", "skipped"]
GateCheckKind = Literal[
    "min",
    "max",
    "max_drop",
    "min_gain",
    "not_worse_than_base",
    "not_worse_than_baseline",
    "max_drop_vs_baseline",
]


class GateCheck(Strict):
    """One rule of a gate policy applied to one variant (and template): the value, the bound and the verdict."""

    rule: str = Field(description="Rule name from the policy file.")
    check: GateCheckKind = Field(
        description="Which bound: min, max, max_drop, min_gain, not_worse_than_base, or against a previous run "
        "(`sfteval gate RUN --baseline OLD`): not_worse_than_baseline, max_drop_vs_baseline."
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
        description="The value compared with the bound: the metric (min/max), its change vs base (or vs the "
        "baseline run) in the metric's good direction (max_drop[_vs_baseline]: the drop, min_gain: the gain), or "
        "the Holm-adjusted p-value (not_worse_than_base[line]); None when skipped."
    )
    bound: float | None = Field(description="The bound from the policy; None for not_worse_than_base.")
    verdict: GateVerdict = Field(
        description="pass; fail or warn (bound violated, by severity); skipped (metric, cell or base absent)."
    )
    message: str = Field(description="One sentence explaining the verdict.")
    baseline: str | None = Field(
        default=None,
        description="Baseline checks: the previous run's variant compared with ('epoch-2 of DIR').",
    )
    n_pairs: int | None = Field(
        default=None, ge=0, description="Baseline checks: items paired across the runs."
    )
    unpaired: int | None = Field(
        default=None,
        ge=0,
        description="Baseline checks: items of either run that had no partner in the other.",
    )


class GateResult(Strict):
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
    baseline: str | None = Field(
        default=None, description="The previous run gated against (`--baseline`), or None."
    )
    notes: tuple[str, ...] = Field(
        default=(), description="What could not be paired with the baseline run, and why."
    )


class Report(Strict):
    """The whole result of one run: metadata, per-probe metrics, comparisons, findings and a recommendation."""

    schema_version: int = Field(default=SCHEMA_VERSION, description="Version of this schema.")
    run: RunInfo = Field(description="Run metadata.")
    stats: StatsSettings = Field(default_factory=StatsSettings, description="Statistical settings.")
    probes: tuple[ProbeResult, ...] = Field(description="Per-probe results, in suite order.")
    comparisons: tuple[ComparisonResult, ...] = Field(
        description="Every paired comparison, Holm-corrected jointly."
    )
    findings: tuple[Finding, ...] = Field(default=(), description="Findings, most severe first.")
    finding_groups: tuple[FindingGroup, ...] = Field(
        default=(),
        description="The findings grouped by defect (probe, kind, metric, template) across variants, most "
        "severe first: what the terminal and HTML summaries show.",
    )
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
