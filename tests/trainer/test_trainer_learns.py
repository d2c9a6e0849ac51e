"""A tiny random model learns a small synthetic instruction task through `sfteval train` (about 20 s on 2 cores).

Task: "what does the {colour} {animal} say" -> the animal's sound; the colour is a distractor. Held-out rows
(unseen colour/animal pairs, chosen by the trainer's own --holdout split) must be answered by greedy decoding.
"""

from __future__ import annotations

import itertools
import json

import torch
from conftest import write_jsonl
from transformers import AutoModelForCausalLM, AutoTokenizer

from sfteval.discovery import MANIFEST_NAME
from sfteval.templates import Message, get_template
from sfteval.tokenization import encode_text
from sfteval.trainer.train import run_training

SOUNDS = {"cat": "meow", "dog": "woof", "bird": "tweet", "cow": "moo", "duck": "quack"}
COLOURS = ["red", "green", "blue", "black", "white", "pink", "grey", "gold"]


def greedy(model, tokenizer, prompt: str, max_new_tokens: int = 8) -> str:
    ids = torch.tensor([encode_text(tokenizer, prompt)])
    with torch.no_grad():
        output = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False,
            eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
    return tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)


def test_tiny_model_learns_and_generalises_to_heldout_rows(tmp_path, tiny_train_config):
    rows = [
        {"id": f"{animal}-{colour}", "prompt": f"what does the {colour} {animal} say", "completion": sound}
        for (animal, sound), colour in itertools.product(SOUNDS.items(), COLOURS)
    ]
    data = write_jsonl(tmp_path / "animals.jsonl", rows)
    config = tiny_train_config([data], epochs=15, batch_size=8, lr=5e-3, holdout=0.2, warmup_ratio=0.05)
    result = run_training(config)
    state = json.loads((config.out / result.checkpoints[-1] / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert result.final_loss < 0.1 * losses[0], (losses[0], result.final_loss)

    manifest = json.loads((config.out / MANIFEST_NAME).read_text())
    heldout = manifest["samples"]["heldout"]
    assert len(heldout) == 8
    model_dir = config.out / result.checkpoints[-1]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    template = get_template(manifest["template"], tokenizer)
    correct = 0
    for pair in heldout:
        prompt = template.render_prompt([Message(**message) for message in pair["messages"]])
        correct += greedy(model, tokenizer, prompt).strip() == pair["response"]
    assert correct >= 6, f"{correct}/8 held-out rows answered correctly"
