"""lm-eval tasks as engine requests: load tasks (local YAMLs first, then lm-eval's registry), turn each instance into an
engine request, and the engine's results back into lm-eval's own per-document metrics.

Probes, which never touch engines, use this: `task_instances` builds a loaded task's instances with lm-eval itself,
`instance_request` turns each into an engine request, and `document_metrics` applies the task's filters, then
`Task.process_results`, so a probe's accuracies are exactly lm-eval's. `sfteval.engines.lmeval` runs lm-eval's own
evaluator on our engines with the same pieces. Importing this module imports lm_eval.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from lm_eval.api.instance import Instance
from lm_eval.api.task import Task

from sfteval.core.errors import UserError
from sfteval.core.requests import EngineRequest, EngineResult, Generation, GenerationRequest, ScoreRequest

# lm-eval's defaults: HFLM's max_gen_toks and simple_evaluate's fewshot_random_seed.
DEFAULT_MAX_GEN_TOKS = 256
FEWSHOT_SEED = 1234
TASK_SUFFIXES = (".yaml", ".yml")


def instance_request(instance: Instance, max_gen_toks: int = DEFAULT_MAX_GEN_TOKS) -> EngineRequest:
    """The engine request that answers one lm-eval instance.

    `loglikelihood_rolling` scores the whole string after the prefix token (BOS, else EOS), as HFLM does for any
    string that fits the model's context; longer strings are the engine's error (HFLM would slide a window).
    """
    if instance.request_type == "loglikelihood":
        context, continuation = instance.args
        return ScoreRequest(context=context, continuation=continuation)
    if instance.request_type == "loglikelihood_rolling":
        return ScoreRequest(context="", continuation=instance.args[0])
    if instance.request_type == "generate_until":
        context, gen_kwargs = instance.args
        return generation_request(context, dict(gen_kwargs), max_gen_toks)
    raise UserError(f"lm-eval request type {instance.request_type!r} is not supported by sfteval engines")


def generation_request(context: str, gen_kwargs: dict[str, Any], max_gen_toks: int) -> GenerationRequest:
    """A GenerationRequest from lm-eval's generation kwargs (`until`, `max_gen_toks`, sampling settings)."""
    until = gen_kwargs.get("until") or ()
    stops = (until,) if isinstance(until, str) else tuple(until)
    sampling = bool(gen_kwargs.get("do_sample", False))
    return GenerationRequest(
        prompt=context,
        max_new_tokens=int(gen_kwargs.get("max_gen_toks", max_gen_toks)),
        temperature=float(gen_kwargs.get("temperature", 1.0)) if sampling else 0.0,
        top_p=float(gen_kwargs.get("top_p", 1.0)) if sampling else 1.0,
        stop=stops,
    )


def instance_response(instance: Instance, result: EngineResult) -> Any:
    """The engine result in the shape lm-eval expects for the instance's request type."""
    if isinstance(result, Generation):
        return result.text
    if instance.request_type == "loglikelihood_rolling":
        return result.logprob
    return (result.logprob, result.is_greedy)


def local_task_config(path: Path) -> dict[str, Any]:
    """A local task YAML as the config dict lm-eval builds from it (includes merged, `!function`s imported), with
    relative `data_files` resolved against the YAML's folder: lm-eval would resolve them against the working
    directory, so a suite's tasks would only load from one place.
    """
    from lm_eval.tasks._yaml_loader import load_yaml

    try:
        config = load_yaml(path, resolve_func=True)
    except (OSError, yaml.YAMLError, ValueError, ImportError, AttributeError) as error:
        raise UserError(f"{path}: cannot read the task YAML ({error})") from None
    if not isinstance(config.get("task"), str):
        raise UserError(f"{path}: an lm-eval task YAML must be a mapping with a `task` name")
    data_files = (config.get("dataset_kwargs") or {}).get("data_files")
    if isinstance(data_files, (str, list, dict)):
        config["dataset_kwargs"] = {
            **config["dataset_kwargs"],
            "data_files": _resolve(data_files, path.parent),
        }
    return config


def _resolve(data_files: Any, folder: Path) -> Any:
    """Relative data file paths (a string, a list, or a split -> paths mapping) made absolute against `folder`."""
    if isinstance(data_files, dict):
        return {split: _resolve(files, folder) for split, files in data_files.items()}
    if isinstance(data_files, list):
        return [_resolve(files, folder) for files in data_files]
    return str(folder / data_files) if "://" not in data_files else data_files


