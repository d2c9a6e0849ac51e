"""The calibration probe: did SFT make the model confidently wrong? (distilled_data.md, "Confident hallucination".)

On the multiple-choice tasks the forgetting probe runs (the same lm-eval tasks, local YAMLs first, then lm-eval's
registry), per document: the options' log-likelihoods, softmax-normalised; the chosen (argmax) option's probability
is the model's confidence. The requests are built by the same code as forgetting's (sfteval.probes.lm_tasks and
lm-eval's own instances), so their cache keys are the same and running both probes scores every option once.
Per item:

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
from typing import TYPE_CHECKING, Any

from pydantic import Field
from sfteval.core.requests import EngineResult
from sfteval.core.metrics import MetricSpec
from sfteval.probes.base import PlannedRequest, Probe, ProbeContext, register_probe
from sfteval.probes.lm_tasks import TaskParams, instance_requests, load_task_instances

from sfteval.core.requests import Score
from sfteval.core.errors import UserError
from sfteval.core.records import ItemRecord
from sfteval.core.results import Finding

from .findings import calibration_findings
from .measures import choose, ece_estimate

if TYPE_CHECKING:
    from sfteval.core.results import ProbeSlice

NAME = "calibration"
POOLED = "-"
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
    metrics = (
        MetricSpec("overconfident_wrong", "wrong at confidence ≥ the threshold (0.9)", higher_is_better=False,
                   binary=True, headline=True),
        MetricSpec("ece", "expected calibration error, 10 equal-width bins (bootstrap CI)", higher_is_better=False,
                   headline=True),
        MetricSpec("brier", "Brier score Σ_k (p_k − y_k)² over the options", higher_is_better=False),
        MetricSpec("confidence", "probability of the chosen option (softmax over option log-likelihoods)", None),
        MetricSpec("correct", "the chosen option is the gold one (lm-eval's acc)", binary=True),
        MetricSpec("overconfidence", "confidence − correct (mean: confidence − accuracy; > 0 overconfident)",
                   None),
    )  # fmt: skip

    params: CalibrationParams

    def __init__(self, params: CalibrationParams | None = None) -> None:
        super().__init__(params)
        self._loaded: dict[str, tuple[Any, list[Any]]] | None = None

    def plan(self, context: ProbeContext) -> list[PlannedRequest]:
        """Every instance of every multiple-choice task, pooled: forgetting's requests, byte for byte."""
        return instance_requests(self._tasks(context), POOLED)

    def records(
        self, context: ProbeContext, planned: Sequence[PlannedRequest], results: Sequence[EngineResult]
    ) -> list[ItemRecord]:
        """One record per document: the option probabilities, the chosen and gold options, and the metrics."""
        answered: dict[str, dict[int, tuple[PlannedRequest, float]]] = defaultdict(dict)
        for request, result in zip(planned, results, strict=True):
            if not isinstance(result, Score):
                raise TypeError(f"{NAME}: expected a Score, got {type(result).__name__}")
            task_name, index = request.tag.rsplit("#", 1)
            answered[task_name][int(index)] = (request, result.logprob)
        records = []
        for task_name, (task, instances) in self._tasks(context).items():
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

    def _tasks(self, context: ProbeContext) -> dict[str, tuple[Any, list[Any]]]:
        """The multiple-choice tasks and their instances, loaded once (others have no options to calibrate)."""
        if self._loaded is None:
            tasks = load_task_instances(self.params, context.suite_dir, NAME)
            self._loaded = {
                name: pair for name, pair in tasks.items() if pair[0].OUTPUT_TYPE == "multiple_choice"
            }
            if not self._loaded:
                raise UserError(f"{NAME}: none of the tasks {', '.join(tasks)} is multiple choice")
        return self._loaded

    def _document(
        self,
        context: ProbeContext,
        task_name: str,
        task: Any,
        instances: Sequence[Any],
        answered: Sequence[tuple[PlannedRequest, float]],
    ) -> list[ItemRecord]:
        """The record of one document (none when its gold option cannot be read, e.g. several gold options)."""
        order = sorted(range(len(instances)), key=lambda i: instances[i].idx)
        doc = instances[0].doc
        options = list(task.doc_to_choice(doc))
        gold = _gold_index(task, doc, options)
        if gold is None:
            return []
        choice = choose([answered[i][1] for i in order][: len(options)], gold)
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


def _gold_index(task: Any, doc: Any, options: Sequence[str]) -> int | None:
    """The gold option's index, read as lm-eval's process_results reads it; None for several gold options."""
    gold = task.doc_to_text(doc) if task.multiple_input else task.doc_to_target(doc)
    if isinstance(gold, str):
        gold = options.index(gold) if gold in options else None
    return gold if isinstance(gold, int) and 0 <= gold < len(options) else None
