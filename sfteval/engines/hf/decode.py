"""Generation on a loaded transformers model: our own KV-cached decode loop, with continuous batching.

Up to `batch_size` rows decode together. A row leaves the batch (and the KV cache) the step it finishes, and waiting
requests join the running batch as soon as a quarter of it is free: they are prefilled together and their cache rows,
left-padded to the running cache's width (the padding is masked out), are appended. Requests wait longest token
budget first, then longest prompt, so a joining group is of similar length (little prefill padding) and the longest
generations start early instead of running alone at the end. On a CPU a decode step costs about one read of the
weights whatever the number of rows, so a batch kept full decodes far more tokens per second than one that runs down.
The running cache is made of slab layers (`kv_slab.py`) sized for the longest budget still running, so a step writes
its column in place instead of copying the cache.

A row's logits depend only on its own tokens (padding is masked out), and each sampled request draws from its own
`torch.Generator` seeded with `request.seed`, one draw per step, so its tokens do not depend on its batch mates or on
when it joined (tests/test_engine_hf_decode.py checks texts against one request at a time).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as functional

from sfteval.core.requests import FinishReason, Generation, GenerationRequest, ProgressCallback
from sfteval.engines.hf.batches import Runtime, left_pad, plain_cache_layers
from sfteval.engines.hf.kv_slab import into_slabs
from sfteval.engines.hf.packed import packed_rows_apply, prefill_packed

DETOKENIZE_CONTEXT_TOKENS = 5
"""Prompt tokens decoded before the generated ones (vLLM's incremental detokenizer uses 5 as well)."""
JOIN_FRACTION = 4
"""Waiting requests join the running batch when 1/JOIN_FRACTION of it is free (fewer, larger prefills)."""


class _DecodeRow:
    """Decoding state of one generation request: tokens so far, its own sampler, and why it finished."""

    def __init__(self, index: int, request: GenerationRequest, prompt: list[int], runtime: Runtime) -> None:
        self.index = index
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
    """Generate every request with continuous batching; results in request order.

    `num_tokens` counts generated tokens up to and including the one that ended generation (EOS or the token that
    completed a stop string); `text` excludes EOS and is cut at the earliest stop string.
    """
    prompts = [runtime.encoder.prompt_ids(index, request) for index, request in enumerate(requests)]
    results: list[Generation | None] = [None] * len(requests)
    waiting: deque[int] = deque()
    for index in sorted(
        range(len(requests)), key=lambda index: (-requests[index].max_new_tokens, -len(prompts[index]))
    ):
        if requests[index].max_new_tokens > 0:
            waiting.append(index)
        else:
            results[index] = _DecodeRow(index, requests[index], prompts[index], runtime).result()
    if progress and len(waiting) < len(requests):
        progress(len(requests) - len(waiting))
    batch = _Batch(runtime)
    join_at = max(1, runtime.batch_size // JOIN_FRACTION)
    while waiting or batch.rows:
        room = runtime.batch_size - len(batch.rows)
        if waiting and room >= min(join_at, len(waiting)) and (batch.joinable or not batch.rows):
            joining = [waiting.popleft() for _ in range(min(room, len(waiting)))]
            batch.join(
                [_DecodeRow(index, requests[index], prompts[index], runtime) for index in joining],
                [prompts[index] for index in joining],
            )
        finished = batch.step()
        for row in finished:
            results[row.index] = row.result()
        if progress and finished:
            progress(len(finished))
    return [result for result in results if result is not None]


class _Batch:
    """The running rows with their KV cache, attention mask, next positions and the logits of their next token."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.packed = packed_rows_apply(runtime)
        self.rows: list[_DecodeRow] = []
        self.joinable = False
        self._cache: Any = None
        self._mask = torch.zeros((0, 0), dtype=torch.long, device=runtime.device)
        self._positions = torch.zeros((0, 1), dtype=torch.long, device=runtime.device)
        self._logits = torch.zeros((0, 0), device=runtime.device)

    def join(self, rows: list[_DecodeRow], prompts: list[list[int]]) -> None:
        """Prefill `prompts` together and append their rows (and cache rows) to the running batch.

        Where the model runs packed rows, the prompts' shared tokens (a chat template's system prompt) are computed
        once (`packed.prefill_packed`), and the cache comes out as the left-padded prefill would have built it.
        """
        if self.packed:
            last_logits, cache, mask, positions = prefill_packed(self.runtime, prompts)
        else:
            input_ids, mask, positions = left_pad(prompts, self.runtime.device)
            logits, cache = self.runtime.forward(input_ids, mask, positions, keep=1, use_cache=True)
            last_logits = logits[:, -1]
        if not self.rows:
            self._cache, self._mask, self._logits = cache, mask, last_logits
            self._positions = positions[:, -1:] + 1
            self.joinable = plain_cache_layers(cache)
        else:
            width = max(self._mask.shape[1], mask.shape[1])
            _append_cache_rows(self._cache, cache, width)
            self._mask = torch.cat([_pad_left(self._mask, width), _pad_left(mask, width)])
            self._positions = torch.cat([self._positions, positions[:, -1:] + 1])
            self._logits = torch.cat([self._logits, last_logits])
        self.rows.extend(rows)
        if self.joinable:
            room = max(row.request.max_new_tokens - len(row.tokens) for row in self.rows)
            into_slabs(self._cache, self._mask.shape[1] + room)

    def step(self) -> list[_DecodeRow]:
        """Choose every row's next token; finished rows leave, the rest run one forward. Returns the finished rows."""
        step_logits = self._logits.float()
        greedy = step_logits.argmax(-1).tolist()
        tokens = [row.sample(step_logits[index], greedy[index]) for index, row in enumerate(self.rows)]
        done = [row.append(tokens[index], self.runtime) for index, row in enumerate(self.rows)]
        finished = [row for row, ended in zip(self.rows, done, strict=True) if ended]
        alive = [index for index, ended in enumerate(done) if not ended]
        if not alive:
            self.rows, self._cache = [], None
            return finished
        if finished:
            selected = torch.tensor(alive, device=self.runtime.device)
            self._cache.batch_select_indices(selected)
            self._mask, self._positions = self._mask[selected], self._positions[selected]
            self.rows, tokens = [self.rows[index] for index in alive], [tokens[index] for index in alive]
            if self.joinable:
                self._trim()
        self._mask = torch.cat([self._mask, self._mask.new_ones((len(self.rows), 1))], dim=1)
        step_ids = torch.tensor(tokens, device=self.runtime.device)[:, None]
        logits, self._cache = self.runtime.forward(
            step_ids, self._mask, self._positions, keep=1, past_key_values=self._cache, use_cache=True
        )
        self._logits = logits[:, -1]
        self._positions = self._positions + 1
        return finished

    def _trim(self) -> None:
        """Drop leading cache columns that every remaining row masks out (left by rows that have left)."""
        first = int(self._mask.argmax(dim=1).min())
        if first > 0:
            self._mask = self._mask[:, first:]
            for layer in self._cache.layers:
                layer.drop_front(first)


def _pad_left(tensor: torch.Tensor, width: int, dim: int = 1) -> torch.Tensor:
    """`tensor` with zeros prepended along `dim` (the sequence axis) up to `width`."""
    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    padding = [0, 0] * (tensor.dim() - 1 - dim) + [missing, 0]
    return functional.pad(tensor, padding)


def _append_cache_rows(cache: Any, joining: Any, width: int) -> None:
    """Append `joining`'s rows to `cache`, both left-padded to `width` positions."""
    for layer, new in zip(cache.layers, joining.layers, strict=True):
        layer.keys = torch.cat([_pad_left(layer.keys, width, 2), _pad_left(new.keys, width, 2)])
        layer.values = torch.cat([_pad_left(layer.values, width, 2), _pad_left(new.values, width, 2)])
