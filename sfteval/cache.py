"""A sqlite result cache that is itself an Engine: reruns, resumed runs and added epochs cost only what is new.

Results are keyed by (engine fingerprint, request key) and stored as JSON. The database runs in WAL mode and the
missing requests go to the wrapped engine one chunk at a time, each chunk committed as soon as it returns, so a
crash, Ctrl-C or `kill -9` loses at most the chunk in flight and the next run resumes from the rest.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from sfteval.core.errors import UserError
from sfteval.core.requests import Generation, GenerationRequest, ProgressCallback, Score, ScoreRequest
from sfteval.engines.base import Engine

DEFAULT_CHUNK_SIZE = 16
_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    fingerprint TEXT NOT NULL,
    request_key TEXT NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (fingerprint, request_key)
) WITHOUT ROWID
"""

RequestT = TypeVar("RequestT", GenerationRequest, ScoreRequest)
ResultT = TypeVar("ResultT", Generation, Score)


def _generation_from_json(data: dict[str, Any]) -> Generation:
    return Generation(**data)


def _score_from_json(data: dict[str, Any]) -> Score:
    ranks = data.get("ranks")
    top = data.get("top_logprobs")
    return Score(
        logprob=data["logprob"],
        token_logprobs=tuple(data["token_logprobs"]),
        is_greedy=data["is_greedy"],
        tokens=tuple(data["tokens"]),
        ranks=tuple(ranks) if ranks is not None else None,
        top_logprobs=None if top is None else tuple(tuple((int(t), lp) for t, lp in row) for row in top),
    )


class CachedEngine:
    """Wraps an engine: answers known requests from sqlite, sends the rest on in committed chunks.

    `hits` counts requests answered from the cache, `misses` the distinct requests the engine computed (counted
    per committed chunk, so an interrupted call still reports what it saved).
    """

    def __init__(self, engine: Engine, db_path: Path, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.engine = engine
        self.name = engine.name
        self.db_path = Path(db_path)
        self.chunk_size = max(1, chunk_size)
        self.hits = 0
        self.misses = 0
        self._connection = open_cache(self.db_path)

    @property
    def fingerprint(self) -> str:
        return self.engine.fingerprint

    @property
    def tokenizer(self) -> Any:
        """The wrapped engine's tokenizer (probes need it to plan; engines without one give None)."""
        return getattr(self.engine, "tokenizer", None)

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[Generation]:
        # Equal token budgets share a chunk (a chunk decodes as long as its longest row), then similar prompts.
        return self._run(
            requests,
            self.engine.generate,
            _generation_from_json,
            lambda r: (-r.max_new_tokens, -len(r.prompt)),
            progress,
        )

    def score(
        self, requests: Sequence[ScoreRequest], progress: ProgressCallback | None = None
    ) -> list[Score]:
        return self._run(
            requests,
            self.engine.score,
            _score_from_json,
            # Options of one context stay together, so the engine can run their shared context once.
            lambda r: (-len(r.context), r.context, -len(r.continuation)),
            progress,
        )

    def close(self) -> None:
        self._connection.close()

    def _run(
        self,
        requests: Sequence[RequestT],
        compute: Callable[[Sequence[RequestT], ProgressCallback | None], list[ResultT]],
        decode: Callable[[dict[str, Any]], ResultT],
        order: Callable[[RequestT], Any],
        progress: ProgressCallback | None,
    ) -> list[ResultT]:
        """Answer `requests` in order: cached ones first, then the missing ones chunk by chunk."""
        keys = [request.key() for request in requests]
        found = {key: decode(value) for key, value in self._lookup(set(keys)).items()}
        self.hits += sum(1 for key in keys if key in found)
        if progress is not None and found:
            progress(sum(1 for key in keys if key in found))
        missing: dict[str, RequestT] = {}
        for key, request in zip(keys, requests, strict=True):
            if key not in found:
                missing.setdefault(key, request)
        # Longest first: similar lengths share a chunk (little padding) and an out-of-memory error shows up early.
        pending = sorted(missing.items(), key=lambda item: order(item[1]))
        # Chunks of equal size (at most chunk_size), so no small last chunk runs a batch of its own.
        chunks = max(1, math.ceil(len(pending) / self.chunk_size))
        size = max(1, math.ceil(len(pending) / chunks))
        for start in range(0, len(pending), size):
            chunk = pending[start : start + size]
            results = compute([request for _, request in chunk], progress)
            if len(results) != len(chunk):
                raise RuntimeError(
                    f"engine {self.name} returned {len(results)} results for {len(chunk)} requests"
                )
            self._store([(key, result) for (key, _), result in zip(chunk, results, strict=True)])
            found.update((key, result) for (key, _), result in zip(chunk, results, strict=True))
            self.misses += len(chunk)
        return [found[key] for key in keys]

    def _lookup(self, keys: set[str]) -> dict[str, dict[str, Any]]:
        """Cached results among `keys` for this engine's fingerprint."""
        found: dict[str, dict[str, Any]] = {}
        ordered = sorted(keys)
        for start in range(0, len(ordered), 500):
            batch = ordered[start : start + 500]
            rows = self._connection.execute(
                f"SELECT request_key, result FROM results WHERE fingerprint = ? "
                f"AND request_key IN ({', '.join('?' * len(batch))})",
                (self.fingerprint, *batch),
            )
            found.update((key, json.loads(result)) for key, result in rows)
        return found

    def _store(self, items: Sequence[tuple[str, Generation | Score]]) -> None:
        """Write one chunk of results and commit it (the unit a crash can lose)."""
        with self._connection:
            self._connection.executemany(
                "INSERT OR REPLACE INTO results (fingerprint, request_key, result) VALUES (?, ?, ?)",
                [
                    (self.fingerprint, key, json.dumps(asdict(result), ensure_ascii=False))
                    for key, result in items
                ],
            )


def open_cache(db_path: Path) -> sqlite3.Connection:
    """Open (creating) the cache database in WAL mode; an unusable file is the user's error."""
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(db_path)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(_SCHEMA)
        connection.commit()
    except (sqlite3.DatabaseError, OSError) as error:
        raise UserError(f"{db_path}: cannot open the result cache ({error})") from None
    return connection
