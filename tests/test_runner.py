"""The runner: cache reuse, resume after an interruption, added checkpoints, base scoring, the `sfteval run` command.

Most tests use a scripted fake engine (registered as `test-fake`) and two small test probes, so that they check
the runner's bookkeeping exactly; the last ones run the real command on a tiny Llama with LoRA epoch adapters.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fake_engine import ScriptedEngine, register_scripted
from probe_fixtures import base_scored_probe
from rich.console import Console
from typer.testing import CliRunner

from sfteval.cli import app
from sfteval.core.errors import UserError
from sfteval.core.metrics import MetricSpec
from sfteval.core.records import ItemRecord
from sfteval.core.report import load_report
from sfteval.core.requests import Generation, GenerationRequest, ScoreRequest
from sfteval.engines.config import EngineConfig
from sfteval.probes.base import PlannedRequest, Probe, ProbeContext, ProbeParams, register_probe
from sfteval.runner import RunConfig, RunResult, run_suite
from sfteval.suite import load_suite

FAKE_ENGINE = "test-fake"


@dataclass
class Script:
    """What the fake engines computed, and when they should simulate a Ctrl-C."""

    computed: list[tuple[str, str]] = field(default_factory=list)
    interrupt_after: int | None = None
    error: type[BaseException] = KeyboardInterrupt


SCRIPT = Script()


class FakeEngine(ScriptedEngine):
    """Deterministic answers that depend on the variant, so every variant's records differ."""

    def answer(self, request: GenerationRequest) -> Generation:
        return Generation(f"{self.variant.name} says {request.prompt}", 4, "stop")

    def before(self, requests: Sequence[GenerationRequest] | Sequence[ScoreRequest]) -> None:
        for request in requests:
            if SCRIPT.interrupt_after is not None and len(SCRIPT.computed) >= SCRIPT.interrupt_after:
                raise SCRIPT.error
            SCRIPT.computed.append((self.variant.name, request.key()))


register_scripted(FAKE_ENGINE, FakeEngine)


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
                PlannedRequest(item, cluster, "-", GenerationRequest(prompt, self.generation.max_new_tokens))
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


def test_command_line_generation_overrides_reach_every_probe_and_the_report(
    ckpt: Path, suite_path: Path, tmp_path: Path
) -> None:
    """--max-new-tokens wins over the suite's generation block and the probes' own parameters, and is recorded."""
    arguments = ["run", "--ckpt", str(ckpt), "--suite", str(suite_path), "--engine", FAKE_ENGINE,
                 "--out", str(tmp_path / "run"), "--max-new-tokens", "3"]  # fmt: skip
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    generated = [json.loads(key[4:]) for _, key in SCRIPT.computed if key.startswith("gen:")]
    assert generated and {request["max_new_tokens"] for request in generated} == {3}
    suite = load_report(tmp_path / "run").run.suite
    assert suite["generation_overrides"] == {"max_new_tokens": 3}
    assert suite["generation"]["max_new_tokens"] == 8


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["--engine", "hf-fast"], "unknown engine 'hf-fast'"),
        (["--train-template", "chatmll"], "did you mean 'chatml'"),
        (["--batch-size", "0"], "--batch-size"),
        (["--threads", "abc"], "--threads: Value error, 'abc' is neither a number of threads nor auto"),
        (["--threads", "0"], "--threads: Value error, threads must be at least 1"),
        (["--suite", "nope"], "unknown suite 'nope'"),
        (["--variants", " , "], "--variants"),
    ],
)
def test_bad_command_options_are_user_errors(ckpt: Path, arguments: list[str], words: str) -> None:
    result = CliRunner().invoke(app, ["run", "--ckpt", str(ckpt), *arguments])
    assert isinstance(result.exception, UserError), result.output
    assert words in str(result.exception)
