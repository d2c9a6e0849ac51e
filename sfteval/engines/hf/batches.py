"""Batched scoring on a loaded transformers model, and the runtime the hf engine's inner loops share.

Scoring follows lm-eval's HFLM (`_encode_pair` split, left truncation to `max_length + 1` tokens, float32 log-softmax)
so that results agree with it; inputs that are a prefix of another input share one row. Generation is in `decode.py`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sfteval.core.errors import UserError
from sfteval.core.requests import ProgressCallback, Score, ScoreRequest
from sfteval.engines.encoding import Encoder


@dataclass(frozen=True)
class Runtime:
    """What the batch loops need from a loaded model (the peft wrapper when adapters are attached)."""

    model: Any
    encoder: Encoder
    device: torch.device
    eos_ids: frozenset[int]
    batch_size: int
    keeps_logits: bool

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        keep: int,
        past_key_values: Any = None,
        use_cache: bool = False,
    ) -> tuple[torch.Tensor, Any]:
        """Logits of the last `keep` positions (computed only there when the model supports it) and the KV cache.

        The positions go to the model as an index tensor, not a count: transformers slices the hidden states with a
        count, and a strided slice of a batch makes the head's matmul broadcast its vocabulary-wide weight once per
        row (a [rows, 1, hidden] @ [rows, hidden, vocab] bmm, 80× slower than the matmul an index gives).
        """
        width = input_ids.shape[1]
        extra: dict[str, Any] = {}
        if self.keeps_logits:
            extra["logits_to_keep"] = (
                keep if keep >= width else torch.arange(width - keep, width, device=input_ids.device)
            )
        output = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
            **extra,
        )
        return output.logits[:, -keep:], output.past_key_values


def left_pad(rows: Sequence[Sequence[int]], device: torch.device) -> tuple[torch.Tensor, ...]:
    """Left-padded input ids, attention mask and position ids (counting real tokens only) for a batch."""
    width = max(len(row) for row in rows)
    input_ids = torch.zeros((len(rows), width), dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        input_ids[index, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        attention_mask[index, width - len(row) :] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return input_ids.to(device), attention_mask.to(device), position_ids.to(device)


def plain_cache_layers(cache: Any) -> bool:
    """Whether every layer of a KV cache is a plain full-attention dynamic layer ([batch, heads, T, dim] tensors),
    so rows can be selected, padded and appended tensor by tensor."""
    from transformers.cache_utils import DynamicLayer

    layers: list[Any] = getattr(cache, "layers", None) or []
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


@dataclass(frozen=True)
class ScoreTarget:
    """One score request placed in a model input row: logits at `start`.. predict `tokens`."""

    request_index: int
    start: int
    tokens: tuple[int, ...]
    ranks: bool
    top_k: int = 0


def score_requests(
    runtime: Runtime, requests: Sequence[ScoreRequest], progress: ProgressCallback | None
) -> list[Score]:
    """Score every request; rows are sorted longest first (out-of-memory shows up at once) and batched."""
    results: list[Score | None] = [None] * len(requests)
    inputs: dict[tuple[int, ...], list[ScoreTarget]] = {}
    for index, request in enumerate(requests):
        context, continuation = runtime.encoder.pair(request.context, request.continuation)
        if not continuation:
            results[index] = Score(
                0.0, (), True, (), () if request.ranks else None, () if request.top_k else None
            )
            continue
        if len(continuation) > runtime.encoder.max_length:
            raise UserError(
                f"score request {index}: continuation of {len(continuation)} tokens exceeds the max length "
                f"{runtime.encoder.max_length}"
            )
        row = tuple((context + continuation)[-(runtime.encoder.max_length + 1) :][:-1])
        target = ScoreTarget(
            index, len(row) - len(continuation), tuple(continuation), request.ranks, request.top_k
        )
        inputs.setdefault(row, []).append(target)
    if progress and len(requests) > sum(len(targets) for targets in inputs.values()):
        progress(len(requests) - sum(len(targets) for targets in inputs.values()))
    rows = sorted(_merge_prefix_rows(inputs), key=lambda item: -len(item[0]))
    for start in range(0, len(rows), runtime.batch_size):
        batch = rows[start : start + runtime.batch_size]
        for target, score in _score_batch(runtime, batch):
            results[target.request_index] = score
        if progress:
            progress(sum(len(targets) for _, targets in batch))
    return [result for result in results if result is not None]


def _merge_prefix_rows(
    inputs: dict[tuple[int, ...], list[ScoreTarget]],
) -> list[tuple[tuple[int, ...], list[ScoreTarget]]]:
    """Fold every input that is a prefix of another into the longer row: a causal model's logits are the same there.

    In descending lexicographic order an input's extensions come right before it, so one pass suffices. Multiple-choice
    options with one-token answers (same context) all land in one row, as in lm-eval's one-token cache.
    """
    merged: list[tuple[tuple[int, ...], list[ScoreTarget]]] = []
    for row in sorted(inputs, reverse=True):
        if merged and merged[-1][0][: len(row)] == row:
            merged[-1][1].extend(inputs[row])
        else:
            merged.append((row, list(inputs[row])))
    return merged


def _score_batch(
    runtime: Runtime, batch: list[tuple[tuple[int, ...], list[ScoreTarget]]]
) -> Iterator[tuple[ScoreTarget, Score]]:
    """One forward pass over a batch of rows, keeping logits only from the first continuation position on."""
    input_ids, attention_mask, position_ids = left_pad([row for row, _ in batch], runtime.device)
    width = input_ids.shape[1]
    offsets = [width - len(row) for row, _ in batch]
    first_kept = min(
        offset + target.start
        for offset, (_, targets) in zip(offsets, batch, strict=True)
        for target in targets
    )
    logits, _ = runtime.forward(input_ids, attention_mask, position_ids, keep=width - first_kept)
    for row_logits, offset, (_, targets) in zip(logits, offsets, batch, strict=True):
        for target in targets:
            begin = offset + target.start - first_kept
            yield (
                target,
                score_target(runtime, row_logits[begin : begin + len(target.tokens)].float(), target),
            )


def score_target(runtime: Runtime, logits: torch.Tensor, target: ScoreTarget) -> Score:
    """Log-probs (float32 log-softmax, float64 sum), greediness and optional ranks of one continuation."""
    tokens = torch.tensor(target.tokens, device=logits.device)
    logprobs = torch.log_softmax(logits, dim=-1)
    token_logprobs = tuple(logprobs.gather(1, tokens[:, None]).squeeze(1).tolist())
    ranks = None
    if target.ranks:
        chosen = logits.gather(1, tokens[:, None])
        ranks = tuple((logits > chosen).sum(-1).add(1).tolist())
    top = None
    if target.top_k:
        values, indices = logprobs.topk(min(target.top_k, logprobs.shape[-1]), dim=-1)
        top = tuple(
            tuple(zip(row_ids, row_values, strict=True))
            for row_ids, row_values in zip(indices.tolist(), values.tolist(), strict=True)
        )
    return Score(
        logprob=sum(token_logprobs),
        token_logprobs=token_logprobs,
        is_greedy=bool((logprobs.argmax(-1) == tokens).all()),
        tokens=tuple(runtime.encoder.decode([token]) for token in target.tokens),
        ranks=ranks,
        top_logprobs=top,
    )
