"""The runner: cache reuse, resume after an interruption, added checkpoints, base scoring, the `sfteval run` command.

Most tests use a scripted fake engine (registered as `test-fake`) and two small test probes, so that they check
the runner's bookkeeping exactly; the last ones run the real command on a tiny Llama with LoRA epoch adapters.
"""

from __future__ import annotations

import io
import json
import signal
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from probe_fixtures import base_scored_probe
from rich.console import Console
from run_fixtures import if_suite, run_process, sfteval_command
from sfteval.probes.base import MetricSpec, PlannedRequest, Probe, ProbeContext, ProbeParams, register_probe
from typer.testing import CliRunner

from sfteval.cli import app
from sfteval.engines import ENGINES
from sfteval.engines.base import Generation, GenerationRequest, ProgressCallback, Score, ScoreRequest
from sfteval.engines.config import EngineConfig
from sfteval.errors import UserError
from sfteval.records import ItemRecord
from sfteval.report.schema import load_report
from sfteval.runner import RunConfig, RunResult, run_suite
from sfteval.suite import load_suite
from sfteval.variants import Variant

FAKE_ENGINE = "test-fake"


@dataclass
class Script:
    """What the fake engines computed, and when they should simulate a Ctrl-C."""

    computed: list[tuple[str, str]] = field(default_factory=list)
    interrupt_after: int | None = None
    error: type[BaseException] = KeyboardInterrupt


SCRIPT = Script()


class FakeEngine:
    """Deterministic answers that depend on the variant, so every variant's records differ."""

    name = FAKE_ENGINE
    tokenizer = None

    def __init__(self, variant: Variant) -> None:
        self.variant = variant

    @property
    def fingerprint(self) -> str:
        return f"fake:{self.variant.name}:{self.variant.path}"

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[Generation]:
        self._compute(requests)
        return [Generation(f"{self.variant.name} says {request.prompt}", 4, "stop") for request in requests]

    def score(
        self, requests: Sequence[ScoreRequest], progress: ProgressCallback | None = None
    ) -> list[Score]:
        self._compute(requests)
        penalty = 0.0 if self.variant.is_base else 0.5
        return [Score(-len(r.continuation) - penalty, (-1.0,), False) for r in requests]

    def _compute(self, requests: Sequence[GenerationRequest] | Sequence[ScoreRequest]) -> None:
        for request in requests:
            if SCRIPT.interrupt_after is not None and len(SCRIPT.computed) >= SCRIPT.interrupt_after:
                raise SCRIPT.error
            SCRIPT.computed.append((self.variant.name, request.key()))


class FakeFactory:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config

    def engine(self, variant: Variant) -> FakeEngine:
        return FakeEngine(variant)

    def close(self) -> None:
        pass


ENGINES.add(FAKE_ENGINE, FakeFactory)


class EchoParams(ProbeParams):
    items: int = 5


@register_probe
class EchoProbe(Probe):
    """One generation and one score per item; no `limit` parameter, so --limit truncates its plan."""

    name = "test_echo"
    Params = EchoParams
    metrics = (
        MetricSpec("mentions_epoch", "the answer names an epoch", binary=True, headline=True),
        MetricSpec("logprob", "log-probability of ' ok'"),
    )
    params: EchoParams

    def plan(self, context: ProbeContext) -> list[PlannedRequest]:
        planned = []
        for index in range(self.params.items):
            item, cluster = f"item-{index}", f"cluster-{index % 3}"
            prompt = f"say {index}"
            planned.append(
                PlannedRequest(item, cluster, "-", GenerationRequest(prompt, context.max_new_tokens))
            )
            planned.append(PlannedRequest(item, cluster, "-", ScoreRequest(prompt, " ok")))
        return planned

    def records(self, context, planned, results) -> list[ItemRecord]:
        pairs = zip(planned[0::2], results[0::2], results[1::2], strict=True)
        return [
            self.record(
                context,
                request,
                {"mentions_epoch": int("epoch" in generation.text), "logprob": score.logprob},
                output=generation.text,
            )
            for request, generation, score in pairs
        ]


BaseScoredProbe = base_scored_probe("test_base_scored", "question", items=3, max_new_tokens=8)

SUITE_TEXT = """
seed: 3
generation: {max_new_tokens: 8}
probes:
  test_echo: {items: 5}
  test_base_scored: {}
"""


@pytest.fixture(autouse=True)
def fresh_script():
    SCRIPT.computed.clear()
    SCRIPT.interrupt_after = None
    SCRIPT.error = KeyboardInterrupt
    yield


