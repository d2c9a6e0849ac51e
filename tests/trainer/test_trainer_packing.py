"""Shared-prefix packing: the packed batch gives the padded batch's loss, per-row losses and gradients."""

from __future__ import annotations

import pytest
import torch
from conftest import write_jsonl
from test_trainer_run import varied_rows

from sfteval.tokenization import IGNORE_INDEX
from sfteval.trainer.collate import PaddingCollator
from sfteval.trainer.loss import token_mean_loss
from sfteval.trainer.packing import PREFIX_ROW, PackingCollator, has_dropout, pack_rows, shared_prefix_length
from sfteval.trainer.train import run_training

PREFIX = [5, 6, 7, 8, 9, 10]


def row(suffix: list[int], trained_from: int, untrained_tail: int = 0) -> dict[str, list[int]]:
    """A row opening with PREFIX; labels trained from index `trained_from`, the last `untrained_tail` untrained."""
    input_ids = PREFIX + suffix
    labels = [IGNORE_INDEX] * trained_from + input_ids[trained_from:]
    if untrained_tail:
        labels[-untrained_tail:] = [IGNORE_INDEX] * untrained_tail
    return {"input_ids": input_ids, "labels": labels}


def uneven_rows() -> list[dict[str, list[int]]]:
    """Rows of different lengths, sharing a 6-token prefix (one of them diverging inside it), with untrained tails."""
    diverging = row([40, 41, 42, 43], trained_from=8)
    diverging["input_ids"][4] = 99
    return [
        row([11, 12, 13, 14, 15, 16, 17, 18, 19, 20], trained_from=9, untrained_tail=2),
        row([21, 22, 23], trained_from=7),
        row([31, 32, 33, 34, 35, 36], trained_from=10, untrained_tail=1),
        diverging,
    ]


def load_tiny(model_dir, attention: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation=attention, dtype=torch.float32)


def loss_and_gradients(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    batch = dict(batch)
    labels = batch.pop("labels")
    items = (labels[:, 1:] != IGNORE_INDEX).sum()
    loss = token_mean_loss(model(**batch), labels, items)
    loss.backward()
    return loss.detach(), [parameter.grad.clone() for parameter in model.parameters()]


def test_pack_rows_shares_the_untrained_prefix_and_drops_untrained_tails():
    rows = uneven_rows()
    assert shared_prefix_length(rows) == 4  # the fourth row leaves the prefix at index 4
    packed = pack_rows(rows)
    assert packed.rows[:4] == [PREFIX_ROW] * 4 and packed.positions[:4] == [0, 1, 2, 3]
    ends = [16 - 2 - 1, 9 - 1, 12 - 1 - 1, 10 - 1]  # each row up to (not including) its last trained label
    assert [packed.rows.count(index) for index in range(4)] == [end - 4 for end in ends]
    assert sum(target != IGNORE_INDEX for target in packed.targets) == sum(
        sum(label != IGNORE_INDEX for label in item["labels"][1:]) for item in rows
    )


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_batch_gives_the_padded_loss_and_gradients(tiny_model_dir, attention):
    model = load_tiny(tiny_model_dir, attention)
    rows = uneven_rows()
    collator = PackingCollator(0, "bool" if attention == "sdpa" else "additive", pair_weight=0.0)
    packed = collator(rows)
    assert packed["attention_mask"].dim() == 4 and packed["input_ids"].shape[1] < 4 * 16
    padded_loss, padded_gradients = loss_and_gradients(
        model, PaddingCollator(0, keep_trained_logits=True)(rows)
    )
    packed_loss, packed_gradients = loss_and_gradients(model, packed)
    assert abs(packed_loss.item() - padded_loss.item()) <= 1e-5
    for ours, reference in zip(packed_gradients, padded_gradients, strict=True):
        assert torch.allclose(ours, reference, rtol=1e-5, atol=1e-5)
    largest = max(gradient.abs().max().item() for gradient in padded_gradients)
    assert largest > 1e-3  # the gradients compared are not all ~0


def test_no_row_attends_to_another(tiny_model_dir):
    """Each row's loss inside the packed batch equals its loss computed alone (cross-row attention is blocked)."""
    model = load_tiny(tiny_model_dir, "sdpa")
    rows = uneven_rows()
    packed_rows = pack_rows(rows)
    packed = PackingCollator(0, "bool", pair_weight=0.0)(rows)
    labels = packed.pop("labels")
    packed.pop("logits_to_keep")
    with torch.no_grad():
        logits = model(**packed).logits[0]
    targets = torch.tensor(packed_rows.targets)
    per_token = torch.nn.functional.cross_entropy(
        logits, targets, ignore_index=IGNORE_INDEX, reduction="none"
    )
    assert torch.equal(labels[0, 1:], targets)
    for index, item in enumerate(rows):
        own = torch.tensor(packed_rows.rows) == index
        with torch.no_grad():
            alone = model(input_ids=torch.tensor([item["input_ids"]]), labels=torch.tensor([item["labels"]]))
        trained = own & (targets != IGNORE_INDEX)
        assert abs(per_token[trained].mean().item() - alone.loss.item()) <= 1e-5


def test_packing_falls_back_to_padding_when_attention_would_cost_more():
    """Rows with nothing to share: one packed row of 2 x 15 tokens costs 30^2 attention pairs, padding 2 x 16^2."""
    rows = [
        {"input_ids": [first, *range(20, 35)], "labels": [IGNORE_INDEX, *range(20, 35)]} for first in (1, 2)
    ]
    assert PackingCollator(0, "bool", pair_weight=0.0)(rows)["attention_mask"].dim() == 4
    batch = PackingCollator(0, "bool", pair_weight=1.0)(rows)
    assert batch["attention_mask"].dim() == 2 and batch["input_ids"].shape == (2, 16)


def test_no_shared_prefix_under_dropout(tiny_model_dir, tiny_tokenizer):
    """With dropout the padded batch draws a mask per row; a prefix computed once would share one across rows."""
    from peft import LoraConfig, get_peft_model

    from sfteval.trainer.train import batch_collator

    model = load_tiny(tiny_model_dir, "sdpa")
    assert not has_dropout(model) and batch_collator(model, tiny_tokenizer)[0].share_prefix
    lora = get_peft_model(model, LoraConfig(r=2, lora_dropout=0.05, target_modules=["q_proj"]))
    assert has_dropout(lora) and not batch_collator(lora, tiny_tokenizer)[0].share_prefix
    packed = pack_rows(uneven_rows(), share_prefix=False)
    assert PREFIX_ROW not in packed.rows and packed.positions[:2] == [0, 1]


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_training_runs_packed_and_padded_alike(tmp_path, tiny_train_config, monkeypatch, lora):
    """Three steps packed vs padded: same losses, same input tokens counted (also when max_steps stops an epoch).

    LoRA without dropout: dropout masks are drawn per tensor, so any change of batch layout redraws them.
    """
    data = write_jsonl(tmp_path / "d.jsonl", varied_rows(16, seed=5))
    settings = {"max_steps": 3, "holdout": 0, "lora": lora, "lora_dropout": 0.0, "lr": 1e-3}
    packed = run_training(tiny_train_config([data], out=tmp_path / "packed", **settings))
    monkeypatch.setattr("sfteval.trainer.packing.packing_mask_kind", lambda model: None)
    padded = run_training(tiny_train_config([data], out=tmp_path / "padded", **settings))
    assert packed.losses == pytest.approx(padded.losses, rel=1e-5, abs=1e-6)
    assert packed.tokens_seen == padded.tokens_seen > 0
    assert packed.checkpoints == padded.checkpoints == ["checkpoint-3"]
