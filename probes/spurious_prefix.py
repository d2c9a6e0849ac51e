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

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationInfo, field_validator
from sfteval.probes.base import EngineResult, MetricSpec, PlannedRequest, Probe, ProbeContext, register_probe
from sfteval.probes.common import (
    OFF_TASK_PROMPTS,
    PromptItem,
    ServingParams,
    data_path,
    existing_file,
    load_prompts,
    own_tokens,
    response_text,
    seeded_sample,
    serving_templates,
)
from sfteval.probes.findings_text import (
    BASE,
    cells_by_variant,
    finding,
    percent,
    quoted,
    records_by_cell,
    summary_value,
    under,
)
from sfteval.probes.openings import MAX_WORDS, manifest_openings, mine_opening
from sfteval.probes.text_metrics import entropy, opening, starts_with

from sfteval.engines.base import Generation, GenerationRequest, Score, ScoreRequest
from sfteval.records import ItemRecord
from sfteval.report.schema import ComparisonResult, Finding

if TYPE_CHECKING:
    from sfteval.report.findings import ProbeSlice

NAME = "spurious_prefix"
PrefixSource = Literal["suite", "manifest", "mined", "none"]
WARN_RATE = 0.5
WARN_RISE = 0.2
AFFINITY_WARN_NATS = 1.0
"""A significant rise of log P(training opening) by at least this much (×e) on off-task prompts is a warning."""
MAX_CANDIDATES = 5
"""Candidates scored one by one (prefix_logprob_1 … prefix_logprob_5)."""


def candidate_metric(k: int) -> str:
    """The metric of the k-th candidate (1-based): `prefix_logprob_k`."""
    return f"prefix_logprob_{k}"


class SpuriousPrefixParams(ServingParams):
    """Parameters of the spurious_prefix probe (suite YAML)."""

    prompts: str | None = Field(
        default=None, description="Off-task prompts JSONL (id, prompt, kind); None = sfteval's set."
    )
    prefixes: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CANDIDATES,
        description=f"Candidate prefixes (at most {MAX_CANDIDATES}); None = from the manifest, else mined.",
    )
    max_new_tokens: int = Field(default=32, ge=1, description="Tokens generated per prompt (openings only).")
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

    @field_validator("prompts")
    @classmethod
    def _prompt_file_exists(cls, prompts: str | None, info: ValidationInfo) -> str | None:
        return existing_file(prompts, info)


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
    metrics = (
        MetricSpec("dominant_prefix", "off-task output opens with a training prefix", higher_is_better=False,
                   binary=True, headline=True),
        MetricSpec("label_leak", "off-task output is or starts with a training label", higher_is_better=False,
                   binary=True),
        MetricSpec("prefix_logprob", "log P(any training prefix | off-task prompt)", higher_is_better=False),
        *(
            MetricSpec(candidate_metric(k), f"log P(training prefix #{k} | off-task prompt)",
                       higher_is_better=False)
            for k in range(1, MAX_CANDIDATES + 1)
        ),
        MetricSpec("opening_entropy_1", "entropy (bits) of the outputs' first word"),
        MetricSpec("opening_entropy_3", "entropy (bits) of the outputs' first three words"),
    )  # fmt: skip

    params: SpuriousPrefixParams

    def prompts(self, context: ProbeContext) -> list[PromptItem]:
        """The off-task prompts, cut to `limit` by a seeded sample."""
        path = data_path(self.params.prompts, context.suite_dir, OFF_TASK_PROMPTS)
        return seeded_sample(load_prompts(path), self.params.limit, context.seed)

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
            for item in self.prompts(context):
                messages = [Message("user", item.prompt)]
                prompt = template.render_prompt(messages)
                generation = GenerationRequest(
                    prompt=prompt,
                    max_new_tokens=self.params.max_new_tokens,
                    temperature=context.temperature,
                    seed=context.seed,
                    stop=template.stop_strings,
                )
                planned.append(PlannedRequest(item.id, item.id, name, generation, tag="generate"))
                for index, prefix in enumerate(candidates):
                    score = ScoreRequest(*response_text(template, messages, prefix))
                    planned.append(PlannedRequest(item.id, item.id, name, score, tag=f"prefix:{index}"))
        return planned

    def records(
        self, context: ProbeContext, planned: Sequence[PlannedRequest], results: Sequence[EngineResult]
    ) -> list[ItemRecord]:
        """One record per prompt and template: prefix match, label leak and prefix log-probability."""
        kinds = {item.id: item.kind for item in self.prompts(context)}
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
        cells = records_by_cell(report_slice.records)
        several = len(report_slice.result.templates) > 1
        findings: list[Finding] = []
        warned: set[tuple[str, str]] = set()
        for (variant, template), records in cells.items():
            if variant == BASE:
                continue
            base = cells.get((BASE, template), [])
            found = _prefix_finding(variant, template, records, base, several)
            if found is not None:
                findings.append(found)
                warned.add((variant, template))
            findings.extend(_label_finding(variant, template, records, base, several))
        findings.extend(_affinity_findings(report_slice, warned, several))
        findings.extend(_entropy_findings(report_slice, several))
        return findings


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
            "prefix_logprob": _log_sum_exp(self.prefix_logprobs) if self.prefix_logprobs else None,
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


def _log_sum_exp(values: Sequence[float]) -> float:
    """log Σ exp(v): the log-probability of opening with any of several mutually exclusive prefixes."""
    top = max(values)
    return top + math.log(sum(math.exp(value - top) for value in values))


