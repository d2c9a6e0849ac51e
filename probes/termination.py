"""The termination probe: does the model stop, keep template markers out of its answers, and avoid loops?

The most common SFT bug of all is a masked end-of-turn token (`pad_token = eos_token` plus a collator that masks
padding; trl#1623, alignment-handbook#127): the model never learns to stop. Per prompt (diagnostics.md §7.3):

* non_terminated: generation hit a generous cap (`length_factor` × the 99th percentile of the reference responses'
  token counts) instead of ending the turn. Generation stops only at the terminator (and EOS), not at the
  template's next-turn headers, so a model that runs on into a fake next turn counts as not terminating.
* marker_leak: the output contains a role or turn marker of any registered template (`### Instruction`,
  `<|im_start|>`, `[INST]`, ...) or of the serving template.
* terminator_prob: P(terminator | prompt + reference response), scored: near zero is the masked-EOS fingerprint.
* rep_4 (seq-rep-4, Welleck et al. 2019), distinct_2 (Li et al. 2016) and degenerate (rep_4 > 0.5) per output.

Pairs come from the suite's `pairs` file, else the manifest's trained and held-out samples, else sfteval's own
reference pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationInfo, field_validator
from sfteval.probes.base import EngineResult, MetricSpec, PlannedRequest, Probe, ProbeContext, register_probe
from sfteval.probes.common import (
    REFERENCE_PAIRS,
    Pair,
    ServingParams,
    data_path,
    existing_file,
    load_pairs,
    manifest_pairs,
    own_tokens,
    seeded_sample,
    serving_templates,
    terminator_text,
)
from sfteval.probes.findings_text import BASE, finding, percent, quoted, records_by_cell, under
from sfteval.probes.text_metrics import distinct, repetition, words

from sfteval.engines.base import Generation, GenerationRequest, Score, ScoreRequest
from sfteval.records import ItemRecord
from sfteval.report.schema import Finding

if TYPE_CHECKING:
    from sfteval.report.findings import ProbeSlice

NAME = "termination"
WARN_RATE = 0.2


class TerminationParams(ServingParams):
    """Parameters of the termination probe (suite YAML)."""

    pairs: str | None = Field(
        default=None,
        description="Prompt/response JSONL (id, prompt, response); None = the manifest's samples, else sfteval's.",
    )
    max_new_tokens: int | None = Field(
        default=None, ge=1, description="Generation cap; None = length_factor × p99 of reference lengths."
    )
    length_factor: float = Field(default=4.0, ge=1, description="Cap = this × p99 reference token count.")
    min_new_tokens: int = Field(default=32, ge=1, description="The automatic cap is at least this.")
    degenerate_rep4: float = Field(default=0.5, gt=0, le=1, description="rep_4 above this = degenerate.")

    @field_validator("pairs")
    @classmethod
    def _pairs_file_exists(cls, pairs: str | None, info: ValidationInfo) -> str | None:
        return existing_file(pairs, info)


@register_probe
class TerminationProbe(Probe):
    """Does the model end its turn, keep template markers out, and avoid repetition loops?"""

    name = NAME
    version = 1
    Params = TerminationParams
    metrics = (
        MetricSpec("non_terminated", "ran to the generation cap without ending the turn", higher_is_better=False,
                   binary=True, headline=True),
        MetricSpec("marker_leak", "output contains a template role/turn marker", higher_is_better=False,
                   binary=True),
        MetricSpec("terminator_prob", "P(terminator | prompt + reference response)"),
        MetricSpec("rep_4", "seq-rep-4: share of repeated word 4-grams", higher_is_better=False),
        MetricSpec("distinct_2", "distinct word bigrams / bigrams"),
        MetricSpec("degenerate", "rep_4 above the degeneration threshold (short answers never are)",
                   higher_is_better=False, binary=True),
    )  # fmt: skip

    params: TerminationParams

    def pairs(self, context: ProbeContext) -> list[Pair]:
        """The suite's pairs file, else the manifest's samples, else the shipped reference pairs; seeded sample."""
        if self.params.pairs is not None:
            pairs = load_pairs(data_path(self.params.pairs, context.suite_dir, REFERENCE_PAIRS))
        else:
            pairs = manifest_pairs(context.manifest, "train") + manifest_pairs(context.manifest, "heldout")
            pairs = pairs or load_pairs(REFERENCE_PAIRS)
        return seeded_sample(pairs, self.params.limit, context.seed)

    def cap(self, context: ProbeContext, pairs: Sequence[Pair]) -> int:
        """The generation cap: as configured, else generous relative to the reference responses' lengths."""
        if self.params.max_new_tokens is not None:
            return self.params.max_new_tokens
        lengths = sorted(_token_count(context.tokenizer, pair.response) for pair in pairs)
        p99 = lengths[min(len(lengths) - 1, math.ceil(0.99 * len(lengths)) - 1)] if lengths else 0
        return max(self.params.min_new_tokens, math.ceil(self.params.length_factor * p99))

    def plan(self, context: ProbeContext) -> list[PlannedRequest]:
        """Per pair and template: a generation stopped only by the terminator, and a score of the terminator."""
        from sfteval.templates import get_template

        pairs = self.pairs(context)
        cap = self.cap(context, pairs)
        planned = []
        for name in serving_templates(self.params.templates, context):
            template = get_template(name, context.tokenizer)
            for pair in pairs:
                item_id = _item_id(pair)
                generation = GenerationRequest(
                    prompt=template.render_prompt(pair.messages),
                    max_new_tokens=cap,
                    temperature=context.temperature,
                    seed=context.seed,
                    stop=(template.terminator,),
                )
                planned.append(PlannedRequest(item_id, item_id, name, generation, tag="generate"))
                score = ScoreRequest(*terminator_text(template, pair.messages, pair.response))
                planned.append(PlannedRequest(item_id, item_id, name, score, tag="terminator"))
        return planned

    def records(
        self, context: ProbeContext, planned: Sequence[PlannedRequest], results: Sequence[EngineResult]
    ) -> list[ItemRecord]:
        """One record per pair and template."""
        from sfteval.templates import all_markers, get_template

        markers = {
            name: tuple(dict.fromkeys((*all_markers(), *get_template(name, context.tokenizer).markers)))
            for name in dict.fromkeys(request.template for request in planned)
        }
        generations: dict[tuple[str, str], tuple[PlannedRequest, Generation]] = {}
        terminator: dict[tuple[str, str], float] = {}
        for request, result in zip(planned, results, strict=True):
            key = (request.item_id, request.template)
            if isinstance(result, Generation):
                generations[key] = (request, result)
            elif isinstance(result, Score) and isinstance(request.request, ScoreRequest):
                terminator[key] = own_tokens(result, request.request.context).logprob
            else:
                raise TypeError(f"{self.name} got an unexpected result {type(result).__name__}")
        return [
            self._record(context, request, generation, terminator.get(key), markers[request.template])
            for key, (request, generation) in generations.items()
        ]

    def _record(
        self,
        context: ProbeContext,
        request: PlannedRequest,
        generation: Generation,
        terminator_logprob: float | None,
        markers: Sequence[str],
    ) -> ItemRecord:
        """The record of one answer: stop or cap, leaked markers, repetition, and P(terminator) of its reference."""
        output = generation.text
        tokens = words(output)
        rep_4 = repetition(tokens, 4)
        leaked = [marker for marker in markers if marker in output]
        metrics = {
            "non_terminated": int(generation.finish_reason == "length"),
            "marker_leak": int(bool(leaked)),
            "terminator_prob": None if terminator_logprob is None else math.exp(terminator_logprob),
            "rep_4": rep_4,
            "distinct_2": distinct(tokens, 2),
            "degenerate": int(rep_4 is not None and rep_4 > self.params.degenerate_rep4),
        }
        extra = {
            "finish_reason": generation.finish_reason,
            "num_tokens": generation.num_tokens,
            "cap": request.request.max_new_tokens if isinstance(request.request, GenerationRequest) else None,
            "leaked_markers": leaked,
            "terminator_logprob": terminator_logprob,
        }
        prompt = request.request.prompt if isinstance(request.request, GenerationRequest) else None
        return self.record(context, request, metrics, prompt=prompt, output=output, extra=extra)

    def findings(self, report_slice: ProbeSlice) -> list[Finding]:
        """Runaway generations (with the terminator's probability as the likely cause), marker leaks, loops."""
        cells = records_by_cell(report_slice.records)
        several = len(report_slice.result.templates) > 1
        found: list[Finding] = []
        for (variant, template), records in cells.items():
            if variant == BASE:
                continue
            base = cells.get((BASE, template), [])
            where = under(template, several)
            found += _runaway_finding(variant, template, records, base, where)
            found += _leak_finding(variant, template, records, base, where)
            found += _loop_finding(variant, template, records, base, where)
        return found


