"""Run a suite over every variant of an SFT output dir: plan, execute through the cache, record, report.

For each variant the runner builds one engine (adapters share the loaded base), asks every probe for its requests,
sends all generation requests of the variant to the engine in one call and all scoring requests in another (so
batches fill), hands each probe its share of the results, and runs a second pass on the base engine for probes
that score the variant's outputs under the base model. Finished variants are appended to items.jsonl at once. On
Ctrl-C, in whatever phase, the runner stops, writes a report of what is done marked incomplete
(sfteval.core.interrupts), and the next run resumes from the cache. One run at a time writes a run directory
(sfteval.run_lock). With a `Shard` (sfteval.core.shard) the run keeps every n-th variant, so n processes (one per
GPU) share the work and `sfteval report --merge` (sfteval.report.merge) joins their run directories into one report.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sfteval.cache import CachedEngine
from sfteval.core.errors import UserError
from sfteval.core.generation import GenerationOverrides
from sfteval.core.interrupts import held_interrupts, phase_reached, raise_if_interrupted, watch_interrupts
from sfteval.core.records import ItemRecord
from sfteval.core.report import Report
from sfteval.core.requests import (
    EngineResult,
    GenerationRequest,
    ProgressCallback,
    ScoreRequest,
)
from sfteval.core.run_info import RunInfo, VariantInfo
from sfteval.core.shard import Shard
from sfteval.core.variants import Variant
from sfteval.discovery import MANIFEST_NAME, discover, read_json_object
from sfteval.engines import make_engine_factory
from sfteval.engines.base import Engine, EngineFactory
from sfteval.engines.config import EngineConfig
from sfteval.probes.base import PlannedRequest, Probe, ProbeContext
from sfteval.report.build import build_report
from sfteval.run_lock import hold_run_directory
from sfteval.run_output import CACHE_FILE, RunOutput
from sfteval.suite import Suite


@dataclass(frozen=True)
class RunConfig:
    """Everything one `sfteval run` needs; `cache_path` None means `<out_dir>/cache.sqlite`."""

    ckpt_dir: Path
    suite: Suite
    out_dir: Path
    engine: str = "hf"
    engine_config: EngineConfig = field(default_factory=EngineConfig)
    base: Path | None = None
    variants: tuple[str, ...] | None = None
    train_template: str | None = None
    limit: int | None = None
    cache_path: Path | None = None
    shard: Shard | None = None
    generation: GenerationOverrides = field(default_factory=GenerationOverrides)


@dataclass(frozen=True)
class RunResult:
    """The report written to `out_dir`; `complete` is False after an interruption."""

    report: Report
    out_dir: Path
    complete: bool


@dataclass
class _Progress:
    """Mutable tallies of one run, kept while variants finish (the report is built from them at the end)."""

    records: list[ItemRecord] = field(default_factory=list)
    variants: list[VariantInfo] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0


@dataclass(frozen=True)
class _Session:
    """What every variant's pass shares: the probes, the engine factory, the output, the progress display."""

    config: RunConfig
    probes: Mapping[str, Probe]
    factory: EngineFactory
    output: RunOutput
    display: Progress
    manifest: dict[str, Any] | None
    train_template: str | None
    base_variant: Variant | None

    @property
    def cache_path(self) -> Path:
        return self.config.cache_path or self.config.out_dir / CACHE_FILE


