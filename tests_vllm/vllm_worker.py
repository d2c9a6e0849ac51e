"""Run the parity requests through the vllm engine and write the results as JSON (vLLM needs a __main__ guard).

Usage: python vllm_worker.py MODEL_DIR ADAPTER_DIR OUT.json
The adapter variant is served first, so the one LLM starts with LoRA enabled and the base reuses it.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from parity_cases import ENGINE_CONFIG, VLLM_EXTRA, generation_requests, score_requests, variant_paths

from sfteval.core.variants import Variant
from sfteval.engines import make_engine_factory


def run(model: Path, adapter: Path) -> dict:
    """Results of every variant, plus the settings the running LLM ended up with."""
    from transformers import AutoTokenizer

    config = ENGINE_CONFIG.model_copy(update={"extra": VLLM_EXTRA})
    factory = make_engine_factory("vllm", config)
    generations, scores = generation_requests(AutoTokenizer.from_pretrained(model)), score_requests()
    results: dict = {"variants": {}}
    try:
        for name, (kind, path, base_path) in variant_paths(model, adapter).items():
            engine = factory.engine(Variant(name=name, path=path, kind=kind, base_path=base_path))
            started = time.perf_counter()
            engine.generate(generations[:1])
            results.setdefault("start_seconds", time.perf_counter() - started)
            started = time.perf_counter()
            results["variants"][name] = {
                "fingerprint": engine.fingerprint,
                "generations": [asdict(item) for item in engine.generate(generations)],
                "scores": [asdict(item) for item in engine.score(scores)],
                "seconds": time.perf_counter() - started,
            }
        results["llm"] = _llm_settings(factory, model)
    finally:
        factory.close()
    return results


def _llm_settings(factory, model: Path) -> dict:
    """What the running vllm.LLM was started with, read back from vLLM's own config."""
    running = factory.running(model.resolve(), 0)
    vllm_config = running.llm.llm_engine.vllm_config
    return {
        "max_model_len": vllm_config.model_config.max_model_len,
        "dtype": str(vllm_config.model_config.dtype),
        "enforce_eager": vllm_config.model_config.enforce_eager,
        "gpu_memory_utilization": vllm_config.cache_config.gpu_memory_utilization,
        "max_lora_rank": vllm_config.lora_config.max_lora_rank if vllm_config.lora_config else None,
    }


if __name__ == "__main__":
    started = time.perf_counter()
    output = run(Path(sys.argv[1]), Path(sys.argv[2]))
    output["total_seconds"] = time.perf_counter() - started
    Path(sys.argv[3]).write_text(json.dumps(output), encoding="utf-8")
