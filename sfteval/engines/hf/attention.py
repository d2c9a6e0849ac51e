"""sdpa that keeps grouped-query attention grouped on CPU when a mask is given.

transformers' sdpa path repeats every key/value head for its query heads (`repeat_kv`) whenever an attention mask is
passed, because CUDA's fast kernels take no mask with grouped heads. The hf engine passes a mask at every decode step
(left padding), so on CPU each step copied the whole KV cache 3× wider for SmolLM2 (9 query heads, 3 key/value
heads), layer by layer. torch's CPU kernel takes the mask and the grouped heads together (`enable_gqa`) and gives the
same bits: 0.44 ms instead of 2.57 ms per layer for a 24-row decode step over 300 cached tokens (`bench/RESULTS.md`).

The engine switches the models it loads itself from `sdpa` to this implementation (`use_native_gqa`); everything
else (GPU, no mask, no grouped heads, dropout, position biases, paged caches) goes through transformers' own sdpa.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from sfteval.attention_masks import NATIVE_GQA_SDPA


def sdpa_native_gqa(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' `sdpa_attention_forward`, with grouped key/value heads passed as they are on a masked CPU call."""
    grouped = getattr(module, "num_key_value_groups", 1) > 1
    plain = dropout == 0.0 and kwargs.get("position_bias") is None and kwargs.get("cache") is None
    if (
        attention_mask is None
        or not grouped
        or not plain
        or query.device.type != "cpu"
        or key.shape[-1] != value.shape[-1]
        or kwargs.get("output_attentions", False)
    ):
        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            is_causal=is_causal,
            **kwargs,
        )
    # With a mask, transformers' sdpa runs with is_causal=False: the mask says everything.
    output = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, scale=scaling, enable_gqa=True
    )
    return output.transpose(1, 2).contiguous(), None


def register() -> None:
    """Make `NATIVE_GQA_SDPA` an attention implementation transformers knows, with sdpa's masks."""
    AttentionInterface.register(NATIVE_GQA_SDPA, sdpa_native_gqa)
    AttentionMaskInterface.register(NATIVE_GQA_SDPA, sdpa_mask)


def use_native_gqa(model: Any) -> bool:
    """Switch a model the engine loaded itself from `sdpa` to `NATIVE_GQA_SDPA`; True when it did.

    Only where it can matter: a CPU model with grouped key/value heads. Models that embed the engine (the training
    callback's live model) are left alone, as is every other attention implementation.
    """
    config = model.config
    text = config.get_text_config()
    heads = getattr(text, "num_attention_heads", None)
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    on_cpu = next(model.parameters()).device.type == "cpu"
    if config._attn_implementation != "sdpa" or not on_cpu or heads is None or kv_heads == heads:
        return False
    if not type(model)._can_set_attn_implementation():
        return False
    register()
    model.set_attn_implementation(NATIVE_GQA_SDPA)
    return config._attn_implementation == NATIVE_GQA_SDPA
