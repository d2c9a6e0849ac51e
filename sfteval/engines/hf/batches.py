"""Batched scoring and generation on a loaded transformers model: the inner loops of the hf engine.

Scoring follows lm-eval's HFLM (`_encode_pair` split, left truncation to `max_length + 1` tokens, float32 log-softmax)
so that results agree with it; inputs that are a prefix of another input share one row. Generation is our own
KV-cached decode loop over a left-padded batch: finished rows leave the batch, and each sampled request draws from its
own `torch.Generator` seeded with `request.seed`, one draw per step, so its tokens do not depend on its batch mates.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sfteval.core.errors import UserError
from sfteval.core.requests import (
    FinishReason,
    Generation,
    GenerationRequest,
    ProgressCallback,
    Score,
    ScoreRequest,
)
from sfteval.engines.encoding import Encoder

DETOKENIZE_CONTEXT_TOKENS = 5
"""Prompt tokens decoded before the generated ones (vLLM's incremental detokenizer uses 5 as well)."""


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
        """Logits of the last `keep` positions (computed only there when the model supports it) and the KV cache."""
        extra = {"logits_to_keep": keep} if self.keeps_logits else {}
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


class _DecodeRow:
    """Decoding state of one generation request: tokens so far, its own sampler, and why it finished."""

    def __init__(self, request: GenerationRequest, prompt: list[int], runtime: Runtime) -> None:
        self.request = request
        self.stops = tuple(stop for stop in request.stop if stop)
        self.context = prompt[-DETOKENIZE_CONTEXT_TOKENS:]
        self.context_text = runtime.encoder.decode(self.context)
        self.tokens: list[int] = []
        self.text = ""
        self.finish: FinishReason = "length"
        self.generator = None
        if request.temperature > 0:
            self.generator = torch.Generator(device=runtime.device).manual_seed(request.seed)

    def decode(self, tokens: list[int], runtime: Runtime) -> str:
        """Text of generated tokens, decoded after the prompt's last tokens as vLLM does, so that a leading space
        survives (SentencePiece decoders drop it at the start of a sequence)."""
        text = runtime.encoder.decode(self.context + tokens)
        return (
            text[len(self.context_text) :]
            if text.startswith(self.context_text)
            else runtime.encoder.decode(tokens)
        )

    def sample(self, logits: torch.Tensor, greedy: int) -> int:
        """The next token: `greedy` (the argmax) at temperature 0, else one draw from this request's generator."""
        if self.generator is None:
            return greedy
        probabilities = torch.softmax(logits / self.request.temperature, dim=-1)
        if self.request.top_p < 1.0:
            sorted_probabilities, order = probabilities.sort(descending=True)
            outside = sorted_probabilities.cumsum(-1) - sorted_probabilities >= self.request.top_p
            outside[0] = False
            probabilities = torch.zeros_like(probabilities).scatter(0, order, sorted_probabilities * ~outside)
        return int(torch.multinomial(probabilities, 1, generator=self.generator))

    def append(self, token: int, runtime: Runtime) -> bool:
        """Record one generated token; True when the row is finished (EOS, a stop string, or max_new_tokens)."""
        self.tokens.append(token)
        if token in runtime.eos_ids:
            self.text, self.finish = self.decode(self.tokens[:-1], runtime), "stop"
            return True
        if self.stops:
            text = self.decode(self.tokens, runtime)
            found = [position for position in map(text.find, self.stops) if position >= 0]
            if found:
                self.text, self.finish = text[: min(found)], "stop"
                return True
        if len(self.tokens) >= self.request.max_new_tokens:
            self.text = self.decode(self.tokens, runtime)
            return True
        return False

    def result(self) -> Generation:
        return Generation(text=self.text, num_tokens=len(self.tokens), finish_reason=self.finish)


def generate_requests(
    runtime: Runtime, requests: Sequence[GenerationRequest], progress: ProgressCallback | None
) -> list[Generation]:
    """Generate in batches of equal token budget, then similar prompt length; results in request order.

    A batch decodes until its longest-running row finishes, so mixing a 128-token request into a batch of 12-token
    ones would make all of them wait: requests are grouped by `max_new_tokens` first, then by prompt length (little
    padding). Finished rows leave the batch at once.

    `num_tokens` counts generated tokens up to and including the one that ended generation (EOS or the token that
    completed a stop string); `text` excludes EOS and is cut at the earliest stop string.
    """
    prompts = [runtime.encoder.prompt_ids(index, request) for index, request in enumerate(requests)]
    order = sorted(
        range(len(requests)), key=lambda index: (-requests[index].max_new_tokens, -len(prompts[index]))
    )
    results: list[Generation | None] = [None] * len(requests)
    for start in range(0, len(order), runtime.batch_size):
        batch = order[start : start + runtime.batch_size]
        rows = {index: _DecodeRow(requests[index], prompts[index], runtime) for index in batch}
        running = [index for index in batch if requests[index].max_new_tokens > 0]
        if running:
            _decode_batch(runtime, [rows[index] for index in running], [prompts[index] for index in running])
        for index in batch:
            results[index] = rows[index].result()
        if progress:
            progress(len(batch))
    return [result for result in results if result is not None]


def _decode_batch(runtime: Runtime, rows: list[_DecodeRow], prompts: list[list[int]]) -> None:
    """KV-cached decode loop; rows that finish are dropped from the batch (and the cache) at once."""
    input_ids, attention_mask, position_ids = left_pad(prompts, runtime.device)
    next_positions = position_ids[:, -1:] + 1
    logits, cache = runtime.forward(input_ids, attention_mask, position_ids, keep=1, use_cache=True)
    while True:
        step_logits = logits[:, -1].float()
        greedy = step_logits.argmax(-1).tolist()
        tokens = [row.sample(step_logits[index], greedy[index]) for index, row in enumerate(rows)]
        alive = [index for index, row in enumerate(rows) if not row.append(tokens[index], runtime)]
        if not alive:
            return
        if len(alive) < len(rows):
            selected = torch.tensor(alive, device=runtime.device)
            cache.batch_select_indices(selected)
            attention_mask, next_positions = attention_mask[selected], next_positions[selected]
            rows, tokens = [rows[index] for index in alive], [tokens[index] for index in alive]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(rows), 1))], dim=1)
        step_ids = torch.tensor(tokens, device=runtime.device)[:, None]
        logits, cache = runtime.forward(
            step_ids, attention_mask, next_positions, keep=1, past_key_values=cache, use_cache=True
        )
        next_positions = next_positions + 1
