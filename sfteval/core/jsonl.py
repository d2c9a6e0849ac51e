"""The one JSONL reader: every data file sfteval reads line by line goes through it, so errors always name file:line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sfteval.core.errors import UserError


def read_jsonl(
    path: Path, what: str = "rows", *, objects: bool = True, allow_empty: bool = False
) -> list[tuple[str, Any]]:
    """(`file:line`, decoded value) for every non-blank line of `path`.

    Unreadable files, invalid JSON and (with `objects`) values that are not JSON objects are UserErrors naming the
    file and line; a file with no rows is one too unless `allow_empty`. `what` names the rows in messages.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read {what} ({error})") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"{where}: invalid JSON ({error.msg} at column {error.colno})") from None
        if objects and not isinstance(row, dict):
            raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}")
        rows.append((where, row))
    if not rows and not allow_empty:
        raise UserError(f"{path}: no {what} in file")
    return rows
