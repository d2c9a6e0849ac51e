"""Prefix-tree scoring (packed rows, 4D masks) equals one full pass per request, and shares what requests share.

The reference is the row path (`score_requests`, itself checked against a direct forward and lm-eval's HFLM). The
requests cover options of one and several tokens, options that open with the same token, duplicates, a long shared
preamble, requests that share nothing, an empty context and an empty continuation, ranks and top-k.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hf_reference import assert_same_scores, make_adapter
from test_engine_hf_shared import OPTIONS as SHARED_OPTIONS
from test_engine_hf_shared import PREAMBLE, QUESTIONS, score_requests_over

from sfteval.core.requests import ScoreRequest
from sfteval.core.variants import Variant
from sfteval.engines.config import EngineConfig
from sfteval.engines.hf import packed
from sfteval.engines.hf.batches import ScoreTarget, score_requests
from sfteval.engines.hf.engine import HFEngineFactory, model_runtime

CONTEXTS = (*QUESTIONS[:2], "Question: what is the capital of spain?\nAnswer:", *QUESTIONS[2:])
OPTIONS = (*SHARED_OPTIONS[:2], " the cat", *SHARED_OPTIONS[2:])


def _requests() -> list[ScoreRequest]:
    """The shared-context test's requests over one more context and option, a duplicate and a longer continuation."""
    requests = score_requests_over(CONTEXTS, OPTIONS)
    return [
        *requests,
        requests[0],
        ScoreRequest("write a sentence", "\nthe river is blue and the mountain is green."),
    ]


@pytest.fixture(scope="module")
def factory():
    factory = HFEngineFactory(EngineConfig(device="cpu", batch_size=2))
    yield factory
    factory.close()


@pytest.mark.parametrize("row_tokens", [16, 256])
def test_packed_scores_equal_full_rows(tiny_model_dir: Path, factory, row_tokens, monkeypatch) -> None:
    """Small rows force many rows and passes; large ones put several trees side by side in one row."""
    monkeypatch.setattr(packed, "ROW_TOKENS", row_tokens)
    engine = factory.engine(Variant("base", tiny_model_dir))
    requests = _requests()
    with factory.runtime(engine._base_path, None) as runtime:
        assert packed.packed_rows_apply(runtime)
        assert_same_scores(
            score_requests(runtime, requests, None), packed.score_packed(runtime, requests, None)
        )


def test_packed_scores_equal_full_rows_under_an_adapter(
    tiny_model_dir: Path, tmp_path: Path, factory
) -> None:
    adapter = make_adapter(tiny_model_dir, tmp_path / "adapter", seed=3)
    engine = factory.engine(Variant("epoch-1", adapter, kind="adapter", base_path=tiny_model_dir))
    requests = _requests()
    with factory.runtime(engine._base_path, engine._adapter_path) as runtime:
        assert packed.packed_rows_apply(runtime)
        assert_same_scores(
            score_requests(runtime, requests, None), packed.score_packed(runtime, requests, None)
        )


