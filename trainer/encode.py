"""Render and tokenise conversations exactly as training sees them; shared by `sfteval train` and `sfteval lint`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sfteval.templates import Segment, Template, TrainOn
from sfteval.tokenization import TokenizedExample, Truncation, tokenize_segments
from sfteval.trainer.data import Conversation


@dataclass(frozen=True)
class EncodeSettings:
    """How rows become token ids and labels (the subset of TrainConfig that decides masks)."""

    train_on: TrainOn = "all"
    max_seq_len: int = 2048
    truncation: Truncation = "drop"
    mask_terminator: bool = False


@dataclass(frozen=True)
class EncodedRow:
    """A row as training sees it: `example` is None when the row is dropped, `full` is before truncation."""

    conversation: Conversation
    segments: tuple[Segment, ...]
    full: TokenizedExample
    example: TokenizedExample | None

    @property
    def used(self) -> bool:
        return self.example is not None and self.example.num_trained > 0


@dataclass(frozen=True)
class MaskStats:
    """Counts for the manifest: rows = rows_used + dropped_no_trained_tokens + dropped_truncated."""

    rows: int
    rows_used: int
    dropped_no_trained_tokens: int
    dropped_truncated: int
    truncated: int
    trained_tokens: int
    total_tokens: int

    def as_manifest(self) -> dict[str, int]:
        return dict(vars(self))


def training_segments(
    template: Template, conversation: Conversation, settings: EncodeSettings
) -> tuple[Segment, ...]:
    """The template's segments; with `mask_terminator`, each response's terminator is split off untrained."""
    segments = template.render_training(conversation.messages, train_on=settings.train_on)
    if not settings.mask_terminator:
        return tuple(segments)
    return tuple(_untrain_terminators(segments, template.terminator))


def _untrain_terminators(segments: Sequence[Segment], terminator: str) -> list[Segment]:
    """Planted defect for validation: the model sees the end-of-turn token but is never taught to emit it."""
    result: list[Segment] = []
    for segment in segments:
        if segment.trainable and terminator and segment.text.endswith(terminator):
            content = segment.text[: -len(terminator)]
            result += [Segment(content, True)] if content else []
            result.append(Segment(terminator, False))
        else:
            result.append(segment)
    return result


def encode_row(
    tokenizer: Any, template: Template, conversation: Conversation, settings: EncodeSettings
) -> EncodedRow:
    """Tokenise one row; overlong rows are re-tokenised under the truncation policy."""
    segments = training_segments(template, conversation, settings)
    full = tokenize_segments(tokenizer, segments, max_length=None, truncation="keep_start")
    assert full is not None  # no max_length: never dropped
    example: TokenizedExample | None = full
    if len(full.input_ids) > settings.max_seq_len:
        example = tokenize_segments(tokenizer, segments, settings.max_seq_len, settings.truncation)
    return EncodedRow(conversation, segments, full, example)


def encode_rows(
    tokenizer: Any, template: Template, conversations: Sequence[Conversation], settings: EncodeSettings
) -> tuple[list[EncodedRow], MaskStats]:
    """Encode every row and count what the trainer keeps, truncates and drops."""
    rows = [encode_row(tokenizer, template, conversation, settings) for conversation in conversations]
    used = [row.example for row in rows if row.used and row.example is not None]
    stats = MaskStats(
        rows=len(rows),
        rows_used=len(used),
        dropped_no_trained_tokens=sum(row.example is not None and not row.used for row in rows),
        dropped_truncated=sum(row.example is None for row in rows),
        truncated=sum(len(row.full.input_ids) > settings.max_seq_len for row in rows),
        trained_tokens=sum(example.num_trained for example in used),
        total_tokens=sum(len(example.input_ids) for example in used),
    )
    return rows, stats
