"""Join the run directories of `sfteval run --shard i/n` into the one run they split, and rebuild its report.

Each shard's report.json and items.jsonl are read back. They must be the n shards of one run: the same suite (as
run, after --limit), checkpoint dir, sfteval version, engine and engine settings (the device may differ: one GPU
per shard), seed and training template; one directory per shard; no variant twice. Variants go back to discovery
order (the k-th variant of shard i stood at k*n + i - 1) with their records in the order the shard wrote them, and
the report is rebuilt by `build_report`, as the runner builds it, so comparisons vs base and vs the previous epoch,
the Holm families, findings and the recommendation span every variant, exactly as one unsharded run would give them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sfteval.core.errors import UserError
from sfteval.core.records import ItemRecord
from sfteval.core.report import Report, load_report
from sfteval.core.run_info import RunInfo, VariantInfo
from sfteval.core.shard import Shard
from sfteval.probes.base import PROBES, Probe
from sfteval.report.build import build_report
from sfteval.report.items import items_path, load_items, report_file

# RunInfo fields every shard of one run shares (engine_config is compared without its device).
SAME_RUN_FIELDS = (
    "suite",
    "ckpt_dir",
    "sfteval_version",
    "engine",
    "engine_config",
    "seed",
    "train_template",
)


@dataclass(frozen=True)
class ShardRun:
    """One shard's run directory as read back: its report, its item records and its place in the layout."""

    directory: Path
    report: Report
    records: tuple[ItemRecord, ...]
    shard: Shard

    @property
    def report_path(self) -> Path:
        return report_file(self.directory)


@dataclass(frozen=True)
class MergedRun:
    """The merged report and records; `incomplete` lists the shards that were interrupted."""

    report: Report
    records: tuple[ItemRecord, ...]
    incomplete: tuple[ShardRun, ...]


def merge_shards(directories: Sequence[Path]) -> MergedRun:
    """Read, check and join the shards' run directories into one report over every variant."""
    shards = [load_shard(Path(directory)) for directory in directories]
    check_shards(shards)
    shards.sort(key=lambda shard: shard.shard.index)
    placed = sorted(
        (
            (shard.shard.position(order), variant, shard)
            for shard in shards
            for order, variant in enumerate(shard.report.run.variants)
        ),
        key=lambda entry: entry[0],
    )
    records = tuple(
        record for _, variant, shard in placed for record in shard.records if record.variant == variant.name
    )
    run = _merged_run(shards, tuple(variant for _, variant, _ in placed))
    report = build_report(run, records, probes_of(run, shards[0].report_path), seed=run.seed)
    incomplete = tuple(shard for shard in shards if not shard.report.run.complete)
    return MergedRun(report=report, records=records, incomplete=incomplete)


def load_shard(directory: Path) -> ShardRun:
    """A shard's report and records; a missing or invalid file, or a run without --shard, is a UserError."""
    report = load_report(directory)
    where = report_file(directory)
    if report.run.shard is None:
        raise UserError(
            f"{where}: not a shard (the run had no --shard)",
            hint="merge the run directories of `sfteval run --shard i/n`",
        )
    items = items_path(directory, report)
    if not items.is_file():
        raise UserError(f"{items}: item records missing (the shard's items.jsonl is needed to merge)")
    records = tuple(load_items(items))
    listed = {variant.name for variant in report.run.variants}
    stray = next((record.variant for record in records if record.variant not in listed), None)
    if stray is not None:
        raise UserError(f"{items}: records of variant {stray!r}, which {where} does not list")
    return ShardRun(directory, report, records, Shard.parse(report.run.shard, where=str(where)))


def check_shards(shards: Sequence[ShardRun]) -> None:
    """UserError unless `shards` are all the shards of one run, each once, with disjoint variants."""
    if not shards:
        raise UserError("--merge: give the run directory of every shard")
    first = shards[0]
    for other in shards[1:]:
        for name in SAME_RUN_FIELDS:
            if _same_run_value(first.report.run, name) != _same_run_value(other.report.run, name):
                raise UserError(
                    f"{other.report_path}: run.{name} differs from {first.report_path}; "
                    "only shards of one run can be merged"
                )
        if other.shard.count != first.shard.count:
            raise UserError(
                f"{other.report_path}: shard {other.shard} does not split the run in {first.shard.count} "
                f"like {first.report_path} (shard {first.shard})"
            )
    _check_disjoint(shards)
    _check_layout(shards)


def probes_of(run: RunInfo, where: Path) -> dict[str, Probe]:
    """The probes the run used, rebuilt from the effective parameters its report saved (`run.suite.probes`)."""
    probes: dict[str, Probe] = {}
    for name, params in (run.suite.get("probes") or {}).items():
        try:
            probe_class = PROBES.get(name)
            probes[name] = probe_class(probe_class.Params.model_validate(params or {}))
        except UserError as error:
            raise UserError(f"{where}: run.suite.probes.{name}: {error}") from None
        except ValidationError as error:
            reason = error.errors(include_url=False)[0]["msg"]
            raise UserError(f"{where}: run.suite.probes.{name}: {reason}") from None
    return probes


def _same_run_value(run: RunInfo, name: str) -> Any:
    """The value of a RunInfo field as shards must share it (the device is left out of engine_config)."""
    value = getattr(run, name)
    if name == "engine_config":
        return {key: setting for key, setting in value.items() if key != "device"}
    return value


def _check_disjoint(shards: Sequence[ShardRun]) -> None:
    """No variant may come from two shards."""
    owner: dict[str, Path] = {}
    for shard in shards:
        for variant in shard.report.run.variants:
            if variant.name in owner:
                raise UserError(
                    f"variant {variant.name!r} is in both {owner[variant.name]} and {shard.report_path}; "
                    "the shards of one run hold disjoint variants"
                )
            owner[variant.name] = shard.report_path


def _check_layout(shards: Sequence[ShardRun]) -> None:
    """Every shard 1..n exactly once."""
    given: dict[int, Path] = {}
    for shard in shards:
        if shard.shard.index in given:
            raise UserError(
                f"shard {shard.shard} given twice: {given[shard.shard.index]} and {shard.report_path}"
            )
        given[shard.shard.index] = shard.report_path
    count = shards[0].shard.count
    missing = [f"{index}/{count}" for index in range(1, count + 1) if index not in given]
    if missing:
        raise UserError(
            f"--merge: shard {', '.join(missing)} missing", hint="give the run directory of every shard"
        )


def _merged_run(shards: Sequence[ShardRun], variants: tuple[VariantInfo, ...]) -> RunInfo:
    """Shard 1's run info over every variant: summed cache counts, every shard's timings, complete when all are."""
    runs = [shard.report.run for shard in shards]
    timings = {key: seconds for run in runs for key, seconds in run.timings.items() if key != "total"}
    totals = {f"shard {run.shard}": run.timings["total"] for run in runs if "total" in run.timings}
    if totals:
        # Shards run side by side, so the merged run took as long as its slowest shard.
        timings = {**timings, **totals, "total": max(totals.values())}
    return runs[0].model_copy(
        update={
            "created_at": min(run.created_at for run in runs),
            "variants": variants,
            "timings": timings,
            "complete": all(run.complete for run in runs),
            "cache_hits": sum(run.cache_hits for run in runs),
            "cache_misses": sum(run.cache_misses for run in runs),
            "shard": None,
        }
    )
