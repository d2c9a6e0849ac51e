"""lm-eval tasks of a probe, loaded once: their instances as planned requests, and the engine's results back as
lm-eval's own per-document metrics. The forgetting probe asks them; any probe that reads the same options (e.g.
calibration) plans byte-identical requests through this, so the cache answers both from one pass.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sfteval.core.errors import UserError
from sfteval.core.requests import EngineResult, ScoreRequest
from sfteval.core.shipped import resolve_data_path, suite_directories
from sfteval.probes.base import PlannedRequest, ProbeContext

DocumentResults = dict[str, tuple[PlannedRequest, dict[str, Any], dict[str, Any]]]
"""Per item id (`task/doc_id`): its first request, lm-eval's metrics, and extras (option count, doc id)."""


class TaskSet:
    """The lm-eval tasks named by a probe's parameters; items are `task/doc_id`, each task its own template."""

    def __init__(
        self, names: Sequence[str], task_dirs: Sequence[str], num_fewshot: int | None, limit: int | None
    ) -> None:
        self.names, self.task_dirs = tuple(names), tuple(task_dirs)
        self.num_fewshot, self.limit = num_fewshot, limit
        self._loaded: dict[str, Any] | None = None

    def load(self, context: ProbeContext) -> dict[str, Any]:
        """Task name -> (task, instances), loaded once (lm-eval's progress bars and logs muted)."""
        from sfteval.lmeval_tasks import load_tasks, task_instances

        if self._loaded is None:
            with quiet():
                tasks = load_tasks(self.names, self.folders(context), self.num_fewshot)
                self._loaded = {
                    name: (task, task_instances(task, self.limit)) for name, task in tasks.items()
                }
        return self._loaded

    def folders(self, context: ProbeContext) -> list[Path]:
        """Folders searched for task YAMLs: `task_dirs`, `tasks/` next to the suite, the shipped ones."""
        explicit = [resolve_data_path(folder, context.suite_dir) for folder in self.task_dirs]
        for folder in explicit:
            if not folder.is_dir():
                raise UserError(f"forgetting: task folder {folder} not found")
        defaults = [folder / "tasks" for folder in [context.suite_dir, *suite_directories()] if folder]
        return list(dict.fromkeys([*explicit, *(folder for folder in defaults if folder.is_dir())]))

    def plan(self, context: ProbeContext) -> list[PlannedRequest]:
        """Every instance of every task as an engine request, tagged `task#index`."""
        from sfteval.lmeval_tasks import instance_request

        planned = []
        for task_name, (_, instances) in self.load(context).items():
            for index, instance in enumerate(instances):
                item_id = f"{task_name}/{instance.doc_id}"
                request = instance_request(instance)
                planned.append(
                    PlannedRequest(item_id, item_id, task_name, request, tag=f"{task_name}#{index}")
                )
        return planned

    def results(
        self, context: ProbeContext, planned: Sequence[PlannedRequest], results: Sequence[EngineResult]
    ) -> DocumentResults:
        """lm-eval's per-document metrics of the answered task requests (other requests are ignored)."""
        from sfteval.lmeval_tasks import document_metrics, instance_response

        by_task: dict[str, dict[int, tuple[PlannedRequest, EngineResult]]] = defaultdict(dict)
        for request, result in zip(planned, results, strict=True):
            if "#" in request.tag:
                task_name, index = request.tag.rsplit("#", 1)
                by_task[task_name][int(index)] = (request, result)
        documents: DocumentResults = {}
        for task_name, answered in by_task.items():
            task, instances = self.load(context)[task_name]
            if len(answered) != len(instances):
                raise ValueError(f"{task_name} got {len(answered)} of {len(instances)} results")
            responses = [instance_response(instances[i], answered[i][1]) for i in range(len(instances))]
            first: dict[int, PlannedRequest] = {}
            for index, instance in enumerate(instances):
                first.setdefault(instance.doc_id, answered[index][0])
            counts = _choice_counts(task, instances)
            with quiet():
                for document in document_metrics(task, instances, responses, self.limit):
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
