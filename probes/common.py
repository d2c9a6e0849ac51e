"""Helpers shared by the spurious_prefix, termination, memorization and token_shift probes.

Data files (off-task prompts, prompt/response pairs, the manifest's samples), serving-template choice, and the exact
training text of a response after its serving prompt, so that scores condition on what the model was trained on.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, ValidationInfo, field_validator
from sfteval.probes.base import ProbeContext, ProbeParams

from sfteval.engines.base import Score
from sfteval.errors import UserError
from sfteval.templates import Message, Template

DATA_DIR = Path(__file__).parent / "data"
OFF_TASK_PROMPTS = DATA_DIR / "off_task_prompts.jsonl"
REFERENCE_PAIRS = DATA_DIR / "reference_pairs.jsonl"

Item = TypeVar("Item")


@dataclass(frozen=True)
class PromptItem:
    """One single-turn prompt; `kind` groups prompts of one sort (code, chit-chat, gibberish, ...)."""

    id: str
    prompt: str
    kind: str = ""


@dataclass(frozen=True)
class Pair:
    """A prompt (turns ending with a user turn) and its reference response; `group` is train/heldout or empty."""

    id: str
    messages: tuple[Message, ...]
    response: str
    group: str = ""


class ServingParams(ProbeParams):
    """Parameters every probe of this family takes: how many items, and under which serving templates."""

    limit: int | None = Field(default=None, ge=1, description="At most this many items (a seeded sample).")
    templates: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        description="Serving templates; None = the training template, else native (or alpaca without one).",
    )

    @field_validator("templates")
    @classmethod
    def _known_templates(cls, templates: tuple[str, ...] | None) -> tuple[str, ...] | None:
        from sfteval.templates import check_template_names

        check_template_names(templates)
        return templates


def serving_templates(configured: tuple[str, ...] | None, context: ProbeContext) -> tuple[str, ...]:
    """As configured, else the training template, else native (alpaca when the tokenizer has no chat template)."""
    if configured:
        return configured
    if context.train_template:
        return (context.train_template,)
    has_chat_template = bool(getattr(context.tokenizer, "chat_template", None))
    return ("native",) if has_chat_template else ("alpaca",)


def data_path(path: str | None, suite_dir: Path | None, default: Path) -> Path:
    """A data file named in a suite (relative to the suite file's directory), or the shipped default."""
    if path is None:
        return default
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() or suite_dir is None else Path(suite_dir) / candidate


def existing_file(path: str | None, info: ValidationInfo) -> str | None:
    """Validator body for a data-file parameter: it must exist (relative to the suite file) when one is named."""
    suite_dir = (info.context or {}).get("suite_dir")
    if path is not None and suite_dir is not None:
        resolved = data_path(path, suite_dir, DATA_DIR)
        if not resolved.is_file():
            raise ValueError(f"data file {resolved} not found")
    return path


def seeded_sample(items: Sequence[Item], limit: int | None, seed: int) -> list[Item]:
    """At most `limit` items, chosen by a seeded sample that keeps their order."""
    if limit is None or limit >= len(items):
        return list(items)
    chosen = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[index] for index in chosen]


def read_jsonl(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(file:line, object) for every non-blank line; bad JSON or a non-object is a UserError naming the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read ({error})") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"{where}: invalid JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}")
        rows.append((where, row))
    if not rows:
        raise UserError(f"{path}: no rows in file")
    return rows


def load_prompts(path: Path) -> list[PromptItem]:
    """Prompts from JSONL rows `{"id", "prompt", "kind"?}`; ids must be unique (empty prompts are allowed)."""
    items = []
    for where, row in read_jsonl(path):
        item_id, prompt, kind = row.get("id"), row.get("prompt"), row.get("kind", "")
        if not isinstance(item_id, str) or not item_id:
            raise UserError(f"{where}: 'id' must be a non-empty string")
        if not isinstance(prompt, str):
            raise UserError(f"{where}: 'prompt' must be a string")
        if not isinstance(kind, str):
            raise UserError(f"{where}: 'kind' must be a string")
        items.append(PromptItem(item_id, prompt, kind))
    _require_unique([item.id for item in items], path)
    return items


