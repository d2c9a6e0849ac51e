"""One writer per run directory (sfteval.run_lock), and runs that share a result cache.

A run that must be caught mid-way stops itself (SIGSTOP through the SFTEVAL_TEST_INTERRUPT_AT hook) while it holds
its lock; the test waits for the stop with waitpid, so nothing depends on timing.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from run_fixtures import full_checkpoint, if_suite, invoke, run_process, sfteval_command

from sfteval.core.interrupts import TEST_VARIABLE
from sfteval.run_lock import LOCK_FILE


@pytest.fixture(scope="module")
def ckpt(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return full_checkpoint(tiny_model_dir, tmp_path_factory.mktemp("lock"))


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return if_suite(tmp_path_factory.mktemp("suite"), limit=3, max_new_tokens=4)


def arguments(ckpt: Path, suite: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--ckpt", str(ckpt), "--suite", str(suite), "--out", str(out), "--engine", "hf",
            "--device", "cpu", "--batch-size", "1", *extra]  # fmt: skip


@contextmanager
def stopped_run(command: list[str], phase: str) -> Iterator[subprocess.Popen[str]]:
    """A run that stops itself (SIGSTOP) at `phase`; continued and finished when the block ends."""
    environment = {**os.environ, TEST_VARIABLE: f"{phase}:SIGSTOP"}
    process = subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _, status = os.waitpid(process.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), process.communicate()
        yield process
    finally:
        process.send_signal(signal.SIGCONT)
        process.communicate(timeout=300)


def records(out: Path) -> list[str]:
    return sorted((out / "items.jsonl").read_text().splitlines())


def test_a_second_run_on_the_same_out_exits_2_naming_the_first(
    ckpt: Path, suite: Path, tmp_path: Path
) -> None:
    """Two `sfteval run` on one --out: the second stops at once with one line; the first finishes, each record once."""
    out = tmp_path / "run"
    command = sfteval_command(
        "--ckpt", str(ckpt), "--suite", str(suite), "--out", str(out), "--batch-size", "1"
    )
    with stopped_run(command, "generate:2") as first:
        holder = json.loads((out / LOCK_FILE).read_text())
        assert holder["pid"] == first.pid
        second = run_process(command)
        assert second.returncode == 2
        assert second.stderr.strip().splitlines() == [
            f"error: {out}: another sfteval run (pid {first.pid}, started {holder['started']}) is writing this "
            "run directory (wait for it to finish, or give this run another --out)"
        ]
    assert first.returncode == 0
    lines = records(out)
    assert len(lines) == 6 and len(set(lines)) == 6
    assert not (out / LOCK_FILE).exists()


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_warning(
    ckpt: Path,
    suite: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(gone.stdout)
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_FILE).write_text(json.dumps({"pid": dead_pid, "started": "2020-01-01T00:00:00+00:00"}))
    code, stdout, stderr = invoke(arguments(ckpt, suite, out), monkeypatch, capsys)
    assert code == 0, stderr
    assert (
        f"warning: {out / LOCK_FILE}: took over the lock of a run that is no longer running "
        f"(pid {dead_pid}, started 2020-01-01T00:00:00+00:00)"
    ) in stdout
    assert not (out / LOCK_FILE).exists() and len(records(out)) == 6


def test_a_locked_run_directory_is_left_untouched(
    ckpt: Path,
    suite: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A run refused by the lock changes nothing there: report.json, report.html and items.jsonl stay as they were."""
    out = tmp_path / "run"
    assert invoke(arguments(ckpt, suite, out), monkeypatch, capsys)[0] == 0
    before = {name: (out / name).read_bytes() for name in ("report.json", "report.html", "items.jsonl")}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        code, _, stderr = invoke(arguments(ckpt, suite, out), monkeypatch, capsys)
    finally:
        holder.communicate("")
    assert code == 2 and f"another sfteval run (pid {holder.pid}," in stderr and len(stderr.splitlines()) == 1
    assert {name: (out / name).read_bytes() for name in before} == before


HOLD_LOCK = """
import sys
from pathlib import Path
from sfteval.run_lock import hold_run_directory
with hold_run_directory(Path(sys.argv[1]), print):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_two_runs_sharing_one_cache_both_finish(ckpt: Path, suite: Path, tmp_path: Path) -> None:
    """One run stops mid-generation while another, on another --out, uses the same --cache: both finish whole."""
    cache = tmp_path / "shared.sqlite"
    first_out, second_out = tmp_path / "first", tmp_path / "second"
    common = ("--ckpt", str(ckpt), "--suite", str(suite), "--cache", str(cache), "--batch-size", "1")
    with stopped_run(sfteval_command(*common, "--out", str(first_out)), "generate:2") as first:
        second = run_process(sfteval_command(*common, "--out", str(second_out)))
        assert second.returncode == 0, second.stderr
    assert first.returncode == 0
    assert records(first_out) == records(second_out) and len(records(first_out)) == 6
    with sqlite3.connect(cache) as connection:
        assert connection.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 6  # each result once


def test_a_run_that_fails_before_writing_leaves_no_directory_behind(
    suite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh = tmp_path / "fresh"
    code, _, stderr = invoke(arguments(tmp_path / "nope", suite, fresh), monkeypatch, capsys)
    assert code == 2 and "directory not found" in stderr
    assert not fresh.exists()
