"""Prefix-tree rows for the hf engine: every token that several requests share is computed once.

Requests repeat their beginnings: a chat template's system prompt, a task's "Question:" preamble and few-shot
examples, a multiple-choice context before each of its options, options that open with the same word. Requests are
sorted by their input tokens (for scoring context + continuation[:-1], for generation the prompt), so each one
shares the longest prefix it shares with any earlier one with the one right before it, and laid out as a prefix
tree in packs (`pack_limit` tokens, the size that costs least per request): a token appears once per pack, at its
position in its sequences (the depth in the tree), and a 4D attention mask lets it see exactly its ancestors. Every
token therefore computes what it would compute in its own unpadded row. Small packs sit side by side in rows of
ROW_TOKENS tokens instead of being padded to the longest.

Scoring (`score_packed`) runs the vocabulary-wide head only where a continuation token is predicted, once per slot.
Prefill (`prefill_packed`) gathers each prompt's keys and values from its slots into the left-padded rows a plain
prefill would have built, for the decode loop to continue as before. This is the shared-context pass
(`shared_context.py`) carried to every level of sharing; it applies where the model takes a 4D mask as given (sdpa,
eager, no sliding window), its logits are its head applied to its decoder's last hidden states, and its KV cache has
plain layers, which `packed_rows_apply` checks once per model on a small tree. Scores and caches equal a plain pass
up to float rounding (tests/test_engine_hf_packed.py).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy
import torch

from sfteval.attention_masks import MaskKind, as_mask, four_d_mask_kind, pair_weight, unwrapped
from sfteval.core.requests import ProgressCallback, Score, ScoreRequest
from sfteval.engines.hf.batches import (
    Runtime,
    ScoreTarget,
    left_pad,
    plain_cache_layers,
    score_requests,
    score_target,
)

# Width of a row that holds several small packs side by side (instead of padding each to the longest):
# attention over the row costs ROW_TOKENS² pairs, about 7 % of its projection work on a 576-wide model.
ROW_TOKENS = 256
# On a CPU a scoring pass holds at most this many tokens: larger passes overflow the caches in the memory-bound steps
# (norms, activations, masked softmax). Measured on 5-shot world_facts, 1 thread: passes of 1-4k tokens 20-23 s,
# of 7k tokens (the whole call at batch 32) 28-41 s. GPUs take `batch_size` rows of ROW_TOKENS.
CPU_PASS_TOKENS = 2048
# The largest |logit difference| between the packed layout and the model's own forward on the check tree.
CHECK_TOLERANCE = 1e-3

_checked: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


@dataclass
class Pack:
    """A prefix tree (or several side by side): tokens, their positions and parents, and the requests it holds."""

    input_ids: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    targets: list[tuple[ScoreTarget, list[int]]] = field(default_factory=list)
    """Each request's target and the slots of its input tokens (`scored_slots` picks the predicting ones)."""

    def add(self, tokens: Sequence[int], shared: Sequence[int]) -> list[int]:
        """Append `tokens` after the slots `shared` (its first len(shared) tokens); the slots of all of them."""
        path = list(shared)
        for token in tokens[len(shared) :]:
            self.parents.append(path[-1] if path else -1)
            self.positions.append(len(path))
            self.input_ids.append(token)
            path.append(len(self.input_ids) - 1)
        return path

    def merge(self, other: Pack) -> None:
        """Append `other` as a separate tree of this row: its slots follow this pack's, and neither sees the other."""
        offset = len(self.input_ids)
        self.input_ids += other.input_ids
        self.positions += other.positions
        self.parents += [parent + offset if parent >= 0 else -1 for parent in other.parents]
        self.targets += [(target, [slot + offset for slot in slots]) for target, slots in other.targets]

    def allowed(self, width: int) -> torch.Tensor:
        """(width, width): slot i sees j when j is i or an ancestor of i; padding slots see themselves only."""
        allowed = numpy.eye(width, dtype=bool)
        for slot, parent in enumerate(self.parents):
            if parent >= 0:
                allowed[slot] |= allowed[parent]
        return torch.from_numpy(allowed)