def add_checkpoint(out: Path, base: Path, epoch: int) -> None:
    """An HF Trainer checkpoint dir holding a (fake) LoRA adapter of `base`."""
    directory = out / f"checkpoint-{10 * epoch}"
    directory.mkdir(parents=True)
    (directory / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    (directory / "adapter_model.safetensors").write_bytes(b"")
    (directory / "trainer_state.json").write_text(json.dumps({"epoch": float(epoch)}))


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    base = tmp_path / "base"
    base.mkdir()
    (base / "model.safetensors").write_bytes(b"")
    out = tmp_path / "sft"
    for epoch in (1, 2):
        add_checkpoint(out, base, epoch)
    return out


@pytest.fixture
def suite_path(tmp_path: Path) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE_TEXT)
    return path


def run(ckpt: Path, suite_path: Path, out: Path, **options) -> RunResult:
    config = RunConfig(
        ckpt_dir=ckpt,
        suite=load_suite(suite_path),
        out_dir=out,
        engine=FAKE_ENGINE,
        engine_config=EngineConfig(batch_size=2),
        **options,
    )
    return run_suite(config, Console(file=io.StringIO(), width=120))


def items(out: Path) -> list[str]:
    return sorted((out / "items.jsonl").read_text().splitlines())


def test_run_writes_the_run_directory(ckpt: Path, suite_path: Path, tmp_path: Path) -> None:
    result = run(ckpt, suite_path, tmp_path / "run")
    assert result.complete
    report = load_report(tmp_path / "run")
    assert report.run.complete and [v.name for v in report.run.variants] == ["base", "epoch-1", "epoch-2"]
    assert report.run.seed == 3 and report.run.suite["probes"]["test_echo"] == {"items": 5}
    assert {"total", "epoch-1", "epoch-1/generate", "epoch-1/score"} <= set(report.run.timings)
    records = [ItemRecord.model_validate_json(line) for line in items(tmp_path / "run")]
    assert len(records) == 3 * (5 + 3)
    echo = [r for r in records if r.probe == "test_echo" and r.variant == "epoch-2"]
    assert {r.metrics["mentions_epoch"] for r in echo} == {1}
    assert {r.cluster_id for r in echo} == {"cluster-0", "cluster-1", "cluster-2"}
    assert "cache hits=0 misses=" in (tmp_path / "run" / "run.log").read_text()


def test_base_scoring_pass_uses_the_base_engine(ckpt: Path, suite_path: Path, tmp_path: Path) -> None:
    run(ckpt, suite_path, tmp_path / "run")
    records = [ItemRecord.model_validate_json(line) for line in items(tmp_path / "run")]
    scored = [r for r in records if r.probe == "test_base_scored"]
    assert len(scored) == 9
    # The fake base engine gives -len(continuation); a fine-tuned variant's engine would subtract 0.5 more.
    assert all(r.metrics["base_logprob"] == -len(r.output) for r in scored)


def test_rerun_is_answered_entirely_from_the_cache(ckpt: Path, suite_path: Path, tmp_path: Path) -> None:
    run(ckpt, suite_path, tmp_path / "run")
    first_items, computed = items(tmp_path / "run"), len(SCRIPT.computed)
    SCRIPT.computed.clear()
    result = run(ckpt, suite_path, tmp_path / "run")
    assert SCRIPT.computed == []
    assert items(tmp_path / "run") == first_items
    assert (result.report.run.cache_hits, result.report.run.cache_misses) == (computed, 0)
    assert f"cache hits={computed} misses=0" in (tmp_path / "run" / "run.log").read_text()


def test_interrupted_run_resumes_with_only_the_missing_requests(
    ckpt: Path, suite_path: Path, tmp_path: Path
) -> None:
    run(ckpt, suite_path, tmp_path / "reference")
    reference, total = items(tmp_path / "reference"), len(SCRIPT.computed)
    SCRIPT.computed.clear()
    SCRIPT.interrupt_after = total // 2
    interrupted = run(ckpt, suite_path, tmp_path / "run")
    assert not interrupted.complete
    report = load_report(tmp_path / "run")
    assert not report.run.complete
    assert any(finding.kind == "incomplete_run" for finding in report.findings)
    done = [v.name for v in report.run.variants]
    assert done == ["base"] and {json.loads(line)["variant"] for line in items(tmp_path / "run")} == {"base"}
    committed = _cached_rows(tmp_path / "run")
    assert 0 < committed <= total // 2
    SCRIPT.computed.clear()
    SCRIPT.interrupt_after = None
    resumed = run(ckpt, suite_path, tmp_path / "run")
    assert resumed.complete and items(tmp_path / "run") == reference
    assert len(SCRIPT.computed) == total - committed
    assert resumed.report.run.cache_hits == committed