def _rate(records: Sequence[ItemRecord], prefix: str) -> float | None:
    """Share of records whose output opens with `prefix` (None without records)."""
    if not records:
        return None
    return sum(starts_with(record.output or "", prefix) for record in records) / len(records)


def _prefix_finding(
    variant: str, template: str, records: Sequence[ItemRecord], base: Sequence[ItemRecord], several: bool
) -> Finding | None:
    """'epoch-3 opens 74% of off-task answers with 'The sentiment is:' (base 0%).' when it is common and new."""
    matched = Counter(record.extra.get("matched") for record in records if record.extra.get("matched"))
    if not matched:
        return None
    prefix = str(matched.most_common(1)[0][0])
    rate = _rate(records, prefix) or 0.0
    base_rate = _rate(base, prefix)
    if rate < WARN_RATE or (base_rate is not None and rate - base_rate < WARN_RISE):
        return None
    versus = "" if base_rate is None else f" (base {percent(base_rate)})"
    message = (
        f"{variant} opens {percent(rate)} of off-task answers with {quoted(prefix)}{versus}{under(template, several)}:"
        " it learned the training responses' opening as a fixed prefix, whatever the input."
    )
    return finding("warning", "spurious_prefix", message, NAME, variant, "dominant_prefix", template)


def _label_finding(
    variant: str, template: str, records: Sequence[ItemRecord], base: Sequence[ItemRecord], several: bool
) -> list[Finding]:
    """A warning when many off-task answers are (or start with) a training label."""
    leaks = [record for record in records if record.metrics.get("label_leak")]
    rate = len(leaks) / len(records) if records else 0.0
    base_rate = sum(bool(record.metrics.get("label_leak")) for record in base) / len(base) if base else None
    if rate < WARN_RISE or (base_rate is not None and rate - base_rate < WARN_RISE):
        return []
    label = Counter(record.extra.get("leaked_label") for record in leaks).most_common(1)[0][0]
    versus = "" if base_rate is None else f" (base {percent(base_rate)})"
    message = (
        f"{variant} answers {percent(rate)} of off-task prompts with a training label, most often "
        f"{quoted(label)}{versus}{under(template, several)}."
    )
    return [finding("warning", "label_leak", message, NAME, variant, "label_leak", template)]


def _affinity_findings(
    report_slice: ProbeSlice, warned: set[tuple[str, str]], several: bool
) -> list[Finding]:
    """A candidate prefix got significantly more likely than under the base: a warning from AFFINITY_WARN_NATS on,
    else info. One finding per variant and template: the candidate with the largest significant rise; the
    any-candidate metric speaks only when no single candidate did.

    This is the cheap early sign: a model that made a training opening several times more likely on prompts where
    no opening belongs has learned it as a prefix, even while its greedy answers do not show it yet.
    """
    candidates: list[str] = next(
        (record.extra["candidates"] for record in report_slice.records if record.extra.get("candidates")), []
    )
    scored = {candidate_metric(k): prefix for k, prefix in enumerate(candidates, start=1)}
    rising: dict[tuple[str, str], list[ComparisonResult]] = {}
    for comparison in report_slice.comparisons:
        key = (comparison.variant, comparison.template)
        if (
            (comparison.metric != "prefix_logprob" and comparison.metric not in scored)
            or comparison.relation != "base"
            or not comparison.significant
            or comparison.delta <= 0
            or key in warned
        ):
            continue
        rising.setdefault(key, []).append(comparison)
    findings = []
    for found in rising.values():
        singles = [c for c in found if c.metric != "prefix_logprob"]
        comparison = max(singles or found, key=lambda c: c.delta)
        prefix = scored.get(comparison.metric)
        named = (
            f"the training opening {quoted(prefix)}"
            if prefix is not None
            else "the training openings " + ", ".join(quoted(candidate) for candidate in candidates)
        )
        strong = comparison.delta >= AFFINITY_WARN_NATS
        message = (
            f"{comparison.variant} makes {named} {math.exp(comparison.delta):.1f}× more "
            f"likely on off-task prompts than the base (log-probability +{comparison.delta:.2f} nats, "
            f"p={comparison.adjusted_p:.2g} Holm{under(comparison.template, several)}): "
            + (
                "it is learning the opening as a fixed prefix, whatever the input."
                if strong
                else "an early sign of prefix learning, before it shows in generated answers."
            )
        )
        findings.append(
            finding(
                "warning" if strong else "info",
                "prefix_affinity",
                message,
                NAME,
                comparison.variant,
                comparison.metric,
                comparison.template,
            )
        )
    return findings


def _entropy_findings(report_slice: ProbeSlice, several: bool) -> list[Finding]:
    """An info when a variant's openings collapsed to at most half the base's entropy."""
    findings = []
    for (variant, template), cell in cells_by_variant(report_slice.result).items():
        base_cell = report_slice.result.cell(BASE, template)
        mine, base = summary_value(cell, "opening_entropy_3"), summary_value(base_cell, "opening_entropy_3")
        if variant == BASE or mine is None or base is None or base < 1 or mine > base / 2:
            continue
        message = (
            f"{variant}'s off-task answers start far more alike than the base's (entropy of the first three "
            f"words {mine:.2f} bits vs {base:.2f}{under(template, several)})."
        )
        findings.append(
            finding("info", "opening_collapse", message, NAME, variant, "opening_entropy_3", template)
        )
    return findings
