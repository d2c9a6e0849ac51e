"""The hf engine: transformers (+ peft adapters sharing one loaded base model) on CPU or one GPU.

`HFEngineFactory` holds at most one base model in memory, loaded on an engine's first request (a fully cached rerun
loads nothing). PEFT adapters of that base attach to it (peft `load_adapter`) and switch with `set_adapter`; the base
itself runs under `disable_adapter`, so a sweep over LoRA epochs never reloads the base. Weights load from safetensors
only: nothing is unpickled.
"""

from __future__ import annotations

import gc
import inspect
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from sfteval.core.cpu import auto_threads
from sfteval.core.errors import UserError
from sfteval.core.requests import Generation, GenerationRequest, ProgressCallback, Score, ScoreRequest
from sfteval.core.variants import Variant
from sfteval.discovery import read_json_object
from sfteval.engines.config import EngineConfig
from sfteval.engines.encoding import Encoder
from sfteval.engines.fingerprint import fingerprint_model
from sfteval.engines.hf.attention import use_native_gqa
from sfteval.engines.hf.batches import Runtime
from sfteval.engines.hf.decode import generate_requests
from sfteval.engines.hf.packed import packed_rows_apply, score_packed
from sfteval.engines.hf.shared_context import score_with_shared_contexts
from sfteval.weights import load_causal_lm

DEFAULT_MAX_LENGTH = 2048
THREADS_RECHECK_SECONDS = 30.0
"""On CPU the free cores are measured again when a model is used this long after the last measurement."""
_LENGTH_ATTRIBUTES = ("n_positions", "max_position_embeddings", "n_ctx")


def resolve_device(config: EngineConfig) -> torch.device:
    """`auto` is the GPU when there is one, else the CPU; an unusable device is the user's error."""
    name = config.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(
            f"engine device {name!r} is not a device", hint="auto | cpu | cuda | cuda:N"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"engine device {name!r} requested but no CUDA GPU is available")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def resolve_dtype(config: EngineConfig, device: torch.device) -> torch.dtype:
    """`auto` is bfloat16 on GPUs that support it and float32 elsewhere (float16 overflows on some models)."""
    if config.dtype != "auto":
        return getattr(torch, config.dtype)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def model_max_length(model_config: Any, tokenizer: Any) -> int:
    """The model's context length, found the way lm-eval's HFLM finds it (config, then tokenizer, then 2048)."""
    source = getattr(model_config, "text_config", None) or model_config
    for attribute in _LENGTH_ATTRIBUTES:
        value = getattr(source, attribute, None)
        if value is not None:
            return int(value)
    tokenizer_length = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_length, int) and tokenizer_length < 10**9:
        return tokenizer_length
    return DEFAULT_MAX_LENGTH


