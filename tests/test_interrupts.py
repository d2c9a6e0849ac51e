"""Ctrl-C is never swallowed: counted SIGINTs (a bare `except:`, a `__del__`), held and deferred blocks, langdetect's
profiles loaded whole, and `sfteval run` interrupted before generation or while its engines close (the phases in
the middle of a run are in test_runner.py).

Every signal here is sent by the process to itself at a chosen point (signal.raise_signal or the
SFTEVAL_TEST_INTERRUPT_AT hook), never by a timer.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from run_fixtures import full_checkpoint, if_suite, run_process, sfteval_command

from sfteval.core import interrupts
from sfteval.core.interrupts import (
    TEST_VARIABLE,
    deferred_interrupts,
    held_interrupts,
    phase_reached,
    raise_if_interrupted,
    watch_interrupts,
)
from sfteval.probes.instruction_following import text

FRENCH = "Bonjour à tous, je suis très heureux de vous voir aujourd'hui dans notre belle ville de Paris."


@pytest.fixture(autouse=True)
def fresh_phases(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No phase visited yet, no hook set, and SIGINT at Python's default: a shell that starts pytest as a background
    job without job control (`make test &` in a script) leaves SIGINT ignored, and these tests are about Ctrl-C."""
    monkeypatch.setattr(interrupts, "_phases_reached", {})
    monkeypatch.delenv(TEST_VARIABLE, raising=False)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_swallowed_interrupt_is_raised_again_at_the_next_checkpoint() -> None:
    with watch_interrupts() as watch:
        try:
            signal.raise_signal(signal.SIGINT)
            pytest.fail("SIGINT did not raise")
        except BaseException:  # what a third-party bare `except:` does
            pass
        assert watch.received == 1
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()
    raise_if_interrupted()  # no watch: nothing counted, nothing raised


class InterruptedDestructor:
    """Ctrl-C lands in its `__del__`, where Python prints the KeyboardInterrupt and drops it (regex's Group.__del__
    during the garbage collection of `from peft import ...` did this)."""

    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)


def test_an_interrupt_dropped_in_a_destructor_is_raised_again(monkeypatch: pytest.MonkeyPatch) -> None:
    dropped = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: dropped.append(unraisable.exc_type))
    with watch_interrupts() as watch:
        InterruptedDestructor()
        assert dropped == [KeyboardInterrupt] and watch.received == 1
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()


def test_a_held_block_finishes_and_keeps_the_interrupt_counted() -> None:
    finished = []
    with watch_interrupts() as watch, held_interrupts():
        signal.raise_signal(signal.SIGINT)
        finished.append(True)
        raise_if_interrupted()  # held: not raised here
    assert finished == [True] and watch.received == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_deferred_block_runs_whole_then_raises() -> None:
    steps = []
    with pytest.raises(KeyboardInterrupt), deferred_interrupts():
        signal.raise_signal(signal.SIGINT)
        steps.append("after the signal")
    assert steps == ["after the signal"]


def test_a_deferred_block_inside_a_held_one_leaves_the_raise_to_it() -> None:
    with watch_interrupts() as watch, held_interrupts():
        with deferred_interrupts():
            signal.raise_signal(signal.SIGINT)
        assert watch.received == 1


def test_an_ignored_sigint_stays_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with watch_interrupts() as watch:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            signal.raise_signal(signal.SIGINT)
        assert watch.received == 0
    finally:
        signal.signal(signal.SIGINT, previous)


def test_phase_reached_signals_on_the_chosen_visit_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TEST_VARIABLE, "records:2")
    with watch_interrupts() as watch, held_interrupts():
        phase_reached("generate")
        phase_reached("records")
        assert watch.received == 0
        phase_reached("records")
        assert watch.received == 1
        phase_reached("records")
        assert watch.received == 1


def test_language_profiles_interrupted_while_loading_load_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGINT during the load: the load finishes (all 55 profiles), then KeyboardInterrupt; French stays French.

    langdetect alone turns that KeyboardInterrupt into LangDetectException (a bare `except:`), and keeps the
    profiles loaded so far: 'fr' then came out as 'ca'.
    """
    from langdetect import detector_factory

    monkeypatch.setattr(detector_factory, "_factory", None)
    text.load_language_profiles.cache_clear()
    text.detect_language.cache_clear()
    monkeypatch.setenv(TEST_VARIABLE, "language_profiles")
    with pytest.raises(KeyboardInterrupt):
        text.load_language_profiles()
    assert len(detector_factory._factory.get_lang_list()) == 55
    monkeypatch.delenv(TEST_VARIABLE)
    assert text.detect_language(FRENCH) == "fr"


@pytest.mark.parametrize(("phase", "records"), [("language_profiles", 0), ("close", 4)])
def test_run_interrupted_outside_generation_still_writes_an_incomplete_report(
    phase: str, records: int, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """SIGINT while langdetect's profiles load (before any generation) or inside `factory.close()` (gc.collect in
    the hf engine): exit 130, report.json with complete=false, the records done so far, no lock left behind."""
    ckpt = full_checkpoint(tiny_model_dir, tmp_path)
    out = tmp_path / "run"
    command = sfteval_command(
        "--ckpt", str(ckpt), "--suite", str(if_suite(tmp_path, 2, 4)), "--out", str(out)
    )
    result = run_process(command, phase)
    assert result.returncode == 130, result.stderr
    assert "interrupted" in result.stderr and "Traceback" not in result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["complete"] is False and len(report["run"]["variants"]) == records // 2
    assert len((out / "items.jsonl").read_text().splitlines()) == records
    assert (out / "report.html").exists() and not (out / "run.lock").exists()
