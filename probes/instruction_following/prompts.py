"""Instruction-following prompts in IFEval's `input_data.jsonl` format, and the loader for ours or IFEval's file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sfteval.core.errors import UserError
from sfteval.core.jsonl import read_jsonl

from .checkers import get_checker

#: The composed prompt set shipped with sfteval (regenerate with `python -m sfteval.probes.instruction_following.compose`).
DEFAULT_PROMPTS = Path(__file__).parent / "data" / "prompts.jsonl"


@dataclass(frozen=True)
class IFPrompt:
    """One prompt with its verifiable instructions; kwargs are validated, with IFEval's None placeholders dropped."""

    key: int | str
    prompt: str
    instruction_id_list: tuple[str, ...]
    kwargs: tuple[Mapping[str, Any], ...]
    #: The base task the prompt was composed from (our set only); prompts sharing it are correlated.
    task_id: str | None = None

    @property
    def item_id(self) -> str:
        return str(self.key)

    @property
    def cluster_id(self) -> str:
        """The unit of resampling: the base task when known, else the prompt itself."""
        return self.task_id or self.item_id

    def to_row(self) -> dict[str, Any]:
        """The IFEval-format JSON object (plus `task_id` when set)."""
        row: dict[str, Any] = {
            "key": self.key,
            "prompt": self.prompt,
            "instruction_id_list": list(self.instruction_id_list),
            "kwargs": [dict(kwargs) for kwargs in self.kwargs],
        }
        if self.task_id is not None:
            row["task_id"] = self.task_id
        return row


def load_prompts(path: str | None = None) -> list[IFPrompt]:
    """Read prompts from a JSONL file in IFEval format (default: sfteval's composed set)."""
    source = Path(path) if path is not None else DEFAULT_PROMPTS
    prompts: list[IFPrompt] = []
    seen: set[str] = set()
    for where, row in read_jsonl(source, "prompts", objects=False):
        prompt = parse_prompt(row, where)
        if prompt.item_id in seen:
            raise UserError(f"{where}: duplicate key {prompt.key!r}")
        seen.add(prompt.item_id)
        prompts.append(prompt)
    return prompts


def parse_prompt(row: object, where: str) -> IFPrompt:
    """Validate one decoded row; `where` (file:line) prefixes every error."""
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [name for name in ("key", "prompt", "instruction_id_list", "kwargs") if name not in row]
    if missing:
        raise UserError(f"{where}: missing field(s) {missing}")
    key, prompt, ids, kwargs_list = row["key"], row["prompt"], row["instruction_id_list"], row["kwargs"]
    if isinstance(key, bool) or not isinstance(key, (int, str)) or key == "":
        raise UserError(f"{where}: 'key' must be an integer or a non-empty string, got {key!r}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise UserError(f"{where}: 'prompt' must be a non-empty string")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise UserError(f"{where}: 'instruction_id_list' must be a non-empty list of strings")
    if not isinstance(kwargs_list, list) or len(kwargs_list) != len(ids):
        raise UserError(f"{where}: 'kwargs' must be a list with one object per instruction ({len(ids)})")
    task_id = row.get("task_id")
    if task_id is not None and not isinstance(task_id, str):
        raise UserError(f"{where}: 'task_id' must be a string")
    return IFPrompt(
        key=key,
        prompt=prompt,
        instruction_id_list=tuple(ids),
        kwargs=tuple(_instruction_kwargs(i, k, where) for i, k in zip(ids, kwargs_list, strict=True)),
        task_id=task_id,
    )


def _instruction_kwargs(instruction_id: str, kwargs: object, where: str) -> dict[str, Any]:
    """Kwargs of one instruction with None values dropped, validated against its checker."""
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise UserError(f"{where}: kwargs of {instruction_id!r} must be an object, got {kwargs!r}")
    try:
        get_checker(instruction_id).normalize(kwargs)
    except UserError as error:
        raise UserError(f"{where}: {error}") from None
    return {name: value for name, value in kwargs.items() if value is not None}
