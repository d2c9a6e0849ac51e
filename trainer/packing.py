"""Shared-prefix packing: a micro-batch as one sequence, the prefix its rows share computed once.

Rows of an SFT batch usually open alike (the template's system prompt, often the same instruction), and the tokens
after a row's last trained label feed no prediction. `PackingCollator` lays a batch out as one row: the longest
untrained prefix every row shares, once, then each row's remaining tokens up to its last trained label, each token
with its own position id. A 4D attention mask lets a token see the shared prefix and the earlier tokens of its own
row and nothing else, so every hidden state a loss term reads equals the padded batch's; the prefix's activations
take the gradients of all rows at once, the sum the padded batch builds row by row. The loss (mean over trained
tokens) and the gradients are the padded batch's up to float rounding (tests/trainer/test_trainer_packing.py).

Attention over the packed row costs (tokens)^2 pairs where the padded batch costs rows x longest^2, so a batch is
packed only when the estimated work is smaller; otherwise it is padded as before (`PaddingCollator`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from sfteval.attention_masks import MaskKind, as_mask, four_d_mask_kind, unwrapped
from sfteval.tokenization import IGNORE_INDEX
from sfteval.trainer.collate import PaddingCollator
from sfteval.trainer.loss import supports_logits_to_keep, trained_positions

PREFIX_ROW = -1


def packing_mask_kind(model: Any) -> MaskKind | None:
    """The 4D mask the model's attention takes, or None where packing does not apply (the padded path is used)."""
    return four_d_mask_kind(model) if supports_logits_to_keep(model) else None


def has_dropout(model: Any) -> bool:
    """Whether training draws dropout masks (LoRA dropout, attention or hidden dropout).

    A shared prefix computed once would get one mask for all rows where the padded batch draws one per row, so
    with dropout the prefix is not shared (rows are still packed, each token with its own independent mask).
    """
    config = unwrapped(model).config.get_text_config()
    modules = any(isinstance(module, torch.nn.Dropout) and module.p > 0 for module in model.modules())
    return modules or float(getattr(config, "attention_dropout", 0.0) or 0.0) > 0


def shared_prefix_length(features: Sequence[dict[str, Any]]) -> int:
    """Tokens all rows share whose next-token labels are untrained in every row (they can be computed once)."""
    first = features[0]["input_ids"]
    limit = min(len(feature["input_ids"]) for feature in features)
    length = 0
    while length < limit and all(
        feature["input_ids"][length] == first[length]
        and (length + 1 >= len(feature["labels"]) or feature["labels"][length + 1] == IGNORE_INDEX)
        for feature in features
    ):
        length += 1
    return length


def last_trained_label(labels: Sequence[int]) -> int:
    """Index of the row's last trained label (its input token and those after it predict nothing trained); 0: none."""
    return max((index for index, label in enumerate(labels) if label != IGNORE_INDEX), default=0)


@dataclass(frozen=True)
class PackedRows:
    """The packed layout: token ids, position ids, row of each token (PREFIX_ROW for the shared prefix), targets."""

    input_ids: list[int]
    positions: list[int]
    rows: list[int]
    targets: list[int]

    def mask(self, kind: MaskKind) -> torch.Tensor:
        """(1, 1, T, T): a token sees the shared prefix and its own row's earlier tokens."""
        rows, positions = torch.tensor(self.rows), torch.tensor(self.positions)
        visible = (rows[None, :] == rows[:, None]) | (rows[None, :] == PREFIX_ROW)
        return as_mask((visible & (positions[None, :] <= positions[:, None]))[None], kind)


def pack_rows(features: Sequence[dict[str, Any]], share_prefix: bool = True) -> PackedRows:
    """The shared prefix once (when `share_prefix`), then each row from the prefix's end to its last trained label."""
    prefix = shared_prefix_length(features) if share_prefix else 0
    first = features[0]
    input_ids, positions = list(first["input_ids"][:prefix]), list(range(prefix))
    rows, targets = [PREFIX_ROW] * prefix, [IGNORE_INDEX] * prefix
    for row, feature in enumerate(features):
        end = max(last_trained_label(feature["labels"]), prefix)
        input_ids += feature["input_ids"][prefix:end]
        positions += range(prefix, end)
        rows += [row] * (end - prefix)
        targets += feature["labels"][prefix + 1 : end + 1]
    return PackedRows(input_ids, positions, rows, targets)


@dataclass
class TokenCounts:
    """Input tokens of each batch the collator built, so the trainer can count the ones it trained on.

    transformers' Trainer counts `attention_mask.sum()`, which a 4D mask does not give; and accelerate builds one
    batch ahead, so batches are counted when their optimizer step ends (`TokenCountCallback`), not when built.
    """

    pending: deque[int] = field(default_factory=deque)

    def take(self, batches: int) -> int:
        return sum(self.pending.popleft() for _ in range(min(batches, len(self.pending))))


@dataclass(frozen=True)
class PackingCollator:
    """Packs a batch into one row when that is less work than padding it; otherwise pads it (PaddingCollator).

    Either way the labels are next-token targets shifted right by one (`labels[:, j + 1]` is the target of
    position j), so `num_items_in_batch` and the loss read both layouts alike.
    """

    pad_token_id: int
    mask_kind: MaskKind
    pair_weight: float
    share_prefix: bool = True
    counts: TokenCounts = field(default_factory=TokenCounts)

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        self.counts.pending.append(sum(len(feature["input_ids"]) for feature in features))
        packed = pack_rows(features, self.share_prefix)
        tokens, longest = len(packed.input_ids), max(len(feature["input_ids"]) for feature in features)
        padded_work = len(features) * longest * (1 + self.pair_weight * longest)
        nothing_trained = all(target == IGNORE_INDEX for target in packed.targets)
        if nothing_trained or tokens * (1 + self.pair_weight * tokens) >= padded_work:
            return PaddingCollator(self.pad_token_id, keep_trained_logits=True)(features)
        labels = torch.tensor([[IGNORE_INDEX, *packed.targets]], dtype=torch.long)
        return {
            "input_ids": torch.tensor([packed.input_ids], dtype=torch.long),
            "position_ids": torch.tensor([packed.positions], dtype=torch.long),
            "attention_mask": packed.mask(self.mask_kind),
            "labels": labels,
            "logits_to_keep": trained_positions(labels),
        }
