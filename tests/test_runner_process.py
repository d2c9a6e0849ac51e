"""`sfteval run` as a process on a tiny Llama with two LoRA epoch adapters: SIGINT at chosen phases (through the
SFTEVAL_TEST_INTERRUPT_AT hook, not a timer) exits 130 with an incomplete report and the records done; the rerun
resumes from the cache; a kill -9 mid-run then a rerun gives the records of a clean run."""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

import pytest
import tiny
from run_fixtures import if_suite, run_process, sfteval_command

from sfteval.core.records import ItemRecord
from sfteval.core.report import load_report


def items(out: Path) -> list[str]:
    return sorted((out / "items.jsonl").read_text().splitlines())


@pytest.fixture(scope="module")
def lora_ckpt(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An HF Trainer-style output dir: two epochs of randomly initialised LoRA adapters on the tiny model."""
    return tiny.save_lora_epochs(tiny_model_dir, tmp_path_factory.mktemp("lora-sft"), epochs=2)


# (where SIGINT lands, results committed to the cache by then, variants whose records are written by then), on
# base + 2 epochs x 8 prompts with --batch-size 1: the cache commits chunks of 4 results (runner.COMMIT_BATCHES).
INTERRUPTIONS = [
    ("generate:3", 0, 0),  # base's third generation finished, inside its first chunk of 4: nothing committed
    ("generate:7", 4, 0),  # base's first chunk committed, the second in flight
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
    """SIGKILL while epoch-1 generates (no clean-up runs at all): the rerun's records equal an uninterrupted run's.

    Base's 8 generations are two committed chunks of 4; the kill lands in epoch-1's first chunk."""
    suite = if_suite(tmp_path, limit=8, max_new_tokens=16)
    arguments = ("--ckpt", str(lora_ckpt), "--suite", str(suite), "--batch-size", "1")
    killed = run_process(sfteval_command(*arguments, "--out", str(tmp_path / "run")), "generate:11:SIGKILL")
    assert killed.returncode == -signal.SIGKILL
    assert _rows(tmp_path / "run") == 8 and not (tmp_path / "run" / "report.json").exists()
    rerun = run_process(sfteval_command(*arguments, "--out", str(tmp_path / "run")))
    assert rerun.returncode == 0, rerun.stderr
    assert "took over the lock" in rerun.stdout
    clean = run_process(sfteval_command(*arguments, "--out", str(tmp_path / "clean")))
    assert clean.returncode == 0, clean.stderr
    assert items(tmp_path / "run") == items(tmp_path / "clean") and len(items(tmp_path / "clean")) == 24
    assert load_report(tmp_path / "run").run.cache_hits == 8


def _rows(out: Path) -> int:
    """Results committed to the run's cache so far (0 before the database exists)."""
    if not (out / "cache.sqlite").exists():
        return 0
    try:
        with sqlite3.connect(out / "cache.sqlite", timeout=1) as connection:
            return connection.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
