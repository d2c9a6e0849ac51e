"""Direct transformers/peft computations the hf engine's tests compare against (no engine involved)."""

from __future__ import annotations

from pathlib import Path

import torch

from sfteval.tokenization import encode_text


def make_adapter(model_dir: Path, path: Path, seed: int) -> Path:
    """A LoRA adapter with random (non-zero) A and B, so it changes the model's outputs."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    config = LoraConfig(
        r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False
    )
    get_peft_model(base, config).save_pretrained(path, safe_serialization=True)
    return path


def direct_scores(
    model, tokenizer, context: str, continuation: str
) -> tuple[list[float], list[int], list[int]]:
    """Per-token log-probs, greedy tokens and ranks from one unpadded forward pass, without the engine."""
    moved = len(context) - len(context.rstrip())
    context, continuation = context[: len(context) - moved], context[len(context) - moved :] + continuation
    context_ids = encode_text(tokenizer, context) or [tokenizer.bos_token_id]
    whole = (
        context_ids + encode_text(tokenizer, continuation)
        if context == ""
        else encode_text(tokenizer, context + continuation)
    )
    continuation_ids = whole[len(context_ids) :]
    with torch.no_grad():
        logits = model(torch.tensor([whole])).logits[0, len(context_ids) - 1 : -1].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    targets = torch.tensor(continuation_ids)
    chosen = logits.gather(1, targets[:, None])
    ranks = ((logits > chosen).sum(-1) + 1).tolist()
    return logprobs.gather(1, targets[:, None]).squeeze(1).tolist(), logprobs.argmax(-1).tolist(), ranks


def reference_greedy(model, tokenizer, prompt: str, max_new_tokens: int) -> list[int]:
    ids = encode_text(tokenizer, prompt)
    output = model.generate(
        torch.tensor([ids]), max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0
    )
    return output[0, len(ids) :].tolist()


def merged_model(model_dir: Path, adapter_dir: Path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir)
    return PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload().eval()


def metaspace_model_dir(path: Path) -> Path:
    """A tiny model with a SentencePiece-style tokenizer, whose decoder drops a sequence's leading space."""
    import tiny
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False
    )
    tokenizer.train_from_iterator(tiny._corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    tiny.build_model(fast).save_pretrained(path, safe_serialization=True)
    fast.save_pretrained(path)
    return path


def assert_same_scores(expected, actual) -> None:
    """Scores of one request list by two paths agree: log-probs to float rounding, everything else exactly."""
    import pytest

    assert len(actual) == len(expected)
    for reference, score in zip(expected, actual, strict=True):
        assert score.token_logprobs == pytest.approx(reference.token_logprobs, abs=1e-5)
        assert score.logprob == pytest.approx(reference.logprob, abs=1e-4)
        assert (score.is_greedy, score.tokens, score.ranks) == (
            reference.is_greedy,
            reference.tokens,
            reference.ranks,
        )
        assert (score.top_logprobs is None) == (reference.top_logprobs is None)
        for reference_row, row in zip(reference.top_logprobs or (), score.top_logprobs or (), strict=True):
            assert [token for token, _ in row] == [token for token, _ in reference_row]