def run_suite(config: RunConfig, console: Console, engine_factory: EngineFactory | None = None) -> RunResult:
    """Run `config.suite` on the selected variants, write the run directory and return the report.

    `engine_factory` replaces the factory that `config.engine` names (the run still records `config.engine`); the
    training callback (sfteval.integrations) passes one that probes the live training model. The runner closes it.
    """
    discovered = discover(config.ckpt_dir, base=config.base)
    variants = select_variants(discovered, config.variants)
    if config.shard is not None:
        variants = config.shard.select(variants)
    manifest = read_manifest(config.ckpt_dir)
    train_template = (
        config.train_template or manifest_template(manifest) or config.suite.config.train_template
    )
    probes = build_probes(config.suite, config.limit, config.generation)
    base_variant = next((variant for variant in discovered if variant.is_base), None)
    _require_base(probes, base_variant)
    with hold_run_directory(config.out_dir, warning_printer(console)), watch_interrupts() as interrupts:
        output = RunOutput(config.out_dir)
        shard = "" if config.shard is None else f"; shard {config.shard}"
        output.log(
            f"run: suite {config.suite.name} on {config.ckpt_dir}{shard}; "
            f"variants {', '.join(v.name for v in variants)}"
        )
        tally = _Progress()
        started = time.perf_counter()
        # A Ctrl-C while torch imports is raised in the loop below, so a report is still written.
        with held_interrupts():
            factory = engine_factory or make_engine_factory(config.engine, config.engine_config)
        display = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        session = _Session(config, probes, factory, output, display, manifest, train_template, base_variant)
        complete = _run_variants(session, variants, tally)
        report = _finish(session, tally, complete and not interrupts.received, started)
    return RunResult(report=report, out_dir=config.out_dir, complete=report.run.complete)


def _run_variants(session: _Session, variants: Sequence[Variant], tally: _Progress) -> bool:
    """Run every variant; False when Ctrl-C stopped the run, whatever caught the KeyboardInterrupt on its way."""
    try:
        with session.display:
            for variant in variants:
                raise_if_interrupted()
                _run_variant(session, variant, tally)
        raise_if_interrupted()
        return True
    except KeyboardInterrupt:
        return False
    except UserError as error:
        session.output.log(f"failed: {error}")
        raise
    finally:
        with held_interrupts():
            phase_reached("close")
            session.factory.close()


def _finish(session: _Session, tally: _Progress, complete: bool, started: float) -> Report:
    """Build and write the report; a Ctrl-C meanwhile marks it incomplete instead of losing it."""
    with held_interrupts() as interrupts:
        phase_reached("report")
        tally.timings["total"] = time.perf_counter() - started
        run = _run_info(session, tally, complete)
        report = build_report(run, tally.records, session.probes, seed=run.seed)
        if complete and interrupts.received:
            complete = False
            run = _run_info(session, tally, complete)
            report = build_report(run, tally.records, session.probes, seed=run.seed)
        if not complete:
            session.output.log(
                f"interrupted: writing what is done (cache hits={tally.hits} misses={tally.misses} so far); "
                "the next run resumes from the cache"
            )
            session.display.console.print(
                "[yellow]interrupted: report marked incomplete; rerun the same command to resume[/yellow]"
            )
        session.output.log(
            f"done: complete={complete} cache hits={tally.hits} misses={tally.misses} "
            f"total {tally.timings['total']:.1f}s"
        )
        session.output.write_report(report)
    return report


def warning_printer(console: Console) -> Callable[[str], None]:
    """Print a warning line on `console`."""
    return lambda message: console.print(
        f"[yellow]warning: {escape(message)}[/yellow]", highlight=False, soft_wrap=True
    )


def select_variants(variants: Sequence[Variant], names: Sequence[str] | None) -> list[Variant]:
    """The variants named in `names` (all when None), in discovery order; unknown names are a UserError."""
    if names is None:
        return list(variants)
    known = [variant.name for variant in variants]
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"found: {', '.join(known)}"
            raise UserError(f"--variants: no variant named {name!r}", hint=hint)
    return [variant for variant in variants if variant.name in names]


