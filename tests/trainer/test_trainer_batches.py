"""Batch order and loss: length-grouped order per global batch, reshuffled each epoch; token-mean loss."""

from __future__ import annotations

import random

import pytest
import torch
from conftest import write_jsonl
from test_trainer_run import varied_rows

from sfteval.trainer.collate import ExampleDataset, length_grouped_order
from sfteval.trainer.loss import token_mean_loss, trained_positions
from sfteval.trainer.train import run_training


def padding(lengths, order, group_size):
    groups = [order[i : i + group_size] for i in range(0, len(order), group_size)]
    return sum(
        max(lengths[i] for i in group) * len(group) - sum(lengths[i] for i in group) for group in groups
    )


def test_length_grouped_order_is_a_seeded_permutation_with_little_padding():
    lengths = [random.Random(index).randint(5, 500) for index in range(400)]
    order = length_grouped_order(lengths, group_size=8, seed=1, epoch=0)
    assert sorted(order) == list(range(400))
    assert order == length_grouped_order(lengths, group_size=8, seed=1, epoch=0)
    assert order != length_grouped_order(lengths, group_size=8, seed=1, epoch=1)
    shuffled = list(range(400))
    random.Random(0).shuffle(shuffled)
    assert padding(lengths, order, 8) < 0.1 * padding(lengths, shuffled, 8)


def test_each_epoch_gets_a_new_order(tmp_path, tiny_train_config, monkeypatch):
    epochs_seen = []
    original = ExampleDataset.set_epoch
    monkeypatch.setattr(
        ExampleDataset, "set_epoch", lambda self, epoch: (epochs_seen.append(epoch), original(self, epoch))
    )
    data = write_jsonl(tmp_path / "d.jsonl", varied_rows(9))
    run_training(tiny_train_config([data], epochs=3, holdout=0))
    assert sorted(set(epochs_seen)) == [0, 1, 2]  # set_epoch is idempotent; accelerate may call it twice


def test_loss_at_trained_positions_equals_the_full_model_loss(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    input_ids = torch.randint(0, 500, (2, 12))
    labels = input_ids.clone()
    labels[0, :5] = -100
    labels[1, :8] = -100
    labels[1, 10:] = -100  # padding
    items = torch.tensor(int((labels[:, 1:] != -100).sum()))
    full = model(input_ids=input_ids, labels=labels, num_items_in_batch=items)
    positions = trained_positions(labels)
    assert positions.tolist() == list(range(4, 11))
    kept = model(input_ids=input_ids, logits_to_keep=positions)
    assert kept.logits.shape[1] == len(positions)
    assert token_mean_loss(kept, labels, items).item() == pytest.approx(full.loss.item(), rel=1e-6)
    assert token_mean_loss(model(input_ids=input_ids), labels, items).item() == pytest.approx(
        full.loss.item(), rel=1e-6
    )
