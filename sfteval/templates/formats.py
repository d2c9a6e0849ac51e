"""The named prompt formats (alpaca, chatml, llama2, llama3, mistral, raw, vicuna, zephyr) as format strings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sfteval.core.errors import UserError
from sfteval.templates.base import Message, Segment, Template, dedupe


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


def format_template(name: str, chat: ChatFormat, tokenizer: Any = None) -> Template:
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
    stop_strings = dedupe([terminator, eos, *chat.stop_headers])
    return FormatTemplate(name, terminator, stop_strings, chat.markers, chat, bos, eos)
