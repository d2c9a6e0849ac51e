"""Segments to token ids and loss labels: the full text is tokenized once, labels come from character spans.

Tokenizing prompt and response separately and masking `len(prompt_ids)` tokens goes wrong when the tokenizer
merges across the boundary (trl#1920, trl#5213); here a merge can only change which token carries a character,
never shift the mask. Labels are not shifted (HF causal-LM models shift inside the loss).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, chain, repeat
from typing import Any, Literal

from sfteval.core.errors import UserError
from sfteval.templates import Segment

IGNORE_INDEX = -100
Truncation = Literal["drop", "keep_start"]


@dataclass(frozen=True)
class TokenizedExample:
    """One training row: `labels[i]` is `input_ids[i]` on trained tokens and IGNORE_INDEX elsewhere."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    truncated: bool
    num_trained: int


def _bos_to_prepend(tokenizer: Any, ids: Sequence[int]) -> list[int]:
    """[BOS] if the tokenizer normally adds one and `ids` lack it at the start: BOS appears once at most."""
    bos = tokenizer.bos_token_id
    if bos is None or ids[:1] == [bos]:
        return []
    with_specials = tokenizer("a", add_special_tokens=True)["input_ids"]
    return [bos] if with_specials[:1] == [bos] else []


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of an already-templated prompt; the tokenizer's BOS is added unless the text has it."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return _bos_to_prepend(tokenizer, ids) + ids


def _encode_with_offsets(tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Ids and character offsets of `text`; special tokens written as text become their single id."""
    try:
        encoding = tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, split_special_tokens=False
        )
    except NotImplementedError:
        raise UserError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} cannot report character offsets",
            hint="sfteval builds loss masks from offsets and needs a fast (tokenizers-backed) tokenizer",
        ) from None
    return list(encoding["input_ids"]), [tuple(offset) for offset in encoding["offset_mapping"]]


def _trained_flags(segments: Sequence[Segment], offsets: Sequence[tuple[int, int]]) -> list[bool]:
    """A token is trained iff any character it covers lies in a trainable segment.

    So a token straddling a boundary (BPE merging the prompt's trailing space with the response's first word,
    " hi" after "Answer:") is trained: every response character is learned, never the response start dropped
    (tloen/alpaca-lora#306); the cost is that such a token also carries the prompt's boundary characters.
    """
    flags = chain.from_iterable(repeat(int(segment.trainable), len(segment.text)) for segment in segments)
    trainable_before = list(accumulate(flags, initial=0))
    length = len(trainable_before) - 1
    trained = []
    for start, end in offsets:
        start = min(start, max(length - 1, 0))
        end = min(max(end, start + 1), length)
        trained.append(trainable_before[end] > trainable_before[start])
    return trained


def tokenize_segments(
    tokenizer: Any,
    segments: Sequence[Segment],
    max_length: int | None = None,
    truncation: Truncation = "keep_start",
) -> TokenizedExample | None:
    """Ids and labels of rendered segments; None when `truncation="drop"` and the row exceeds `max_length`.

    `keep_start` keeps the first `max_length` tokens (the terminator may be cut; `truncated` says so). The
    result may have no trained tokens (`num_trained == 0`); callers decide whether that is an error.
    """
    if truncation not in ("drop", "keep_start"):
        raise UserError(f"unknown truncation policy {truncation!r}", hint="expected 'drop' or 'keep_start'")
    if max_length is not None and max_length < 1:
        raise UserError(f"max_length must be a positive number of tokens, got {max_length}")
    ids, offsets = _encode_with_offsets(tokenizer, "".join(segment.text for segment in segments))
    labels = [
        token if trained else IGNORE_INDEX
        for token, trained in zip(ids, _trained_flags(segments, offsets), strict=True)
    ]
    bos = _bos_to_prepend(tokenizer, ids)
    ids, labels = bos + ids, [IGNORE_INDEX] * len(bos) + labels
    truncated = max_length is not None and len(ids) > max_length
    if truncated and truncation == "drop":
        return None
    if truncated:
        ids, labels = ids[:max_length], labels[:max_length]
    num_trained = sum(label != IGNORE_INDEX for label in labels)
    return TokenizedExample(tuple(ids), tuple(labels), truncated, num_trained)


def trained_text(tokenizer: Any, example: TokenizedExample) -> str:
    """The decoded trained tokens (special tokens kept), to check what a row actually teaches."""
    trained = [
        token for token, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE_INDEX
    ]
    return tokenizer.decode(trained, skip_special_tokens=False, clean_up_tokenization_spaces=False)
