"""The model path, tokenizer, template and precision a run uses, resolved the same way for train and lint."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from sfteval.errors import UserError
from sfteval.templates import Template, get_template

Precision = Literal["fp32", "bf16"]


def resolve_model_path(model: Path | None) -> Path:
    """The given model dir (absolute), or the embedded default model."""
    if model is None:
        from sfteval.models import default_model_path

        return default_model_path().resolve()
    path = Path(model).expanduser()
    if not path.is_dir():
        raise UserError(f"--model {model}: model directory not found")
    if not (path / "config.json").exists():
        raise UserError(f"--model {model}: no config.json (not a transformers model directory)")
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


def resolve_precision(choice: str) -> Precision:
    """bf16 where it is fast: a CUDA GPU with bf16, or a CPU with AMX tiles.

    AVX512-BF16 alone is not enough: on such a CPU (this project's 2-core machine) bf16 autocast measured about
    twice as slow as fp32 for SmolLM2-135M forward+backward, and TRL's bf16 default ~12x slower.
    """
    if choice in ("fp32", "bf16"):
        return choice  # type: ignore[return-value]
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if "amx_bf16" in cpu_flags() else "fp32"
