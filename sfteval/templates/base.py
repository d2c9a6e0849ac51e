"""Templates' building blocks: messages, segments (text flagged trainable or not) and the Template protocol."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from sfteval.core.errors import UserError

Role = Literal["system", "user", "assistant"]
TrainOn = Literal["all", "last"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    """One chat turn; `input` is optional context of a user turn (Alpaca's "### Input:" slot)."""

    role: Role
    content: str
    input: str = ""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise UserError(f"unknown message role {self.role!r}", hint="expected system, user or assistant")
        if self.input and self.role != "user":
            raise UserError(f"only user messages take an input, not {self.role} messages")

    def text(self) -> str:
        """Content with the input after a blank line, for formats that have no input slot."""
        return f"{self.content}\n\n{self.input}" if self.input else self.content


@dataclass(frozen=True)
class Segment:
    """A piece of rendered text; `trainable` pieces are the ones the loss is computed on."""

    text: str
    trainable: bool


@dataclass(frozen=True)
class Template(ABC):
    """A prompt format bound to a tokenizer's special-token text."""

    name: str
    terminator: str
    stop_strings: tuple[str, ...]
    markers: tuple[str, ...]

    @property
    def has_turns(self) -> bool:
        """Whether the template marks its turns (role headers, turn tokens); `raw` glues text together unmarked."""
        return bool(self.markers)

    def render_training(self, messages: Sequence[Message], train_on: TrainOn = "all") -> list[Segment]:
        """Training segments: assistant responses and their terminators trainable, everything else not."""
        check_conversation(self.name, messages, last_role="assistant")
        segments = self._render(messages)
        if train_on == "last":
            last = max(index for index, segment in enumerate(segments) if segment.trainable)
            segments = [replace(s, trainable=s.trainable and i == last) for i, s in enumerate(segments)]
        elif train_on != "all":
            raise UserError(f"unknown train_on value {train_on!r}", hint="expected 'all' or 'last'")
        return merge(segments)

    def render_prompt(self, messages: Sequence[Message]) -> str:
        """The serving prompt for a conversation ending with a user turn, generation header included."""
        check_conversation(self.name, messages, last_role="user")
        return self._prompt(messages)

    @abstractmethod
    def _render(self, messages: Sequence[Message]) -> list[Segment]:
        """Segments of a complete conversation with every assistant response trainable."""

    @abstractmethod
    def _prompt(self, messages: Sequence[Message]) -> str:
        """The serving prompt (conversation already checked)."""


def check_conversation(name: str, messages: Sequence[Message], last_role: Role) -> None:
    """Accept an optional system message, then alternating user/assistant turns ending with `last_role`."""
    roles = [message.role for message in messages]
    turns = roles[1:] if roles[:1] == ["system"] else roles
    alternating = all(role == ("user", "assistant")[index % 2] for index, role in enumerate(turns))
    if not turns or not alternating:
        raise UserError(
            f"template {name!r} cannot render roles {roles}",
            hint="expected an optional system message, then alternating user and assistant messages",
        )
    if turns[-1] != last_role:
        ending = "an assistant" if last_role == "assistant" else "a user"
        raise UserError(
            f"template {name!r} needs a conversation ending with {ending} message, got roles {roles}"
        )


def merge(segments: Sequence[Segment]) -> list[Segment]:
    """Drop empty segments and join neighbours with the same flag, so equal renderings compare equal."""
    merged: list[Segment] = []
    for segment in segments:
        if not segment.text:
            continue
        if merged and merged[-1].trainable == segment.trainable:
            merged[-1] = Segment(merged[-1].text + segment.text, segment.trainable)
        else:
            merged.append(segment)
    return merged


def dedupe(strings: Sequence[str]) -> tuple[str, ...]:
    """Non-empty strings in first-seen order."""
    return tuple(dict.fromkeys(text for text in strings if text))