def _item_id(pair: Pair) -> str:
    """`train:ID` / `heldout:ID` for manifest samples (ids may repeat across groups), else the pair's id."""
    return f"{pair.group}:{pair.id}" if pair.group else pair.id


def _token_count(tokenizer: Any, text: str) -> int:
    """Tokens of `text` under the model's tokenizer (words when an engine exposes none, e.g. a test fake)."""
    if tokenizer is None:
        return len(text.split())
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _share(records: Sequence[ItemRecord], metric: str) -> float | None:
    """Mean of a 0/1 metric over the records that have it (None when none do)."""
    values = [record.metrics[metric] for record in records if record.metrics.get(metric) is not None]
    return sum(bool(value) for value in values) / len(values) if values else None


def _mean(records: Sequence[ItemRecord], metric: str) -> float | None:
    """Mean of a metric over the records that have it (None when none do)."""
    values = [float(value) for record in records if (value := record.metrics.get(metric)) is not None]
    return sum(values) / len(values) if values else None


def _worse(rate: float | None) -> bool:
    """A share high enough to report. Not relative to the base: a base model has never learned the chat
    template's end of turn, so it runs on and leaks markers too; an SFT model must not."""
    return rate is not None and rate >= WARN_RATE


def _versus(base_rate: float | None) -> str:
    """` (base 10%)`, or nothing without a base."""
    return "" if base_rate is None else f" (base {percent(base_rate)})"


