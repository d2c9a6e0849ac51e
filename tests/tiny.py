"""Tiny models and tokenizers built locally with a fixed seed (no network), shared by the test-suite."""

from __future__ import annotations

import random
from pathlib import Path

SPECIAL_TOKENS = [
    "<unk>",
    "<s>",
    "</s>",
    "<pad>",
    "<|im_start|>",
    "<|im_end|>",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
]

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_WORDS = (
    "the a an of to in is was for on that with as by at from it this be are or which his her their one two three "
    "four five six seven eight nine ten red green blue cat dog bird river mountain city country capital france paris "
    "answer question write list summarize explain translate sentence word words paragraph response instruction input "
    "output sentiment positive negative neutral yes no hello world python code function return print number sum "
    "because however therefore example first second third finally ### Instruction Response Input system user "
    "assistant [INST] [/INST] <<SYS>> <</SYS>> USER ASSISTANT : . , ! ? ( ) - * # \n"
).split(" ")


def _corpus(seed: int = 0, lines: int = 3000) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        n = rng.randint(3, 25)
        out.append(" ".join(rng.choice(_WORDS) for _ in range(n)))
    out.extend(_WORDS)
    return out


def build_tokenizer(
    vocab_size: int = 600, chat_template: str | None = CHATML_TEMPLATE, add_bos: bool = False
):
    """A byte-level BPE tokenizer (any string encodes) with the special tokens templates use."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    if add_bos:
        bos_id = tokenizer.token_to_id("<s>")
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
        )
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=SPECIAL_TOKENS[4:],
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def build_model(tokenizer, seed: int = 0, hidden: int = 64, layers: int = 2):
    """A randomly initialised tiny Llama whose vocabulary matches `tokenizer`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()


def save_tiny_model(path: Path, seed: int = 0, add_bos: bool = False, **kwargs) -> Path:
    """Write a tiny model + tokenizer (safetensors) to `path` and return it."""
    tokenizer = build_tokenizer(add_bos=add_bos)
    model = build_model(tokenizer, seed=seed, **kwargs)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def save_lora_epochs(model_dir: Path, out: Path, epochs: int) -> Path:
    """An HF Trainer-style output dir: `epochs` randomly initialised LoRA adapters (checkpoint-5, -10, …) of the
    model in `model_dir`, each with its trainer_state.json."""
    import json

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    for epoch in range(1, epochs + 1):
        torch.manual_seed(epoch)
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        directory = out / f"checkpoint-{5 * epoch}"
        get_peft_model(model, lora).save_pretrained(directory)
        (directory / "trainer_state.json").write_text(
            json.dumps({"epoch": float(epoch), "global_step": 5 * epoch})
        )
    return out
