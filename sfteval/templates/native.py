"""`native`: the tokenizer's own chat template, with its end-of-turn token read from what it renders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sfteval.core.errors import UserError
from sfteval.templates.base import Message, Segment, Template, dedupe


@dataclass(frozen=True)
class NativeTemplate(Template):
    """The tokenizer's own chat template, run by transformers' sandboxed Jinja environment."""

    tokenizer: Any = field(repr=False, compare=False)

    def _render(self, messages: Sequence[Message]) -> list[Segment]:
        """Render prefix by prefix; the text each assistant message adds holds its trainable response."""
        segments: list[Segment] = []
        done = ""
        for index, message in enumerate(messages):
            if message.role != "assistant":
                continue
            prompt = _apply_chat_template(self.tokenizer, messages[:index], add_generation_prompt=True)
            full = _apply_chat_template(self.tokenizer, messages[: index + 1], add_generation_prompt=False)
            _require_prefix(done, prompt, index)
            _require_prefix(prompt, full, index)
            start, end = _response_span(full, len(prompt), message.content, self.terminator, index)
            segments += [Segment(full[len(done) : start], False), Segment(full[start:end], True)]
            done = full[:end]
        return segments

    def _prompt(self, messages: Sequence[Message]) -> str:
        return _apply_chat_template(self.tokenizer, messages, add_generation_prompt=True)


def _apply_chat_template(tokenizer: Any, messages: Sequence[Message], add_generation_prompt: bool) -> str:
    """Render with transformers' apply_chat_template (sandboxed Jinja); failures become UserErrors."""
    from jinja2 import TemplateError

    conversation = [{"role": message.role, "content": message.text()} for message in messages]
    try:
        return tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    except (TemplateError, ValueError) as error:
        raise UserError(f"the tokenizer's chat template failed: {error}") from None


def _require_prefix(prefix: str, text: str, index: int) -> None:
    """Prefix-by-prefix rendering only yields a mask if each rendering extends the previous one."""
    if not text.startswith(prefix):
        raise UserError(
            f"the tokenizer's chat template is not prefix-stable at message {index}: rendering more messages "
            "rewrote earlier text, so response spans cannot be derived",
            hint="choose a named template with --template",
        )


def _response_span(full: str, start: int, content: str, terminator: str, index: int) -> tuple[int, int]:
    """Character span of the response: its content (as written, or stripped) through the terminator."""
    for text in dict.fromkeys((content, content.strip())):
        position = full.rfind(text, start) if text else full.find(terminator, start)
        while position >= start:
            gap_end = full.find(terminator, position + len(text))
            if gap_end >= 0 and not full[position + len(text) : gap_end].strip():
                return position, gap_end + len(terminator)
            position = full.rfind(text, start, position + len(text) - 1) if text else -1
    raise UserError(
        f"the tokenizer's chat template did not write assistant message {index} followed by {terminator!r}",
        hint="choose a named template with --template",
    )


_PROBE_USER = "sfteval probe question"
_PROBE_RESPONSE = "sfteval probe answer"


def native_template(tokenizer: Any = None) -> Template:
    """Bind `native` to a tokenizer, reading the end-of-turn token its template writes after a response."""
    if tokenizer is None:
        raise UserError("template 'native' needs the model's tokenizer")
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template for 'native'",
            hint="choose a named template, e.g. chatml",
        )
    specials = sorted(
        {token.content for token in tokenizer.added_tokens_decoder.values()}, key=len, reverse=True
    )
    probe = [Message("user", _PROBE_USER), Message("assistant", _PROBE_RESPONSE)]
    rendered = _apply_chat_template(tokenizer, probe, add_generation_prompt=False)
    _, found, tail = rendered.rpartition(_PROBE_RESPONSE)
    terminator = next((special for special in specials if tail.lstrip().startswith(special)), None)
    if not found or terminator is None:
        raise UserError(
            "the tokenizer's chat template writes no special end-of-turn token after an assistant message, "
            "so a model trained with it could not learn to stop",
            hint="choose a named template, e.g. chatml",
        )
    serving = _apply_chat_template(
        tokenizer, [*probe, Message("user", _PROBE_USER)], add_generation_prompt=True
    )
    markers = tuple(special for special in specials if special in serving)
    stop_strings = dedupe([terminator, tokenizer.eos_token or "", *markers])
    return NativeTemplate("native", terminator, stop_strings, markers, tokenizer)
