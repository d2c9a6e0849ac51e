"""`sfteval run`: probe base and every checkpoint of an SFT output dir with a suite, and report what changed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from sfteval.core.errors import UserError
from sfteval.engines.config import EngineConfig

if TYPE_CHECKING:
    from sfteval.core.shard import Shard
    from sfteval.report.gate import LoadedPolicy

DEFAULT_SUITE = "quick"
RUNS_DIR = Path("sfteval-runs")


def run(
    ckpt: Annotated[
        Path, typer.Option("--ckpt", help="SFT output dir (HF Trainer, torchtune, PEFT or sfteval).")
    ],
    base: Annotated[Path | None, typer.Option("--base", help="Base model dir (overrides discovery).")] = None,
    suite: Annotated[
        str, typer.Option("--suite", help="Shipped suite name (quick, standard) or a suite YAML file.")
    ] = DEFAULT_SUITE,
    engine: Annotated[
        str, typer.Option("--engine", help="hf | vllm | auto (vllm when usable, else hf).")
    ] = "auto",
    device: Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda | cuda:N.")] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="auto | float32 | bfloat16 | float16.")] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Requests per forward batch.")
    ] = None,
    threads: Annotated[
        str,
        typer.Option(
            "--threads",
            help="CPU threads: N, or auto (OMP_NUM_THREADS if set, else the cores other processes leave free).",
        ),
    ] = "auto",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Run directory (default: sfteval-runs/<ckpt name>-<suite>[-shard<i>of<n>])."
        ),
    ] = None,
    variants: Annotated[
        str | None, typer.Option("--variants", help="Comma-separated variant names, e.g. base,epoch-2.")
    ] = None,
    train_template: Annotated[
        str | None,
        typer.Option("--train-template", help="Template the model was trained with (over the manifest)."),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most N items per probe.")] = None,
    cache: Annotated[
        Path | None,
        typer.Option("--cache", help="Result cache file, shareable by runs (default: <out>/cache.sqlite)."),
    ] = None,
    gate: Annotated[
        str | None,
        typer.Option(
            "--gate",
            help="Gate policy file or shipped name: exit 1 when a fail-rule breaks (without it the default "
            "policy still restricts the recommendation, but the exit code stays 0).",
        ),
    ] = None,
    no_gate: Annotated[
        bool, typer.Option("--no-gate", help="Apply no gate policy at all (not even the default one).")
    ] = False,
    detail: Annotated[
        bool,
        typer.Option("--detail", help="Also print every probe's full table, every finding and the notes."),
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="Run only share i of n of the variants (i/n, e.g. 1/2; variant k goes to share k mod n + 1); "
            "join the run dirs with `sfteval report --merge`.",
        ),
    ] = None,
    max_new_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-new-tokens",
            min=1,
            help="Tokens generated per request by every generating probe (over the suite and its probes).",
        ),
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(
            "--temperature",
            min=0.0,
            help="Sampling temperature of every probe that allows sampling (0 = greedy; over the suite).",
        ),
    ] = None,
    engine_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--engine-arg",
            help="KEY=VALUE passed to the engine (repeatable; VALUE read as JSON when it parses), "
            "e.g. tensor_parallel_size=2 for vllm.",
        ),
    ] = None,
) -> None:
    """Probe base and every checkpoint in CKPT with a suite; write report.json, items.jsonl and run.log."""
    from sfteval.commands.gate import finish_gate
    from sfteval.core.generation import GenerationOverrides
    from sfteval.core.interrupts import held_interrupts, watch_interrupts
    from sfteval.core.report import REPORT_FILE, save_report
    from sfteval.core.run_info import ITEMS_FILE
    from sfteval.core.shard import Shard
    from sfteval.report.gate import apply_gate
    from sfteval.report.html import HTML_FILE, write_html
    from sfteval.report.items import load_items
    from sfteval.report.terminal import render_report
    from sfteval.run_lock import hold_run_directory
    from sfteval.runner import RunConfig, run_suite, warning_printer
    from sfteval.suite import load_suite
    from sfteval.templates import TEMPLATES

    console = Console()
    share = None if shard is None else Shard.parse(shard)
    if share is not None and gate is not None:
        raise UserError("--gate: a shard holds only some variants; gate the merged run (sfteval gate OUT)")
    if no_gate and gate is not None:
        raise UserError("--gate and --no-gate: choose one")
    policy = _policy(gate, no_gate or share is not None)
    loaded_suite = load_suite(suite)
    if train_template is not None:
        TEMPLATES.get(train_template)
    settings: dict[str, Any] = {
        "device": device,
        "dtype": dtype,
        "batch_size": batch_size,
        "threads": threads,
        "extra": _engine_arguments(engine_arg or []) or None,
    }
    config = RunConfig(
        ckpt_dir=ckpt,
        suite=loaded_suite,
        out_dir=out or default_out_dir(ckpt, loaded_suite.name, share),
        engine=choose_engine(engine, console),
        engine_config=_engine_config(settings),
        base=base,
        variants=_split_names(variants),
        train_template=train_template,
        limit=limit,
        cache_path=cache,
        shard=share,
        generation=GenerationOverrides(max_new_tokens=max_new_tokens, temperature=temperature),
    )
    # The directory stays locked until its HTML page is written; a Ctrl-C after the report lets the page finish.
    with hold_run_directory(config.out_dir, warning_printer(console)), watch_interrupts() as interrupts:
        result = run_suite(config, console)
        with held_interrupts():
            report = result.report if policy is None else apply_gate(result.report, policy)
            if policy is not None:
                save_report(report, result.out_dir / REPORT_FILE)
            render_report(report, console, detail=detail)
            write_html(report, load_items(result.out_dir / ITEMS_FILE), result.out_dir / HTML_FILE)
    console.print(f"run directory: {result.out_dir} (report.json, report.html, items.jsonl, run.log)")
    if share is not None:
        console.print(f"shard {share}: join all {share.count} run directories with `sfteval report --merge`")
    if not result.complete or interrupts.received:
        raise typer.Exit(130)
    if gate is not None:
        finish_gate(report, console, junit=None, markdown=None)


def _policy(name: str | None, skip: bool) -> LoadedPolicy | None:
    """The explicit --gate policy, else the default one, unless gating is off (--no-gate, or a shard)."""
    from sfteval.report.gate import DEFAULT_POLICY, load_policy

    return None if skip else load_policy(name if name is not None else DEFAULT_POLICY)


def default_out_dir(ckpt: Path, suite_name: str, shard: Shard | None) -> Path:
    """sfteval-runs/<ckpt name>-<suite>[-shard<i>of<n>], so shards launched with defaults do not collide."""
    suffix = "" if shard is None else f"-shard{shard.index}of{shard.count}"
    return RUNS_DIR / f"{ckpt.resolve().name}-{suite_name}{suffix}"


def choose_engine(name: str, console: Console) -> str:
    """The engine to use: `auto` picks vllm when it is registered, installed and a GPU is present, else hf."""
    from sfteval.engines import ENGINES

    if name != "auto":
        ENGINES.get(name)
        return name
    usable = "vllm" in ENGINES and importlib.util.find_spec("vllm") is not None and _cuda_available()
    chosen = "vllm" if usable else "hf"
    reason = "vllm installed and a CUDA GPU present" if usable else "vllm unavailable or no CUDA GPU"
    console.print(f"engine: {chosen} (auto: {reason})")
    return chosen


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _engine_config(settings: dict[str, Any]) -> EngineConfig:
    """EngineConfig from the options that were given (options left out keep the config's defaults)."""
    given = {key: value for key, value in settings.items() if value is not None}
    try:
        return EngineConfig(**given)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        option = "--" + str(first["loc"][0]).replace("_", "-")
        raise UserError(f"{option}: {first['msg']}") from None


def _engine_arguments(pairs: list[str]) -> dict[str, Any]:
    """['tensor_parallel_size=2', 'quantization=fp8'] -> {'tensor_parallel_size': 2, 'quantization': 'fp8'}."""
    arguments: dict[str, Any] = {}
    for pair in pairs:
        key, equals, text = pair.partition("=")
        if not (equals and key.strip()):
            raise UserError(f"--engine-arg: {pair!r} is not KEY=VALUE, e.g. tensor_parallel_size=2")
        try:
            arguments[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            arguments[key.strip()] = text
    return arguments


def _split_names(value: str | None) -> tuple[str, ...] | None:
    """'base, epoch-2' -> ('base', 'epoch-2'); None when the option was not given."""
    if value is None:
        return None
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    if not names:
        raise UserError("--variants: give at least one variant name, e.g. base,epoch-2")
    return names
