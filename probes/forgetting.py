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

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field
from sfteval.probes.base import (
    EngineResult,
    MetricSpec,
    PlannedRequest,
    Probe,
    ProbeContext,
    ProbeParams,
    register_probe,
)
from sfteval.probes.forgetting_measures import (
    FLIP_METRICS,
    bits_per_byte,
    chance_adjusted_flips,
    correct,
    flips,
    mean_kl,
)
from sfteval.probes.lm_tasks import TaskParams, instance_requests, load_task_instances, quiet
from sfteval.probes.suite_data import find_data_file, load_paragraphs

from sfteval.engines.base import Score, ScoreRequest
from sfteval.records import ItemRecord
from sfteval.report.schema import Finding

if TYPE_CHECKING:
    from sfteval.report.findings import ProbeSlice

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

    name = "forgetting"
    version = 1
    Params = ForgettingParams
    needs_base_scoring = True
    metrics = (
        MetricSpec("acc", "lm-eval accuracy (option log-likelihood)", binary=True, headline=True),
        MetricSpec("acc_norm", "lm-eval accuracy with byte-length-normalised log-likelihood", binary=True),
        MetricSpec("forgotten", "share of items the base got right that are now wrong", False, binary=True),
        MetricSpec("gained", "share of items the base got wrong that are now right", binary=True),
        MetricSpec("bits_per_byte", "held-out text: bits per UTF-8 byte", higher_is_better=False, headline=True,
                   negligible=0.01),
        MetricSpec("kl_to_base", "held-out text: KL(base ‖ variant), nats per token (top-k lower bound)", False),
        MetricSpec("forgotten_adjusted", "forgotten, net of what random guessing explains (Harmon et al.)", False),
        MetricSpec("gained_adjusted", "gained, net of what random guessing explains (Harmon et al.)"),
    )  # fmt: skip

    params: ForgettingParams

    def __init__(self, params: ProbeParams | None = None) -> None:
        super().__init__(params)
        self._loaded: dict[str, Any] | None = None

    def plan(self, context: ProbeContext) -> list[PlannedRequest]:
        """Every lm-eval instance of every task (under its task's name), then one top-k scoring request per
        held-out paragraph."""
        planned = instance_requests(self._tasks(context))
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
            records.append(self.record(context, request, metrics, prompt=_prompt(request), extra=extra))
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
        findings = []
        for comparison in report_slice.comparisons:
            if (
                comparison.relation != "base"
                or comparison.metric not in FLIP_METRICS
                or comparison.p_value >= 0.05
            ):
                continue
            rows = [
                record.metrics
                for record in report_slice.records
                if record.variant == comparison.variant and record.template == comparison.template
            ]
            findings.append(_flip_finding(comparison, rows))
        return findings

    def _tasks(self, context: ProbeContext) -> dict[str, Any]:
        """The tasks and their instances, loaded once per probe."""
        if self._loaded is None:
            self._loaded = load_task_instances(self.params, context.suite_dir, self.name)
        return self._loaded

    def _task_results(
        self, context: ProbeContext, planned: Sequence[PlannedRequest], results: Sequence[EngineResult]
    ) -> dict[str, tuple[PlannedRequest, dict[str, Any], dict[str, Any]]]:
        """Per document: its first request, lm-eval's metrics, and extras (option count, answers)."""
        from sfteval.engines.lmeval import document_metrics, instance_response

        by_task: dict[str, dict[int, tuple[PlannedRequest, EngineResult]]] = defaultdict(dict)
        for request, result in zip(planned, results, strict=True):
            if "#" in request.tag:
                task_name, index = request.tag.rsplit("#", 1)
                by_task[task_name][int(index)] = (request, result)
        documents = {}
        for task_name, answered in by_task.items():
            task, instances = self._tasks(context)[task_name]
            if len(answered) != len(instances):
                raise ValueError(f"forgetting: {task_name} got {len(answered)} of {len(instances)} results")
            responses = [instance_response(instances[i], answered[i][1]) for i in range(len(instances))]
            first: dict[int, PlannedRequest] = {}
            for index, instance in enumerate(instances):
                first.setdefault(instance.doc_id, answered[index][0])
            counts = _choice_counts(task, instances)
            with quiet():
                for result in document_metrics(task, instances, responses, self.params.limit):
                    extra = {"choices": counts.get(result.doc_id), "doc_id": result.doc_id}
                    documents[f"{task_name}/{result.doc_id}"] = (first[result.doc_id], result.metrics, extra)
        return documents

    def _paragraphs(self, context: ProbeContext) -> list[dict[str, str]]:
        """The held-out paragraphs (first `limit`), or none when `heldout` is None."""
        if self.params.heldout is None:
            return []
        return load_paragraphs(find_data_file(self.params.heldout, context.suite_dir))[: self.params.limit]


def _choice_counts(task: Any, instances: Sequence[Any]) -> dict[int, int]:
    """Options per document for multiple-choice tasks (one loglikelihood instance per option)."""
    if task.OUTPUT_TYPE != "multiple_choice":
        return {}
    counts: dict[int, int] = defaultdict(int)
    for instance in instances:
        counts[instance.doc_id] += 1
    return dict(counts)


def _score(result: EngineResult) -> Score:
    if not isinstance(result, Score):
        raise TypeError(f"forgetting: expected a Score, got {type(result).__name__}")
    return result


def _prompt(request: PlannedRequest) -> str:
    inner = request.request
    return inner.context if isinstance(inner, ScoreRequest) else inner.prompt


def _flip_finding(comparison: Any, rows: Sequence[Mapping[str, Any]]) -> Finding:
    """E.g. 'epoch-3 forgot 7.1% of world_facts items the base knew (9/127), gained 2/40; McNemar p=0.003.'"""
    forgotten = [row["forgotten"] for row in rows if row.get("forgotten") is not None]
    gained = [row["gained"] for row in rows if row.get("gained") is not None]
    share = sum(forgotten) / len(forgotten) if forgotten else 0.0
    adjusted = (
        f", Holm-adjusted {comparison.adjusted_p:.2g}" if comparison.adjusted_p != comparison.p_value else ""
    )
    message = (
        f"{comparison.variant} forgot {100 * share:.1f}% of {comparison.template} items the base model knew "
        f"({sum(forgotten)}/{len(forgotten)}) and gained {sum(gained)}/{len(gained)} it did not; "
        f"{comparison.metric} {100 * comparison.delta:+.1f} points (McNemar p={comparison.p_value:.2g}{adjusted})."
    )
    worse = comparison.direction == "worse"
    return Finding(
        severity="warning" if worse and comparison.significant else "info",
        kind="forgetting" if worse else "backward_transfer",
        message=message,
        probe=comparison.probe,
        variant=comparison.variant,
        metric=comparison.metric,
        template=comparison.template,
    )