def _eos_ids(generation_config: Any, tokenizer: Any) -> frozenset[int]:
    """Token ids that end generation: the tokenizer's EOS and every EOS in the generation config."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return frozenset(token for token in ids if token is not None)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def model_runtime(
    model: Any, tokenizer: Any, config: EngineConfig, device: torch.device, generation_config: Any = None
) -> Runtime:
    """The runtime settings of a transformers model (not a peft wrapper); its `model` is set per adapter.

    `generation_config` (default: the model's) supplies the end-of-sequence ids.
    """
    if generation_config is None:
        generation_config = getattr(model, "generation_config", None)
    return Runtime(
        model=None,
        encoder=Encoder.of(tokenizer, config.max_length or model_max_length(model.config, tokenizer)),
        device=device,
        eos_ids=_eos_ids(generation_config, tokenizer),
        batch_size=config.batch_size,
        keeps_logits="logits_to_keep" in inspect.signature(model.forward).parameters,
    )


class _LoadedModel:
    """One base model in memory with the peft adapters attached to it so far."""

    def __init__(self, path: Path, tokenizer: Any, config: EngineConfig, device: torch.device) -> None:
        model = load_causal_lm(
            path,
            dtype=resolve_dtype(config, device),
            trust_remote_code=config.trust_remote_code,
            device_map=device,
        )
        use_native_gqa(model)
        self.path = path
        # Frozen: matmul folds a batched input differently when the weight requires grad (even under no_grad), so
        # results would depend on it; the training callback freezes the live model the same way while it probes.
        self.base_model: Any = model.eval().requires_grad_(False)
        self.model: Any = self.base_model
        self.adapters: dict[Path, str] = {}
        self.runtime = model_runtime(model, tokenizer, config, device)

    def attach(self, adapter_path: Path) -> str:
        """Load a PEFT adapter onto the base (once) and return its adapter name."""
        from peft import PeftModel

        if adapter_path in self.adapters:
            return self.adapters[adapter_path]
        name = f"adapter_{len(self.adapters)}"
        try:
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(adapter_path), adapter_name=name, is_trainable=False)
            else:
                self.model = PeftModel.from_pretrained(
                    self.base_model, str(adapter_path), adapter_name=name, is_trainable=False
                )
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as error:
            raise UserError(f"{adapter_path}: cannot load the adapter onto {self.path} ({error})") from None
        self.model.eval()
        self.adapters[adapter_path] = name
        return name

    @contextmanager
    def activated(self, adapter: str | None) -> Iterator[Runtime]:
        """The runtime with `adapter` active (None: the base itself, every adapter disabled)."""
        if adapter is not None:
            self.model.set_adapter(adapter)
            yield replace(self.runtime, model=self.model)
        elif self.adapters:
            with self.model.disable_adapter():
                yield replace(self.runtime, model=self.model)
        else:
            yield replace(self.runtime, model=self.model)


def _check_adapter_directory(path: Path) -> None:
    """An adapter directory needs adapter_config.json and safetensors weights (peft would fall back to pickles)."""
    if not (path / "adapter_config.json").is_file():
        raise UserError(f"{path}: not a PEFT adapter (no adapter_config.json)")
    if not (path / "adapter_model.safetensors").is_file():
        raise UserError(
            f"{path}: adapter has no adapter_model.safetensors", hint="sfteval never unpickles weights"
        )
    read_json_object(path / "adapter_config.json")


class HFEngine:
    """An Engine over one variant. The model loads on the first request, so fully cached reruns never load it."""

    name = "hf"

    def __init__(
        self, factory: HFEngineFactory, base_path: Path, adapter_path: Path | None, fingerprint: str
    ) -> None:
        self._factory = factory
        self._base_path = base_path
        self._adapter_path = adapter_path
        self._fingerprint = fingerprint

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def tokenizer(self) -> Any:
        return self._factory.tokenizer(self._base_path)

    def generate(
        self, requests: Sequence[GenerationRequest], progress: ProgressCallback | None = None
    ) -> list[Generation]:
        if not requests:
            return []
        with self._factory.runtime(self._base_path, self._adapter_path) as runtime:
            return generate_requests(runtime, requests, progress)

    def score(
        self, requests: Sequence[ScoreRequest], progress: ProgressCallback | None = None
    ) -> list[Score]:
        if not requests:
            return []
        with self._factory.runtime(self._base_path, self._adapter_path) as runtime:
            if packed_rows_apply(runtime):
                return score_packed(runtime, requests, progress)
            return score_with_shared_contexts(runtime, requests, progress)


class HFEngineFactory:
    """Builds hf engines for variants; keeps one base model loaded and swaps adapters on it without reloading."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.device = resolve_device(config)
        self.dtype = resolve_dtype(config, self.device)
        self._loaded: _LoadedModel | None = None
        self._tokenizers: dict[Path, Any] = {}
        self._threads_checked: float | None = None
        self.threads_used: list[int] = []
        """Every CPU thread count chosen so far, in order."""

    @property
    def base_model(self) -> Any:
        """The transformers model in memory now (shared by every adapter of it), None before the first request."""
        return None if self._loaded is None else self._loaded.base_model

    def engine(self, variant: Variant) -> HFEngine:
        """An engine for `variant` (validated and fingerprinted now; its weights load on its first request)."""
        if variant.kind == "adapter":
            if variant.base_path is None:
                raise UserError(f"{variant.path}: adapter variant {variant.name!r} has no base model path")
            base_path, adapter_path = Path(variant.base_path).resolve(), Path(variant.path).resolve()
            _check_adapter_directory(adapter_path)
            directories = [base_path, adapter_path]
        else:
            base_path, adapter_path = Path(variant.path).resolve(), None
            directories = [base_path]
        fingerprint = fingerprint_model(directories, dtype=_dtype_name(self.dtype), engine=HFEngine.name)
        return HFEngine(self, base_path, adapter_path, fingerprint)

    def tokenizer(self, path: Path) -> Any:
        """The tokenizer saved with the base model at `path` (loaded once)."""
        from transformers import AutoTokenizer

        if path not in self._tokenizers:
            try:
                self._tokenizers[path] = AutoTokenizer.from_pretrained(
                    path, trust_remote_code=self.config.trust_remote_code
                )
            except (OSError, ValueError) as error:
                raise UserError(f"{path}: cannot load the tokenizer ({error})") from None
        return self._tokenizers[path]

    @contextmanager
    def runtime(self, base_path: Path, adapter_path: Path | None) -> Iterator[Runtime]:
        """The loaded model with the adapter active, loading the base only when another model is in memory."""
        if self._loaded is None or self._loaded.path != base_path:
            self.close()
            self._loaded = _LoadedModel(base_path, self.tokenizer(base_path), self.config, self.device)
        adapter = self._loaded.attach(adapter_path) if adapter_path is not None else None
        self._choose_threads()
        # no_grad, not inference_mode: the training callback probes the live training model (inference tensors a
        # module caches there would break backward) and its results must equal these bit for bit.
        with torch.no_grad(), self._loaded.activated(adapter) as runtime:
            yield runtime

    def _choose_threads(self) -> None:
        """On CPU: a configured thread count; `auto`: OMP_NUM_THREADS, else the cores other processes leave free.

        `auto` measures again every THREADS_RECHECK_SECONDS of use, so a long run follows the machine's load; None
        leaves torch's setting to the program that embeds the engine.
        """
        choice = self.config.threads
        if self.device.type != "cpu" or choice is None:
            return
        now = time.monotonic()
        if self._threads_checked is not None and (
            isinstance(choice, int) or now - self._threads_checked < THREADS_RECHECK_SECONDS
        ):
            return
        threads = choice if isinstance(choice, int) else auto_threads()
        self._threads_checked = now
        if threads is not None and threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        self.threads_used.append(torch.get_num_threads())

    def close(self) -> None:
        """Free the loaded model (engines stay usable: their next request loads it again)."""
        self._loaded = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
