"""Shared-context scoring for the hf engine: requests with the same context (multiple-choice options) run it once.

The context batch runs with a KV cache whose last logits score every option's first token; for longer options the
cache rows are copied once per option and the rest of the option runs on top, options of similar length together
(little padding, few wasted output positions). A causal model's logits do not depend on how the sequence was split between the two
passes, so scores equal those of one full pass (lm-eval's HFLM) up to float rounding, while the context, usually
most of the tokens, is computed once instead of once per option. Requests that share no context, or would need
left truncation, go to `score_requests` unchanged.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from sfteval.core.requests import ProgressCallback, Score, ScoreRequest
from sfteval.engines.hf.batches import (
    Runtime,
    ScoreTarget,
    left_pad,
    plain_cache_layers,
    score_requests,
    score_target,
)

Group = tuple[tuple[int, ...], list[int]]
# Padded positions a longer option may add to a pass before it starts its own (each pass re-reads all weights).
PADDING_BUDGET = 32
# Context tokens a shared prefix must save for it to get a pass of its own.
PREFIX_SAVING = 64


def score_with_shared_contexts(
    runtime: Runtime, requests: Sequence[ScoreRequest], progress: ProgressCallback | None
) -> list[Score]:
    """Score every request; groups of options sharing a context are batched by context, longest contexts first."""
    encoded = [runtime.encoder.pair(request.context, request.continuation) for request in requests]
    by_context: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for index, (context, continuation) in enumerate(encoded):
        if continuation and len(context) + len(continuation) - 1 <= runtime.encoder.max_length:
            by_context[tuple(context)].append(index)
    groups = [(context, indices) for context, indices in by_context.items() if len(indices) > 1]
    grouped = {index for _, indices in groups for index in indices}
    rest = [index for index in range(len(requests)) if index not in grouped]
    results: list[Score | None] = [None] * len(requests)
    for index, score in zip(
        rest, score_requests(runtime, [requests[i] for i in rest], progress), strict=True
    ):
        results[index] = score
    for batch in _batches(sorted(groups, key=lambda group: -len(group[0])), runtime.batch_size):
        for index, score in _score_groups(runtime, batch, encoded, requests):
            results[index] = score
        if progress:
            progress(sum(len(indices) for _, indices in batch))
    return [result for result in results if result is not None]


def _batches(groups: Sequence[Group], batch_size: int) -> Iterator[Sequence[Group]]:
    """`batch_size` contexts per batch: the context pass is as wide as a row batch, the option pass wider but short."""
    for start in range(0, len(groups), batch_size):
        yield groups[start : start + batch_size]


def _score_groups(
    runtime: Runtime,
    batch: Sequence[Group],
    encoded: Sequence[tuple[list[int], list[int]]],
    requests: Sequence[ScoreRequest],
) -> Iterator[tuple[int, Score]]:
    """Contexts once (KV cached): their last logits score every option's first token; longer options run on."""
    first, cache, attention_mask = _contexts(runtime, [list(context) for context, _ in batch])
    rows = [(group, index) for group, (_, indices) in enumerate(batch) for index in indices]
    tail_logits: dict[int, torch.Tensor] = {}
    for bucket in _length_buckets([row for row in rows if len(encoded[row[1]][1]) > 1], encoded):
        tail_logits |= _tails(runtime, bucket, encoded, cache, attention_mask)
    for group, index in rows:
        continuation = encoded[index][1]
        pieces = [first[group : group + 1], *([tail_logits[index]] if index in tail_logits else [])]
        request = requests[index]
        target = ScoreTarget(index, 0, tuple(continuation), request.ranks, request.top_k)
        yield index, score_target(runtime, torch.cat(pieces).float(), target)


