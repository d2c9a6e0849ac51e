"""Synthetic probes, records and run metadata shared by the report tests (no model, exact expected values)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from sfteval.core.metrics import MetricSpec
from sfteval.core.records import ItemRecord
from sfteval.core.results import Finding, ProbeSlice
from sfteval.core.run_info import RunInfo, VariantInfo
from sfteval.probes.base import PlannedRequest, Probe, ProbeContext

VARIANTS = ("base", "epoch-1", "epoch-2")
N_ITEMS = 40
# Per-item correctness: base 36/40, epoch-1 38/40 (two more right), epoch-2 16/40 (a planted drop).
ACCURACY = {
    "base": [1] * 36 + [0] * 4,
    "epoch-1": [1] * 38 + [0] * 2,
    "epoch-2": [1] * 16 + [0] * 24,
}

# Under alpaca, item i fails when i % period == 0: base 8/12, epoch-1 9/12, epoch-2 10/12 pass.
CLUSTER_PERIODS = {"base": 3, "epoch-1": 4, "epoch-2": 6}


class AnswerProbe(Probe):
    """Independent binary + continuous items, a declared and an undeclared summary, and its own finding."""

    name = "answers"
    version = 3
    metrics = (
        MetricSpec("accuracy", "answer is correct", higher_is_better=True, binary=True, headline=True),
        MetricSpec("length", "output tokens", higher_is_better=None),
        MetricSpec("loss", "continuation loss", higher_is_better=False),
        MetricSpec("opening_entropy", "entropy of first words", higher_is_better=True),
    )

    def plan(self, context: ProbeContext) -> list[PlannedRequest]:
        """No requests: records are made directly by the tests."""
        return []

    def records(self, context, planned, results) -> list[ItemRecord]:
        """No records: they are made directly by the tests."""
        return []

    def summarize(self, records: Sequence[ItemRecord]) -> dict[str, float]:
        """Two probe-level numbers: one declared in `metrics`, one not."""
        openings = {record.output for record in records}
        return {"opening_entropy": float(len(openings)), "distinct_outputs": float(len(openings))}

    def findings(self, report_slice: ProbeSlice) -> list[Finding]:
        """Flags every variant whose outputs are all identical."""
        found = []
        for cell in report_slice.result.cells:
            distinct = cell.metric("distinct_outputs")
            if distinct is not None and distinct.value == 1.0:
                found.append(
                    Finding(
                        severity="error",
                        kind="identical_outputs",
                        message=f"{cell.variant} gives the same answer to every item.",
                        probe=self.name,
                        variant=cell.variant,
                    )
                )
        return found


class ClusterProbe(Probe):
    """Binary items grouped in clusters of two, under two templates."""

    name = "clustered"
    metrics = (MetricSpec("passed", "instruction passed", higher_is_better=True, binary=True, headline=True),)

    def plan(self, context: ProbeContext) -> list[PlannedRequest]:
        """No requests: records are made directly by the tests."""
        return []

    def records(self, context, planned, results) -> list[ItemRecord]:
        """No records: they are made directly by the tests."""
        return []


def answer_records(variants: Sequence[str] = VARIANTS) -> list[ItemRecord]:
    """40 items per variant: accuracy from ACCURACY, length = index, loss shrinking by epoch, one loss missing."""
    records = []
    for variant in variants:
        shift = VARIANTS.index(variant)
        for index in range(N_ITEMS):
            loss = None if index == 0 else 2.0 - 0.1 * shift + 0.01 * (index % 7)
            records.append(
                ItemRecord(
                    probe="answers",
                    variant=variant,
                    template="chatml",
                    item_id=f"item-{index:02d}",
                    cluster_id=f"item-{index:02d}",
                    metrics={
                        "accuracy": bool(ACCURACY[variant][index]),
                        "length": index + shift,
                        "loss": loss,
                    },
                    output="same" if variant == "epoch-2" else f"answer {index}",
                )
            )
    return records


def cluster_records(variants: Sequence[str] = VARIANTS) -> list[ItemRecord]:
    """12 items in 6 clusters of two under two templates; under alpaca later epochs pass more items."""
    records = []
    for variant in variants:
        for template in ("alpaca", "chatml"):
            for index in range(12):
                passed = index % CLUSTER_PERIODS[variant] != 0 if template == "alpaca" else index % 4 != 0
                records.append(
                    ItemRecord(
                        probe="clustered",
                        variant=variant,
                        template=template,
                        item_id=f"prompt-{index // 2}:{index % 2}",
                        cluster_id=f"prompt-{index // 2}",
                        metrics={"passed": passed},
                    )
                )
    return records


def run_info(variants: Sequence[str] = VARIANTS, complete: bool = True) -> RunInfo:
    """Run metadata for the given variant names (epochs 1, 2, ... after base)."""
    return RunInfo(
        created_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        engine="hf",
        engine_config={"device": "cpu", "dtype": "float32"},
        ckpt_dir="/runs/sft-output",
        suite_name="quick",
        suite_path=None,
        suite={"probes": ["answers", "clustered"]},
        seed=7,
        train_template="chatml",
        variants=[
            VariantInfo(
                name=name,
                path=f"/runs/sft-output/{name}",
                kind="full" if name == "base" else "adapter",
                base_path=None if name == "base" else "/runs/sft-output/base",
                epoch=None if name == "base" else float(VARIANTS.index(name)),
                step=None if name == "base" else 10 * VARIANTS.index(name),
                fingerprint=f"{name}-fingerprint-0123456789",
            )
            for name in variants
        ],
        timings={"total": 12.5},
        complete=complete,
        cache_hits=3,
        cache_misses=117,
    )


def probes() -> dict[str, Probe]:
    """The two synthetic probes by name, in suite order."""
    return {"answers": AnswerProbe(), "clustered": ClusterProbe()}