def load_pairs(path: Path, group: str = "") -> list[Pair]:
    """Pairs from JSONL rows `{"id", "prompt" or "messages", "response"}`."""
    pairs = [_pair(row, where, group) for where, row in read_jsonl(path)]
    _require_unique([pair.id for pair in pairs], path)
    return pairs


def manifest_pairs(manifest: Mapping[str, Any] | None, group: str) -> list[Pair]:
    """The manifest's seeded sample of trained (`train`) or held-out (`heldout`) pairs; none without a manifest."""
    samples = (manifest or {}).get("samples") or {}
    if not isinstance(samples, dict) or not isinstance(samples.get(group, []), list):
        raise UserError(f"sfteval_manifest.json: 'samples.{group}' must be a list of prompt/response pairs")
    return [
        _pair(row, f"sfteval_manifest.json: samples.{group}[{index}]", group)
        for index, row in enumerate(samples.get(group, []))
    ]


def _pair(row: Any, where: str, group: str) -> Pair:
    """Validate one pair row: a prompt string or a list of messages ending with the user turn."""
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}")
    item_id, response = row.get("id"), row.get("response")
    if not isinstance(item_id, (str, int)) or isinstance(item_id, bool) or item_id == "":
        raise UserError(f"{where}: 'id' must be a non-empty string or an integer")
    if not isinstance(response, str) or not response.strip():
        raise UserError(f"{where}: 'response' must be a non-empty string")
    if isinstance(row.get("prompt"), str):
        messages: tuple[Message, ...] = (Message("user", row["prompt"]),)
    elif isinstance(row.get("messages"), list) and row["messages"]:
        messages = tuple(_message(message, where) for message in row["messages"])
    else:
        raise UserError(f"{where}: needs 'prompt' (a string) or 'messages' (a non-empty list)")
    if messages[-1].role != "user":
        raise UserError(f"{where}: the prompt's messages must end with a user turn")
    return Pair(str(item_id), messages, response, group)


def _message(message: Any, where: str) -> Message:
    """One chat message from a `{role, content, input?}` object; a bad one is a UserError naming `where`."""
    if not isinstance(message, dict) or not isinstance(message.get("content"), str):
        raise UserError(f"{where}: every message needs a 'role' and a string 'content'")
    try:
        return Message(message.get("role", ""), message["content"], message.get("input", ""))
    except UserError as error:
        raise UserError(f"{where}: {error}") from None


def _require_unique(ids: Sequence[str], path: Path) -> None:
    """Item ids pair records across variants, so a repeated id in a data file is an error."""
    seen: set[str] = set()
    for item_id in ids:
        if item_id in seen:
            raise UserError(f"{path}: duplicate id {item_id!r}")
        seen.add(item_id)


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


@dataclass(frozen=True)
class TokenScores:
    """Per-token log-probs (and ranks, tokens) of a continuation, without the context's trailing whitespace."""

    logprobs: tuple[float, ...]
    ranks: tuple[int, ...] | None
    tokens: tuple[str, ...]

    @property
    def logprob(self) -> float:
        """Log-probability of the whole (trimmed) continuation."""
        return sum(self.logprobs)


def own_tokens(score: Score, context: str) -> TokenScores:
    """Drop leading whitespace tokens that the engine moved over from the end of the context.

    Engines follow lm-eval and score a context's trailing whitespace as part of the continuation; after a prompt
    template (ChatML's "assistant\\n") that token sits in the untrained prompt region, so its log-prob and rank say
    nothing about the response and would add noise to every comparison.
    """
    spaces = len(context) - len(context.rstrip())
    dropped = covered = 0
    while dropped < len(score.tokens):
        token = score.tokens[dropped]
        if token.strip() or covered + len(token) > spaces:
            break
        covered += len(token)
        dropped += 1
    ranks = None if score.ranks is None else tuple(score.ranks[dropped:])
    return TokenScores(tuple(score.token_logprobs[dropped:]), ranks, tuple(score.tokens[dropped:]))
