"""The forgetting probe: what base capability did SFT lose? (diagnostics.md §4.)

Three views, all in score mode on plain (untemplated) text, so format effects cannot pose as forgetting:
- lm-eval tasks (local YAMLs in suites/tasks first, else lm-eval's registry: hellaswag, arc_challenge, ...). lm-eval
  builds the requests and scores them (`Task.process_results`), so per-document accuracies are lm-eval's own. Records
  carry the task name in `template`, so the report's cells and paired comparisons (McNemar on `acc`) are per task.
- held-out encyclopaedic text: bits per byte (tokenizer-independent), lm-eval's `bits_per_byte` per paragraph.
- KL(base ‖ variant) of next-token distributions on that text, nats per token.

The base pass (`needs_base_scoring`) re-asks the base model the same questions (cache hits after the base variant
ran) so each item also carries its flip: `forgotten` is defined on items the base got right (1 = now wrong),
`gained` on those it got wrong (Harmon et al. 2025's 1→0 / 0→1 transitions).

KL is computed from the top-k (token id, log-prob) lists of both models, by lumping every token outside the tokens
both lists share into one outcome. Merging outcomes never increases a KL divergence (log-sum inequality), so this is
a lower bound of the exact KL that becomes exact when k covers the vocabulary; `kl_top_k` sets k.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from sfteval.core.generation import GenerationSettings
from sfteval.core.records import ItemRecord
from sfteval.core.requests import EngineResult, Score, ScoreRequest
from sfteval.core.results import Finding, ProbeSlice
from sfteval.core.shipped import find_data_file
from sfteval.probes.base import PlannedRequest, Probe, ProbeContext, ProbeParams, register_probe
from sfteval.probes.forgetting.findings import forgetting_findings
from sfteval.probes.forgetting.measures import bits_per_byte, chance_adjusted_flips, correct, flips, mean_kl
from sfteval.probes.forgetting.metrics import METRICS, NAME
from sfteval.probes.shared.lm_tasks import DocumentResults, TaskParams, TaskSet, prompt_of
from sfteval.probes.shared.loaders import load_paragraphs

HELDOUT = "heldout_text"


class ForgettingParams(TaskParams):
    """Parameters of the forgetting probe (suite YAML): the tasks (TaskParams), held-out text and KL settings."""

    heldout: str | None = Field(
        default="data/heldout_text.jsonl", description="Held-out text JSONL (id, text); None disables it."
    )
    kl_top_k: int = Field(
        default=64, ge=0, description="Top-k log-probs per token for KL to base; 0 disables."
    )


@register_probe
class ForgettingProbe(Probe):
    """Base capability lost by SFT: lm-eval task accuracy and flips, held-out bits per byte, KL to base."""

    name = NAME
    version = 1
    Params = ForgettingParams
    needs_base_scoring = True
    metrics = METRICS

    params: ForgettingParams

    def __init__(
        self, params: ProbeParams | None = None, generation: GenerationSettings | None = None
    ) -> None:
        super().__init__(params, generation)
        self.tasks = TaskSet(self.params, self.name)

    def plan(self, context: ProbeContext) -> list[PlannedRequest]:
        """Every lm-eval instance of every task, then one top-k scoring request per held-out paragraph."""
        planned = self.tasks.plan(context)
        for paragraph in self._paragraphs(context):
            request = ScoreRequest(context="", continuation=paragraph["text"], top_k=self.params.kl_top_k)
            item_id = f"heldout/{paragraph['id']}"
            planned.append(PlannedRequest(item_id, item_id, HELDOUT, request, tag=HELDOUT))
        return planned

    def records(
        self, context: ProbeContext, planned: Sequence[PlannedRequest], results: Sequence[EngineResult]
    ) -> list[ItemRecord]:
        """lm-eval's per-document metrics, and bits per byte per paragraph (its top-k kept for the base pass)."""
        records = []
        for request, metrics, extra in self._task_results(context, planned, results).values():
            records.append(self.record(context, request, metrics, prompt=prompt_of(request), extra=extra))
        for request, result in zip(planned, results, strict=True):
            if request.tag == HELDOUT:
                score = _score(result)
                text = request.request.continuation if isinstance(request.request, ScoreRequest) else ""
                metrics = {"bits_per_byte": bits_per_byte(score.logprob, text)}
                extra = {"top_logprobs": score.top_logprobs, "tokens": score.num_tokens}
                records.append(self.record(context, request, metrics, extra=extra))
        return records

    def base_requests(self, context: ProbeContext, records: Sequence[ItemRecord]) -> list[PlannedRequest]:
        """The same requests, for the base model (none when the variant is the base itself)."""
        return [] if context.variant.is_base else self.plan(context)

    def finish(
        self,
        context: ProbeContext,
        records: Sequence[ItemRecord],
        planned: Sequence[PlannedRequest],
        results: Sequence[EngineResult],
    ) -> list[ItemRecord]:
        """Add each item's flip against the base and each paragraph's KL to base; drop the kept top-k lists."""
        base_metrics = {
            item: metrics for item, (_, metrics, _) in self._task_results(context, planned, results).items()
        }
        base_top = {
            request.item_id: _score(result).top_logprobs
            for request, result in zip(planned, results, strict=True)
            if request.tag == HELDOUT
        }
        finished = []
        for record in records:
            metrics, extra = dict(record.metrics), dict(record.extra)
            variant_top = extra.pop("top_logprobs", None)
            if record.template == HELDOUT:
                reference = base_top.get(record.item_id)
                metrics["kl_to_base"] = (
                    None if not (reference and variant_top) else mean_kl(reference, variant_top)
                )
            elif record.item_id in base_metrics:
                metrics.update(flips(metrics, base_metrics[record.item_id]))
                extra["base_correct"] = correct(base_metrics[record.item_id])
            finished.append(record.model_copy(update={"metrics": metrics, "extra": extra}))
        return finished

    def summarize(self, records: Sequence[ItemRecord]) -> dict[str, Any]:
        """Chance-adjusted forgetting and gain of one task (needs the base's correctness and the option count)."""
        pairs = [
            (record.extra["base_correct"], correct(record.metrics), record.extra.get("choices"))
            for record in records
            if record.extra.get("base_correct") is not None and correct(record.metrics) is not None
        ]
        choices = {count for _, _, count in pairs}
        if not pairs or len(choices) != 1 or None in choices:
            return {}
        adjusted = chance_adjusted_flips([(b, v) for b, v, _ in pairs], choices.pop())
        return {} if adjusted is None else {"forgotten_adjusted": adjusted[0], "gained_adjusted": adjusted[1]}

    def findings(self, report_slice: ProbeSlice) -> list[Finding]:
        """One sentence per variant and task whose accuracy moved with McNemar p < 0.05 vs base."""
        return forgetting_findings(report_slice)

    def _task_results(
        self, context: ProbeContext, planned: Sequence[PlannedRequest], results: Sequence[EngineResult]
    ) -> DocumentResults:
        """Per document: its first request, lm-eval's metrics, and extras (option count, answers)."""
        try:
            return self.tasks.results(context, planned, results)
        except ValueError as error:
            raise ValueError(f"forgetting: {error}") from None

    def _paragraphs(self, context: ProbeContext) -> list[dict[str, str]]:
        """The held-out paragraphs (first `limit`), or none when `heldout` is None."""
        if self.params.heldout is None:
            return []
        return load_paragraphs(find_data_file(self.params.heldout, context.suite_dir))[: self.params.limit]


def _score(result: EngineResult) -> Score:
    if not isinstance(result, Score):
        raise TypeError(f"forgetting: expected a Score, got {type(result).__name__}")
    return result
