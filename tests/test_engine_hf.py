"""The hf engine against direct transformers/peft computations on the tiny model (CPU, float32)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hf_reference import direct_scores, make_adapter, merged_model, metaspace_model_dir, reference_greedy

from sfteval.core.errors import UserError
from sfteval.core.requests import GenerationRequest, ScoreRequest
from sfteval.core.variants import Variant
from sfteval.engines import ENGINES, make_engine_factory
from sfteval.engines.config import EngineConfig
from sfteval.engines.hf.engine import HFEngineFactory
from sfteval.tokenization import encode_text

PROMPTS = (
    "hello world",
    "<|im_start|>user\nwrite a list of three cities in france<|im_end|>\n<|im_start|>assistant\n",
    "the",
    "explain the answer to the question because it is the first example of a red bird on the mountain",
)
SCORE_PAIRS = (
    ("the capital of france is", " paris"),
    ("the capital of france is ", "paris"),
    ("question: is the cat red?\nanswer:", " yes"),
    ("question: is the cat red?\nanswer:", " no"),
    ("question: is the cat red?\nanswer:", " no because the dog is blue"),
    ("", "hello world"),
    ("write a sentence", "\nthe river is blue and the mountain is green."),
)


@pytest.fixture(scope="module")
def adapter_dirs(tiny_model_dir, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return make_adapter(tiny_model_dir, root / "one", seed=1), make_adapter(
        tiny_model_dir, root / "two", seed=2
    )


@pytest.fixture(scope="module")
def reference_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    factory = HFEngineFactory(EngineConfig(device="cpu", batch_size=3))
    yield factory.engine(Variant("base", tiny_model_dir))
    factory.close()


def base_variant(model_dir: Path) -> Variant:
    return Variant("base", model_dir)


def adapter_variant(name: str, adapter_dir: Path, model_dir: Path) -> Variant:
    return Variant(name, adapter_dir, kind="adapter", base_path=model_dir)


def score_requests(ranks: bool = True) -> list[ScoreRequest]:
    return [ScoreRequest(context, continuation, ranks=ranks) for context, continuation in SCORE_PAIRS]


def assert_scores_close(left, right, tolerance: float = 1e-5) -> None:
    assert len(left) == len(right)
    for one, other in zip(left, right, strict=True):
        assert one.tokens == other.tokens
        assert one.logprob == pytest.approx(other.logprob, abs=tolerance)
        assert one.token_logprobs == pytest.approx(other.token_logprobs, abs=tolerance)
        assert one.is_greedy == other.is_greedy


def test_score_equals_direct_forward(engine, reference_model):
    scores = engine.score(score_requests())
    for (context, continuation), score in zip(SCORE_PAIRS, scores, strict=True):
        expected, greedy, ranks = direct_scores(reference_model, engine.tokenizer, context, continuation)
        assert score.token_logprobs == pytest.approx(expected, abs=1e-5)
        assert score.logprob == pytest.approx(sum(expected), abs=1e-5)
        assert score.ranks == tuple(ranks)
        assert score.is_greedy == all(rank == 1 for rank in ranks)
        assert "".join(score.tokens).endswith(continuation.strip())


def test_top_logprobs_are_the_k_most_likely_tokens(engine, reference_model):
    context, continuation = SCORE_PAIRS[4]
    (score,) = engine.score([ScoreRequest(context, continuation, top_k=3)])
    context_ids = encode_text(engine.tokenizer, context)
    whole = encode_text(engine.tokenizer, context + continuation)
    with torch.no_grad():
        logits = reference_model(torch.tensor([whole])).logits[0, len(context_ids) - 1 : -1]
    values, indices = torch.log_softmax(logits, dim=-1).topk(3, dim=-1)
    assert score.top_logprobs is not None and len(score.top_logprobs) == score.num_tokens
    for row, row_ids, row_values in zip(score.top_logprobs, indices.tolist(), values.tolist(), strict=True):
        assert [token for token, _ in row] == row_ids
        assert [value for _, value in row] == pytest.approx(row_values, abs=1e-5)
    (plain,) = engine.score([ScoreRequest(context, continuation)])
    assert plain.top_logprobs is None and plain.token_logprobs == pytest.approx(score.token_logprobs)


def test_trailing_context_space_moves_to_the_continuation(engine):
    moved, plain = engine.score(
        [
            ScoreRequest("the capital of france is ", "paris"),
            ScoreRequest("the capital of france is", " paris"),
        ]
    )
    assert moved == plain


def test_score_batched_equals_one_by_one(tiny_model_dir, engine):
    factory = HFEngineFactory(EngineConfig(device="cpu", batch_size=1))
    single = factory.engine(base_variant(tiny_model_dir))
    requests = score_requests() + [
        ScoreRequest("question: is the cat red?\nanswer:", option) for option in (" A", " B")
    ]
    assert_scores_close(engine.score(requests), [single.score([request])[0] for request in requests])
    factory.close()


def test_score_reports_greedy_continuations(engine, reference_model):
    """A continuation made of the model's own argmax tokens is greedy with ranks 1 (when it re-encodes the same)."""
    checked = 0
    for prompt in ("the capital of france is", "hello world", "write a list", "question: is the cat red?"):
        ids = encode_text(engine.tokenizer, prompt)
        greedy = reference_model.generate(torch.tensor([ids]), max_new_tokens=3, do_sample=False)[
            0, len(ids) :
        ]
        continuation = engine.tokenizer.decode(greedy.tolist())
        if encode_text(engine.tokenizer, prompt + continuation)[len(ids) :] != greedy.tolist():
            continue
        (score,) = engine.score([ScoreRequest(prompt, continuation, ranks=True)])
        assert score.is_greedy and score.ranks == (1, 1, 1)
        checked += 1
    assert checked > 0


