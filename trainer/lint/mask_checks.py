"""Per-row mask checks: what each token of a row teaches, compared with what the template says it should.

Tokens are mapped back to characters with the tokenizer's offsets, so each check is stated on text: a trained
token must cover response text, every response's first token and terminator must be trained, BOS must not be
repeated, and so on. The labels checked are the ones `sfteval train` would use (same encode path).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sfteval.templates import Segment, Template, all_markers
from sfteval.tokenization import IGNORE_INDEX, TokenizedExample, tokenize_segments
from sfteval.trainer.encode import EncodedRow, EncodeSettings


@dataclass(frozen=True)
class MaskContext:
    """What the checks need besides the row: tokenizer, template, settings and derived token sets."""

    tokenizer: Any
    template: Template
    settings: EncodeSettings
    stop_ids: frozenset[int]
    special_texts: tuple[str, ...]
    markers: tuple[str, ...]


def mask_context(tokenizer: Any, template: Template, settings: EncodeSettings) -> MaskContext:
    stop_ids = {tokenizer.eos_token_id} | set(_single_id(tokenizer, template.terminator))
    specials = {token.content for token in tokenizer.added_tokens_decoder.values() if token.special}
    specials |= {text for text in (tokenizer.bos_token, tokenizer.eos_token) if text}
    markers = tuple(dict.fromkeys([*template.markers, *all_markers()]))
    return MaskContext(
        tokenizer,
        template,
        settings,
        frozenset(i for i in stop_ids if i is not None),
        tuple(sorted(specials)),
        markers,
    )


def _single_id(tokenizer: Any, text: str) -> list[int]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
    return ids if len(ids) == 1 else []


@dataclass(frozen=True)
class RowCheck:
    """The outcome of the per-row checks: the names of the checks that fired, plus token lengths."""

    problems: frozenset[str]
    prompt_tokens: int
    response_tokens: int
    total_tokens: int


def check_row(context: MaskContext, row: EncodedRow) -> RowCheck:
    """Run every per-row check on one encoded row."""
    tokens = row.example or row.full
    spans = _token_spans(context.tokenizer, row.segments, len(row.full.input_ids))[: len(tokens.input_ids)]
    flags = _char_flags(row.segments)
    problems = set(_token_problems(tokens, spans, flags, row.segments))
    problems |= _terminator_problems(context, row, tokens, spans)
    problems |= _content_problems(context, row)
    problems |= _sequence_problems(context, row, tokens)
    trained = row.full.num_trained
    return RowCheck(frozenset(problems), len(row.full.input_ids) - trained, trained, len(row.full.input_ids))


def _token_spans(tokenizer: Any, segments: Sequence[Segment], length: int) -> list[tuple[int, int]]:
    """Character span of every token of the full row; a BOS the tokenizer prepends gets an empty span."""
    text = "".join(segment.text for segment in segments)
    encoding = tokenizer(
        text, add_special_tokens=False, return_offsets_mapping=True, split_special_tokens=False
    )
    spans = [tuple(span) for span in encoding["offset_mapping"]]
    return [(0, 0)] * (length - len(spans)) + spans  # type: ignore[return-value]


def _char_flags(segments: Sequence[Segment]) -> list[bool]:
    return [segment.trainable for segment in segments for _ in segment.text]


def _segment_starts(segments: Sequence[Segment]) -> list[int]:
    starts, position = [], 0
    for segment in segments:
        starts.append(position)
        position += len(segment.text)
    return starts


def _token_problems(
    tokens: TokenizedExample,
    spans: Sequence[tuple[int, int]],
    flags: Sequence[bool],
    segments: Sequence[Segment],
) -> list[str]:
    """Trained tokens outside the response, tokens straddling a boundary, response starts left untrained."""
    problems = []
    for (start, end), label, token in zip(spans, tokens.labels, tokens.input_ids, strict=True):
        covered = flags[start:end]
        if label not in (IGNORE_INDEX, token):
            problems.append("labels_misaligned")
        if label != IGNORE_INDEX and covered and not any(covered):
            problems.append("prompt_leak")
        if covered and any(covered) and not all(covered):
            problems.append("boundary_merge")
    for start, segment in zip(_segment_starts(segments), segments, strict=True):
        first = next((i for i, (a, b) in enumerate(spans) if a <= start < b), None)
        if segment.trainable and first is not None and tokens.labels[first] != tokens.input_ids[first]:
            problems.append("first_response_token_masked")
    return problems


def _terminator_problems(
    context: MaskContext, row: EncodedRow, tokens: TokenizedExample, spans: Sequence[tuple[int, int]]
) -> set[str]:
    """Every trained response must end with the template's terminator, and the terminator must be trained."""
    terminator = context.template.terminator
    expected = context.template.render_training(row.conversation.messages, train_on=context.settings.train_on)
    problems: set[str] = set()
    for start, segment in zip(_segment_starts(expected), expected, strict=True):
        if not segment.trainable or not terminator:
            continue
        if not segment.text.endswith(terminator):
            problems.add("terminator_missing")
            continue
        end = start + len(segment.text)
        covering = [i for i, (a, b) in enumerate(spans) if a < end and b > end - len(terminator)]
        if covering and any(tokens.labels[i] != tokens.input_ids[i] for i in covering):
            problems.add("terminator_not_trained")
    return problems


def _content_problems(context: MaskContext, row: EncodedRow) -> set[str]:
    """Problems in the data itself: empty responses, role markers in responses, special-token text."""
    messages = row.conversation.messages
    trained = [message for message in messages if message.role == "assistant"]
    if context.settings.train_on == "last":
        trained = trained[-1:]
    problems = set()
    if any(not message.content.strip() for message in trained):
        problems.add("empty_response")
    # A response that merely ends with the terminator text is reported once, as duplicated_eos.
    bodies = [message.content.rstrip().removesuffix(context.template.terminator) for message in trained]
    if any(marker in body for body in bodies for marker in context.markers):
        problems.add("marker_in_response")
    texts = [text for message in messages for text in (message.content, message.input)]
    if any(special in text for text in texts for special in context.special_texts):
        problems.add("special_token_in_content")
    return problems


def _sequence_problems(context: MaskContext, row: EncodedRow, tokens: TokenizedExample) -> set[str]:
    """Repeated BOS, back-to-back end tokens, and truncation at max_seq_len."""
    ids, problems = list(row.full.input_ids), set()
    bos = context.tokenizer.bos_token_id
    if bos is not None and (ids[:2] == [bos, bos] or ids.count(bos) > _skeleton_bos_count(context, row)):
        problems.add("double_bos")
    if any(a == b and a in context.stop_ids for a, b in zip(ids, ids[1:], strict=False)):
        problems.add("duplicated_eos")
    if len(ids) > context.settings.max_seq_len:
        problems.add("dropped_overlong" if row.example is None else "truncated_response")
    return problems


def _skeleton_bos_count(context: MaskContext, row: EncodedRow) -> int:
    """BOS count the template itself writes for this conversation's shape (every text replaced by "x")."""
    skeleton = [
        replace(message, content="x", input="x" if message.input else "")
        for message in row.conversation.messages
    ]
    segments = context.template.render_training(skeleton, train_on=context.settings.train_on)
    example = tokenize_segments(context.tokenizer, segments, max_length=None, truncation="keep_start")
    assert example is not None
    return list(example.input_ids).count(context.tokenizer.bos_token_id)