def _runaway_finding(
    variant: str, template: str, records: Sequence[ItemRecord], base: Sequence[ItemRecord], where: str
) -> list[Finding]:
    """'epoch-2 runs to the 96-token cap on 85% of prompts (base 10%); P(terminator) 0.001 after references.'"""
    rate, base_rate = _share(records, "non_terminated"), _share(base, "non_terminated")
    if rate is None or not _worse(rate):
        return []
    cap = max((record.extra.get("cap") or 0) for record in records)
    message = (
        f"{variant} runs to the {cap}-token cap on {percent(rate)} of prompts{_versus(base_rate)}{where}"
    )
    probability = _mean(records, "terminator_prob")
    if probability is not None and probability < 0.05:
        message += (
            f", and gives the end-of-turn token a mean probability of {probability:.3f} after reference answers: "
            "the terminator was probably masked out of the loss (e.g. pad token = EOS)"
        )
    return [finding("warning", "non_termination", message + ".", NAME, variant, "non_terminated", template)]


def _leak_finding(
    variant: str, template: str, records: Sequence[ItemRecord], base: Sequence[ItemRecord], where: str
) -> list[Finding]:
    """A warning when outputs contain template markers, naming the most frequent one."""
    rate, base_rate = _share(records, "marker_leak"), _share(base, "marker_leak")
    if rate is None or not _worse(rate):
        return []
    counts: dict[str, int] = {}
    for record in records:
        for marker in record.extra.get("leaked_markers") or []:
            counts[marker] = counts.get(marker, 0) + 1
    marker = max(counts, key=lambda name: counts[name])
    message = (
        f"{variant} writes template markers into {percent(rate)} of its answers{_versus(base_rate)}{where}, "
        f"most often {quoted(marker)}: it continues into a next turn the template should have ended."
    )
    return [finding("warning", "marker_leak", message, NAME, variant, "marker_leak", template)]


def _loop_finding(
    variant: str, template: str, records: Sequence[ItemRecord], base: Sequence[ItemRecord], where: str
) -> list[Finding]:
    """A warning when many outputs repeat themselves (seq-rep-4 above the threshold)."""
    rate, base_rate = _share(records, "degenerate"), _share(base, "degenerate")
    if rate is None or not _worse(rate):
        return []
    message = f"{variant} degenerates into repetition loops in {percent(rate)} of its answers{_versus(base_rate)}{where}."
    return [finding("warning", "degeneration", message, NAME, variant, "degenerate", template)]