def test_empty_continuation_scores_zero(engine):
    (score,) = engine.score([ScoreRequest("hello", "", ranks=True)])
    assert score.logprob == 0.0 and score.token_logprobs == () and score.ranks == ()


def test_progress_counts_every_request(engine):
    counts: list[int] = []
    engine.score(score_requests(), progress=counts.append)
    assert sum(counts) == len(SCORE_PAIRS)
    counts.clear()
    engine.generate(
        [GenerationRequest(prompt, max_new_tokens=2) for prompt in PROMPTS], progress=counts.append
    )
    assert sum(counts) == len(PROMPTS)


def test_greedy_matches_transformers_generate_unpadded_and_padded(engine, reference_model):
    results = engine.generate([GenerationRequest(prompt, max_new_tokens=12) for prompt in PROMPTS])
    for prompt, result in zip(PROMPTS, results, strict=True):
        tokens = reference_greedy(reference_model, engine.tokenizer, prompt, 12)
        assert result.text == engine.tokenizer.decode(tokens)
        assert (result.num_tokens, result.finish_reason) == (12, "length")


def test_generate_batched_equals_one_by_one(tiny_model_dir, engine):
    requests = [
        GenerationRequest(prompt, max_new_tokens=3 + 3 * index) for index, prompt in enumerate(PROMPTS)
    ]
    sampled = [
        GenerationRequest(prompt, max_new_tokens=8, temperature=1.0, top_p=0.9, seed=7) for prompt in PROMPTS
    ]
    batched = engine.generate(requests + sampled)
    assert batched == [engine.generate([request])[0] for request in requests + sampled]


def test_sampling_is_seeded_per_request(engine):
    request = GenerationRequest("hello world", max_new_tokens=16, temperature=1.5, seed=3)
    first, again, other = engine.generate(
        [request, request, GenerationRequest("hello world", 16, 1.5, seed=4)]
    )
    assert first == again
    assert first.text != other.text


def first_word(text: str, start: int) -> str:
    """The first run of three ASCII letters at or after `start`: a clean stop string taken from real output."""
    match = re.search("[a-zA-Z]{3}", text[start:])
    assert match, text
    return match.group()


def test_stop_string_truncates_text(engine, reference_model):
    tokens = reference_greedy(reference_model, engine.tokenizer, PROMPTS[1], 16)
    free_text = engine.tokenizer.decode(tokens)
    stop = first_word(free_text, 4)
    (stopped,) = engine.generate([GenerationRequest(PROMPTS[1], max_new_tokens=16, stop=("zzz-never", stop))])
    assert stopped.text == free_text[: free_text.find(stop)]
    assert stopped.finish_reason == "stop"
    expected_tokens = next(n for n in range(1, 17) if stop in engine.tokenizer.decode(tokens[:n]))
    assert stopped.num_tokens == expected_tokens < 16


