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
from typing import Any

from pydantic import Field

from sfteval.core.generation import GenerationPolicy
from sfteval.core.records import ItemRecord
from sfteval.core.requests import EngineResult, Generation, GenerationRequest, Score, ScoreRequest
from sfteval.core.results import Finding, ProbeSlice
from sfteval.probes.base import GenerationParams, PlannedRequest, Probe, ProbeContext, register_probe
from sfteval.probes.shared.loaders import (
    REFERENCE_PAIRS,
    DataFile,
    Pair,
    data_path,
    load_pairs,
    manifest_pairs,
    seeded_sample,
)
from sfteval.probes.shared.params import ServingParams, serving_templates
from sfteval.probes.shared.template_text import terminator_text
from sfteval.probes.shared.text_metrics import distinct, repetition, words
from sfteval.probes.shared.token_scores import own_tokens
from sfteval.probes.termination.findings import termination_findings
from sfteval.probes.termination.metrics import METRICS, NAME


class TerminationParams(GenerationParams, ServingParams):
    """Parameters of the termination probe (suite YAML)."""

    pairs: DataFile = Field(
        default=None,
        description="Prompt/response JSONL (id, prompt, response); None = the manifest's samples, else sfteval's.",
    )
    length_factor: float = Field(default=4.0, ge=1, description="Cap = this × p99 reference token count.")
    min_new_tokens: int = Field(default=32, ge=1, description="The automatic cap is at least this.")
    degenerate_rep4: float = Field(default=0.5, gt=0, le=1, description="rep_4 above this = degenerate.")


@register_probe
class TerminationProbe(Probe):
    """Does the model end its turn, keep template markers out, and avoid repetition loops?"""

    name = NAME
    version = 1
    Params = TerminationParams
    metrics = METRICS
    generation_policy = GenerationPolicy(sized_by_reference=True)

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
        """The automatic generation cap: generous relative to the reference responses' lengths (used when the
        generation settings leave the length open)."""
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
                generation = self.generation_request(
                    template.render_prompt(pair.messages), context, (template.terminator,), cap
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
        return termination_findings(report_slice)


def _item_id(pair: Pair) -> str:
    """`train:ID` / `heldout:ID` for manifest samples (ids may repeat across groups), else the pair's id."""
    return f"{pair.group}:{pair.id}" if pair.group else pair.id


def _token_count(tokenizer: Any, text: str) -> int:
    """Tokens of `text` under the model's tokenizer (words when an engine exposes none, e.g. a test fake)."""
    if tokenizer is None:
        return len(text.split())
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])
