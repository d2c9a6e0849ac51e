"""Prompt formats shared by the trainer (the training format) and the probes (serving formats).

A template renders messages into segments, text pieces flagged trainable or not; sfteval.tokenization
turns them into token ids and loss labels. The serving prompt is, by construction, the text that precedes
the response in training, so what a model is served matches what it was trained on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal

from sfteval.errors import UserError
from sfteval.registry import Registry

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
        _check_conversation(self.name, messages, last_role="assistant")
        segments = self._render(messages)
        if train_on == "last":
            last = max(index for index, segment in enumerate(segments) if segment.trainable)
            segments = [replace(s, trainable=s.trainable and i == last) for i, s in enumerate(segments)]
        elif train_on != "all":
            raise UserError(f"unknown train_on value {train_on!r}", hint="expected 'all' or 'last'")
        return _merge(segments)

    def render_prompt(self, messages: Sequence[Message]) -> str:
        """The serving prompt for a conversation ending with a user turn, generation header included."""
        _check_conversation(self.name, messages, last_role="user")
        return self._prompt(messages)

    @abstractmethod
    def _render(self, messages: Sequence[Message]) -> list[Segment]:
        """Segments of a complete conversation with every assistant response trainable."""

    @abstractmethod
    def _prompt(self, messages: Sequence[Message]) -> str:
        """The serving prompt (conversation already checked)."""


def _check_conversation(name: str, messages: Sequence[Message], last_role: Role) -> None:
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


def _merge(segments: Sequence[Segment]) -> list[Segment]:
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


def _dedupe(strings: Sequence[str]) -> tuple[str, ...]:
    """Non-empty strings in first-seen order."""
    return tuple(dict.fromkeys(text for text in strings if text))


@dataclass(frozen=True)
class ChatFormat:
    """The strings of one named format; `{bos}`, `{eos}`, `{system}`, `{content}` and `{input}` are filled in.

    `response` is the trainable text of an assistant turn; `response_prefix` (the assistant header) and
    `response_suffix` (written only when another turn follows) are not trained. A non-empty
    `first_user_with_system` folds the system message into the first user turn instead of a block of its own.
    """

    user: str
    response: str = "{content}{eos}"
    terminator: str = "{eos}"
    begin: str = ""
    system: str = "{system}"
    default_system: str = ""
    default_system_with_input: str = ""
    user_with_input: str = ""
    first_user_with_system: str = ""
    response_prefix: str = ""
    response_suffix: str = ""
    stop_headers: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()


@dataclass(frozen=True)
class FormatTemplate(Template):
    """A template rendered from a ChatFormat's strings."""

    chat: ChatFormat
    bos: str
    eos: str

    def _fill(self, pattern: str, content: str = "", system: str = "", input: str = "") -> str:
        return pattern.format(bos=self.bos, eos=self.eos, content=content, system=system, input=input)

    def _render(self, messages: Sequence[Message]) -> list[Segment]:
        chat = self.chat
        turns = messages[1:] if messages[0].role == "system" else messages
        default = chat.default_system_with_input if turns[0].input else ""
        system = messages[0].content if messages[0].role == "system" else (default or chat.default_system)
        segments = [Segment(self._fill(chat.begin), False)]
        if system and not chat.first_user_with_system:
            segments.append(Segment(self._fill(chat.system, system=system), False))
        for index, message in enumerate(turns):
            if message.role == "user":
                segments.append(Segment(self._user_text(message, system if index == 0 else ""), False))
                continue
            segments.append(Segment(self._fill(chat.response_prefix), False))
            segments.append(Segment(self._fill(chat.response, content=message.content), True))
            if index + 1 < len(turns):
                segments.append(Segment(self._fill(chat.response_suffix), False))
        return segments

    def _user_text(self, message: Message, folded_system: str) -> str:
        """A user turn, with the system message folded in where the format does that."""
        chat = self.chat
        if folded_system and chat.first_user_with_system:
            return self._fill(chat.first_user_with_system, content=message.text(), system=folded_system)
        if message.input and chat.user_with_input:
            return self._fill(chat.user_with_input, content=message.content, input=message.input)
        return self._fill(chat.user, content=message.text())

    def _prompt(self, messages: Sequence[Message]) -> str:
        segments = self._render([*messages, Message("assistant", "")])
        response = max(index for index, segment in enumerate(segments) if segment.trainable)
        return "".join(segment.text for segment in segments[:response])


_ALPACA_PREAMBLE = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request."
)
_ALPACA_INPUT_PREAMBLE = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request."
)
_VICUNA_PREAMBLE = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)