def _contexts(runtime: Runtime, contexts: list[list[int]]) -> tuple[torch.Tensor, Any, torch.Tensor]:
    """Last-position logits, KV cache and attention mask of a batch of contexts.

    A prefix every context shares (few-shot examples, a task preamble) runs once, when that saves at least
    PREFIX_SAVING tokens; the rest of each context follows it left-padded, so the padding sits between the prefix and
    the rest, masked out, and every row still ends with its own last token.
    """
    prefix = _common_prefix(contexts)
    if len(prefix) * (len(contexts) - 1) < PREFIX_SAVING:
        input_ids, attention_mask, position_ids = left_pad(contexts, runtime.device)
        logits, cache = runtime.forward(input_ids, attention_mask, position_ids, keep=1, use_cache=True)
        return logits[:, -1], cache, attention_mask
    prefix_ids = torch.tensor([prefix], dtype=torch.long, device=runtime.device)
    prefix_mask = torch.ones_like(prefix_ids)
    positions = torch.arange(len(prefix), device=runtime.device)[None]
    _, cache = runtime.forward(prefix_ids, prefix_mask, positions, keep=1, use_cache=True)
    cache.batch_select_indices(torch.zeros(len(contexts), dtype=torch.long, device=runtime.device))
    rest_ids, rest_mask, _ = left_pad([context[len(prefix) :] for context in contexts], runtime.device)
    attention_mask = torch.cat([prefix_mask.expand(len(contexts), -1), rest_mask], dim=1)
    positions = (attention_mask.cumsum(-1) - 1)[:, len(prefix) :]
    logits, cache = runtime.forward(
        rest_ids, attention_mask, positions, keep=1, past_key_values=cache, use_cache=True
    )
    return logits[:, -1], cache, attention_mask


def _common_prefix(contexts: Sequence[Sequence[int]]) -> list[int]:
    """The longest prefix of every context that leaves each of them at least one token of its own."""
    shortest = min(len(context) for context in contexts) - 1
    length = 0
    while length < shortest and all(context[length] == contexts[0][length] for context in contexts):
        length += 1
    return list(contexts[0][:length])


def _length_buckets(
    rows: Sequence[tuple[int, int]], encoded: Sequence[tuple[list[int], list[int]]]
) -> Iterator[list[tuple[int, int]]]:
    """Rows by option length, shortest first; a longer row joins the bucket while that adds ≤ PADDING_BUDGET pads."""
    bucket: list[tuple[int, int]] = []
    width = 0
    for row in sorted(rows, key=lambda row: len(encoded[row[1]][1])):
        length = len(encoded[row[1]][1]) - 1
        if bucket and (length - width) * len(bucket) > PADDING_BUDGET:
            yield bucket
            bucket = []
        bucket.append(row)
        width = length
    if bucket:
        yield bucket


def _selected_rows(cache: Any, selector: torch.Tensor) -> Any:
    """A cache holding rows `selector` of `cache` (which stays as it is, for the next bucket of options).

    Indexing copies only the selected rows; a deep copy of the whole cache first would copy every row once more.
    """
    if not plain_cache_layers(cache):
        selected = copy.deepcopy(cache)
        selected.batch_select_indices(selector)
        return selected
    selected = copy.copy(cache)
    selected.layers = [copy.copy(layer) for layer in cache.layers]
    for layer in selected.layers:
        layer.keys, layer.values = layer.keys[selector], layer.values[selector]
    return selected


def _tails(
    runtime: Runtime,
    rows: Sequence[tuple[int, int]],
    encoded: Sequence[tuple[list[int], list[int]]],
    cache: Any,
    context_mask: torch.Tensor,
) -> dict[int, torch.Tensor]:
    """Logits after each option's first len − 1 tokens, right-padded, on a copy of its context's cache rows."""
    tails = [encoded[index][1][:-1] for _, index in rows]
    width = max(len(tail) for tail in tails)
    tail_ids = torch.zeros((len(rows), width), dtype=torch.long)
    tail_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, tail in enumerate(tails):
        tail_ids[row, : len(tail)] = torch.tensor(tail, dtype=torch.long)
        tail_mask[row, : len(tail)] = 1
    selector = torch.tensor([group for group, _ in rows], device=runtime.device)
    cache = _selected_rows(cache, selector)
    row_context_mask = context_mask[selector]
    positions = row_context_mask.sum(-1, keepdim=True) + torch.arange(width, device=runtime.device)
    mask = torch.cat([row_context_mask, tail_mask.to(runtime.device)], dim=1)
    logits, _ = runtime.forward(
        tail_ids.to(runtime.device), mask, positions, keep=width, past_key_values=cache, use_cache=True
    )
    return {index: logits[row, : len(tails[row])] for row, (_, index) in enumerate(rows)}
