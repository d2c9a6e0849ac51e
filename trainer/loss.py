"""The training loss: mean cross-entropy per trained token over the whole accumulation window.

Logits are computed only where a trained token is predicted (`logits_to_keep` = the positions whose next-token
label is trained in some row of the batch), so the lm_head and the softmax skip prompt and padding positions.
transformers' Trainer supplies `num_items_in_batch`, the trained tokens of the whole window (all ranks), so
accumulation 1x8 and 4x2 give the same loss and gradients.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from sfteval.tokenization import IGNORE_INDEX


def trained_positions(labels: torch.Tensor) -> torch.Tensor:
    """Positions p whose target labels[:, p + 1] is trained in at least one row."""
    return (labels[:, 1:] != IGNORE_INDEX).any(dim=0).nonzero().squeeze(-1)


def supports_logits_to_keep(model: Any) -> bool:
    """Whether the (unwrapped) causal LM's forward takes `logits_to_keep` (transformers' models since 4.50)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def token_mean_loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
    """Summed cross-entropy of trained tokens / trained tokens in the window; logits full or at trained positions."""
    from transformers.loss.loss_utils import ForCausalLMLoss

    logits = outputs["logits"]
    if logits.shape[1] == labels.shape[1]:
        return ForCausalLMLoss(logits, labels, logits.shape[-1], num_items_in_batch=num_items_in_batch)
    targets = labels[:, trained_positions(labels) + 1]
    return ForCausalLMLoss(
        logits,
        None,
        logits.shape[-1],
        num_items_in_batch=num_items_in_batch,
        shift_labels=targets.contiguous(),
    )