def test_a_crashed_run_leaves_no_stale_report_and_resumes(
    ckpt: Path, suite_path: Path, tmp_path: Path
) -> None:
    run(ckpt, suite_path, tmp_path / "reference")
    reference, total = items(tmp_path / "reference"), len(SCRIPT.computed)
    run(ckpt, suite_path, tmp_path / "run", variants=("base",))
    assert (tmp_path / "run" / "report.json").exists()
    SCRIPT.computed.clear()
    SCRIPT.interrupt_after, SCRIPT.error = 20, RuntimeError
    with pytest.raises(RuntimeError):
        run(ckpt, suite_path, tmp_path / "run")
    assert not (tmp_path / "run" / "report.json").exists()
    # base came from the cache; epoch-1 (16 requests) finished; epoch-2 crashed after 4 of its requests.
    assert {json.loads(line)["variant"] for line in items(tmp_path / "run")} == {"base", "epoch-1"}
    committed = _cached_rows(tmp_path / "run")
    SCRIPT.computed.clear()
    SCRIPT.interrupt_after = None
    resumed = run(ckpt, suite_path, tmp_path / "run")
    assert resumed.complete and items(tmp_path / "run") == reference
    assert len(SCRIPT.computed) == total - committed


def _cached_rows(out: Path) -> int:
    with sqlite3.connect(out / "cache.sqlite") as connection:
        return connection.execute("SELECT COUNT(*) FROM results").fetchone()[0]


def test_an_added_checkpoint_computes_only_the_new_variant(
    ckpt: Path, suite_path: Path, tmp_path: Path
) -> None:
    run(ckpt, suite_path, tmp_path / "run")
    add_checkpoint(ckpt, tmp_path / "base", 3)
    SCRIPT.computed.clear()
    result = run(ckpt, suite_path, tmp_path / "run")
    assert [v.name for v in result.report.run.variants][-1] == "epoch-3"
    assert {variant for variant, _ in SCRIPT.computed} == {"epoch-3", "base"}
    base_work = [key for variant, key in SCRIPT.computed if variant == "base"]
    assert base_work and all("epoch-3 says" in key for key in base_work)
    assert result.report.run.cache_misses == len(SCRIPT.computed)


def test_variant_filter_and_limit(ckpt: Path, suite_path: Path, tmp_path: Path) -> None:
    result = run(ckpt, suite_path, tmp_path / "run", variants=("base", "epoch-2"), limit=2)
    records = [ItemRecord.model_validate_json(line) for line in items(tmp_path / "run")]
    assert {r.variant for r in records} == {"base", "epoch-2"}
    assert sorted({r.item_id for r in records if r.probe == "test_echo"}) == ["item-0", "item-1"]
    assert result.report.probe("test_echo").cells[0].n_items == 2
    with pytest.raises(UserError, match="did you mean 'epoch-2'"):
        run(ckpt, suite_path, tmp_path / "other", variants=("epoch-22",))


def test_base_scoring_without_a_base_model_is_a_user_error(suite_path: Path, tmp_path: Path) -> None:
    full = tmp_path / "full" / "checkpoint-10"
    full.mkdir(parents=True)
    (full / "model.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match="--base"):
        run(tmp_path / "full", suite_path, tmp_path / "run")


def test_the_command_exits_130_when_interrupted_and_0_when_resumed(
    ckpt: Path, suite_path: Path, tmp_path: Path
) -> None:
    arguments = ["run", "--ckpt", str(ckpt), "--suite", str(suite_path), "--engine", FAKE_ENGINE,
                 "--out", str(tmp_path / "run"), "--batch-size", "2"]  # fmt: skip
    SCRIPT.interrupt_after = 12
    interrupted = CliRunner().invoke(app, arguments)
    assert interrupted.exit_code == 130, interrupted.output
    assert "incomplete" in interrupted.output
    assert json.loads((tmp_path / "run" / "report.json").read_text())["run"]["complete"] is False
    SCRIPT.interrupt_after = None
    resumed = CliRunner().invoke(app, arguments)
    assert resumed.exit_code == 0, resumed.output
    assert "test_echo" in resumed.output and "epoch-2" in resumed.output
    assert load_report(tmp_path / "run").run.complete


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["--engine", "hf-fast"], "unknown engine 'hf-fast'"),
        (["--train-template", "chatmll"], "did you mean 'chatml'"),
        (["--batch-size", "0"], "--batch-size"),
        (["--suite", "nope"], "unknown suite 'nope'"),
        (["--variants", " , "], "--variants"),
    ],
)
def test_bad_command_options_are_user_errors(ckpt: Path, arguments: list[str], words: str) -> None:
    result = CliRunner().invoke(app, ["run", "--ckpt", str(ckpt), *arguments])
    assert isinstance(result.exception, UserError), result.output
    assert words in str(result.exception)


