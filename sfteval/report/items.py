"""Reading a run's item records back (items.jsonl next to report.json) for diffs, flips and the HTML sample browser."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from sfteval.errors import UserError
from sfteval.records import ItemRecord
from sfteval.report.schema import REPORT_FILE, Report


def report_file(path: Path) -> Path:
    """The report.json a command-line argument names: the file itself, or the one inside a run directory."""
    return path / REPORT_FILE if path.is_dir() else path


def items_path(path: Path, report: Report) -> Path:
    """Where the item records of the report at `path` (run directory or report.json) live."""
    return report_file(path).parent / report.run.items_file


def load_items(path: Path) -> list[ItemRecord]:
    """Every record of an items.jsonl; a malformed line is a UserError naming the file and line."""
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read item records ({error})") from None
    seen: dict[tuple[str, str, str, str], int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = ItemRecord.model_validate(json.loads(line))
        except (json.JSONDecodeError, ValidationError) as error:
            reason = error.msg if isinstance(error, json.JSONDecodeError) else error.errors()[0]["msg"]
            raise UserError(f"{path}:{number}: invalid item record ({reason})") from None
        key = (record.probe, record.variant, record.template, record.item_id)
        if key in seen:  # pairing by item would count it twice
            same = f"the same probe, variant, template and item as line {seen[key]}"
            raise UserError(f"{path}:{number}: duplicate item record ({same})")
        seen[key] = number
        records.append(record)
    return records


def load_run_items(path: Path, report: Report) -> list[ItemRecord] | None:
    """The run's item records, or None when its items.jsonl is absent (a report.json copied on its own)."""
    file = items_path(path, report)
    return load_items(file) if file.is_file() else None
