"""Token encoding shared by the hf and vLLM engines, so both condition on the same tokens and decode alike.

Scoring splits context/continuation as lm-eval's HFLM `_encode_pair` does (trailing context whitespace moves to the
continuation; an empty context conditions on BOS, else EOS); generation prompts are left-truncated so that prompt +
max_new_tokens fits the model's length; text is decoded with special tokens kept (template markers must stay visible).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sfteval.core.errors import UserError
from sfteval.core.requests import GenerationRequest
from sfteval.tokenization import encode_text


@dataclass(frozen=True)
class Encoder:
    """A tokenizer with the engines' rules: BOS at most once, lm-eval's pair split, left truncation."""

    tokenizer: Any
    max_length: int
    prefix_id: int

    @classmethod
    def of(cls, tokenizer: Any, max_length: int) -> Encoder:
        """The encoder of a tokenizer; the prefix of an empty context is BOS, else EOS (as lm-eval's)."""
        prefix_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        return cls(tokenizer=tokenizer, max_length=max_length, prefix_id=prefix_id)

    def pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Token ids of (context, continuation), split like lm-eval's `_encode_pair` so scores match HFLM's."""
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        context_ids = encode_text(self.tokenizer, context) if context else []
        if not context_ids:
            # An empty context conditions on BOS (or EOS) as lm-eval does, unless the continuation starts with it.
            continuation_ids = encode_text(self.tokenizer, continuation)
            if continuation_ids and continuation_ids[0] == self.prefix_id:
                return continuation_ids[:1], continuation_ids[1:]
            return [self.prefix_id], continuation_ids
        whole = encode_text(self.tokenizer, context + continuation)
        return context_ids, whole[len(context_ids) :]

    def prompt_ids(self, index: int, request: GenerationRequest) -> list[int]:
        """Prompt token ids, left-truncated so that prompt + max_new_tokens fits the max length (as lm-eval does)."""
        room = self.max_length - request.max_new_tokens
        if room < 1:
            raise UserError(
                f"generation request {index}: max_new_tokens={request.max_new_tokens} leaves no room for the "
                f"prompt within the max length {self.max_length}"
            )
        return (encode_text(self.tokenizer, request.prompt) or [self.prefix_id])[-room:]

    def decode(self, tokens: Sequence[int]) -> str:
        """Exact text of `tokens`: special tokens kept (template markers must stay visible), no space clean-up."""
        return self.tokenizer.decode(
            list(tokens), skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
