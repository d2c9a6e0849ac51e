"""lm-evaluation-harness on sfteval engines: an `lm_eval` LM over any Engine.

`EngineLM` is an `lm_eval.api.model.LM`, so lm-eval's evaluator (or `lm_eval.simple_evaluate`) runs any lm-eval task
through our engines and, when the engine is a `CachedEngine`, our cache; `evaluate_tasks` does that and keeps every
per-document metric for pairing variants. Tasks become requests through `sfteval.lmeval_tasks`, as in the probes.
Importing this module imports lm_eval (and torch).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.api.model import LM

from sfteval.core.requests import EngineRequest, EngineResult, GenerationRequest, ScoreRequest
from sfteval.engines.base import Engine
from sfteval.lmeval_tasks import DEFAULT_MAX_GEN_TOKS, instance_request, instance_response, load_tasks


class EngineLM(LM):
    """lm-eval's model interface over an sfteval Engine: one batched engine call per lm-eval request type."""

    def __init__(self, engine: Engine, max_gen_toks: int = DEFAULT_MAX_GEN_TOKS) -> None:
        super().__init__()
        self.engine = engine
        self.max_gen_toks = max_gen_toks

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        return self._answer(requests)

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        return self._answer(requests)

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        return self._answer(requests)

    def _answer(self, instances: Sequence[Instance]) -> list[Any]:
        requests = [instance_request(instance, self.max_gen_toks) for instance in instances]
        results = execute(self.engine, requests)
        return [
            instance_response(instance, result) for instance, result in zip(instances, results, strict=True)
        ]


def execute(engine: Engine, requests: Sequence[EngineRequest]) -> list[EngineResult]:
    """Run mixed requests on an engine: all scoring in one call, all generation in another; results in order."""
    results: list[EngineResult | None] = [None] * len(requests)
    scoring = [(index, r) for index, r in enumerate(requests) if isinstance(r, ScoreRequest)]
    generation = [(index, r) for index, r in enumerate(requests) if isinstance(r, GenerationRequest)]
    if scoring:
        for (index, _), score in zip(scoring, engine.score([r for _, r in scoring]), strict=True):
            results[index] = score
    if generation:
        for (index, _), generated in zip(
            generation, engine.generate([r for _, r in generation]), strict=True
        ):
            results[index] = generated
    return [result for result in results if result is not None]


@dataclass(frozen=True)
class TaskResult:
    """One task evaluated by lm-eval through an sfteval engine: aggregate metrics and per-document metrics."""

    name: str
    metrics: dict[str, float]
    documents: dict[int, dict[str, float]]


def evaluate_tasks(
    engine: Engine,
    names: Sequence[str],
    task_dirs: Sequence[Path] = (),
    limit: int | None = None,
    num_fewshot: int | None = None,
) -> dict[str, TaskResult]:
    """Run tasks through lm-eval's evaluator on `engine`, keeping each document's metrics (log_samples).

    `lm_eval.evaluator.evaluate` is what `simple_evaluate` calls after loading tasks (which `load_tasks` does
    the same way), minus the environment report it adds to the results.
    """
    from lm_eval.evaluator import evaluate

    tasks = load_tasks(names, task_dirs, num_fewshot)
    task_dict = {"tasks": tasks, "groups": {}, "group_map": {}}
    output = evaluate(
        lm=EngineLM(engine), task_dict=task_dict, limit=limit, log_samples=True, bootstrap_iters=0
    )
    if output is None:
        raise RuntimeError("lm-eval's evaluator returned no results")
    results = {}
    for name in tasks:
        aggregate = {key: float(value) for key, value in output["results"][name].items() if _is_number(value)}
        documents: dict[int, dict[str, float]] = defaultdict(dict)
        for sample in output["samples"][name]:
            suffix = "" if sample["filter"] == "none" else f",{sample['filter']}"
            documents[sample["doc_id"]].update(
                {f"{metric}{suffix}": float(sample[metric]) for metric in sample["metrics"]}
            )
        results[name] = TaskResult(name, aggregate, dict(documents))
    return results


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
