"""The spurious_prefix probe: did SFT teach a fixed opening that the model now puts in front of everything?

The seed article's first failure: if every training response to a classification instruction begins "The sentiment
is:", the model produces that prefix even when the input is ambiguous or malformed. No benchmark measures it
(diagnostics.md §5.2), so this probe asks off-task prompts (unrelated questions, code, chit-chat, malformed, empty,
gibberish and foreign-language input), where no training opening belongs:

* dominant_prefix: the output opens with a candidate prefix. Candidates are the suite's `prefixes`, else the
  manifest's most frequent training-response openings, else (a run not trained by sfteval) one is mined from the
  variant's own outputs: its most common two-word opening, when it covers `mined_share` of them, grown while its
  outputs continue alike (sfteval.probes.openings). A probe sees one variant at a time, so the base's rate for a
  variant's mined opening is computed in `findings`, which see every variant's records.
* label_leak: the output is, or starts with, one of the training labels (short responses repeated in training).
* prefix_logprob: log P(the response opens with any candidate | off-task prompt), scored without generating.
* prefix_logprob_1 … prefix_logprob_5: log P(the response opens with candidate k | off-task prompt), one metric per
  candidate (in the order the candidates are listed: suite, else manifest frequency). The report's paired comparison
  of each with the base (variant − base per item) is the cheap early warning. Each candidate is its own test: the
  log-sum-exp over candidates is dominated by the likeliest one, so a planted opening rising +4 nats went unseen
  beside a natural opening ("The capital of") that fell (bench/validate_defects.py, variant a).
* opening_entropy_1 / opening_entropy_3 (summaries): entropy of the first one / three words across the outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from sfteval.core.generation import GenerationPolicy
from sfteval.core.records import ItemRecord
from sfteval.core.requests import EngineResult, Generation, GenerationRequest, Score, ScoreRequest
from sfteval.core.results import Finding, ProbeSlice, RunRelativeMeasure
from sfteval.probes.base import GenerationParams, PlannedRequest, Probe, ProbeContext, register_probe
from sfteval.probes.shared.params import OffTaskParams, serving_templates
from sfteval.probes.shared.template_text import response_text
from sfteval.probes.shared.text_metrics import entropy, opening, starts_with
from sfteval.probes.shared.token_scores import log_sum_exp, own_tokens
from sfteval.probes.spurious_prefix.findings import prefix_findings
from sfteval.probes.spurious_prefix.metrics import MAX_CANDIDATES, METRICS, NAME, candidate_metric
from sfteval.probes.spurious_prefix.openings import MAX_WORDS, manifest_openings, mine_opening

PrefixSource = Literal["suite", "manifest", "mined", "none"]
OPENING_TOKENS = 32
"""Tokens generated per prompt by default: the probe reads only the openings of answers."""


class SpuriousPrefixParams(GenerationParams, OffTaskParams):
    """Parameters of the spurious_prefix probe (suite YAML)."""

    prefixes: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CANDIDATES,
        description=f"Candidate prefixes (at most {MAX_CANDIDATES}); None = from the manifest, else mined.",
    )
    min_share: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="Share of training responses an opening needs to be a candidate.",
    )
    max_candidates: int = Field(
        default=3, ge=1, le=MAX_CANDIDATES, description="Most manifest openings used as candidates."
    )
    mined_share: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="Share of outputs a mined opening needs (no manifest, no prefixes).",
    )


@dataclass(frozen=True)
class Candidates:
    """Candidate prefixes and where they came from."""

    prefixes: tuple[str, ...]
    source: PrefixSource


@register_probe
class SpuriousPrefixProbe(Probe):
    """Does the model open off-task answers with a prefix it learned from its training responses?"""

    name = NAME
    version = 2
    Params = SpuriousPrefixParams
    metrics = METRICS
    generation_policy = GenerationPolicy(max_new_tokens_cap=OPENING_TOKENS)
    # Candidates come from each run's manifest or outputs: prefix_logprob_k names a different phrase per run.
    run_relative_metrics = (
        "dominant_prefix",
        "prefix_logprob",
        *(candidate_metric(k) for k in range(1, MAX_CANDIDATES + 1)),
    )

    params: SpuriousPrefixParams

    def candidates(self, context: ProbeContext) -> Candidates:
        """The suite's prefixes, else the manifest's frequent openings; empty when they must be mined."""
        if self.params.prefixes:
            return Candidates(self.params.prefixes, "suite")
        found = manifest_openings(context.manifest, self.params.min_share, self.params.max_candidates)
        return Candidates(found, "manifest") if found else Candidates((), "mined")

    def plan(self, context: ProbeContext) -> list[PlannedRequest]:
        """Per prompt and template: one generation, and one score per candidate prefix."""
        from sfteval.templates import Message, get_template

        candidates = self.candidates(context).prefixes
        planned = []
        for name in serving_templates(self.params.templates, context):
            template = get_template(name, context.tokenizer)
            for item in self.params.sampled_prompts(context):
                messages = [Message("user", item.prompt)]
                prompt = template.render_prompt(messages)
                generation = self.generation_request(prompt, context, template.stop_strings)
                planned.append(PlannedRequest(item.id, item.id, name, generation, tag="generate"))
                for index, prefix in enumerate(candidates):
                    score = ScoreRequest(*response_text(template, messages, prefix))
                    planned.append(PlannedRequest(item.id, item.id, name, score, tag=f"prefix:{index}"))
        return planned

    def records(
        self, context: ProbeContext, planned: Sequence[PlannedRequest], results: Sequence[EngineResult]
    ) -> list[ItemRecord]:
        """One record per prompt and template: prefix match, label leak and prefix log-probability."""
        kinds = {item.id: item.kind for item in self.params.sampled_prompts(context)}
        candidates = self.candidates(context)
        labels = _labels(context.manifest)
        items = _collect(planned, results)
        records = []
        for template in dict.fromkeys(key[1] for key in items):
            keys = [key for key in items if key[1] == template]
            chosen = candidates
            if candidates.source == "mined":
                mined = mine_opening([items[key].output for key in keys], self.params.mined_share)
                chosen = Candidates((mined,) if mined else (), "mined" if mined else "none")
            for key in keys:
                extra = {"kind": kinds.get(key[0], "")}
                records.append(items[key].record(self, context, chosen, labels, extra))
        return records

    def summarize(self, records: Sequence[ItemRecord]) -> dict[str, Any]:
        """Entropy of the outputs' first word and first three words (low = every answer starts alike)."""
        outputs = [record.output or "" for record in records]
        return {
            "opening_entropy_1": entropy(opening(text, 1).casefold() for text in outputs),
            "opening_entropy_3": entropy(opening(text, 3).casefold() for text in outputs),
        }

    def findings(self, report_slice: ProbeSlice) -> list[Finding]:
        """Plain sentences: dominant prefixes and label leaks vs base, rising prefix affinity, collapsed openings."""
        return prefix_findings(report_slice)

    @classmethod
    def run_relative_measures(cls, records: Sequence[ItemRecord]) -> tuple[RunRelativeMeasure, ...]:
        """For each candidate prefix the records were matched against: does an output open with it?"""
        candidates = dict.fromkeys(
            str(prefix) for record in records for prefix in record.extra.get("candidates") or []
        )
        return tuple(opening_measure(prefix) for prefix in candidates)


