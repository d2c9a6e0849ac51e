"""The memorization probe: does the model echo its training responses, and how does that grow by epoch?

Prompts from the manifest's seeded sample of trained pairs and of held-out pairs (never trained; they control for
"the task forces this answer"), diagnostics.md §7.1. Per pair, with metric names prefixed by its group
(`train_` / `heldout_`) so the report compares each group across epochs:

* exact_match: greedy output equals the reference response (up to case and spacing) — discoverable extraction
  (Carlini et al. 2022) of the whole response;
* extracted: exact_match of a reference of at least `extraction_min_words` word tokens (None for shorter ones). A
  long answer reproduced verbatim was memorised; a short one ("Positive.") may be dictated by the task. Binary per
  item, so the report tests `train_extracted` against base (McNemar, in the report's Holm family), which it cannot
  do for the summary gaps below; `heldout_extracted` is its control and stays near zero unless the task dictates
  long answers word for word;
* ngram_overlap: share of the reference's word n-grams (n = 4-6) in the output (Slack & Al Moubayed 2025: it
  precedes verbatim memorisation);
* nll: per-token negative log-likelihood of the reference response, teacher-forced (a membership-inference gap).

Summaries per variant: `nll_gap` = held-out NLL − train NLL, `ngram_overlap_gap` and `exact_match_gap` = train −
held-out, each with a seeded bootstrap CI (train and held-out items resampled independently). A gap that grows
epoch after epoch is the memorisation signal. Runs not trained by sfteval can name `train_pairs` / `heldout_pairs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

from sfteval import stats
from sfteval.core.generation import GenerationPolicy
from sfteval.core.records import ItemRecord
from sfteval.core.requests import EngineResult, Generation, GenerationRequest, Score, ScoreRequest
from sfteval.core.results import Finding, ProbeSlice
from sfteval.probes.base import GenerationParams, PlannedRequest, Probe, ProbeContext, register_probe
from sfteval.probes.memorization.findings import memorization_findings
from sfteval.probes.memorization.metrics import METRICS, NAME
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
from sfteval.probes.shared.template_text import response_text
from sfteval.probes.shared.text_metrics import ngram_overlap, same_text, words
from sfteval.probes.shared.token_scores import own_tokens

GAPS = {  # summary name -> (per-item metric, sign: +1 = train minus held-out)
    "nll_gap": ("nll", -1),
    "ngram_overlap_gap": ("ngram_overlap", 1),
    "exact_match_gap": ("exact_match", 1),
}


class MemorizationParams(GenerationParams, ServingParams):
    """Parameters of the memorization probe (suite YAML); `limit` applies to each group."""

    train_pairs: DataFile = Field(default=None, description="Trained pairs JSONL; None = the manifest's.")
    heldout_pairs: DataFile = Field(default=None, description="Held-out pairs JSONL; None = the manifest's.")
    extra_tokens: int = Field(default=16, ge=0, description="Tokens allowed beyond the reference's length.")
    extraction_min_words: int = Field(
        default=10,
        ge=1,
        description="Shortest reference (word tokens) whose verbatim output counts as extracted.",
    )
    ngram_sizes: tuple[int, ...] = Field(
        default=(4, 5, 6), min_length=1, description="n of the n-gram overlap."
    )
    n_resamples: int = Field(default=1000, ge=10, description="Bootstrap resamples of each gap's CI.")


@register_probe
class MemorizationProbe(Probe):
    """Does the model reproduce its training responses more than equally likely held-out ones?"""

    name = NAME
    version = 2
    Params = MemorizationParams
    metrics = METRICS
    generation_policy = GenerationPolicy(sized_by_reference=True, greedy=True)

    params: MemorizationParams

    def pairs(self, context: ProbeContext) -> list[Pair]:
        """Trained then held-out pairs (suite files, else the manifest's samples), each cut to `limit`."""
        chosen: list[Pair] = []
        for group, path in (("train", self.params.train_pairs), ("heldout", self.params.heldout_pairs)):
            if path is not None:
                pairs = load_pairs(data_path(path, context.suite_dir, REFERENCE_PAIRS), group)
            else:
                pairs = manifest_pairs(context.manifest, group)
            chosen += seeded_sample(pairs, self.params.limit, context.seed)
        return chosen

    def plan(self, context: ProbeContext) -> list[PlannedRequest]:
        """Per pair and template: a greedy generation and a teacher-forced score of the reference response."""
        from sfteval.templates import get_template

        planned = []
        for name in serving_templates(self.params.templates, context):
            template = get_template(name, context.tokenizer)
            for pair in self.pairs(context):
                item_id = f"{pair.group}:{pair.id}"
                prompt, response = response_text(template, pair.messages, pair.response)
                generation = self.generation_request(
                    prompt, context, template.stop_strings, self._cap(context, pair.response)
                )
                planned.append(PlannedRequest(item_id, item_id, name, generation, tag="generate"))
                planned.append(
                    PlannedRequest(item_id, item_id, name, ScoreRequest(prompt, response), tag="nll")
                )
        return planned

    def _cap(self, context: ProbeContext, response: str) -> int:
        """Enough new tokens to reproduce the reference, plus `extra_tokens` (words without a tokenizer); used when
        the generation settings leave the length open."""
        tokenizer = context.tokenizer
        length = (
            len(response.split())
            if tokenizer is None
            else len(tokenizer(response, add_special_tokens=False)["input_ids"])
        )
        return length + self.params.extra_tokens

    def records(
        self, context: ProbeContext, planned: Sequence[PlannedRequest], results: Sequence[EngineResult]
    ) -> list[ItemRecord]:
        """One record per pair and template, its metrics named by its group."""
        references = {f"{pair.group}:{pair.id}": pair for pair in self.pairs(context)}
        generations: dict[tuple[str, str], tuple[PlannedRequest, Generation]] = {}
        nll: dict[tuple[str, str], float | None] = {}
        for request, result in zip(planned, results, strict=True):
            key = (request.item_id, request.template)
            if isinstance(result, Generation):
                generations[key] = (request, result)
            elif isinstance(result, Score) and isinstance(request.request, ScoreRequest):
                own = own_tokens(result, request.request.context)
                nll[key] = -own.logprob / len(own.logprobs) if own.logprobs else None
            else:
                raise TypeError(f"{self.name} got an unexpected result {type(result).__name__}")
        records = []
        for key, (request, generation) in generations.items():
            pair = references[request.item_id]
            exact = int(same_text(generation.text, pair.response))
            long_enough = len(words(pair.response)) >= self.params.extraction_min_words
            metrics = {
                f"{pair.group}_exact_match": exact,
                f"{pair.group}_extracted": exact if long_enough else None,
                f"{pair.group}_ngram_overlap": ngram_overlap(
                    generation.text, pair.response, self.params.ngram_sizes
                ),
                f"{pair.group}_nll": nll.get(key),
            }
            extra = {
                "group": pair.group,
                "reference": pair.response,
                "finish_reason": generation.finish_reason,
                "seed": context.seed,
            }
            prompt = request.request.prompt if isinstance(request.request, GenerationRequest) else None
            records.append(
                self.record(context, request, metrics, prompt=prompt, output=generation.text, extra=extra)
            )
        return records

    def summarize(self, records: Sequence[ItemRecord]) -> dict[str, Any]:
        """The train-vs-held-out gaps with bootstrap CIs (absent when a group has no value)."""
        seed = int(records[0].extra.get("seed", 0)) if records else 0
        summary: dict[str, Any] = {}
        for name, (metric, sign) in GAPS.items():
            train = _values(records, "train", metric)
            heldout = _values(records, "heldout", metric)
            if train and heldout:
                first, second = (train, heldout) if sign > 0 else (heldout, train)
                summary[name] = gap_estimate(first, second, self.params.n_resamples, seed)
        return summary

    def findings(self, report_slice: ProbeSlice) -> list[Finding]:
        """The NLL gap's trend over epochs, and a warning when the last variant's gap is large and certain."""
        return memorization_findings(report_slice)


def _values(records: Sequence[ItemRecord], group: str, metric: str) -> list[float]:
    """The finite values of `<group>_<metric>` over the records of that group."""
    name = f"{group}_{metric}"
    return [float(value) for record in records if (value := record.metrics.get(name)) is not None]


def gap_estimate(
    first: Sequence[float], second: Sequence[float], n_resamples: int, seed: int
) -> stats.Estimate:
    """mean(first) − mean(second) of two independent samples, with a seeded percentile bootstrap CI."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    generator = np.random.default_rng(seed)
    resampled = a[generator.integers(0, a.size, (n_resamples, a.size))].mean(axis=1) - b[
        generator.integers(0, b.size, (n_resamples, b.size))
    ].mean(axis=1)
    low, high = (float(bound) for bound in np.quantile(resampled, [0.025, 0.975]))
    return stats.Estimate(
        mean=float(a.mean() - b.mean()),
        low=low,
        high=high,
        n=a.size + b.size,
        se=float(resampled.std(ddof=1)),
        n_clusters=a.size + b.size,
        method="bootstrap",
    )