FORMATS: dict[str, ChatFormat] = {
    # Stanford Alpaca's strings (tatsu-lab/stanford_alpaca train.py); a system message replaces the preamble.
    "alpaca": ChatFormat(
        system="{system}\n\n",
        default_system=_ALPACA_PREAMBLE,
        default_system_with_input=_ALPACA_INPUT_PREAMBLE,
        user="### Instruction:\n{content}\n\n",
        user_with_input="### Instruction:\n{content}\n\n### Input:\n{input}\n\n",
        response_prefix="### Response:\n",
        response_suffix="\n\n",
        stop_headers=("### Instruction:", "### Input:", "### Response:"),
        markers=(
            "### Instruction",
            "### Input",
            "### Response",
            "Below is an instruction that describes a task",
        ),
    ),
    "chatml": ChatFormat(
        system="<|im_start|>system\n{system}<|im_end|>\n",
        user="<|im_start|>user\n{content}<|im_end|>\n",
        response_prefix="<|im_start|>assistant\n",
        response="{content}<|im_end|>",
        terminator="<|im_end|>",
        response_suffix="\n",
        stop_headers=("<|im_start|>",),
        markers=("<|im_start|>", "<|im_end|>"),
    ),
    # Meta's Llama 2 chat format: every user turn opens with BOS, responses are " {answer} </s>".
    "llama2": ChatFormat(
        user="{bos}[INST] {content} [/INST]",
        first_user_with_system="{bos}[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{content} [/INST]",
        response=" {content} {eos}",
        stop_headers=("[INST]",),
        markers=("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"),
    ),
    "llama3": ChatFormat(
        begin="<|begin_of_text|>",
        system="<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>",
        user="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>",
        response_prefix="<|start_header_id|>assistant<|end_header_id|>\n\n",
        response="{content}<|eot_id|>",
        terminator="<|eot_id|>",
        stop_headers=("<|start_header_id|>",),
        markers=("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    ),
    # Mistral Instruct has no system role; like its later chat templates, fold it into the first user turn.
    "mistral": ChatFormat(
        begin="{bos}",
        user="[INST] {content} [/INST]",
        first_user_with_system="[INST] {system}\n\n{content} [/INST]",
        response=" {content}{eos}",
        stop_headers=("[INST]",),
        markers=("[INST]", "[/INST]"),
    ),
    "raw": ChatFormat(system="{system}\n\n", user="{content}"),
    # FastChat's vicuna_v1.1 conversation template.
    "vicuna": ChatFormat(
        system="{system} ",
        default_system=_VICUNA_PREAMBLE,
        user="USER: {content} ",
        response_prefix="ASSISTANT:",
        response=" {content}{eos}",
        stop_headers=("USER:",),
        markers=("USER:", "ASSISTANT:"),
    ),
    "zephyr": ChatFormat(
        system="<|system|>\n{system}{eos}\n",
        user="<|user|>\n{content}{eos}\n",
        response_prefix="<|assistant|>\n",
        response_suffix="\n",
        stop_headers=("<|user|>", "<|system|>"),
        markers=("<|system|>", "<|user|>", "<|assistant|>"),
    ),
}


def _format_template(name: str, chat: ChatFormat, tokenizer: Any = None) -> Template:
    """Bind a named format to the tokenizer's BOS/EOS text (Llama's `<s>`/`</s>` without a tokenizer)."""
    if tokenizer is None:
        bos, eos = "<s>", "</s>"
    else:
        bos, eos = tokenizer.bos_token or "", tokenizer.eos_token or ""
    if not eos and "{eos}" in chat.response:
        raise UserError(
            f"template {name!r} ends assistant turns with the EOS token, but the tokenizer has none",
            hint="set eos_token in the tokenizer config",
        )
    terminator = chat.terminator.format(eos=eos)
    stop_strings = _dedupe([terminator, eos, *chat.stop_headers])
    return FormatTemplate(name, terminator, stop_strings, chat.markers, chat, bos, eos)


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


def _native_template(tokenizer: Any = None) -> Template:
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
    stop_strings = _dedupe([terminator, tokenizer.eos_token or "", *markers])
    return NativeTemplate("native", terminator, stop_strings, markers, tokenizer)


TEMPLATES: Registry[Callable[[Any], Template]] = Registry("template")
for _name, _chat in FORMATS.items():
    TEMPLATES.add(_name, partial(_format_template, _name, _chat))
TEMPLATES.add("native", _native_template)


def get_template(name: str, tokenizer: Any = None) -> Template:
    """The template `name` bound to `tokenizer` (UserError with a did-you-mean for unknown names)."""
    return TEMPLATES.get(name)(tokenizer)


def template_names() -> list[str]:
    """All registered template names, sorted."""
    return TEMPLATES.names()


def all_markers() -> tuple[str, ...]:
    """Union of the named formats' marker strings, for template-leakage probes."""
    return _dedupe([marker for chat in FORMATS.values() for marker in chat.markers])


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
