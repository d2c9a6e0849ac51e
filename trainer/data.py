"""Training data: JSONL/JSON/Parquet rows in alpaca, prompt/completion or messages format, as conversations.

JSON and JSONL are parsed here (not by `datasets`) so a malformed row is reported as file:line; Parquet is read
through `datasets`' local-file loader.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfteval.core.errors import UserError
from sfteval.core.jsonl import iter_jsonl
from sfteval.templates import Message, messages_from_example

SUFFIXES = (".jsonl", ".json", ".parquet")


@dataclass(frozen=True)
class Conversation:
    """One training row: a stable id (`file:line` unless the row has an `id`) and its messages."""

    id: str
    messages: tuple[Message, ...]

    @property
    def prompt(self) -> tuple[Message, ...]:
        """The turns before the last assistant response (ends with a user turn)."""
        return self.messages[:-1]

    @property
    def response(self) -> str:
        """The last assistant response."""
        return self.messages[-1].content


@dataclass(frozen=True)
class DataFile:
    """A loaded data file: where it came from, its hash and its conversations."""

    path: Path
    sha256: str
    conversations: tuple[Conversation, ...]


def load_data_files(paths: Sequence[Path]) -> list[DataFile]:
    """Load every file; ids are made unique across files by prefixing the file name where needed."""
    files = [load_data_file(Path(path)) for path in paths]
    seen: set[str] = set()
    for data_file in files:
        for conversation in data_file.conversations:
            if conversation.id in seen:
                raise UserError(f"{data_file.path}: row id {conversation.id!r} occurs more than once")
            seen.add(conversation.id)
    return files


def load_data_file(path: Path) -> DataFile:
    """Read one file into conversations; every problem is a UserError naming file and line."""
    if not path.is_file():
        raise UserError(f"{path}: data file not found")
    if path.suffix.lower() not in SUFFIXES:
        raise UserError(f"{path}: unsupported data format", hint="expected .jsonl, .json or .parquet")
    conversations = tuple(_to_conversation(record, path, line) for line, record in _records(path))
    if not conversations:
        raise UserError(f"{path}: no rows (the file is empty)")
    return DataFile(path=path.resolve(), sha256=file_sha256(path), conversations=conversations)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, record) pairs; for JSON arrays and Parquet the "line" is the 1-based row number."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        yield from enumerate(_parquet_rows(path), start=1)
        return
    if suffix == ".json":
        yield from enumerate(_json_rows(path, _read_text(path)), start=1)
        return
    yield from iter_jsonl(path, "training data")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read ({error})") from None


def _json_rows(path: Path, text: str) -> list[Any]:
    try:
        loaded = json.loads(text) if text.strip() else []
    except json.JSONDecodeError as error:
        raise UserError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("data"), list):
        loaded = loaded["data"]
    if not isinstance(loaded, list):
        raise UserError(f'{path}: a JSON data file must hold a list of rows (or {{"data": [...]}})')
    return loaded


def _parquet_rows(path: Path) -> list[dict[str, Any]]:
    import datasets

    try:
        dataset = datasets.load_dataset("parquet", data_files=str(path), split="train")
    except Exception as error:  # noqa: BLE001 - any reader failure is a bad input file
        raise UserError(f"{path}: cannot read Parquet ({type(error).__name__}: {error})") from None
    return list(dataset)


def _to_conversation(record: Any, path: Path, line: int) -> Conversation:
    """Recognise the row's format and build its messages."""
    where = f"{path}:{line}"
    if not isinstance(record, dict):
        raise UserError(f"{where}: a row must be a JSON object, got {type(record).__name__}")
    row_id = str(record["id"]) if record.get("id") is not None else f"{path.name}:{line}"
    try:
        if "messages" in record:
            messages = _messages(record["messages"], where)
        elif "prompt" in record or "completion" in record:
            messages = _prompt_completion(record, where)
        elif "instruction" in record or "output" in record:
            messages = _alpaca(record, where)
        else:
            raise UserError(
                f"{where}: unrecognised row (keys: {', '.join(sorted(record)) or 'none'})",
                hint="expected messages, prompt+completion, or instruction+output (+input)",
            )
    except UserError as error:
        if str(error).startswith(where):
            raise
        raise UserError(f"{where}: {error}") from None
    _check_ends_with_response(messages, where)
    return Conversation(id=row_id, messages=tuple(messages))


def _text_field(record: dict[str, Any], key: str, where: str, required: bool = True) -> str:
    value = record.get(key)
    if value is None:
        if required:
            raise UserError(f"{where}: missing field {key!r}")
        return ""
    if not isinstance(value, str):
        raise UserError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    return value


def _alpaca(record: dict[str, Any], where: str) -> list[Message]:
    return messages_from_example(
        instruction=_text_field(record, "instruction", where),
        output=_text_field(record, "output", where),
        input=_text_field(record, "input", where, required=False),
        system=record.get("system") or None,
    )


def _prompt_completion(record: dict[str, Any], where: str) -> list[Message]:
    """Plain strings (one user turn + one response) or conversational lists of messages, or a mix."""
    return [*_side(record, "prompt", "user", where), *_side(record, "completion", "assistant", where)]


def _side(record: dict[str, Any], key: str, role: str, where: str) -> list[Message]:
    value = record.get(key)
    if value is None:
        raise UserError(f"{where}: missing field {key!r}")
    if isinstance(value, str):
        return [Message(role, value)]  # type: ignore[arg-type]
    if isinstance(value, list):
        return _messages(value, where, allow_empty=role == "user")
    raise UserError(
        f"{where}: field {key!r} must be a string or a list of messages, got {type(value).__name__}"
    )


def _messages(value: Any, where: str, allow_empty: bool = False) -> list[Message]:
    if not isinstance(value, list) or (not value and not allow_empty):
        raise UserError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
    messages = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("role"), str):
            raise UserError(f"{where}: message {index} needs a string 'role'")
        content = item.get("content")
        if not isinstance(content, str):
            raise UserError(f"{where}: message {index} ({item['role']}) needs a string 'content'")
        messages.append(Message(item["role"], content))
    return messages


def _check_ends_with_response(messages: Sequence[Message], where: str) -> None:
    if not messages or messages[-1].role != "assistant":
        raise UserError(f"{where}: the row must end with an assistant response")