def find_local_task(name: str, task_dirs: Sequence[Path]) -> Path | None:
    """The YAML a task name refers to: a path to a YAML file, or NAME.yaml in one of `task_dirs`."""
    path = Path(name)
    if path.suffix in TASK_SUFFIXES:
        if not path.is_file():
            raise UserError(f"{path}: task YAML not found")
        return path
    for directory in task_dirs:
        for suffix in TASK_SUFFIXES:
            candidate = Path(directory) / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def load_tasks(
    names: Sequence[str],
    task_dirs: Sequence[Path] = (),
    num_fewshot: int | None = None,
    fewshot_seed: int = FEWSHOT_SEED,
) -> dict[str, Task]:
    """lm-eval tasks by name: local YAMLs from `task_dirs` first, then lm-eval's registry (groups expand).

    Few-shot settings follow `simple_evaluate`: `num_fewshot` overrides the task's (unless the task pins 0),
    missing counts become 0, and the few-shot sampler is seeded with lm-eval's default seed.
    """
    from lm_eval.tasks import TaskManager

    local = {name: find_local_task(name, task_dirs) for name in names}
    specs: list[Any] = [local_task_config(path) if path else name for name, path in local.items()]
    registry = [name for name, path in local.items() if path is None]
    manager = TaskManager(include_path=[str(d) for d in task_dirs] or None, include_defaults=bool(registry))
    tasks: dict[str, Task] = {}
    for name, spec in zip(names, specs, strict=True):
        try:
            tasks |= manager.load([spec])["tasks"]
        except (KeyError, ValueError, FileNotFoundError) as error:
            raise UserError(f"cannot load lm-eval task(s) {name}: {error}") from None
        except ConnectionError as error:
            raise unreachable_dataset(name, error) from None
    for task in tasks.values():
        configured = task.get_config("num_fewshot")
        if num_fewshot is not None and configured != 0:
            task.set_config(key="num_fewshot", value=num_fewshot)
        elif configured is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=fewshot_seed)
    return tasks


def unreachable_dataset(task: str, error: ConnectionError) -> UserError:
    """A task whose dataset is in no local cache and the hub cannot be reached: name it and the two ways out."""
    found = re.search(r"reach '([^']+)'", str(error))
    dataset = f"the dataset {found[1]!r}" if found else f"a dataset from the Hugging Face hub ({error})"
    return UserError(
        f"lm-eval task {task!r} needs {dataset}, which is not in the local Hugging Face cache, "
        "and the hub cannot be reached",
        hint="warm the cache by loading the task once where the hub is reachable (HF_DATASETS_OFFLINE unset), "
        "or give the task as a local task YAML over a JSONL file (see suites/tasks/)",
    )


def task_instances(task: Task, limit: int | None = None) -> list[Instance]:
    """The task's request instances for its first `limit` documents, built by lm-eval itself."""
    task.build_all_requests(limit=limit, rank=0, world_size=1)
    return list(task.instances)


@dataclass(frozen=True)
class DocumentResult:
    """lm-eval's metrics of one document (`doc_id` is its position in the evaluation split)."""

    doc_id: int
    doc: Mapping[str, Any]
    metrics: dict[str, float]


def document_metrics(
    task: Task, instances: Sequence[Instance], responses: Sequence[Any], limit: int | None = None
) -> list[DocumentResult]:
    """Per-document metrics from lm-eval responses: the task's filters, then `Task.process_results`.

    Metrics of a filter other than lm-eval's `none` are named `metric,filter`, as in lm-eval's result keys.
    """
    for instance, response in zip(instances, responses, strict=True):
        instance.resps = [response] * instance.repeats
    task.apply_filters()
    by_document: dict[int, list[Instance]] = defaultdict(list)
    for instance in instances:
        by_document[instance.doc_id].append(instance)
    results = []
    for doc_id, doc in task.doc_iterator(rank=0, limit=limit, world_size=1):
        group = sorted(by_document[doc_id], key=lambda instance: instance.idx)
        metrics: dict[str, float] = {}
        for filter_key in group[0].filtered_resps:
            values = task.process_results(doc, [instance.filtered_resps[filter_key] for instance in group])
            suffix = "" if filter_key == "none" else f",{filter_key}"
            metrics.update({f"{name}{suffix}": float(value) for name, value in values.items()})
        results.append(DocumentResult(doc_id, doc, metrics))
    return results