def build_packs(feeds: Sequence[tuple[ScoreTarget, tuple[int, ...]]], pair_weight: float) -> list[Pack]:
    """Packs of the prefix tree of `feeds` (target, input tokens), each request whole in one pack.

    In lexicographic order the longest prefix a sequence shares with any earlier one is the one it shares with its
    predecessor, so each request reuses the slots of the request before it. A request joins the current pack while
    the pack stays within `pack_limit` of what it shares there; a request that shares nothing starts its own.
    """
    packs: list[Pack] = []
    previous: tuple[int, ...] = ()
    path: list[int] = []
    for target, tokens in sorted(feeds, key=lambda item: item[1]):
        shared = _common_length(previous, tokens) if packs else 0
        if not packs or len(packs[-1].input_ids) + len(tokens) - shared > pack_limit(shared, pair_weight):
            packs.append(Pack())
            shared = 0
        path = packs[-1].add(tokens, path[:shared])
        packs[-1].targets.append((target, path))
        previous = tokens
    return packs


def scored_slots(target: ScoreTarget, path: Sequence[int]) -> list[int]:
    """The slots whose logits predict `target`'s tokens."""
    return list(path[target.start : target.start + len(target.tokens)])


def pack_limit(shared: int, pair_weight: float) -> float:
    """The pack size T that costs least per request when each request shares `shared` tokens and adds the rest.

    A pack of T tokens costs T (1 + wT) token-equivalents (w: attention work of a pair over a token's) and holds
    about (T − s) / new + 1 requests; the cost per request is least at T = s + sqrt(s² + s/w). Packs near 200
    tokens for short questions that share their opening words, about 1300 for 5-shot prompts (s ≈ 270) on a
    576-wide model, and one request per pack when nothing is shared.
    """
    return shared + math.sqrt(shared * shared + shared / pair_weight)


def _common_length(first: Sequence[int], second: Sequence[int]) -> int:
    length = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        length += 1
    return length


def packed_rows_apply(runtime: Runtime) -> bool:
    """Whether this model can run packed rows: a 4D mask it takes as given, logits = head(decoder output), and a
    KV cache of plain layers (rows and positions can be gathered).

    Checked once per base model on a small branching tree against the model's own forward, so a model that scales
    or caps its logits, or reads the mask differently, keeps the padded path.
    """
    model = runtime.model
    adapter_config = getattr(model, "active_peft_config", None)
    if adapter_config is not None and adapter_config.is_prompt_learning:
        return False
    mask_kind = four_d_mask_kind(model)
    if mask_kind is None or _parts(model) is None:
        return False
    base = unwrapped(model)
    if base not in _checked:
        _checked[base] = _agrees_with_forward(runtime, mask_kind)
    return _checked[base]


def _parts(model: Any) -> tuple[Any, Any] | None:
    """The decoder (last hidden states) and the head of a causal LM, or None when it does not expose them."""
    base = unwrapped(model)
    try:
        decoder, head = base.get_decoder(), base.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if decoder is None or head is None or decoder is base:
        return None
    return decoder, head


def _agrees_with_forward(runtime: Runtime, mask_kind: MaskKind) -> bool:
    """Logits of a two-branch tree, packed, against two plain forwards of its sequences."""
    first = [runtime.encoder.prefix_id, *range(11, 19)]
    second = [*first[:4], *range(31, 36)]
    pack = Pack()
    pack.add(second, pack.add(first, [])[:4])
    hidden, cache = _forward(runtime, [pack], mask_kind, use_cache=True)
    if not plain_cache_layers(cache):
        return False
    packed = _head(runtime, hidden, [list(range(len(pack.input_ids)))])[0]
    for tokens, slots in ((first, list(range(len(first)))), (second, [0, 1, 2, 3, *range(9, 14)])):
        ids = torch.tensor([tokens], device=runtime.device)
        plain, _ = runtime.forward(
            ids,
            torch.ones_like(ids),
            torch.arange(len(tokens), device=runtime.device)[None],
            keep=len(tokens),
        )
        if not torch.allclose(packed[slots].float(), plain[0].float(), atol=CHECK_TOLERANCE, rtol=0):
            return False
    return True