def opening_measure(prefix: str) -> RunRelativeMeasure:
    """1 when a record's output opens with `prefix`, 0 when it does not, None without an output."""

    def score(record: ItemRecord) -> float | None:
        return None if record.output is None else float(starts_with(record.output, prefix))

    return RunRelativeMeasure(f"opens with {prefix!r}", score)


@dataclass(frozen=True)
class _Item:
    """The engine results of one prompt under one template."""

    planned: PlannedRequest
    prompt: str
    generation: Generation
    prefix_logprobs: tuple[float, ...]

    @property
    def output(self) -> str:
        return self.generation.text

    def record(
        self,
        probe: Probe,
        context: ProbeContext,
        candidates: Candidates,
        labels: Sequence[str],
        extra: dict[str, Any],
    ) -> ItemRecord:
        matched = next((prefix for prefix in candidates.prefixes if starts_with(self.output, prefix)), None)
        leaked = next((label for label in labels if starts_with(self.output, label)), None)
        metrics = {
            "dominant_prefix": int(matched is not None) if candidates.prefixes else None,
            "label_leak": int(leaked is not None) if labels else None,
            "prefix_logprob": log_sum_exp(self.prefix_logprobs) if self.prefix_logprobs else None,
            **{
                candidate_metric(k): self.prefix_logprobs[k - 1] if k <= len(self.prefix_logprobs) else None
                for k in range(1, MAX_CANDIDATES + 1)
            },
        }
        details = {
            "opening": opening(self.output, MAX_WORDS),
            "matched": matched,
            "leaked_label": leaked,
            "candidates": list(candidates.prefixes),
            "candidate_source": candidates.source,
            "prefix_logprobs": list(self.prefix_logprobs),
            "finish_reason": self.generation.finish_reason,
            "num_tokens": self.generation.num_tokens,
        }
        return probe.record(
            context,
            self.planned,
            metrics,
            prompt=self.prompt,
            output=self.output,
            extra={**extra, **details},
        )


def _collect(
    planned: Sequence[PlannedRequest], results: Sequence[EngineResult]
) -> dict[tuple[str, str], _Item]:
    """Results grouped per (item, template), in plan order: the generation and the candidates' log-probs."""
    generations: dict[tuple[str, str], tuple[PlannedRequest, str, Generation]] = {}
    scores: dict[tuple[str, str], list[float]] = {}
    for request, result in zip(planned, results, strict=True):
        key = (request.item_id, request.template)
        if isinstance(result, Generation) and isinstance(request.request, GenerationRequest):
            generations[key] = (request, request.request.prompt, result)
        elif isinstance(result, Score) and isinstance(request.request, ScoreRequest):
            scores.setdefault(key, []).append(own_tokens(result, request.request.context).logprob)
        else:
            raise TypeError(f"spurious_prefix got an unexpected result {type(result).__name__}")
    return {
        key: _Item(request, prompt, generation, tuple(scores.get(key, ())))
        for key, (request, prompt, generation) in generations.items()
    }


def _labels(manifest: Mapping[str, Any] | None) -> list[str]:
    """The manifest's labels without closing punctuation, so "Negative" leaks the label "Negative." too."""
    labels = (manifest or {}).get("labels") or []
    cores = [label.strip().rstrip(".!?;,") for label in labels if isinstance(label, str)]
    return [core for core in dict.fromkeys(cores) if core]
