"""The one JSONL reader: every data file sfteval reads line by line goes through it, so errors always name file:line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sfteval.core.errors import UserError


def iter_jsonl(path: Path, what: str = "rows") -> Iterator[tuple[int, Any]]:
    """(line number, decoded value) for every non-blank line; unreadable files and invalid JSON are UserErrors
    naming the file (and line)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read {what} ({error})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"{path}:{number}: invalid JSON ({error.msg} at column {error.colno})") from None


def read_jsonl(
    path: Path, what: str = "rows", *, objects: bool = True, allow_empty: bool = False
) -> list[tuple[str, Any]]:
    """(`file:line`, decoded value) for every non-blank line of `path`.

    Besides `iter_jsonl`'s errors, values that are not JSON objects (with `objects`) are UserErrors naming the file
    and line, and so is a file with no rows unless `allow_empty`. `what` names the rows in messages.
    """
    rows = []
    for number, row in iter_jsonl(path, what):
        where = f"{path}:{number}"
        if objects and not isinstance(row, dict):
            raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}")
        rows.append((where, row))
    if not rows and not allow_empty:
        raise UserError(f"{path}: no {what} in file")
    return rows