def test_earliest_stop_string_wins(engine):
    (free,) = engine.generate([GenerationRequest(PROMPTS[0], max_new_tokens=16)])
    early = first_word(free.text, 0)
    late = first_word(free.text, free.text.find(early) + 3)
    (stopped,) = engine.generate([GenerationRequest(PROMPTS[0], max_new_tokens=16, stop=(late, early))])
    assert stopped.text == free.text[: free.text.find(early)]
    assert stopped.finish_reason == "stop"


def test_generation_config_eos_ends_generation(tiny_model_dir, reference_model, tmp_path):
    model_dir = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    factory = HFEngineFactory(EngineConfig(device="cpu"))
    tokenizer = factory.engine(base_variant(model_dir)).tokenizer
    tokens = reference_greedy(reference_model, tokenizer, PROMPTS[1], 12)
    eos = tokens[3]
    (model_dir / "generation_config.json").write_text(
        json.dumps({"eos_token_id": [tokenizer.eos_token_id, eos]})
    )
    factory.close()
    (result,) = factory.engine(base_variant(model_dir)).generate(
        [GenerationRequest(PROMPTS[1], max_new_tokens=12)]
    )
    first = tokens.index(eos)
    assert result == type(result)(tokenizer.decode(tokens[:first]), first + 1, "stop")
    factory.close()


def test_zero_new_tokens_and_prompt_longer_than_max_length(tiny_model_dir):
    factory = HFEngineFactory(EngineConfig(device="cpu", max_length=8))
    engine = factory.engine(base_variant(tiny_model_dir))
    empty, long = engine.generate(
        [GenerationRequest("hello", max_new_tokens=0), GenerationRequest(PROMPTS[3], max_new_tokens=4)]
    )
    assert (empty.text, empty.num_tokens, empty.finish_reason) == ("", 0, "length")
    assert long.num_tokens == 4
    with pytest.raises(UserError, match="max_new_tokens=8"):
        engine.generate([GenerationRequest("hello", max_new_tokens=8)])
    factory.close()


def test_score_truncates_long_contexts_from_the_left(tiny_model_dir, reference_model):
    factory = HFEngineFactory(EngineConfig(device="cpu", max_length=6))
    engine = factory.engine(base_variant(tiny_model_dir))
    context, continuation = PROMPTS[3], " the mountain"
    (score,) = engine.score([ScoreRequest(context, continuation)])
    whole = encode_text(engine.tokenizer, context + continuation)
    continuation_ids = whole[len(encode_text(engine.tokenizer, context)) :]
    window = whole[-7:]
    with torch.no_grad():
        logits = reference_model(torch.tensor([window[:-1]])).logits[0, -len(continuation_ids) :]
    expected = torch.log_softmax(logits, -1).gather(1, torch.tensor(continuation_ids)[:, None]).squeeze(1)
    assert score.token_logprobs == pytest.approx(expected.tolist(), abs=1e-5)
    factory.close()


def test_adapter_equals_merged_model(tiny_model_dir, adapter_dirs):
    factory = HFEngineFactory(EngineConfig(device="cpu", batch_size=4))
    engine = factory.engine(adapter_variant("epoch-1", adapter_dirs[0], tiny_model_dir))
    merged = merged_model(tiny_model_dir, adapter_dirs[0])
    for (context, continuation), score in zip(SCORE_PAIRS, engine.score(score_requests()), strict=True):
        expected, _, _ = direct_scores(merged, engine.tokenizer, context, continuation)
        assert score.token_logprobs == pytest.approx(expected, abs=1e-4)
    for prompt, result in zip(
        PROMPTS, engine.generate([GenerationRequest(p, max_new_tokens=8) for p in PROMPTS]), strict=False
    ):
        assert result.text == engine.tokenizer.decode(reference_greedy(merged, engine.tokenizer, prompt, 8))
    factory.close()


def test_adapter_switching_keeps_the_base_loaded(tiny_model_dir, adapter_dirs, engine):
    factory = HFEngineFactory(EngineConfig(device="cpu", batch_size=4))
    requests = score_requests()
    first = factory.engine(adapter_variant("epoch-1", adapter_dirs[0], tiny_model_dir))
    first_scores = first.score(requests)
    loaded = factory.base_model
    base = factory.engine(base_variant(tiny_model_dir))
    base_scores = base.score(requests)
    assert factory.base_model is loaded
    assert_scores_close(base_scores, engine.score(requests))
    second = factory.engine(adapter_variant("epoch-2", adapter_dirs[1], tiny_model_dir))
    second_scores = second.score(requests)
    assert_scores_close(first.score(requests), first_scores)
    assert_scores_close(base.score(requests), base_scores)
    assert factory.base_model is loaded
    assert first_scores[0].logprob != pytest.approx(base_scores[0].logprob, abs=1e-3)
    assert first_scores[0].logprob != pytest.approx(second_scores[0].logprob, abs=1e-3)
    factory.close()


