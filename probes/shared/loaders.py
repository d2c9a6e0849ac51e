"""Data files of probes: off-task prompts, prompt/response pairs (files or the manifest's samples), held-out text,
multiple-choice items. Every reader validates each row and names the file and line of the first bad one.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, ValidationInfo

from sfteval.core.errors import UserError
from sfteval.core.jsonl import read_jsonl
from sfteval.core.shipped import resolve_data_path
from sfteval.templates import Message

DATA_DIR = Path(__file__).parent / "data"
OFF_TASK_PROMPTS = DATA_DIR / "off_task_prompts.jsonl"
REFERENCE_PAIRS = DATA_DIR / "reference_pairs.jsonl"

Item = TypeVar("Item")


def existing_file(path: str | None, info: ValidationInfo) -> str | None:
    """Validator body for a data-file parameter: it must exist (relative to the suite file) when one is named."""
    suite_dir = (info.context or {}).get("suite_dir")
    if path is not None and suite_dir is not None:
        resolved = data_path(path, suite_dir, DATA_DIR)
        if not resolved.is_file():
            raise ValueError(f"data file {resolved} not found")
    return path


DataFile = Annotated[str | None, AfterValidator(existing_file)]
"""A data-file parameter of a probe: relative to the suite file; it must exist when one is named."""


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


def data_path(path: str | None, suite_dir: Path | None, default: Path) -> Path:
    """A data file named in a suite (relative to the suite file's directory), or the shipped default."""
    return default if path is None else resolve_data_path(path, suite_dir)


def seeded_sample(items: Sequence[Item], limit: int | None, seed: int) -> list[Item]:
    """At most `limit` items, chosen by a seeded sample that keeps their order."""
    if limit is None or limit >= len(items):
        return list(items)
    chosen = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[index] for index in chosen]


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


def load_paragraphs(path: Path) -> list[dict[str, str]]:
    """Held-out paragraphs from JSONL rows with string `id` and `text`; errors name the file and line."""
    paragraphs = []
    for where, row in read_jsonl(path, "held-out paragraphs"):
        if not all(isinstance(row.get(key), str) and row[key] for key in ("id", "text")):
            raise UserError(f"{where}: a held-out row needs non-empty string fields `id` and `text`")
        paragraphs.append({"id": row["id"], "text": row["text"]})
    _require_unique([paragraph["id"] for paragraph in paragraphs], path)
    return paragraphs


@dataclass(frozen=True)
class ChoiceItem:
    """One multiple-choice item of a local task JSONL (the files next to suites/tasks/*.yaml)."""

    id: str
    question: str
    choices: tuple[str, ...]
    answer: int


def load_choice_items(path: Path) -> list[ChoiceItem]:
    """Rows with `id`, `question`, `choices` (≥ 2 strings) and `answer` (an index into choices)."""
    return [_choice_item(row, where) for where, row in read_jsonl(path, "multiple-choice items")]


def _choice_item(row: dict[str, Any], where: str) -> ChoiceItem:
    choices = row.get("choices")
    if (
        not isinstance(choices, list)
        or len(choices) < 2
        or not all(isinstance(c, str) and c for c in choices)
    ):
        raise UserError(f"{where}: `choices` must be a list of at least two non-empty strings")
    answer = row.get("answer")
    if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < len(choices):
        raise UserError(f"{where}: `answer` must be an index into the {len(choices)} choices")
    if not all(isinstance(row.get(key), str) and row[key] for key in ("id", "question")):
        raise UserError(f"{where}: `id` and `question` must be non-empty strings")
    return ChoiceItem(row["id"], row["question"], tuple(choices), answer)