def _forward(
    runtime: Runtime, rows: Sequence[Pack], mask_kind: MaskKind, use_cache: bool = False
) -> tuple[torch.Tensor, Any]:
    """The decoder's last hidden states of packed rows (right-padded to one width), and its KV cache."""
    parts = _parts(runtime.model)
    assert parts is not None, "packed_rows_apply(runtime) checks that the model exposes its decoder and head"
    width = max(len(row.input_ids) for row in rows)
    input_ids = torch.zeros((len(rows), width), dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        input_ids[index, : len(row.input_ids)] = torch.tensor(row.input_ids, dtype=torch.long)
        positions[index, : len(row.positions)] = torch.tensor(row.positions, dtype=torch.long)
    mask = as_mask(torch.stack([row.allowed(width) for row in rows]), mask_kind)
    output = parts[0](
        input_ids=input_ids.to(runtime.device),
        attention_mask=mask.to(runtime.device),
        position_ids=positions.to(runtime.device),
        use_cache=use_cache,
    )
    return output.last_hidden_state, output.past_key_values


def _head(runtime: Runtime, hidden: torch.Tensor, slots: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """Logits at `slots` of each row (the vocabulary-wide head only there), one tensor per row."""
    rows = [index for index, row_slots in enumerate(slots) for _ in row_slots]
    columns = [slot for row_slots in slots for slot in row_slots]
    picked = hidden[torch.tensor(rows, device=hidden.device), torch.tensor(columns, device=hidden.device)]
    return list(_project(runtime, picked).split([len(row_slots) for row_slots in slots]))


def _project(runtime: Runtime, hidden: torch.Tensor) -> torch.Tensor:
    """The model's head (its output embeddings, with any adapter on them) applied to hidden states."""
    parts = _parts(runtime.model)
    assert parts is not None, "packed_rows_apply(runtime) checks that the model exposes its decoder and head"
    return parts[1](hidden)


def _logits(
    runtime: Runtime, rows: Sequence[Pack], mask_kind: MaskKind, slots: Sequence[list[int]] | None = None
) -> list[torch.Tensor]:
    """Logits of packed rows at `slots` (default: every slot)."""
    hidden, _ = _forward(runtime, rows, mask_kind)
    return _head(runtime, hidden, slots or [list(range(len(row.input_ids))) for row in rows])


def prefill_packed(
    runtime: Runtime, prompts: Sequence[Sequence[int]]
) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]:
    """Next-token logits, KV cache, attention mask and position ids of `prompts`, laid out as a left-padded prefill.

    The prompts run as a prefix tree (a chat template's system prompt once per pack, not once per prompt); each
    prompt's keys and values are then gathered from its slots into a left-padded row, where a plain prefill would
    have put them: the rows' positions are their depths, so the rotary embedding in the cached keys is the same.
    """
    mask_kind = four_d_mask_kind(runtime.model)
    assert mask_kind is not None, "prefill_packed needs packed_rows_apply(runtime)"
    feeds = [
        (ScoreTarget(index, len(prompt) - 1, (0,), False, 0), tuple(prompt))
        for index, prompt in enumerate(prompts)
    ]
    rows = rows_of(build_packs(feeds, pair_weight(runtime.model)))
    hidden, cache = _forward(runtime, rows, mask_kind, use_cache=True)
    placed = sorted(
        ((target.request_index, row, path) for row, pack in enumerate(rows) for target, path in pack.targets)
    )
    width = max(len(prompt) for prompt in prompts)
    row_ids = torch.tensor([[row] * width for _, row, _ in placed], device=hidden.device)
    slot_ids = torch.tensor(
        [[path[0]] * (width - len(path)) + path for _, _, path in placed], device=hidden.device
    )
    for layer in cache.layers:
        # [prompts, width] indices on the batch and sequence axes: the result is [prompts, width, heads, dim].
        layer.keys = layer.keys[row_ids, :, slot_ids].transpose(1, 2).contiguous()
        layer.values = layer.values[row_ids, :, slot_ids].transpose(1, 2).contiguous()
    last = torch.tensor([path[-1] for _, _, path in placed], device=hidden.device)
    _, mask, positions = left_pad(prompts, runtime.device)
    return _project(runtime, hidden[row_ids[:, 0], last]), cache, mask, positions


def rows_of(packs: Sequence[Pack], row_tokens: int = ROW_TOKENS) -> list[Pack]:
    """Packs as model rows, longest first: a pack of `row_tokens` or more alone, smaller ones side by side.

    First fit (over the few newest rows, so that thousands of packs stay fast) into rows of `row_tokens`, so that
    a pass wastes little work on padding.
    """
    rows: list[Pack] = []
    for pack in sorted(packs, key=lambda pack: -len(pack.input_ids)):
        size = len(pack.input_ids)
        room = [row for row in rows[-8:] if len(row.input_ids) + size <= row_tokens]
        if size >= row_tokens or not room:
            rows.append(Pack())
            room = rows[-1:]
        room[0].merge(pack)
    return sorted(rows, key=lambda row: -len(row.input_ids))


def _passes(rows: Sequence[Pack], tokens: int) -> Iterator[Sequence[Pack]]:
    """Rows (longest first) in passes of at most `tokens` padded tokens; a longer row runs alone."""
    start = 0
    while start < len(rows):
        count = max(1, tokens // len(rows[start].input_ids))
        yield rows[start : start + count]
        start += count


def score_packed(
    runtime: Runtime, requests: Sequence[ScoreRequest], progress: ProgressCallback | None
) -> list[Score]:
    """Score every request; those needing left truncation (longer than the max length) go to `score_requests`."""
    mask_kind = four_d_mask_kind(runtime.model)
    assert mask_kind is not None, "score_packed needs packed_rows_apply(runtime)"
    results: list[Score | None] = [None] * len(requests)
    feeds: list[tuple[ScoreTarget, tuple[int, ...]]] = []
    rest: list[int] = []
    for index, request in enumerate(requests):
        context, continuation = runtime.encoder.pair(request.context, request.continuation)
        if (
            not context
            or not continuation
            or len(context) + len(continuation) - 1 > runtime.encoder.max_length
        ):
            rest.append(index)
            continue
        target = ScoreTarget(index, len(context) - 1, tuple(continuation), request.ranks, request.top_k)
        feeds.append((target, tuple(context + continuation[:-1])))
    for index, score in zip(
        rest, score_requests(runtime, [requests[i] for i in rest], progress), strict=True
    ):
        results[index] = score
    rows = rows_of(build_packs(feeds, pair_weight(runtime.model)))
    budget = runtime.batch_size * ROW_TOKENS
    if runtime.device.type == "cpu":
        budget = min(budget, CPU_PASS_TOKENS)
    for batch in _passes(rows, budget):
        # Options of one context all read its last slot: the head runs once per slot, not once per request.
        slots = [
            sorted({slot for target, path in pack.targets for slot in scored_slots(target, path)})
            for pack in batch
        ]
        for pack, pack_slots, logits in zip(
            batch, slots, _logits(runtime, batch, mask_kind, slots), strict=True
        ):
            row_of = {slot: row for row, slot in enumerate(pack_slots)}
            for target, path in pack.targets:
                wanted = [row_of[slot] for slot in scored_slots(target, path)]
                piece = logits[torch.tensor(wanted, device=logits.device)]
                results[target.request_index] = score_target(runtime, piece.float(), target)
        if progress:
            progress(sum(len(pack.targets) for pack in batch))
    return [result for result in results if result is not None]
