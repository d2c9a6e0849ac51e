"""Engines on the model being trained: probe a checkpoint without loading a second copy of its weights.

`LiveModelFactory` is an `HFEngineFactory` (the same engines, fingerprints computed from the saved files, the same
tokenizers, so cache keys equal those of `sfteval run`) whose runtime runs on the training model wherever that model
*is* the variant: the checkpoint just saved from it, and the base (a PEFT model with its adapters disabled, or a full
model before its first optimizer step). Any other variant loads from disk as usual. The model runs in evaluation
mode under no_grad, with the dtype, device, end-of-sequence ids and logits settings a model loaded from the saved
files would have, so its results equal those of the saved checkpoint; every module's training flag is restored.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy
import torch

from sfteval.engines.config import EngineConfig
from sfteval.engines.hf.batches import Runtime
from sfteval.engines.hf.engine import HFEngineFactory, model_runtime


class LiveModelFactory(HFEngineFactory):
    """hf engines that run on `model` (the training model) for the variants it holds, from disk for the rest."""

    def __init__(
        self, config: EngineConfig, model: Any, base_path: Path, checkpoint: Path | None, pristine: bool
    ) -> None:
        super().__init__(config)
        self._model = model
        self._base_path = Path(base_path).resolve()
        self._checkpoint = None if checkpoint is None else Path(checkpoint).resolve()
        self._pristine = pristine
        self._runtimes: dict[Path, Runtime] = {}

    @property
    def runs_in_place(self) -> bool:
        """Whether the training model has the engine's dtype and device (else every variant loads from disk)."""
        parameter = next(self._model.parameters())
        return parameter.dtype == self.dtype and parameter.device == self.device

    @contextmanager
    def runtime(self, base_path: Path, adapter_path: Path | None) -> Iterator[Runtime]:
        """The training model when it holds the variant (evaluation mode, no_grad), else the model from disk."""
        holding = self._holding(Path(base_path).resolve(), adapter_path)
        if holding is None:
            with super().runtime(base_path, adapter_path) as runtime:
                yield runtime
            return
        with evaluation_mode(self._model), holding as model:
            yield replace(self._runtime(base_path), model=model)

    def _holding(self, base_path: Path, adapter_path: Path | None) -> AbstractContextManager[Any] | None:
        """The training model set up as the variant (base_path + adapter_path), or None when it is not that."""
        if not self.runs_in_place:
            return None
        peft = is_peft_model(self._model)
        if adapter_path is not None:
            same = peft and base_path == self._base_path and Path(adapter_path).resolve() == self._checkpoint
            return nullcontext(self._model) if same else None
        if base_path == self._checkpoint and not peft:
            return nullcontext(self._model)
        if base_path == self._base_path and peft:
            return _adapters_disabled(self._model)
        if base_path == self._base_path and self._pristine:
            return nullcontext(self._model)
        return None

    def _runtime(self, path: Path) -> Runtime:
        """What an engine loading `path` would use: its saved generation config's EOS ids, its forward's arguments."""
        if path not in self._runtimes:
            model = self._model.get_base_model() if is_peft_model(self._model) else self._model
            tokenizer = self.tokenizer(path)
            self._runtimes[path] = model_runtime(
                model, tokenizer, self.config, self.device, saved_generation_config(path)
            )
        return self._runtimes[path]


def is_peft_model(model: Any) -> bool:
    """Whether `model` is a peft wrapper (LoRA and other adapters)."""
    from peft import PeftModel

    return isinstance(model, PeftModel)


def saved_generation_config(path: Path) -> Any:
    """The generation config `from_pretrained(path)` gives a model: the file, else one derived from config.json.

    The trainer may have changed the live model's (TRL adds its EOS token), so the saved one is what counts.
    """
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(path)
    except OSError:
        return GenerationConfig.from_pretrained(path, config_file_name="config.json", _from_model_config=True)


@contextmanager
def _adapters_disabled(model: Any) -> Iterator[Any]:
    """A peft model with every adapter off: exactly its (frozen) base model."""
    with model.disable_adapter():
        yield model


@contextmanager
def evaluation_mode(model: Any) -> Iterator[None]:
    """Evaluation mode (no dropout), frozen parameters, no_grad, as the hf engine runs a model from disk.

    Afterwards every module's training flag and every parameter's requires_grad are as they were. (Frozen because
    matmul folds batched inputs differently when the weight requires grad, which changes the float rounding.)
    """
    modes = [(module, module.training) for module in model.modules()]
    trainable = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    model.eval().requires_grad_(False)
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training
        for parameter, requires_grad in trainable:
            parameter.requires_grad_(requires_grad)


@contextmanager
def preserved_random_state() -> Iterator[None]:
    """Restore the python, numpy, torch and CUDA random states afterwards, so probing never shifts training's."""
    python, numpy_state, cpu = random.getstate(), numpy.random.get_state(), torch.random.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(python)
        numpy.random.set_state(numpy_state)
        torch.random.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
