"""The calibration probe: did SFT make the model confidently wrong? (distilled_data.md, "Confident hallucination".)

On the multiple-choice tasks the forgetting probe runs (the same lm-eval tasks, local YAMLs first, then lm-eval's
registry), per document: the options' log-likelihoods, softmax-normalised; the chosen (argmax) option's probability
is the model's confidence. The requests are planned by the same `TaskSet` as forgetting's
(sfteval.probes.shared.lm_tasks, on lm-eval's own instances), so their cache keys are the same and running both
probes scores every option once. Per item:

* confidence, correct (lm-eval's acc), brier (Σ_k (p_k − y_k)²);
* overconfident_wrong: wrong at confidence ≥ `overconfident` (0.9), McNemar-paired with the base by the report;
* overconfidence: confidence − correct; its mean is mean confidence − accuracy (> 0: overconfident).

Per variant, `ece` (expected calibration error, 10 equal-width bins) with a bootstrap interval over items; the
findings compare it with the base's by a paired bootstrap on the same items (Gekhman et al. 2024: SFT on examples the
base does not know makes it hallucinate confidently). All tasks are pooled (template `-`): calibration is a property
of the model's confidence, and pooling gives the reliability diagram enough items per bin.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from sfteval.core.generation import GenerationSettings
from sfteval.core.records import ItemRecord
from sfteval.core.requests import EngineResult, Score
from sfteval.core.results import Finding, ProbeSlice
from sfteval.probes.base import PlannedRequest, Probe, ProbeContext, ProbeParams, register_probe
from sfteval.probes.calibration.findings import calibration_findings
from sfteval.probes.calibration.measures import choose, ece_estimate
from sfteval.probes.calibration.metrics import METRICS, NAME, POOLED
from sfteval.probes.shared.lm_tasks import TaskParams, TaskSet

SEED = 0
"""Seed of the ECE bootstraps (fixed, so a rebuilt report gives the same intervals)."""


class CalibrationParams(TaskParams):
    """Parameters of the calibration probe (suite YAML): the tasks (as forgetting's), threshold, bins, resamples."""

    overconfident: float = Field(default=0.9, gt=0, le=1, description="Wrong at this confidence or more.")
    bins: int = Field(default=10, ge=2, description="Equal-width confidence bins of the ECE.")
    n_resamples: int = Field(default=1000, ge=100, description="Bootstrap resamples of the ECE intervals.")


@register_probe
class CalibrationProbe(Probe):
    """Is the model's confidence in its multiple-choice answers as good as its accuracy, compared with its base?"""

    name = NAME
    version = 1
    Params = CalibrationParams
    metrics = METRICS

    params: CalibrationParams

    def __init__(
        self, params: ProbeParams | None = None, generation: GenerationSettings | None = None
    ) -> None:
        super().__init__(params, generation)
        # Only tasks with options can be calibrated; their requests are forgetting's, byte for byte.
        self.tasks = TaskSet(self.params, self.name, multiple_choice_only=True)

    def plan(self, context: ProbeContext) -> list[PlannedRequest]:
        """Every instance of every multiple-choice task, pooled: forgetting's requests, byte for byte."""
        return self.tasks.plan(context, POOLED)

    def records(
        self, context: ProbeContext, planned: Sequence[PlannedRequest], results: Sequence[EngineResult]
    ) -> list[ItemRecord]:
        """One record per document: the option probabilities, the chosen and gold options, and the metrics."""
        answered = self.tasks.answered(planned, results)
        records = []
        for task_name, (task, instances) in self.tasks.load(context).items():
            by_document: dict[int, list[int]] = defaultdict(list)
            for index, instance in enumerate(instances):
                by_document[instance.doc_id].append(index)
            for indices in by_document.values():
                found = self._document(context, task_name, task, [instances[i] for i in indices],
                                       [answered[task_name][i] for i in indices])  # fmt: skip
                records.extend(found)
        return records

    def summarize(self, records: Sequence[ItemRecord]) -> dict[str, Any]:
        """The variant's ECE with its bootstrap interval."""
        kept = [
            r
            for r in records
            if r.metrics.get("confidence") is not None and r.metrics.get("correct") is not None
        ]
        if not kept:
            return {}
        confidences = [float(r.metrics["confidence"] or 0.0) for r in kept]
        correct = [float(r.metrics["correct"] or 0.0) for r in kept]
        return {"ece": ece_estimate(confidences, correct, self.params.bins, self.params.n_resamples, SEED)}

    def findings(self, report_slice: ProbeSlice) -> list[Finding]:
        """ECE up vs base (paired bootstrap, Holm over variants) and overconfident-wrong answers up (McNemar)."""
        params = self.params
        return calibration_findings(report_slice, params.bins, params.n_resamples, SEED, params.overconfident)

    def _document(
        self,
        context: ProbeContext,
        task_name: str,
        task: Any,
        instances: Sequence[Any],
        answered: Sequence[tuple[PlannedRequest, EngineResult]],
    ) -> list[ItemRecord]:
        """The record of one document (none when its gold option cannot be read, e.g. several gold options)."""
        order = sorted(range(len(instances)), key=lambda i: instances[i].idx)
        doc = instances[0].doc
        options = list(task.doc_to_choice(doc))
        gold = _gold_index(task, doc, options)
        if gold is None:
            return []
        choice = choose([_logprob(answered[i][1]) for i in order][: len(options)], gold)
        metrics = {
            "overconfident_wrong": int(not choice.correct and choice.confidence >= self.params.overconfident),
            "brier": choice.brier,
            "confidence": choice.confidence,
            "correct": int(choice.correct),
            "overconfidence": choice.confidence - int(choice.correct),
        }
        extra = {
            "task": task_name,
            "doc_id": instances[0].doc_id,
            "probabilities": [round(p, 6) for p in choice.probabilities],
            "chosen": choice.chosen,
            "gold": gold,
        }
        first = answered[order[0]][0]
        prompt = getattr(first.request, "context", None)
        return [self.record(context, first, metrics, prompt=prompt, extra=extra)]


def _logprob(result: EngineResult) -> float:
    if not isinstance(result, Score):
        raise TypeError(f"{NAME}: expected a Score, got {type(result).__name__}")
    return result.logprob


def _gold_index(task: Any, doc: Any, options: Sequence[str]) -> int | None:
    """The gold option's index, read as lm-eval's process_results reads it; None for several gold options."""
    gold = task.doc_to_text(doc) if task.multiple_input else task.doc_to_target(doc)
    if isinstance(gold, str):
        gold = options.index(gold) if gold in options else None
    return gold if isinstance(gold, int) and 0 <= gold < len(options) else None
