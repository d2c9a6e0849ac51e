"""Reading a run's item records back (items.jsonl next to report.json) for diffs, flips and the HTML sample browser."""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import ValidationError

from sfteval.core.errors import UserError
from sfteval.core.jsonl import read_jsonl
from sfteval.core.records import ItemRecord
from sfteval.core.report import REPORT_FILE, Report


def report_file(path: Path) -> Path:
    """The report.json a command-line argument names: the file itself, or the one inside a run directory."""
    return path / REPORT_FILE if path.is_dir() else path


def items_path(path: Path, report: Report) -> Path:
    """Where the item records of the report at `path` (run directory or report.json) live."""
    return report_file(path).parent / report.run.items_file


def load_items(path: Path) -> list[ItemRecord]:
    """Every record of an items.jsonl; a malformed line is a UserError naming the file and line."""
    records = []
    seen: dict[tuple[str, str, str, str], str] = {}
    for where, row in read_jsonl(path, "item records", objects=False, allow_empty=True):
        try:
            record = ItemRecord.model_validate(row)
        except ValidationError as error:
            raise UserError(f"{where}: invalid item record ({error.errors()[0]['msg']})") from None
        key = (record.probe, record.variant, record.template, record.item_id)
        if key in seen:  # pairing by item would count it twice
            line = seen[key].rsplit(":", 1)[1]
            raise UserError(
                f"{where}: duplicate item record (the same probe, variant, template and item as line {line})"
            )
        seen[key] = where
        records.append(record)
    return records


def load_run_items(path: Path, report: Report) -> list[ItemRecord] | None:
    """The run's item records, or None when its items.jsonl is absent (a report.json copied on its own)."""
    file = items_path(path, report)
    return load_items(file) if file.is_file() else None


def finite(value: float | int | bool | None) -> float | None:
    """A per-item metric value as a float, or None when it is absent or not finite (counted as missing)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
