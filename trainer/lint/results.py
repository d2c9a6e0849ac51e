"""Lint results: findings (error / warning / info, with counts and example row ids) and summary tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Level = Literal["error", "warning", "info"]
EXAMPLE_IDS = 5


class LintFinding(BaseModel):
    """One check that fired: how many rows, a few example row ids, and what it means."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    check: str = Field(description="Stable name of the check, e.g. terminator_not_trained.")
    level: Level
    count: int = Field(description="Rows (or pairs, or phrases) affected.")
    message: str
    examples: list[str] = Field(default_factory=list, description="Up to 5 row ids.")


class Table(BaseModel):
    """A small summary table (lengths, stock phrases, task coverage, openings)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str
    columns: list[str]
    rows: list[list[str]]


class ShownRow(BaseModel):
    """A row for `--show`: its tokens as text pieces with their trained flags."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    pieces: list[tuple[str, bool]]
    trained_tokens: int
    total_tokens: int


class LintReport(BaseModel):
    """Everything `sfteval lint` found, in the order it is printed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    template: str
    rows: int
    findings: list[LintFinding]
    tables: list[Table]
    shown: list[ShownRow] = Field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(finding.level == "error" for finding in self.findings)


def finding(check: str, level: Level, ids: Sequence[str], message: str) -> LintFinding | None:
    """A finding for the rows `ids`, or None when there are none."""
    if not ids:
        return None
    unique = list(dict.fromkeys(ids))
    return LintFinding(
        check=check, level=level, count=len(unique), message=message, examples=unique[:EXAMPLE_IDS]
    )