def read_manifest(ckpt_dir: Path) -> dict[str, Any] | None:
    """sfteval's training manifest in the output dir, when the run was trained by sfteval."""
    path = Path(ckpt_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    return read_json_object(path)


def manifest_template(manifest: Mapping[str, Any] | None) -> str | None:
    """The training template the manifest records, if any."""
    template = (manifest or {}).get("template")
    return template if isinstance(template, str) else None


def build_probes(
    suite: Suite, limit: int | None, overrides: GenerationOverrides | None = None
) -> dict[str, Probe]:
    """One probe per suite entry with its generation settings resolved; `limit` caps every `limit` parameter."""
    probes: dict[str, Probe] = {}
    for entry in suite.probes:
        params = entry.params
        if limit is not None and "limit" in type(params).model_fields:
            current = getattr(params, "limit", None)
            params = params.model_copy(update={"limit": limit if current is None else min(current, limit)})
        probes[entry.name] = replace(entry, params=params).build(suite.config.generation, overrides)
    return probes


def limit_items(planned: Sequence[PlannedRequest], limit: int | None) -> list[PlannedRequest]:
    """Keep the requests of the first `limit` distinct items (for probes without a `limit` parameter)."""
    if limit is None:
        return list(planned)
    kept: set[str] = set()
    selected = []
    for request in planned:
        if request.item_id not in kept and len(kept) < limit:
            kept.add(request.item_id)
        if request.item_id in kept:
            selected.append(request)
    return selected


COMMIT_BATCHES = 4
"""Requests per engine call (and per committed cache chunk), in engine batches: a call this large lets the hf engine
keep its decode batch full (continuous batching) and run each shared context once; an interruption loses at most
the call in flight."""


def _require_base(probes: Mapping[str, Probe], base_variant: Variant | None) -> None:
    needing = [name for name, probe in probes.items() if probe.needs_base_scoring]
    if needing and base_variant is None:
        raise UserError(
            f"probe(s) {', '.join(needing)} score outputs under the base model, but no base model was found",
            hint="pass the base model dir with --base PATH",
        )


def _run_variant(session: _Session, variant: Variant, tally: _Progress) -> None:
    """Plan, execute and record every probe on one variant; then the base-scoring pass; then save its records."""
    started = time.perf_counter()
    hits_before, misses_before = tally.hits, tally.misses
    with _cached(session, variant, tally) as engine:
        context = _context(session, variant, engine)
        planned: dict[str, list[PlannedRequest]] = {}
        for name, probe in session.probes.items():
            with _timer(tally, f"{variant.name}/{name}"):
                planned[name] = _plan(session, probe, context)
        results = _execute(session, engine, planned, variant.name, tally)
        records: dict[str, list[ItemRecord]] = {}
        for name, probe in session.probes.items():
            with _timer(tally, f"{variant.name}/{name}"):
                phase_reached("records")
                records[name] = probe.records(context, planned[name], results[name])
        fingerprint = engine.fingerprint
    _base_pass(session, context, records, tally)
    raise_if_interrupted()  # records computed after a swallowed Ctrl-C (langdetect, __del__) are not kept
    variant_records = [record for name in session.probes for record in records[name]]
    session.output.append_records(variant_records)
    tally.records.extend(variant_records)
    tally.variants.append(VariantInfo.from_variant(variant, fingerprint))
    seconds = tally.timings[variant.name] = time.perf_counter() - started
    session.output.log(
        f"{variant.name}: {len(variant_records)} records; cache hits={tally.hits - hits_before} "
        f"misses={tally.misses - misses_before}; {seconds:.1f}s; fingerprint {fingerprint[:12]}"
    )


@contextmanager
def _cached(session: _Session, variant: Variant, tally: _Progress) -> Iterator[CachedEngine]:
    """The variant's engine behind the cache; its hit/miss counts join the tally even when interrupted."""
    engine = CachedEngine(
        session.factory.engine(variant),
        session.cache_path,
        COMMIT_BATCHES * session.config.engine_config.batch_size,
    )
    try:
        yield engine
    finally:
        with held_interrupts():
            engine.close()
            tally.hits += engine.hits
            tally.misses += engine.misses


def _context(session: _Session, variant: Variant, engine: CachedEngine) -> ProbeContext:
    return ProbeContext(
        variant=variant,
        tokenizer=engine.tokenizer,
        manifest=session.manifest,
        train_template=session.train_template,
        seed=session.config.suite.config.seed,
        suite_dir=session.config.suite.directory,
    )


def _plan(session: _Session, probe: Probe, context: ProbeContext) -> list[PlannedRequest]:
    limit = None if "limit" in type(probe.params).model_fields else session.config.limit
    return limit_items(probe.plan(context), limit)


def _execute(
    session: _Session,
    engine: Engine,
    planned: Mapping[str, Sequence[PlannedRequest]],
    label: str,
    tally: _Progress,
) -> dict[str, list[EngineResult]]:
    """All generation requests in one engine call, all scoring requests in another; results split per probe."""
    results: dict[str, list[Any]] = {name: [None] * len(requests) for name, requests in planned.items()}
    for kind, request_type in (("generate", GenerationRequest), ("score", ScoreRequest)):
        positions = [
            (name, index)
            for name, requests in planned.items()
            for index, item in enumerate(requests)
            if isinstance(item.request, request_type)
        ]
        if not positions:
            continue
        names = sorted({name for name, _ in positions})
        description = f"{label} · {kind} · {', '.join(names)}"
        requests = [planned[name][index].request for name, index in positions]
        with (
            _timer(tally, f"{label}/{kind}"),
            _task(session.display, description, len(positions), kind) as advance,
        ):
            outputs = (
                engine.generate(requests, advance) if kind == "generate" else engine.score(requests, advance)
            )
        for (name, index), output in zip(positions, outputs, strict=True):
            results[name][index] = output
    return results


def _base_pass(
    session: _Session, context: ProbeContext, records: dict[str, list[ItemRecord]], tally: _Progress
) -> None:
    """Score the variant's records under the base model for probes that need it."""
    needing = [name for name, probe in session.probes.items() if probe.needs_base_scoring]
    if not needing or session.base_variant is None:
        return
    planned = {name: session.probes[name].base_requests(context, records[name]) for name in needing}
    with _cached(session, session.base_variant, tally) as base:
        results = _execute(session, base, planned, f"{context.variant.name}/base", tally)
    for name in needing:
        with _timer(tally, f"{context.variant.name}/{name}"):
            records[name] = session.probes[name].finish(context, records[name], planned[name], results[name])


@contextmanager
def _timer(tally: _Progress, key: str) -> Iterator[None]:
    """Add the wall-clock seconds of the block to `tally.timings[key]` (probe time = plan + records + finish)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        tally.timings[key] = tally.timings.get(key, 0.0) + time.perf_counter() - started


@contextmanager
def _task(display: Progress, description: str, total: int, kind: str) -> Iterator[ProgressCallback]:
    """A progress bar for one engine call (`kind`: generate or score); yields the engine's progress callback."""
    task = display.add_task(description, total=total)

    def advance(finished: int) -> None:
        display.advance(task, finished)
        phase_reached(kind)
        raise_if_interrupted()

    yield advance
    display.update(task, completed=total)


def _run_info(session: _Session, tally: _Progress, complete: bool) -> RunInfo:
    """What the report says about this run: settings, variants done, timings, cache use, shard."""
    config = session.config
    return RunInfo(
        engine=config.engine,
        engine_config=config.engine_config.model_dump(mode="json"),
        ckpt_dir=str(config.ckpt_dir),
        suite_name=config.suite.name,
        suite_path=str(config.suite.path),
        suite=_suite_json(config.suite, session.probes, config.generation),
        seed=config.suite.config.seed,
        train_template=session.train_template,
        variants=tuple(tally.variants),
        timings=tally.timings,
        complete=complete,
        cache_hits=tally.hits,
        cache_misses=tally.misses,
        shard=None if config.shard is None else str(config.shard),
    )


def _suite_json(suite: Suite, probes: Mapping[str, Probe], overrides: GenerationOverrides) -> dict[str, Any]:
    """The suite as run: its settings, every probe's effective parameters (after --limit) and, when given, the
    command line's generation overrides."""
    data = suite.config.model_dump(mode="json")
    data["probes"] = {name: probe.params.model_dump(mode="json") for name, probe in probes.items()}
    given = {key: value for key, value in asdict(overrides).items() if value is not None}
    if given:
        data["generation_overrides"] = given
    return data