@pytest.fixture(scope="module")
def lora_ckpt(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An HF Trainer-style output dir: two epochs of randomly initialised LoRA adapters on the tiny model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("lora-sft")
    for epoch in (1, 2):
        torch.manual_seed(epoch)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        directory = out / f"checkpoint-{5 * epoch}"
        get_peft_model(model, lora).save_pretrained(directory)
        (directory / "trainer_state.json").write_text(
            json.dumps({"epoch": float(epoch), "global_step": 5 * epoch})
        )
    return out


# (where SIGINT lands, results committed to the cache by then, variants whose records are written by then), on
# base + 2 epochs x 8 prompts with --batch-size 1 (one result per cache commit).
INTERRUPTIONS = [
    ("generate:3", 2, 0),  # the third generation of base is in flight (computed, not committed)
    ("records:2", 16, 1),  # epoch-1's records() is running: base is written, epoch-1's generations are cached
    ("report", 24, 3),  # every variant is done; the report is being built
]


@pytest.mark.parametrize(("phase", "committed", "finished"), INTERRUPTIONS)
def test_end_to_end_interrupted_then_resumed_on_a_tiny_model(
    phase: str, committed: int, finished: int, lora_ckpt: Path, tmp_path: Path
) -> None:
    """`sfteval run` on base + 2 LoRA epochs: SIGINT at a chosen phase exits 130 with an incomplete report and the
    records of the variants done; the rerun computes only what the cache lacks and writes the full report."""
    suite, out = if_suite(tmp_path, limit=8, max_new_tokens=16), tmp_path / "run"
    command = sfteval_command(
        "--ckpt", str(lora_ckpt), "--suite", str(suite), "--out", str(out), "--batch-size", "1"
    )
    interrupted = run_process(command, phase)
    assert interrupted.returncode == 130, interrupted.stderr
    assert "interrupted" in interrupted.stderr and "Traceback" not in interrupted.stderr
    assert json.loads((out / "report.json").read_text())["run"]["complete"] is False
    assert "complete=False" in (out / "run.log").read_text()
    assert _rows(out) == committed
    written = items(out)
    resumed = run_process(command)
    assert resumed.returncode == 0, resumed.stderr
    assert "instruction_following" in resumed.stdout and "epoch-2" in resumed.stdout
    report = load_report(out)
    assert [variant.name for variant in report.run.variants] == ["base", "epoch-1", "epoch-2"]
    assert len({variant.fingerprint for variant in report.run.variants}) == 3
    assert report.run.complete and (report.run.cache_hits, report.run.cache_misses) == (
        committed,
        24 - committed,
    )
    records = [ItemRecord.model_validate_json(line) for line in items(out)]
    assert len(records) == 24 and {record.template for record in records} == {"native"}
    done = {variant.name for variant in report.run.variants[:finished]}
    assert written == sorted(
        line for line, record in zip(items(out), records, strict=True) if record.variant in done
    )
    assert len(report.comparisons_of("instruction_following", "base")) > 0
    assert f"cache hits={committed}" in (out / "run.log").read_text()


def test_kill_9_mid_run_then_rerun_gives_the_records_of_a_clean_run(lora_ckpt: Path, tmp_path: Path) -> None:
    """SIGKILL while epoch-1 generates (no clean-up runs at all): the rerun's records equal an uninterrupted run's."""
    suite = if_suite(tmp_path, limit=8, max_new_tokens=16)
    arguments = ("--ckpt", str(lora_ckpt), "--suite", str(suite), "--batch-size", "1")
    killed = run_process(sfteval_command(*arguments, "--out", str(tmp_path / "run")), "generate:11:SIGKILL")
    assert killed.returncode == -signal.SIGKILL
    assert _rows(tmp_path / "run") == 10 and not (tmp_path / "run" / "report.json").exists()
    rerun = run_process(sfteval_command(*arguments, "--out", str(tmp_path / "run")))
    assert rerun.returncode == 0, rerun.stderr
    assert "took over the lock" in rerun.stdout
    clean = run_process(sfteval_command(*arguments, "--out", str(tmp_path / "clean")))
    assert clean.returncode == 0, clean.stderr
    assert items(tmp_path / "run") == items(tmp_path / "clean") and len(items(tmp_path / "clean")) == 24
    assert load_report(tmp_path / "run").run.cache_hits == 10


def _rows(out: Path) -> int:
    """Results committed to the run's cache so far (0 before the database exists)."""
    if not (out / "cache.sqlite").exists():
        return 0
    try:
        with sqlite3.connect(out / "cache.sqlite", timeout=1) as connection:
            return connection.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
