"""`sfteval run --shard i/n` and `sfteval report --merge`: shards of a run, merged, give the unsharded run's report.

Most tests use a scripted fake engine whose answers depend on the variant (so comparisons, findings and the
recommendation are not trivial) and two small test probes, one of which scores every variant's answers under the
base model; the last test runs token_shift on a tiny Llama with LoRA epoch adapters.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import tiny
from fake_engine import ScriptedEngine, register_scripted
from probe_fixtures import base_scored_probe
from rich.console import Console

from sfteval import cli
from sfteval.commands.run import RUNS_DIR, default_out_dir
from sfteval.core.errors import UserError
from sfteval.core.metrics import MetricSpec
from sfteval.core.records import ItemRecord
from sfteval.core.report import load_report
from sfteval.core.requests import Generation, GenerationRequest, ScoreRequest
from sfteval.core.shard import Shard
from sfteval.core.variants import Variant
from sfteval.engines.config import EngineConfig
from sfteval.probes.base import PlannedRequest, Probe, ProbeContext, register_probe
from sfteval.runner import RunConfig, RunResult, run_suite
from sfteval.suite import load_suite

FAKE_ENGINE = "test-shard-fake"
ITEMS = 16
# Items answered correctly by each variant: epoch-2 is clearly best, epoch-3 falls back.
SOLVED = {"base": 4, "epoch-1": 10, "epoch-2": 15, "epoch-3": 8}
INTERRUPT = {"after": None, "computed": 0}


class ShardFakeEngine(ScriptedEngine):
    """Answers 'yes' to question i when the variant solves it; scores depend on the variant (base scores higher)."""

    def answer(self, request: GenerationRequest) -> Generation:
        solved = int(request.prompt.split()[-1]) < SOLVED[self.variant.name]
        return Generation(f"{'yes' if solved else 'no'} from {self.variant.name}", 3, "stop")

    def before(self, requests: Sequence[GenerationRequest] | Sequence[ScoreRequest]) -> None:
        if INTERRUPT["after"] is not None and INTERRUPT["computed"] >= INTERRUPT["after"]:
            raise KeyboardInterrupt
        INTERRUPT["computed"] += len(requests)


register_scripted(FAKE_ENGINE, ShardFakeEngine)


@register_probe
class AnswerProbe(Probe):
    """One question per item; `correct` is the binary headline metric."""

    name = "test_shard_answers"
    metrics = (MetricSpec("correct", "answered yes", binary=True, headline=True),)

    def plan(self, context: ProbeContext) -> list[PlannedRequest]:
        return [
            PlannedRequest(f"q{index}", f"q{index}", "-", GenerationRequest(f"question {index}", 4))
            for index in range(ITEMS)
        ]

    def records(self, context, planned, results) -> list[ItemRecord]:
        return [
            self.record(context, request, {"correct": int(result.text.startswith("yes"))}, output=result.text)
            for request, result in zip(planned, results, strict=True)
        ]


BaseScoredAnswerProbe = base_scored_probe("test_shard_base_scored", "prompt", items=6, max_new_tokens=4)

SUITE_TEXT = """
seed: 5
generation: {max_new_tokens: 4}
probes:
  test_shard_answers: {}
  test_shard_base_scored: {}
"""


@pytest.fixture(autouse=True)
def no_interrupt():
    INTERRUPT.update(after=None, computed=0)
    yield


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    """An HF Trainer output dir: a base model dir and three epoch checkpoints holding (fake) LoRA adapters."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "model.safetensors").write_bytes(b"")
    out = tmp_path / "sft"
    for epoch in (1, 2, 3):
        directory = out / f"checkpoint-{10 * epoch}"
        directory.mkdir(parents=True)
        (directory / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
        (directory / "adapter_model.safetensors").write_bytes(b"")
        (directory / "trainer_state.json").write_text(json.dumps({"epoch": float(epoch)}))
    return out


@pytest.fixture
def suite_path(tmp_path: Path) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE_TEXT)
    return path


def run(ckpt: Path, suite: Path, out: Path, shard: str | None = None, **options: Any) -> RunResult:
    config = RunConfig(
        ckpt_dir=ckpt,
        suite=load_suite(suite),
        out_dir=out,
        engine=FAKE_ENGINE,
        engine_config=EngineConfig(batch_size=4),
        shard=None if shard is None else Shard.parse(shard),
        **options,
    )
    return run_suite(config, Console(file=io.StringIO(), width=120))


