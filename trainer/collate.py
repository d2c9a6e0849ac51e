"""Batches for the Trainer: right padding, labels padded with IGNORE_INDEX (never derived from the pad id).

Masking by `labels == pad_token_id` would also mask the EOS when pad == EOS (SmolLM2, many Llama setups), so
the model would never learn to stop (alignment-handbook#127); padding is marked by position instead.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sfteval.tokenization import IGNORE_INDEX, TokenizedExample
from sfteval.trainer.loss import trained_positions

MEGABATCH_GROUPS = 50


def length_grouped_order(lengths: Sequence[int], group_size: int, seed: int, epoch: int) -> list[int]:
    """A seeded order in which each run of `group_size` rows has similar lengths (little padding).

    Rows are shuffled, sorted by length inside windows of 50 groups, cut into groups, and the groups shuffled.
    The order depends only on the global batch (`group_size`), not on how it is split across devices or
    accumulation steps, so 2 processes x 2 rows see exactly what 1 process x 4 rows sees.
    """
    rng = random.Random(f"{seed}:{epoch}")
    indices = list(range(len(lengths)))
    rng.shuffle(indices)
    window = group_size * MEGABATCH_GROUPS
    groups: list[list[int]] = []
    for start in range(0, len(indices), window):
        ordered = sorted(indices[start : start + window], key=lambda index: -lengths[index])
        groups += [ordered[i : i + group_size] for i in range(0, len(ordered), group_size)]
    rng.shuffle(groups)
    return [index for group in groups for index in group]


class ExampleDataset(torch.utils.data.Dataset):
    """Tokenised rows in a length-grouped order, reshuffled by `set_epoch` (called by accelerate each epoch).

    The Trainer reads it with a sequential sampler; grouping lives here rather than in a Trainer subclass.
    """

    def __init__(self, examples: Sequence[TokenizedExample], group_size: int, seed: int) -> None:
        self.examples = list(examples)
        self.lengths = [len(example.input_ids) for example in self.examples]
        self.group_size = group_size
        self.seed = seed
        self.order = length_grouped_order(self.lengths, group_size, seed, epoch=0)

    def set_epoch(self, epoch: int) -> None:
        self.order = length_grouped_order(self.lengths, self.group_size, self.seed, epoch)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        example = self.examples[self.order[index]]
        return {"input_ids": list(example.input_ids), "labels": list(example.labels)}


@dataclass(frozen=True)
class PaddingCollator:
    """Right-pads rows to the longest; padded positions get attention 0 and label IGNORE_INDEX.

    With `keep_trained_logits`, the batch also names the positions whose logits the loss needs (see loss.py).
    """

    pad_token_id: int
    keep_trained_logits: bool = False

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        longest = max(len(feature["input_ids"]) for feature in features)
        input_ids = torch.full((len(features), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), longest), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(features), longest), dtype=torch.long)
        for row, feature in enumerate(features):
            length = len(feature["input_ids"])
            input_ids[row, :length] = torch.tensor(feature["input_ids"], dtype=torch.long)
            labels[row, :length] = torch.tensor(feature["labels"], dtype=torch.long)
            attention_mask[row, :length] = 1
        batch = {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
        if self.keep_trained_logits:
            batch["logits_to_keep"] = trained_positions(labels)
        return batch


def pad_token_id(tokenizer: Any) -> int:
    """The id written into padding (its value never matters for the loss: labels mark padding by position)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id):
        if candidate is not None:
            return int(candidate)
    return 0
