"""The vllm engine against the hf engine on the default model (fp32, CPU): generations, scores, LoRA, settings.

vLLM runs in a subprocess (`vllm_worker.py`, which needs a __main__ guard); the hf engine runs here on the same
requests. Greedy generations must agree on >= 95% of prompts in their first 32 tokens and log-probs within 1e-3.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
from parity_cases import (
    ENGINE_CONFIG,
    GREEDY_TOKENS,
    INSTRUCTIONS,
    RAW_PROMPTS,
    VLLM_EXTRA,
    generation_requests,
    score_requests,
    variant_paths,
)

from sfteval.core.variants import Variant
from sfteval.default_model import default_model_path
from sfteval.engines.fingerprint import fingerprint_model
from sfteval.engines.hf.engine import HFEngineFactory

WORKER = Path(__file__).parent / "vllm_worker.py"
GREEDY_COUNT = len(INSTRUCTIONS) + len(RAW_PROMPTS)
REQUIRED_SHARE = 0.95
LOGPROB_TOLERANCE = 1e-3
LORA_RANK = 8


def make_adapter(model_dir: Path, path: Path) -> Path:
    """A LoRA adapter on every projection with random non-zero B (peft's default B is zero: a no-op adapter)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    projections = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = get_peft_model(base, LoraConfig(r=LORA_RANK, lora_alpha=16, target_modules=projections))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.02)
    model.save_pretrained(path, safe_serialization=True)
    return path


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return default_model_path().resolve()


@pytest.fixture(scope="module")
def adapter_dir(model_dir, tmp_path_factory) -> Path:
    return make_adapter(model_dir, tmp_path_factory.mktemp("lora") / "adapter").resolve()


@pytest.fixture(scope="module")
def vllm_results(model_dir, adapter_dir, tmp_path_factory) -> dict:
    """Run the worker once; its log is shown when it fails."""
    out = tmp_path_factory.mktemp("vllm") / "results.json"
    log = out.with_name("worker.log")
    environment = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING", "TOKENIZERS_PARALLELISM": "false"}
    with log.open("w") as handle:
        completed = subprocess.run(
            [sys.executable, str(WORKER), str(model_dir), str(adapter_dir), str(out)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=environment,
            timeout=1200,
        )
    assert completed.returncode == 0, log.read_text()[-6000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def hf_results(model_dir, adapter_dir) -> dict:
    import torch
    from transformers import AutoTokenizer

    # One thread, as vLLM uses on CPU: two OpenMP threads on a busy 2-core machine spin-wait (measured 35x slower).
    torch.set_num_threads(1)
    factory = HFEngineFactory(ENGINE_CONFIG)
    generations, scores = generation_requests(AutoTokenizer.from_pretrained(model_dir)), score_requests()
    results = {}
    for name, (kind, path, base_path) in variant_paths(model_dir, adapter_dir).items():
        engine = factory.engine(Variant(name=name, path=path, kind=kind, base_path=base_path))
        results[name] = {
            "generations": [asdict(item) for item in engine.generate(generations)],
            "scores": [asdict(item) for item in engine.score(scores)],
        }
    factory.close()
    return json.loads(json.dumps(results))  # tuples become lists, as in the worker's JSON


VARIANTS = ("base", "adapter")


@pytest.mark.parametrize("variant", VARIANTS)
def test_greedy_generations_agree_on_the_first_32_tokens(variant, vllm_results, hf_results):
    hf = hf_results[variant]["generations"][:GREEDY_COUNT]
    vllm = vllm_results["variants"][variant]["generations"][:GREEDY_COUNT]
    assert all(item["num_tokens"] <= GREEDY_TOKENS for item in hf + vllm)
    same = sum(ours == theirs for ours, theirs in zip(hf, vllm, strict=True))
    print(f"{variant}: {same}/{GREEDY_COUNT} greedy generations identical")
    assert same >= math.ceil(REQUIRED_SHARE * GREEDY_COUNT), [
        (ours["text"], theirs["text"]) for ours, theirs in zip(hf, vllm, strict=True) if ours != theirs
    ]


@pytest.mark.parametrize("variant", VARIANTS)
def test_stop_strings_end_generation_alike(variant, vllm_results, hf_results):
    hf = hf_results[variant]["generations"][GREEDY_COUNT:-4]
    vllm = vllm_results["variants"][variant]["generations"][GREEDY_COUNT:-4]
    assert any(item["finish_reason"] == "stop" for item in vllm)
    for item in vllm:
        assert "." not in item["text"] and "\n" not in item["text"]
    same = sum(ours == theirs for ours, theirs in zip(hf, vllm, strict=True))
    assert same >= math.ceil(REQUIRED_SHARE * len(hf)), list(zip(hf, vllm, strict=True))


def test_sampling_follows_the_request_seed_and_zero_tokens_generate_nothing(vllm_results):
    generations = vllm_results["variants"]["base"]["generations"]
    first, repeated, other, empty = generations[-4:]
    assert first == repeated
    assert first["text"] != other["text"]
    assert empty == {"text": "", "num_tokens": 0, "finish_reason": "length"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_continuation_logprobs_ranks_and_greediness_agree(variant, vllm_results, hf_results):
    hf = hf_results[variant]["scores"]
    vllm = vllm_results["variants"][variant]["scores"]
    largest = 0.0
    for ours, theirs in zip(hf, vllm, strict=True):
        assert ours["tokens"] == theirs["tokens"]
        differences = [
            abs(a - b) for a, b in zip(ours["token_logprobs"], theirs["token_logprobs"], strict=True)
        ]
        largest = max(largest, *differences, abs(ours["logprob"] - theirs["logprob"]))
        assert ours["is_greedy"] == theirs["is_greedy"]
        assert ours["ranks"] == theirs["ranks"]
    print(f"{variant}: largest log-prob difference {largest:.2e}")
    assert largest < LOGPROB_TOLERANCE


@pytest.mark.parametrize("variant", VARIANTS)
def test_top_logprobs_agree(variant, vllm_results, hf_results):
    with_top = [
        pair
        for pair in zip(
            hf_results[variant]["scores"], vllm_results["variants"][variant]["scores"], strict=True
        )
        if pair[0]["top_logprobs"]
    ]
    assert with_top
    for ours, theirs in with_top:
        for hf_position, vllm_position in zip(ours["top_logprobs"], theirs["top_logprobs"], strict=True):
            assert [token for token, _ in hf_position] == [token for token, _ in vllm_position]
            for (_, hf_value), (_, vllm_value) in zip(hf_position, vllm_position, strict=True):
                assert abs(hf_value - vllm_value) < LOGPROB_TOLERANCE


def test_the_adapter_changes_the_model_in_both_engines(vllm_results, hf_results):
    for results in (hf_results, vllm_results["variants"]):
        base = [score["logprob"] for score in results["base"]["scores"]]
        adapted = [score["logprob"] for score in results["adapter"]["scores"]]
        assert sum(abs(a - b) > 0.05 for a, b in zip(base, adapted, strict=True)) >= len(base) // 2


def test_fingerprints_follow_the_shared_rules(vllm_results, model_dir, adapter_dir):
    variants = vllm_results["variants"]
    assert variants["base"]["fingerprint"] == fingerprint_model([model_dir], dtype="float32", engine="vllm")
    assert variants["adapter"]["fingerprint"] == fingerprint_model(
        [model_dir, adapter_dir], dtype="float32", engine="vllm"
    )


def test_engine_settings_reach_vllm(vllm_results):
    assert vllm_results["llm"] == {
        "max_model_len": ENGINE_CONFIG.max_length,
        "dtype": "torch.float32",
        "enforce_eager": VLLM_EXTRA["enforce_eager"],
        "gpu_memory_utilization": VLLM_EXTRA["gpu_memory_utilization"],
        "max_lora_rank": LORA_RANK,
    }
    print(
        f"vLLM start {vllm_results['start_seconds']:.0f} s, worker total {vllm_results['total_seconds']:.0f} s"
    )
