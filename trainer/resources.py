"""The model path, tokenizer, template and precision a run uses, resolved the same way for train and lint."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from sfteval.core.errors import UserError
from sfteval.discovery import weights_kind
from sfteval.templates import Template, get_template

Precision = Literal["fp32", "bf16"]


def resolve_model_path(model: Path | None) -> Path:
    """The given model dir (absolute), or the embedded default model."""
    if model is None:
        from sfteval.default_model import default_model_path

        return default_model_path().resolve()
    path = Path(model).expanduser()
    if not path.is_dir():
        raise UserError(f"--model {model}: model directory not found")
    if not (path / "config.json").exists():
        raise UserError(f"--model {model}: no config.json (not a transformers model directory)")
    weights_kind(path)  # a directory of pickle weights only is refused here, for lint as for train
    return path.resolve()


def load_tokenizer(model_path: Path) -> Any:
    """The model's tokenizer (fast tokenizers only: masks come from character offsets)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model_path))
    except (OSError, ValueError) as error:
        raise UserError(f"{model_path}: cannot load the tokenizer ({error})") from None


def resolve_template(name: str | None, tokenizer: Any) -> Template:
    """The named template, or `native` when the tokenizer has a chat template and `alpaca` otherwise."""
    if name is None:
        name = "native" if getattr(tokenizer, "chat_template", None) else "alpaca"
    return get_template(name, tokenizer)


def cpu_flags() -> set[str]:
    """The CPU feature flags from /proc/cpuinfo (empty where that file does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return set()
    return {
        flag
        for line in text.splitlines()
        if line.startswith("flags")
        for flag in line.split(":", 1)[1].split()
    }


BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def resolve_precision(choice: str) -> Precision:
    """bf16 where the hardware has it (a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX), else fp32.

    Measured on this project's 2-core AVX512-BF16 CPU (one thread, SmolLM2-135M): bf16 autocast needs ~25-35% less
    CPU time per step than fp32. Weights and optimizer state stay fp32 either way; `--precision fp32` opts out.
    """
    if choice in ("fp32", "bf16"):
        return choice  # type: ignore[return-value]
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_flags() & BF16_CPU_FLAGS else "fp32"


def use_free_cores() -> int | None:
    """On a CPU-only machine without OMP_NUM_THREADS: torch threads = the cores other processes leave free.

    The commands call it (`sfteval train`, `sfteval demo`), not the library: a program that embeds the trainer keeps
    its own setting. Returns the thread count chosen, None when nothing was changed.
    """
    import torch

    from sfteval.core.cpu import auto_threads, explicit_threads

    if torch.cuda.is_available() or explicit_threads() is not None:
        return None
    threads = auto_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    return threads