def test_models_load_on_first_request_and_one_at_a_time(tiny_model_dir, tmp_path):
    other_dir = Path(shutil.copytree(tiny_model_dir, tmp_path / "other"))
    factory = HFEngineFactory(EngineConfig(device="cpu"))
    first = factory.engine(base_variant(tiny_model_dir))
    assert first.tokenizer is not None and first.fingerprint
    assert first.score([]) == [] and factory.base_model is None
    request = ScoreRequest("hello", " world")
    expected = first.score([request])
    first_model = factory.base_model
    second = factory.engine(Variant("final", other_dir))
    assert second.score([request]) == expected
    assert factory.base_model is not first_model
    assert first.score([request]) == expected
    factory.close()
    assert factory.base_model is None


def test_generated_text_keeps_its_leading_space(tmp_path):
    from transformers import AutoModelForCausalLM

    model_dir = metaspace_model_dir(tmp_path / "metaspace")
    factory = HFEngineFactory(EngineConfig(device="cpu"))
    engine = factory.engine(base_variant(model_dir))
    tokenizer, model = engine.tokenizer, AutoModelForCausalLM.from_pretrained(model_dir)
    prompts = ["the capital of france is", "hello world", "write a list of", "the cat", "answer", "one two"]
    results = engine.generate([GenerationRequest(prompt, max_new_tokens=6) for prompt in prompts])
    leading_spaces = 0
    for prompt, result in zip(prompts, results, strict=True):
        prompt_ids = encode_text(tokenizer, prompt)
        tokens = reference_greedy(model, tokenizer, prompt, 6)
        assert result.text == tokenizer.decode(prompt_ids + tokens)[len(tokenizer.decode(prompt_ids)) :]
        leading_spaces += result.text.startswith(" ") and not tokenizer.decode(tokens).startswith(" ")
    assert leading_spaces > 0
    factory.close()


def test_engine_fingerprints(tiny_model_dir, adapter_dirs):
    def fingerprints(factory: HFEngineFactory) -> list[str]:
        variants = [base_variant(tiny_model_dir)] + [
            adapter_variant(f"epoch-{i}", path, tiny_model_dir) for i, path in enumerate(adapter_dirs)
        ]
        return [factory.engine(variant).fingerprint for variant in variants]

    first = fingerprints(HFEngineFactory(EngineConfig(device="cpu")))
    assert first == fingerprints(HFEngineFactory(EngineConfig(device="cpu")))
    assert len(set(first)) == 3
    assert fingerprints(HFEngineFactory(EngineConfig(device="cpu", dtype="bfloat16")))[0] != first[0]


def test_bad_variants_are_user_errors(tiny_model_dir, tmp_path):
    factory = HFEngineFactory(EngineConfig(device="cpu"))
    with pytest.raises(UserError, match="no base model path"):
        factory.engine(Variant("epoch-1", tmp_path, kind="adapter"))
    with pytest.raises(UserError, match="not found"):
        factory.engine(Variant("final", tmp_path / "missing"))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UserError, match="safetensors"):
        factory.engine(Variant("final", tmp_path))
    with pytest.raises(UserError, match="adapter_config.json"):
        factory.engine(adapter_variant("epoch-1", tmp_path, tiny_model_dir))
    with pytest.raises(UserError, match="no CUDA GPU" if not torch.cuda.is_available() else "not a device"):
        HFEngineFactory(EngineConfig(device="cuda" if not torch.cuda.is_available() else "nonsense"))


def test_registry_builds_the_hf_factory_and_suggests_names():
    assert "hf" in ENGINES
    factory = make_engine_factory("hf", EngineConfig(device="cpu"))
    assert isinstance(factory, HFEngineFactory)
    with pytest.raises(UserError, match="did you mean 'hf'"):
        make_engine_factory("hff", EngineConfig())


def test_importing_the_engine_registry_does_not_import_torch():
    code = "import sys, sfteval.engines; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
