"""Prompt formats shared by the trainer (the training format) and the probes (serving formats).

A template renders messages into segments, text pieces flagged trainable or not; sfteval.tokenization
turns them into token ids and loss labels. The serving prompt is, by construction, the text that precedes
the response in training, so what a model is served matches what it was trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from sfteval.core.errors import UserError
from sfteval.core.registry import Registry
from sfteval.templates.base import ROLES, Message, Role, Segment, Template, TrainOn, dedupe
from sfteval.templates.formats import FORMATS, ChatFormat, FormatTemplate, format_template
from sfteval.templates.native import NativeTemplate, native_template

__all__ = [
    "FORMATS",
    "ROLES",
    "TEMPLATES",
    "ChatFormat",
    "FormatTemplate",
    "Message",
    "NativeTemplate",
    "Role",
    "Segment",
    "Template",
    "TrainOn",
    "all_markers",
    "check_template_names",
    "get_template",
    "messages_from_example",
    "template_names",
]

TEMPLATES: Registry[Callable[[Any], Template]] = Registry("template")
for _name, _chat in FORMATS.items():
    TEMPLATES.add(_name, partial(format_template, _name, _chat))
TEMPLATES.add("native", native_template)


def get_template(name: str, tokenizer: Any = None) -> Template:
    """The template `name` bound to `tokenizer` (UserError with a did-you-mean for unknown names)."""
    return TEMPLATES.get(name)(tokenizer)


def template_names() -> list[str]:
    """All registered template names, sorted."""
    return TEMPLATES.names()


def all_markers() -> tuple[str, ...]:
    """Union of the named formats' marker strings, for template-leakage probes."""
    return dedupe([marker for chat in FORMATS.values() for marker in chat.markers])


def messages_from_example(
    instruction: str, output: str | None = None, input: str = "", system: str | None = None
) -> list[Message]:
    """Messages for an Alpaca-style row; the input stays separate so Alpaca can use its "### Input:" slot."""
    messages = [Message("system", system)] if system is not None else []
    messages.append(Message("user", instruction, input))
    if output is not None:
        messages.append(Message("assistant", output))
    return messages


def check_template_names(names: Sequence[str] | None) -> None:
    """Raise ValueError (for pydantic validators) when a name is not a registered template."""
    for name in names or ():
        try:
            TEMPLATES.get(name)
        except UserError as error:
            raise ValueError(str(error)) from None
