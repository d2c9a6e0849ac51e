"""Data files of suites: paths relative to the suite file (falling back to the shipped suites folder) and readers.

Readers validate every row and name the file and line of the first bad one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfteval.errors import UserError


def load_paragraphs(path: Path) -> list[dict[str, str]]:
    """Held-out paragraphs from JSONL rows with string `id` and `text`; errors name the file and line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read held-out text ({error})") from None
    paragraphs, seen = [], set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row = _json_row(line, f"{path}:{number}")
        if not all(isinstance(row.get(key), str) and row[key] for key in ("id", "text")):
            raise UserError(f"{path}:{number}: a held-out row needs non-empty string fields `id` and `text`")
        if row["id"] in seen:
            raise UserError(f"{path}:{number}: duplicate id {row['id']!r}")
        seen.add(row["id"])
        paragraphs.append({"id": row["id"], "text": row["text"]})
    if not paragraphs:
        raise UserError(f"{path}: no held-out paragraphs")
    return paragraphs


def resolve_path(path: str, suite_dir: Path | None) -> Path:
    """A suite data path: absolute as given, else relative to the suite file's folder."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() or suite_dir is None else Path(suite_dir) / candidate


def find_data_file(path: str, suite_dir: Path | None) -> Path:
    """A data file relative to the suite's folder, else to the shipped suites folder (user suites reuse our data)."""
    from sfteval.suite import suite_directories

    candidates = [resolve_path(path, suite_dir), *(folder / path for folder in suite_directories())]
    found = next((candidate for candidate in candidates if candidate.is_file()), None)
    if found is None:
        raise UserError(f"data file {candidates[0]} not found")
    return found


@dataclass(frozen=True)
class ChoiceItem:
    """One multiple-choice item of a local task JSONL (the files next to suites/tasks/*.yaml)."""

    id: str
    question: str
    choices: tuple[str, ...]
    answer: int


def load_choice_items(path: Path) -> list[ChoiceItem]:
    """Rows with `id`, `question`, `choices` (≥ 2 strings) and `answer` (an index into choices)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read multiple-choice items ({error})") from None
    items: list[ChoiceItem] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            items.append(_choice_item(_json_row(line, f"{path}:{number}"), f"{path}:{number}"))
    if not items:
        raise UserError(f"{path}: no multiple-choice items")
    return items


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


def _json_row(line: str, where: str) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise UserError(f"{where}: invalid JSON ({error.msg})") from None
    if not isinstance(row, dict):
        raise UserError(f"{where}: each line must be a JSON object")
    return row