def test_eager_attention_takes_an_additive_mask_and_scores_the_same(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    runtime = replace(
        model_runtime(model, tokenizer, EngineConfig(batch_size=3), torch.device("cpu")), model=model
    )
    requests = _requests()
    with torch.no_grad():
        assert packed.four_d_mask_kind(model) == "additive"
        assert packed.packed_rows_apply(runtime)
        assert_same_scores(
            score_requests(runtime, requests, None), packed.score_packed(runtime, requests, None)
        )


def test_a_model_whose_logits_are_not_its_heads_keeps_the_row_path(tiny_model_dir: Path) -> None:
    """The once-per-model check compares the packed layout with the model's own forward."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    class ScaledLogits(LlamaForCausalLM):
        def forward(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            output = super().forward(*args, **kwargs)
            output.logits = output.logits * 2
            return output

    model = ScaledLogits.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    runtime = replace(model_runtime(model, tokenizer, EngineConfig(), torch.device("cpu")), model=model)
    with torch.no_grad():
        assert not packed.packed_rows_apply(runtime)


def test_sliding_windows_and_flash_kernels_get_no_packed_rows(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert packed.four_d_mask_kind(model) == "bool"
    model.config.sliding_window = 4
    assert packed.four_d_mask_kind(model) is None
    model.config.sliding_window = None
    model.config._attn_implementation = "flash_attention_2"
    assert packed.four_d_mask_kind(model) is None


def _feed(tokens: tuple[int, ...], context: int) -> tuple[ScoreTarget, tuple[int, ...]]:
    """A request whose input is `tokens` and whose continuation starts after `context` tokens."""
    continuation = (*tokens[context:], 0)
    return ScoreTarget(0, context - 1, continuation, False), tokens


def test_packs_hold_each_shared_token_once_and_see_only_ancestors() -> None:
    context = (1, 2, 3, 4, 5, 6, 7, 8)
    feeds = [
        _feed(context, 8),
        _feed((*context, 9), 8),
        _feed((*context, 10, 11), 8),
        _feed((*context, 9), 8),
    ]
    (pack,) = packed.build_packs(feeds, pair_weight=1 / 3456)
    assert pack.input_ids == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert pack.positions == [0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9]
    assert [path for _, path in pack.targets][-1] == [0, 1, 2, 3, 4, 5, 6, 7, 9, 10]
    assert [packed.scored_slots(target, path) for target, path in pack.targets] == [
        [7],
        [7, 8],
        [7, 8],
        [7, 9, 10],
    ]
    allowed = pack.allowed(12)
    assert allowed[10].nonzero().squeeze(-1).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 9, 10]
    assert allowed[8].nonzero().squeeze(-1).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert allowed[11].nonzero().squeeze(-1).tolist() == [11]  # padding sees itself only


def test_requests_that_share_nothing_get_packs_of_their_own_and_share_rows() -> None:
    feeds = [_feed((token, 2, 3), 2) for token in (7, 8, 9)]
    packs = packed.build_packs(feeds, pair_weight=1 / 3456)
    assert [pack.input_ids for pack in packs] == [[7, 2, 3], [8, 2, 3], [9, 2, 3]]
    (row,) = packed.rows_of(packs, row_tokens=16)
    assert row.input_ids == [7, 2, 3, 8, 2, 3, 9, 2, 3]
    assert row.parents == [-1, 0, 1, -1, 3, 4, -1, 6, 7]
    assert [path for _, path in row.targets] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert [packed.scored_slots(target, path) for target, path in row.targets] == [[1, 2], [4, 5], [7, 8]]
    assert len(packed.rows_of(packs, row_tokens=5)) == 3


def test_the_pack_limit_grows_with_what_requests_share() -> None:
    weight = 1 / 3456
    assert packed.pack_limit(0, weight) == 0
    assert 150 < packed.pack_limit(12, weight) < 250
    assert 1200 < packed.pack_limit(270, weight) < 1350
    many = [_feed((1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, index), 12) for index in range(13, 413)]
    packs = packed.build_packs(many, weight)
    assert 1 < len(packs) < 10
    assert max(len(pack.input_ids) for pack in packs) <= packed.pack_limit(12, weight)


def test_the_engine_scores_packed_and_reports_progress(tiny_model_dir: Path, monkeypatch) -> None:
    calls: list[int] = []
    original = packed.score_packed
    monkeypatch.setattr(
        "sfteval.engines.hf.engine.score_packed",
        lambda runtime, requests, progress: (
            calls.append(len(requests)) or original(runtime, requests, progress)
        ),
    )
    factory = HFEngineFactory(EngineConfig(device="cpu", batch_size=2))
    engine = factory.engine(Variant("base", tiny_model_dir))
    requests = _requests()
    finished: list[int] = []
    scores = engine.score(requests, finished.append)
    assert calls == [len(requests)]
    assert sum(finished) == len(requests)
    with factory.runtime(engine._base_path, None) as runtime:
        assert_same_scores(score_requests(runtime, requests, None), scores)


def test_packed_prefill_builds_the_left_padded_prefills_cache(
    tiny_model_dir: Path, factory, monkeypatch
) -> None:
    """Prompts sharing a system prompt: logits, cache rows, mask and positions as a plain left-padded prefill."""
    from sfteval.engines.hf.batches import left_pad

    engine = factory.engine(Variant("base", tiny_model_dir))
    with factory.runtime(engine._base_path, None) as runtime:
        system = runtime.encoder.pair(PREAMBLE, " x")[0]
        prompts = [system + runtime.encoder.pair(context, " x")[0] for context in CONTEXTS[:4]]
        prompts.append(runtime.encoder.pair("short", " x")[0])
        built: list[int] = []
        original = packed.rows_of
        monkeypatch.setattr(packed, "rows_of", lambda packs: built.append(len(packs)) or original(packs))
        logits, cache, mask, positions = packed.prefill_packed(runtime, prompts)
        assert built == [2]  # the four prompts with the system prompt in one tree, the short one alone
        input_ids, plain_mask, plain_positions = left_pad(prompts, runtime.device)
        plain_logits, plain_cache = runtime.forward(
            input_ids, plain_mask, plain_positions, keep=1, use_cache=True
        )
        assert torch.equal(mask, plain_mask) and torch.equal(positions, plain_positions)
        assert torch.allclose(logits, plain_logits[:, -1], atol=1e-5)
        real = plain_mask.bool()[:, None, :, None]
        for layer, plain_layer in zip(cache.layers, plain_cache.layers, strict=True):
            assert layer.keys.shape == plain_layer.keys.shape
            assert torch.allclose(layer.keys * real, plain_layer.keys * real, atol=1e-5)
            assert torch.allclose(layer.values * real, plain_layer.values * real, atol=1e-5)


def test_generation_with_packed_prefill_equals_the_padded_prefill(tiny_model_dir: Path, monkeypatch) -> None:
    """Greedy texts through joins of prompts that share a prefix, packed prefill on and off."""
    from sfteval.core.requests import GenerationRequest
    from sfteval.engines.hf import decode

    requests = [
        GenerationRequest(PREAMBLE + context, max_new_tokens=6 + index % 5, seed=index, temperature=0.0)
        for index, context in enumerate(CONTEXTS * 3)
    ]

    def run(packed_prefill: bool) -> list[tuple[str, int]]:
        monkeypatch.setattr(decode, "packed_rows_apply", lambda runtime: packed_prefill)
        factory = HFEngineFactory(EngineConfig(device="cpu", batch_size=4))
        generations = factory.engine(Variant("base", tiny_model_dir)).generate(requests)
        return [(generation.text, generation.num_tokens) for generation in generations]

    assert run(True) == run(False)
