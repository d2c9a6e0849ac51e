"""The speed work changes no result (issue 19): continuous batching, large engine calls and the thread choice.

Generations must be the same texts, token counts and finish reasons as one request at a time, and scores equal
within 1e-5; a whole run of every quick-suite probe gives the same records with one request per forward as with
the batched, continuous engine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tiny
from train_tiny import run_suite_on, single_thread

from sfteval.core import cpu
from sfteval.core.requests import GenerationRequest
from sfteval.core.variants import Variant
from sfteval.engines.config import EngineConfig
from sfteval.engines.hf import decode
from sfteval.engines.hf.engine import HFEngineFactory

WORDS = "the red bird sings on a blue mountain while rivers of green water run to the sea".split()


def requests() -> list[GenerationRequest]:
    """Fourteen requests of mixed prompt lengths and token budgets, greedy and sampled, some with stop strings."""
    made = []
    for index in range(14):
        prompt = " ".join(WORDS[: 2 + (index * 5) % 15])
        made.append(
            GenerationRequest(
                prompt,
                max_new_tokens=(3, 17, 9, 30)[index % 4],
                temperature=1.0 if index % 5 == 0 else 0.0,
                seed=index,
                stop=("e",) if index % 3 == 0 else (),
            )
        )
    return made


@pytest.fixture(scope="module")
def lora_dir(tiny_model_dir, tmp_path_factory) -> Path:
    return tiny.save_lora_epochs(tiny_model_dir, tmp_path_factory.mktemp("lora"), epochs=1) / "checkpoint-5"


@pytest.mark.parametrize("adapter", [False, True], ids=["base", "lora"])
def test_rows_join_a_running_batch_and_every_result_equals_one_request_alone(
    tiny_model_dir, lora_dir, adapter, monkeypatch
) -> None:
    joined_while_running = []
    original = decode._Batch.join

    def recording(self, rows, prompts):
        joined_while_running.append(len(self.rows))
        return original(self, rows, prompts)

    monkeypatch.setattr(decode._Batch, "join", recording)
    variant = (
        Variant("epoch-1", lora_dir, kind="adapter", base_path=tiny_model_dir)
        if adapter
        else Variant("base", tiny_model_dir)
    )
    factory = HFEngineFactory(EngineConfig(device="cpu", batch_size=4, threads=1))
    engine = factory.engine(variant)
    together = engine.generate(requests())
    assert any(running > 0 for running in joined_while_running), "no request joined a running batch"
    alone = [engine.generate([request])[0] for request in requests()]
    assert together == alone
    assert {result.finish_reason for result in together} == {"stop", "length"}
    factory.close()


def test_free_cores_follow_the_load_and_an_explicit_choice_wins(monkeypatch) -> None:
    monkeypatch.setattr(cpu, "usable_cores", lambda: 2)
    monkeypatch.setattr(cpu, "others_busy_cores", lambda seconds=0.0: 0.1)
    assert cpu.free_cores() == 2
    monkeypatch.setattr(cpu, "others_busy_cores", lambda seconds=0.0: 0.9)
    assert cpu.free_cores() == 1
    monkeypatch.setattr(cpu, "others_busy_cores", lambda seconds=0.0: 3.0)
    assert cpu.free_cores() == 1
    monkeypatch.setattr(cpu, "others_busy_cores", lambda seconds=0.0: None)
    assert cpu.free_cores() is None
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu.explicit_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "x")
    assert cpu.explicit_threads() is None


def test_the_engine_sets_threads_only_when_asked(tiny_model_dir, monkeypatch) -> None:
    import torch

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu, "others_busy_cores", lambda seconds=0.0: 0.0)
    before = torch.get_num_threads()
    request = [GenerationRequest("the red bird", max_new_tokens=2)]
    try:
        torch.set_num_threads(1)
        HFEngineFactory(EngineConfig(device="cpu")).engine(Variant("base", tiny_model_dir)).generate(request)
        assert torch.get_num_threads() == 1  # None: the embedding program's setting stays
        factory = HFEngineFactory(EngineConfig(device="cpu", threads="auto"))
        factory.engine(Variant("base", tiny_model_dir)).generate(request)
        assert torch.get_num_threads() == cpu.usable_cores() == factory.threads_used[-1]
        HFEngineFactory(EngineConfig(device="cpu", threads="1")).engine(
            Variant("base", tiny_model_dir)
        ).generate(request)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="at least 1"):
        EngineConfig(threads=0)
    with pytest.raises(ValueError, match="neither a number of threads nor auto"):
        EngineConfig(threads="many")
    assert EngineConfig(threads=" 3 ").threads == 3 and EngineConfig(threads="auto").threads == "auto"


def test_others_busy_cores_leaves_out_this_process() -> None:
    """Measured on this machine: a number of cores between 0 and the machine's count (None only without /proc)."""
    busy = cpu.others_busy_cores(0.05)
    if Path("/proc/stat").exists():
        assert busy is not None and 0.0 <= busy <= (cpu.os.cpu_count() or 1)


SUITE = """
seed: 0
generation:
  max_new_tokens: 12
probes:
  instruction_following: {limit: 4}
  spurious_prefix: {limit: 4, max_new_tokens: 6}
  termination: {limit: 3}
  memorization: {limit: 2}
  token_shift: {limit: 3, max_new_tokens: 8}
  forgetting: {limit: 3}
  template_brittleness: {if_limit: 1, mc_limit: 2, sft_limit: 2, formats: 2, max_new_tokens: 8}
  style_tics: {limit: 3, max_new_tokens: 10}
  refusal: {limit: 3, unsafe_limit: 2, max_new_tokens: 6}
  calibration: {limit: 3}
"""


def records(out: Path) -> dict[tuple[str, ...], dict]:
    rows = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines() if line.strip()]
    return {(row["probe"], row["variant"], row["template"], row["item_id"]): row for row in rows}


def assert_same_records(left: object, right: object, where: str = "") -> None:
    """Equal records: every string, count and flag the same, every float within 1e-5."""
    if isinstance(left, float) or isinstance(right, float):
        assert left == pytest.approx(right, abs=1e-5), where
    elif isinstance(left, dict) and isinstance(right, dict):
        assert left.keys() == right.keys(), where
        for key in left:
            assert_same_records(left[key], right[key], f"{where}.{key}")
    elif isinstance(left, list) and isinstance(right, list):
        assert len(left) == len(right), where
        for index, (one, other) in enumerate(zip(left, right, strict=True)):
            assert_same_records(one, other, f"{where}[{index}]")
    else:
        assert left == right, where


def test_a_whole_run_gives_the_same_records_one_request_per_forward_and_batched(
    tiny_model_dir, tmp_path
) -> None:
    ckpt = tiny.save_lora_epochs(tiny_model_dir, tmp_path / "sft", epochs=2)
    with single_thread():
        alone = run_suite_on(ckpt, SUITE, tmp_path / "alone", base=tiny_model_dir, batch_size=1)
        batched = run_suite_on(ckpt, SUITE, tmp_path / "batched", base=tiny_model_dir, batch_size=8)
    assert alone.report.run.cache_misses == batched.report.run.cache_misses > 0
    one, other = records(tmp_path / "alone"), records(tmp_path / "batched")
    assert one.keys() == other.keys() and len(one) > 50
    assert {key[0] for key in one} >= {"instruction_following", "spurious_prefix", "forgetting", "refusal"}
    for key in one:
        assert_same_records(one[key], other[key], "/".join(key))
