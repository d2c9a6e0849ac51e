"""The exact training text of a response after its serving prompt, so scores condition on what the model learned."""

from __future__ import annotations

from collections.abc import Sequence

from sfteval.templates import Message, Template


def response_text(template: Template, messages: Sequence[Message], response: str) -> tuple[str, str]:
    """(serving prompt, `response` as training writes it right after that prompt, terminator excluded).

    Formats such as llama2 write " {answer} </s>": the leading space belongs to the trained response, so a score
    of the response must include it to measure what the model learned.
    """
    prompt, rest = _after_prompt(template, messages, response)
    position = rest.find(response)
    return prompt, rest[: position + len(response)] if position >= 0 else response


def terminator_text(template: Template, messages: Sequence[Message], response: str) -> tuple[str, str]:
    """(prompt + trained response, the text that ends the turn in training: any spacing, then the terminator)."""
    prompt, rest = _after_prompt(template, messages, response)
    position = rest.find(response)
    if position < 0:
        return prompt + response, template.terminator
    tail = rest[position + len(response) :]
    end = tail.find(template.terminator)
    ending = tail[: end + len(template.terminator)] if end >= 0 else template.terminator
    return prompt + rest[: position + len(response)], ending


def _after_prompt(template: Template, messages: Sequence[Message], response: str) -> tuple[str, str]:
    """The serving prompt and the training text that follows it (the response turn)."""
    prompt = template.render_prompt(messages)
    segments = template.render_training([*messages, Message("assistant", response)])
    full = "".join(segment.text for segment in segments)
    return prompt, full[len(prompt) :] if full.startswith(prompt) else response + template.terminator