def run_main(monkeypatch, capsys, *arguments: str) -> tuple[int, str, str]:
    """The console-script entry point in-process (so the fake engine is registered): exit code, stdout, stderr."""
    monkeypatch.setattr(sys, "argv", ["sfteval", *arguments])
    monkeypatch.setenv("COLUMNS", "200")
    try:
        cli.main()
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code if isinstance(exit_info.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def merge(monkeypatch, capsys, out: Path, *directories: Path) -> tuple[int, str, str]:
    return run_main(monkeypatch, capsys, "report", "--merge", *map(str, directories), "--out", str(out))


def one_line_error(code: int, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


def comparable(path: Path) -> dict[str, Any]:
    """A report.json without what differs between a sharded and an unsharded run (timings, dates, shard)."""
    data = json.loads((path / "report.json").read_text())
    run = data.pop("run")
    for key in ("created_at", "timings", "shard", "cache_hits", "cache_misses"):
        run.pop(key)
    return {**data, "run": run}


def item_lines(path: Path) -> Counter[str]:
    return Counter((path / "items.jsonl").read_text().splitlines())


def test_shard_spec_selects_every_nth_variant() -> None:
    variants = [Variant(name, Path(name)) for name in ("base", "epoch-1", "epoch-2", "epoch-3", "final")]
    names = {index: [v.name for v in Shard.parse(f"{index}/2").select(variants)] for index in (1, 2)}
    assert names == {1: ["base", "epoch-2", "final"], 2: ["epoch-1", "epoch-3"]}
    assert [v.name for v in Shard.parse(" 3/3 ").select(variants)] == ["epoch-2"]
    assert [v.name for v in Shard.parse("1/1").select(variants)] == [v.name for v in variants]
    assert str(Shard.parse("2/5")) == "2/5" and Shard(2, 5).position(1) == 6
    with pytest.raises(UserError, match="no variants for this shard"):
        Shard.parse("6/6").select(variants)
    shard = Shard.parse("1/2")
    assert default_out_dir(Path("runs/sft"), "quick", shard) == RUNS_DIR / "sft-quick-shard1of2"
    assert default_out_dir(Path("runs/sft"), "quick", None) == RUNS_DIR / "sft-quick"


def test_a_shard_runs_its_variants_and_scores_them_under_the_base(
    ckpt: Path, suite_path: Path, tmp_path: Path
) -> None:
    result = run(ckpt, suite_path, tmp_path / "shard2", shard="2/2")
    assert result.complete and result.report.run.shard == "2/2"
    assert [variant.name for variant in result.report.run.variants] == ["epoch-1", "epoch-3"]
    assert "shard 2/2; variants epoch-1, epoch-3" in (tmp_path / "shard2" / "run.log").read_text()
    records = [ItemRecord.model_validate_json(line) for line in item_lines(tmp_path / "shard2")]
    scored = [record for record in records if record.probe == "test_shard_base_scored"]
    # The base variant is in shard 1, yet the base engine scored these (a fine-tuned engine subtracts 0.5).
    assert len(scored) == 12 and all(r.metrics["base_logprob"] == -len(r.output) for r in scored)
    assert json.loads((tmp_path / "shard2" / "report.json").read_text())["run"]["shard"] == "2/2"
    whole = run(ckpt, suite_path, tmp_path / "whole")
    assert whole.report.run.shard is None


def test_merged_shards_give_the_unsharded_report_and_items(
    ckpt: Path, suite_path: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    run(ckpt, suite_path, tmp_path / "whole")
    shards = [tmp_path / "shard1", tmp_path / "shard2"]
    run(ckpt, suite_path, shards[0], shard="1/2")
    run(ckpt, suite_path, shards[1], shard="2/2")
    code, out, err = merge(monkeypatch, capsys, tmp_path / "merged", shards[1], shards[0])
    assert code == 0, err
    merged, whole = comparable(tmp_path / "merged"), comparable(tmp_path / "whole")
    assert [variant["name"] for variant in merged["run"]["variants"]] == [
        "base",
        "epoch-1",
        "epoch-2",
        "epoch-3",
    ]
    keys = ("probes", "comparisons", "findings", "finding_groups", "recommendation", "notes", "stats", "run")
    for key in keys:
        assert merged[key] == whole[key], key
    assert {c["relation"] for c in merged["comparisons"]} == {"base", "previous"}
    assert "headline_improvement_vs_base" in {finding["kind"] for finding in merged["findings"]}
    # epoch-2 scores best, but +31 points over 16 items is not significant after Holm: the earliest fit epoch.
    assert merged["recommendation"]["variant"] == "epoch-1"
    assert item_lines(tmp_path / "merged") == item_lines(tmp_path / "whole")
    report = load_report(tmp_path / "merged")
    parts = [load_report(shard).run for shard in shards]
    assert report.run.shard is None and report.run.complete
    assert report.run.cache_misses == sum(part.cache_misses for part in parts)
    assert report.run.timings["total"] == max(part.timings["total"] for part in parts)
    assert "shard 1/2" in report.run.timings and "epoch-3/generate" in report.run.timings
    assert (tmp_path / "merged" / "report.html").is_file()
    assert "test_shard_answers" in out and "merged run directory" in out
    assert "merge: 2 shards" in (tmp_path / "merged" / "run.log").read_text()


def test_an_incomplete_shard_makes_the_merged_report_incomplete(
    ckpt: Path, suite_path: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    run(ckpt, suite_path, tmp_path / "shard1", shard="1/2")
    INTERRUPT.update(after=30, computed=0)
    interrupted = run(ckpt, suite_path, tmp_path / "shard2", shard="2/2")
    INTERRUPT.update(after=None)
    assert not interrupted.complete
    assert [variant.name for variant in interrupted.report.run.variants] == ["epoch-1"]
    code, out, err = merge(monkeypatch, capsys, tmp_path / "merged", tmp_path / "shard1", tmp_path / "shard2")
    assert code == 0, err
    report = load_report(tmp_path / "merged")
    assert not report.run.complete
    assert [variant.name for variant in report.run.variants] == ["base", "epoch-1", "epoch-2"]
    assert any(finding.kind == "incomplete_run" for finding in report.findings)
    assert "shard 2/2" in out and "is incomplete" in out


@pytest.mark.parametrize("spec", ["0/2", "3/2", "a/b", "1/0", "1/2/3", ""])
def test_a_bad_shard_spec_is_a_one_line_error(
    ckpt: Path, spec: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(monkeypatch, capsys, "run", "--ckpt", str(ckpt), "--shard", spec)
    assert "--shard" in one_line_error(code, err)


def test_an_empty_shard_and_a_gated_shard_are_one_line_errors(
    ckpt: Path, suite_path: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    common = ["run", "--ckpt", str(ckpt), "--suite", str(suite_path), "--engine", FAKE_ENGINE]
    code, _, err = run_main(monkeypatch, capsys, *common, "--variants", "base,epoch-1", "--shard", "3/3")
    assert "no variants for this shard" in one_line_error(code, err)
    code, _, err = run_main(monkeypatch, capsys, *common, "--shard", "1/2", "--gate", "default")
    assert "--gate" in one_line_error(code, err)


def test_engine_arguments_are_recorded_and_the_device_may_differ_between_shards(
    ckpt: Path, suite_path: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    common = ["run", "--ckpt", str(ckpt), "--suite", str(suite_path), "--engine", FAKE_ENGINE]
    vllm_arguments = ["--engine-arg", "tensor_parallel_size=2", "--engine-arg", "quantization=fp8"]
    for index, device in ((1, "cuda:0"), (2, "cuda:1")):
        out = str(tmp_path / f"shard{index}")
        code, _, err = run_main(
            monkeypatch,
            capsys,
            *common,
            *vllm_arguments,
            "--device",
            device,
            "--shard",
            f"{index}/2",
            "--out",
            out,
        )
        assert code == 0, err
    extra = load_report(tmp_path / "shard2").run.engine_config["extra"]
    assert extra == {"tensor_parallel_size": 2, "quantization": "fp8"}
    code, _, err = merge(monkeypatch, capsys, tmp_path / "merged", tmp_path / "shard1", tmp_path / "shard2")
    assert code == 0, err
    assert load_report(tmp_path / "merged").run.engine_config["device"] == "cuda:0"
    out = str(tmp_path / "shard2")
    code, _, err = run_main(monkeypatch, capsys, *common, "--shard", "2/2", "--out", out)
    assert code == 0, err
    code, _, err = merge(monkeypatch, capsys, tmp_path / "merged", tmp_path / "shard1", tmp_path / "shard2")
    assert "run.engine_config differs" in one_line_error(code, err)
    code, _, err = run_main(monkeypatch, capsys, *common, "--engine-arg", "tensor_parallel_size")
    assert "--engine-arg" in one_line_error(code, err)


def test_shards_of_different_runs_are_refused_naming_what_differs(
    ckpt: Path, suite_path: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    run(ckpt, suite_path, tmp_path / "shard1", shard="1/2")
    other_suite = tmp_path / "other.yaml"
    other_suite.write_text(SUITE_TEXT.replace("seed: 5", "seed: 6"))
    run(ckpt, other_suite, tmp_path / "shard2", shard="2/2")
    code, _, err = merge(monkeypatch, capsys, tmp_path / "merged", tmp_path / "shard1", tmp_path / "shard2")
    assert re.search(
        r"shard2/report\.json: run\.suite differs from .*shard1/report\.json", one_line_error(code, err)
    )
    assert not (tmp_path / "merged").exists()


def test_overlapping_shards_are_refused(
    ckpt: Path, suite_path: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    run(ckpt, suite_path, tmp_path / "shard1", shard="1/2")
    # Filtered to base, epoch-2, epoch-3, share 2 of 2 holds epoch-2, which shard 1 of the whole run holds too.
    run(ckpt, suite_path, tmp_path / "shard2", shard="2/2", variants=("base", "epoch-2", "epoch-3"))
    code, _, err = merge(monkeypatch, capsys, tmp_path / "merged", tmp_path / "shard1", tmp_path / "shard2")
    assert "variant 'epoch-2' is in both" in one_line_error(code, err)
    code, _, err = merge(monkeypatch, capsys, tmp_path / "merged", tmp_path / "shard1")
    assert "shard 2/2 missing" in one_line_error(code, err)


def test_unreadable_or_unsharded_inputs_are_refused_naming_the_file(
    ckpt: Path, suite_path: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    shards = [tmp_path / "shard1", tmp_path / "shard2"]
    run(ckpt, suite_path, shards[0], shard="1/2")
    run(ckpt, suite_path, shards[1], shard="2/2")
    run(ckpt, suite_path, tmp_path / "whole", variants=("epoch-1",))
    code, _, err = merge(monkeypatch, capsys, tmp_path / "merged", shards[0], tmp_path / "whole")
    assert "whole/report.json: not a shard" in one_line_error(code, err)
    code, _, err = merge(monkeypatch, capsys, shards[0], *shards)
    assert "is one of the shards being merged" in one_line_error(code, err)
    code, _, err = run_main(monkeypatch, capsys, "report", "--merge", *map(str, shards))
    assert "--out" in one_line_error(code, err)
    (shards[1] / "items.jsonl").write_text('{"probe": \n')
    code, _, err = merge(monkeypatch, capsys, tmp_path / "merged", *shards)
    assert "shard2/items.jsonl:1: invalid JSON" in one_line_error(code, err)
    (shards[1] / "items.jsonl").unlink()
    code, _, err = merge(monkeypatch, capsys, tmp_path / "merged", *shards)
    assert "shard2/items.jsonl: item records missing" in one_line_error(code, err)
    (shards[1] / "report.json").write_text("{broken")
    code, _, err = merge(monkeypatch, capsys, tmp_path / "merged", *shards)
    assert "shard2/report.json:1: not valid JSON" in one_line_error(code, err)


TINY_SUITE = """
seed: 1
generation: {max_new_tokens: 6}
probes:
  token_shift: {limit: 3, max_new_tokens: 6}
"""


@pytest.fixture(scope="module")
def lora_ckpt(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An HF Trainer-style output dir: three epochs of randomly initialised LoRA adapters on the tiny model."""
    return tiny.save_lora_epochs(tiny_model_dir, tmp_path_factory.mktemp("lora-sft"), epochs=3)


def test_shards_on_a_tiny_model_merge_into_the_unsharded_report(
    lora_ckpt: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """token_shift (which scores every variant's answers under the base) on base + 3 LoRA epochs in 2 shards."""
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY_SUITE)
    common = ["run", "--ckpt", str(lora_ckpt), "--suite", str(suite), "--engine", "hf", "--device", "cpu"]
    # Shards and their merge apply no gate (gate the merged run with `sfteval gate`): the whole run neither.
    runs = (("whole", ["--no-gate"]), ("shard1", ["--shard", "1/2"]), ("shard2", ["--shard", "2/2"]))
    for name, shard in runs:
        code, _, err = run_main(
            monkeypatch, capsys, *common, "--batch-size", "4", "--out", str(tmp_path / name), *shard
        )
        assert code == 0, err
    code, _, err = merge(monkeypatch, capsys, tmp_path / "merged", tmp_path / "shard1", tmp_path / "shard2")
    assert code == 0, err
    merged, whole = comparable(tmp_path / "merged"), comparable(tmp_path / "whole")
    assert merged == whole
    assert len(merged["comparisons"]) > 0 and merged["run"]["variants"][0]["name"] == "base"
    assert item_lines(tmp_path / "merged") == item_lines(tmp_path / "whole")
