"""lm-eval tasks of a probe, loaded once: their instances as planned requests, and the engine's results back as
lm-eval's own per-document metrics or per instance. The forgetting and calibration probes both plan through
`TaskSet`, so for the same tasks and limit their requests are byte-identical and the cache answers both from one
pass.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from sfteval.core.errors import UserError
from sfteval.core.requests import EngineResult, ScoreRequest
from sfteval.core.shipped import resolve_data_path, suite_directories
from sfteval.probes.base import PlannedRequest, ProbeContext, ProbeParams

DEFAULT_TASKS = ("world_facts", "units_science", "word_meaning")

DocumentResults = dict[str, tuple[PlannedRequest, dict[str, Any], dict[str, Any]]]
"""Per item id (`task/doc_id`): its first request, lm-eval's metrics, and extras (option count, doc id)."""

Answered = dict[str, dict[int, tuple[PlannedRequest, EngineResult]]]
"""Per task name: per instance index, its planned request and the engine's result."""


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


class TaskSet:
    """The lm-eval tasks named by a probe's parameters; items are `task/doc_id`, each task its own template.

    `multiple_choice_only` keeps the tasks whose documents have options (calibration); the requests of the tasks
    kept are the same as those of a TaskSet of all of them.
    """

    def __init__(self, params: TaskParams, probe: str, *, multiple_choice_only: bool = False) -> None:
        self.params, self.probe, self.multiple_choice_only = params, probe, multiple_choice_only
        self._loaded: dict[str, Any] | None = None

    def load(self, context: ProbeContext) -> dict[str, Any]:
        """Task name -> (task, instances), loaded once (lm-eval's progress bars and logs muted)."""
        from sfteval.lmeval_tasks import load_tasks, task_instances

        if self._loaded is None:
            params = self.params
            with quiet():
                tasks = load_tasks(params.tasks, self.folders(context), params.num_fewshot)
                loaded = {name: (task, task_instances(task, params.limit)) for name, task in tasks.items()}
            if self.multiple_choice_only:
                loaded = {
                    name: pair for name, pair in loaded.items() if pair[0].OUTPUT_TYPE == "multiple_choice"
                }
                if not loaded:
                    raise UserError(f"{self.probe}: none of the tasks {', '.join(tasks)} is multiple choice")
            self._loaded = loaded
        return self._loaded

    def folders(self, context: ProbeContext) -> list[Path]:
        """Folders searched for task YAMLs: `task_dirs`, `tasks/` next to the suite, the shipped ones."""
        explicit = [resolve_data_path(folder, context.suite_dir) for folder in self.params.task_dirs]
        for folder in explicit:
            if not folder.is_dir():
                raise UserError(f"{self.probe}: task folder {folder} not found")
        defaults = [folder / "tasks" for folder in [context.suite_dir, *suite_directories()] if folder]
        return list(dict.fromkeys([*explicit, *(folder for folder in defaults if folder.is_dir())]))

    def plan(self, context: ProbeContext, template: str | None = None) -> list[PlannedRequest]:
        """Every instance of every task as an engine request, item `task/doc_id`, tagged `task#index`, under
        `template` (default: the task's name, so the report's cells are per task)."""
        from sfteval.lmeval_tasks import instance_request

        planned = []
        for task_name, (_, instances) in self.load(context).items():
            for index, instance in enumerate(instances):
                item_id = f"{task_name}/{instance.doc_id}"
                request = instance_request(instance)
                cell = template or task_name
                planned.append(PlannedRequest(item_id, item_id, cell, request, tag=f"{task_name}#{index}"))
        return planned

    @staticmethod
    def answered(planned: Sequence[PlannedRequest], results: Sequence[EngineResult]) -> Answered:
        """The task requests' results by task and instance index (requests without a `task#index` tag ignored)."""
        by_task: Answered = defaultdict(dict)
        for request, result in zip(planned, results, strict=True):
            if "#" in request.tag:
                task_name, index = request.tag.rsplit("#", 1)
                by_task[task_name][int(index)] = (request, result)
        return by_task

    def results(
        self, context: ProbeContext, planned: Sequence[PlannedRequest], results: Sequence[EngineResult]
    ) -> DocumentResults:
        """lm-eval's per-document metrics of the answered task requests (other requests are ignored)."""
        from sfteval.lmeval_tasks import document_metrics, instance_response

        documents: DocumentResults = {}
        for task_name, answered in self.answered(planned, results).items():
            task, instances = self.load(context)[task_name]
            if len(answered) != len(instances):
                raise ValueError(f"{task_name} got {len(answered)} of {len(instances)} results")
            responses = [instance_response(instances[i], answered[i][1]) for i in range(len(instances))]
            first: dict[int, PlannedRequest] = {}
            for index, instance in enumerate(instances):
                first.setdefault(instance.doc_id, answered[index][0])
            counts = _choice_counts(task, instances)
            with quiet():
                for document in document_metrics(task, instances, responses, self.params.limit):
                    extra = {"choices": counts.get(document.doc_id), "doc_id": document.doc_id}
                    documents[f"{task_name}/{document.doc_id}"] = (
                        first[document.doc_id],
                        document.metrics,
                        extra,
                    )
        return documents


def prompt_of(request: PlannedRequest) -> str:
    """The text a task request sends: the scored context, or the generation prompt."""
    inner = request.request
    return inner.context if isinstance(inner, ScoreRequest) else inner.prompt


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


def _choice_counts(task: Any, instances: Sequence[Any]) -> dict[int, int]:
    """Options per document for multiple-choice tasks (one loglikelihood instance per option)."""
    if task.OUTPUT_TYPE != "multiple_choice":
        return {}
    counts: dict[int, int] = defaultdict(int)
    for instance in instances:
        counts[instance.doc_id] += 1
    return dict(counts)
