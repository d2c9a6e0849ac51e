"""The sqlite result cache: hits and misses, order, chunked commits that survive a crash, fingerprint isolation."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest

from sfteval.cache import CachedEngine
from sfteval.core.errors import UserError
from sfteval.core.requests import Generation, GenerationRequest, ProgressCallback, Score, ScoreRequest
from sfteval.engines.base import Engine


class CountingEngine:
    """A deterministic fake engine that records every request it computes."""

    name = "fake"

    def __init__(self, fingerprint: str = "weights-a", fail_after: int | None = None) -> None:
        self._fingerprint = fingerprint
        self.fail_after = fail_after
        self.generated: list[GenerationRequest] = []
        self.scored: list[ScoreRequest] = []

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[Generation]:
        if self.fail_after is not None and len(self.generated) + len(requests) > self.fail_after:
            raise KeyboardInterrupt
        self.generated.extend(requests)
        if progress is not None:
            progress(len(requests))
        return [Generation(f"{self._fingerprint}:{r.prompt[::-1]}", len(r.prompt), "stop") for r in requests]

    def score(
        self, requests: Sequence[ScoreRequest], progress: ProgressCallback | None = None
    ) -> list[Score]:
        self.scored.extend(requests)
        return [
            Score(
                -float(len(r.continuation)),
                (-1.0,) * len(r.continuation),
                True,
                tuple(r.continuation),
                (1,) * 2,
            )
            for r in requests
        ]


def prompts(count: int) -> list[GenerationRequest]:
    return [GenerationRequest(prompt="x" * (index + 1), max_new_tokens=8) for index in range(count)]


def test_cached_engine_is_an_engine(tmp_path: Path) -> None:
    assert isinstance(CachedEngine(CountingEngine(), tmp_path / "cache.sqlite"), Engine)


def test_second_call_is_answered_from_the_cache_in_request_order(tmp_path: Path) -> None:
    requests = prompts(5)
    first = CachedEngine(CountingEngine(), tmp_path / "cache.sqlite", chunk_size=2)
    computed = first.generate(requests)
    assert (first.hits, first.misses) == (0, 5)
    inner = CountingEngine()
    second = CachedEngine(inner, tmp_path / "cache.sqlite")
    assert second.generate(list(reversed(requests))) == list(reversed(computed))
    assert (second.hits, second.misses, inner.generated) == (5, 0, [])


def test_only_missing_and_distinct_requests_reach_the_engine(tmp_path: Path) -> None:
    engine = CountingEngine()
    cache = CachedEngine(engine, tmp_path / "cache.sqlite")
    cache.generate(prompts(2))
    requests = [*prompts(4), prompts(4)[3]]
    results = cache.generate(requests)
    assert sorted(r.prompt for r in engine.generated) == ["x", "xx", "xxx", "xxxx"]
    assert results[3] == results[4]
    assert (cache.hits, cache.misses) == (2, 4)


def test_results_are_keyed_by_fingerprint(tmp_path: Path) -> None:
    CachedEngine(CountingEngine("weights-a"), tmp_path / "cache.sqlite").generate(prompts(2))
    other = CountingEngine("weights-b")
    results = CachedEngine(other, tmp_path / "cache.sqlite").generate(prompts(2))
    assert len(other.generated) == 2
    assert all(result.text.startswith("weights-b:") for result in results)


def test_scores_round_trip_through_json(tmp_path: Path) -> None:
    requests = [
        ScoreRequest(context="q", continuation="abc", ranks=True),
        ScoreRequest(context="q", continuation=""),
    ]
    computed = CachedEngine(CountingEngine(), tmp_path / "cache.sqlite").score(requests)
    cached = CachedEngine(CountingEngine(), tmp_path / "cache.sqlite").score(requests)
    assert cached == computed
    assert isinstance(cached[0].token_logprobs, tuple) and cached[0].ranks == (1, 1)


def test_progress_counts_hits_and_computed_requests(tmp_path: Path) -> None:
    CachedEngine(CountingEngine(), tmp_path / "cache.sqlite").generate(prompts(3))
    seen: list[int] = []
    CachedEngine(CountingEngine(), tmp_path / "cache.sqlite", chunk_size=2).generate(prompts(7), seen.append)
    assert sum(seen) == 7 and seen[0] == 3


def test_an_interruption_keeps_every_finished_chunk(tmp_path: Path) -> None:
    crashing = CachedEngine(CountingEngine(fail_after=4), tmp_path / "cache.sqlite", chunk_size=2)
    with pytest.raises(KeyboardInterrupt):
        crashing.generate(prompts(7))
    assert crashing.misses == 4
    resumed_engine = CountingEngine()
    resumed = CachedEngine(resumed_engine, tmp_path / "cache.sqlite", chunk_size=2)
    resumed.generate(prompts(7))
    assert (resumed.hits, resumed.misses) == (4, 3)
    assert len(resumed_engine.generated) == 3


def test_kill_9_loses_at_most_the_chunk_in_flight(tmp_path: Path) -> None:
    """A child process computes chunks and is SIGKILLed while the fourth is in flight; three chunks survive."""
    database = tmp_path / "cache.sqlite"
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_cache import CountingEngine, prompts
        from sfteval.cache import CachedEngine

        class Dying(CountingEngine):
            def generate(self, requests, progress=None):
                if len(self.generated) >= 6:
                    os.kill(os.getpid(), signal.SIGKILL)
                return super().generate(requests, progress)

        CachedEngine(Dying(), {str(database)!r}, chunk_size=2).generate(prompts(10))
        """
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert completed.returncode == -9
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT COUNT(*) FROM results").fetchone() == (6,)
    resumed = CachedEngine(CountingEngine(), database, chunk_size=2)
    resumed.generate(prompts(10))
    assert (resumed.hits, resumed.misses) == (6, 4)


def test_an_unusable_cache_file_is_a_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "cache.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(UserError, match="cache.sqlite"):
        CachedEngine(CountingEngine(), bad)
