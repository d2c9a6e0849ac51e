"""What `sfteval diff` produces: one row per metric both runs share (and per run-relative measure), and the
"what changed" sentences that lead the output. Written as JSON with `--format json`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from sfteval.core.records import ItemRecord
from sfteval.core.report import Report
from sfteval.core.results import Direction
from sfteval.core.run_info import Strict

DiffMode = Literal["paired", "unpaired"]


class DiffRow(Strict):
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
    defined_by: str | None = Field(
        default=None,
        description="For a run-relative measure (e.g. a learned opening scored in both runs): which run defined "
        "it, 'A', 'B' or 'A and B'; None for the probes' own metrics.",
    )
    comparable: bool = Field(
        default=True,
        description="False for a metric measured against what each run defined differently (e.g. spurious_prefix's "
        "candidates): shown, but left out of the tests and of 'what changed'.",
    )


class DiffReport(Strict):
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
    what_changed: tuple[str, ...] = Field(
        default=(),
        description="The significant changes in words, largest first (see sfteval.report.diff_changes).",
    )


RecordKey = tuple[str, str]


@dataclass(frozen=True)
class RunSide:
    """One side of a diff: its report, its item records of the chosen variant (None without items.jsonl)."""

    file: Path
    report: Report
    variant: str
    records: dict[RecordKey, list[ItemRecord]] | None
