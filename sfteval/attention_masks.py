"""4D attention masks for packed sequences: which attention implementations take one as given, and in which form.

Packing several sequences into one row (the trainer's shared-prefix batches, the hf engine's prefix-tree scoring)
needs a mask saying which earlier tokens each token may see. sdpa reads a boolean mask (True = attend); eager adds
the mask to its scores. Flash kernels take no 4D mask, and a model with a sliding window would lose its window.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

MaskKind = Literal["bool", "additive"]
NATIVE_GQA_SDPA = "sdpa_native_gqa"
"""sdpa with grouped key/value heads kept grouped under a mask on CPU (`sfteval.engines.hf.attention`)."""
MASK_KINDS: dict[str, MaskKind] = {"sdpa": "bool", NATIVE_GQA_SDPA: "bool", "eager": "additive"}


def unwrapped(model: Any) -> Any:
    """The transformers model under a peft wrapper (the model itself when there is none)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def four_d_mask_kind(model: Any) -> MaskKind | None:
    """The 4D mask the model's attention takes as given, or None where a packed row cannot be expressed."""
    config = unwrapped(model).config
    if getattr(config, "sliding_window", None) is not None:
        return None
    return MASK_KINDS.get(getattr(config, "_attn_implementation", None) or "")


def pair_weight(model: Any) -> float:
    """Attention work per (query, key) pair over a token's projection work: 4d / 24d^2 (Kaplan et al. 2020, 2.1).

    Measured on SmolLM2-135M (d = 576, CPU, sdpa with a 4D mask): one pair cost 1/2900 of a token, this gives 1/3456.
    """
    return 1.0 / (6.0 * int(unwrapped(model).config.get_text_config().hidden_size))


def as_mask(allowed: torch.Tensor, kind: MaskKind) -> torch.Tensor:
    """(rows, T, T) booleans, True where query i may see key j, as the (rows, 1, T, T) mask of `kind`."""
    if kind == "bool":
        return allowed[:, None]
    blocked = torch.zeros(allowed.shape, device=allowed.device).masked_fill(
        ~allowed, torch.finfo(torch.float32).min
    )
    return blocked[:, None]
