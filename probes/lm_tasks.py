"""lm-eval tasks for probes: where task YAMLs are looked up, loading them with their instances, and muting lm-eval.

Shared by the forgetting and calibration probes, so that both build the same instances and therefore the same
engine requests: the cache answers the second probe from the first one's scores.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field
from sfteval.probes.base import PlannedRequest, ProbeParams
from sfteval.core.shipped import resolve_path

from sfteval.core.errors import UserError

DEFAULT_TASKS = ("world_facts", "units_science", "word_meaning")


class TaskParams(ProbeParams):
    """Which lm-eval tasks a probe runs, and on how many documents (suite YAML)."""

    tasks: tuple[str, ...] = Field(
        default=DEFAULT_TASKS, description="lm-eval task names or YAML paths: local task folders first."
    )
    task_dirs: tuple[str, ...] = Field(
        default=(), description="Extra folders of lm-eval task YAMLs (relative to the suite file)."
    )
    num_fewshot: int | None = Field(default=None, ge=0, description="Override the tasks' few-shot count.")
    limit: int | None = Field(
        default=None, ge=1, description="First N documents per task (forgetting: also N held-out paragraphs)."
    )


def task_folders(task_dirs: Sequence[str], suite_dir: Path | None, probe: str) -> list[Path]:
    """Folders searched for task YAMLs: the suite's `task_dirs`, `tasks/` next to the suite, the shipped ones."""
    from sfteval.core.shipped import suite_directories

    explicit = [resolve_path(folder, suite_dir) for folder in task_dirs]
    for folder in explicit:
        if not folder.is_dir():
            raise UserError(f"{probe}: task folder {folder} not found")
    defaults = [folder / "tasks" for folder in [suite_dir, *suite_directories()] if folder]
    return list(dict.fromkeys([*explicit, *(folder for folder in defaults if folder.is_dir())]))


def load_task_instances(
    params: TaskParams, suite_dir: Path | None, probe: str
) -> dict[str, tuple[Any, list[Any]]]:
    """Task name -> (lm-eval task, its instances for the first `limit` documents), lm-eval's output muted."""
    from sfteval.lmeval_tasks import load_tasks, task_instances

    folders = task_folders(params.task_dirs, suite_dir, probe)
    with quiet():
        tasks = load_tasks(params.tasks, folders, params.num_fewshot)
        return {name: (task, task_instances(task, params.limit)) for name, task in tasks.items()}


def instance_requests(
    loaded: dict[str, tuple[Any, list[Any]]], template: str | None = None
) -> list[PlannedRequest]:
    """One engine request per lm-eval instance: item `task/doc_id`, tag `task#index` (the instance's position),
    under `template` (default: the task's name, so the report's cells are per task)."""
    from sfteval.lmeval_tasks import instance_request

    planned = []
    for task_name, (_, instances) in loaded.items():
        for index, instance in enumerate(instances):
            item_id = f"{task_name}/{instance.doc_id}"
            cell = template or task_name
            planned.append(
                PlannedRequest(item_id, item_id, cell, instance_request(instance), tag=f"{task_name}#{index}")
            )
    return planned


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Mute lm-eval's logging and the tqdm/datasets progress bars it writes to stderr (the runner shows its own)."""
    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)
