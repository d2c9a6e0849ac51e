"""The run directory: `items.jsonl` (item records, appended per finished variant), `run.log`, `report.json`.

items.jsonl is rewritten from scratch by every run (the result cache, not this file, is the source of truth for
resuming) and report.json (with report.html) is removed at the start and written at the end; run.log is appended
to, so the history of interrupted and resumed runs stays readable.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from sfteval.core.errors import UserError
from sfteval.core.records import ItemRecord
from sfteval.core.report import REPORT_FILE, Report, save_report
from sfteval.core.run_info import ITEMS_FILE
from sfteval.report.html import HTML_FILE

LOG_FILE = "run.log"
CACHE_FILE = "cache.sqlite"


class RunOutput:
    """Writes one run's files into `directory` (created if needed)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.items_path.write_text("", encoding="utf-8")
            # A report left by an earlier run would describe other items; one killed before writing its own
            # report leaves none rather than a stale one (its HTML page goes first, so none outlives its JSON).
            (self.directory / HTML_FILE).unlink(missing_ok=True)
            self.report_path.unlink(missing_ok=True)
        except OSError as error:
            raise UserError(f"{self.directory}: cannot write the run directory ({error})") from None

    @property
    def items_path(self) -> Path:
        return self.directory / ITEMS_FILE

    @property
    def log_path(self) -> Path:
        return self.directory / LOG_FILE

    @property
    def report_path(self) -> Path:
        return self.directory / REPORT_FILE

    def append_records(self, records: Iterable[ItemRecord]) -> None:
        """Append finished records, one JSON object per line, flushed to disk before returning."""
        with self.items_path.open("a", encoding="utf-8") as handle:
            for record in records:
                handle.write(record.model_dump_json() + "\n")

    def log(self, message: str) -> None:
        """Append a timestamped line to run.log."""
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self.log_path.open("a", encoding="utf-8") as handle:
            handle.write(f"{stamp} {message}\n")

    def write_report(self, report: Report) -> None:
        save_report(report, self.report_path)
