"""Shared-context scoring equals one full pass per request (the row path, itself checked against lm-eval's HFLM).

The requests exercise every branch: options of one and of several tokens, a preamble long enough to get its own
prefix pass, a context with a single option, an empty context and an empty continuation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hf_reference import assert_same_scores

from sfteval.core.requests import ScoreRequest
from sfteval.core.variants import Variant
from sfteval.engines.config import EngineConfig
from sfteval.engines.hf.engine import HFEngineFactory

# A long shared preamble (like few-shot examples) makes the engine run the common prefix once for the batch.
PREAMBLE = "the river of the city is blue and the mountain of the country is green. " * 8
QUESTIONS = (
    "Question: what is the capital of france?\nAnswer:",
    "Question: name a blue bird.\nAnswer:",
    "Q:",
    PREAMBLE + "Question: one?\nAnswer:",
    PREAMBLE + "Question: two or three?\nAnswer:",
)
OPTIONS = (
    " paris",
    " the city of paris in france",
    " a",
    " red green blue cat dog",
    " one two three four five six",
)


def score_requests_over(
    contexts: tuple[str, ...] = QUESTIONS, options: tuple[str, ...] = OPTIONS
) -> list[ScoreRequest]:
    """Every option under every context (some with ranks, some with top-k), plus requests that share nothing or
    score nothing."""
    requests = [
        ScoreRequest(context, option, ranks=index % 2 == 0, top_k=5 if index % 3 == 0 else 0)
        for context in contexts
        for index, option in enumerate(options)
    ]
    return [
        *requests,
        ScoreRequest("", "standalone text"),
        ScoreRequest("lonely context", " x"),
        ScoreRequest("a", ""),
    ]


@pytest.fixture(scope="module")
def both_paths(tiny_model_dir: Path):
    import torch

    from sfteval.engines.hf.batches import score_requests
    from sfteval.engines.hf.shared_context import score_with_shared_contexts

    factory = HFEngineFactory(EngineConfig(device="cpu", batch_size=2))
    engine = factory.engine(Variant("base", tiny_model_dir))
    requests = score_requests_over()
    with torch.inference_mode(), factory.runtime(engine._base_path, engine._adapter_path) as runtime:
        return (
            requests,
            score_requests(runtime, requests, None),
            score_with_shared_contexts(runtime, requests, None),
        )


def test_shared_contexts_give_the_same_scores_as_full_rows(both_paths) -> None:
    requests, rows, shared = both_paths
    assert len(shared) == len(requests)
    assert_same_scores(rows, shared)


def test_the_engine_scores_through_the_shared_path_and_reports_progress(
    tiny_model_dir: Path, both_paths
) -> None:
    requests, rows, _ = both_paths
    engine = HFEngineFactory(EngineConfig(device="cpu", batch_size=4)).engine(Variant("base", tiny_model_dir))
    finished: list[int] = []
    scores = engine.score(requests, finished.append)
    assert sum(finished) == len(requests)
    assert [score.logprob for score in scores] == pytest.approx([score.logprob for score in rows], abs=1e-4)


def test_a_group_that_would_need_truncation_falls_back_to_full_rows(tiny_model_dir: Path) -> None:
    factory = HFEngineFactory(EngineConfig(device="cpu", batch_size=4, max_length=12))
    engine = factory.engine(Variant("base", tiny_model_dir))
    long_context = "the river of the city " * 6
    requests = [ScoreRequest(long_context, option) for option in (" one", " two three")]
    reference = HFEngineFactory(EngineConfig(device="cpu", batch_size=1, max_length=12))
    one_by_one = [
        reference.engine(Variant("base", tiny_model_dir)).score([request])[0] for request in requests
    ]
    assert [score.logprob for score in engine.score(requests)] == pytest.approx(
        [score.logprob for score in one_by_one], abs=1e-5
    )
