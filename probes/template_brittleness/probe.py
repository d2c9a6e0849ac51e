"""The template_brittleness probe: how much do scores move across serving templates and prompt formats?

Three serving-template axes and one format axis, all paired per item (diagnostics.md §2.6):
- serving templates: instruction-following prompts (`if`: generated, scored by IFEval's loose checks at instruction
  level), multiple-choice items (`mc`: options ranked by log-likelihood after the assistant header) and held-out
  SFT pairs (`sft`: mean per-token log-prob of the reference response, no generation; probes/template_gaps.py)
  under the training template, `native`, `raw` and other registry templates. Per-template cells; in each,
  `*_delta_vs_train` is the paired mean difference from the training template on the same items.
- formats (FormatSpread, Sclar et al. 2023): the multiple-choice items written in a seeded sample of equivalent raw
  prompt formats (no chat template), so that base and SFT checkpoints meet exactly the same prompts.
Across conditions, each item gets ProSA's PSS (mean pairwise disagreement) in the `across-templates` / `formats`
cells, whose summaries are the spreads (max − min of condition accuracies) with bootstrap CIs. The
`across-templates` records also carry each axis's per-item template gap, `<axis>_template_gap` = score under the
training template − mean score under the other evaluated templates (lower is better). The run's training template
applies to every variant, base included, so the report's paired comparison of the gap vs base is a difference in
differences: how much more the variant depends on being served its training template than the base does. A chat-
tuned base is brittle in its own direction, which an undirected spread cannot separate from what SFT did.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pydantic import Field

from sfteval import stats
from sfteval.core.errors import UserError
from sfteval.core.records import ItemRecord
from sfteval.core.requests import EngineResult, Generation, GenerationRequest, Score, ScoreRequest
from sfteval.core.results import Finding, ProbeSlice
from sfteval.core.shipped import find_data_file
from sfteval.probes.base import GenerationParams, PlannedRequest, Probe, ProbeContext, register_probe
from sfteval.probes.shared.loaders import ChoiceItem, load_choice_items
from sfteval.probes.template_brittleness.findings import (
    ACROSS,
    FORMATS,
    delta_findings,
    gap_findings,
    spread_findings,
)
from sfteval.probes.template_brittleness.gaps import (
    SFT_TAG,
    mean_token_logprob,
    sft_pairs,
    sft_requests,
    template_gap,
)
from sfteval.probes.template_brittleness.metrics import METRICS, NAME
from sfteval.probes.template_brittleness.prompt_formats import (
    continuation_after,
    pss,
    sample_formats,
    spread_estimate,
)

if TYPE_CHECKING:
    from sfteval.probes.instruction_following import IFPrompt
    from sfteval.probes.shared.loaders import Pair

DEFAULT_TEMPLATES = ("native", "raw", "alpaca", "chatml", "llama3")
SCORES = {"if": "if_instruction_loose", "mc": "mc_correct", "sft": "sft_logprob"}


class TemplateBrittlenessParams(GenerationParams):
    """Parameters of the template_brittleness probe (suite YAML)."""

    templates: tuple[str, ...] | None = Field(
        default=None, description="Serving templates; None = the training template + native, raw, alpaca, ..."
    )
    train_template: str | None = Field(default=None, description="Overrides the manifest / --train-template.")
    if_prompts: str | None = Field(default=None, description="IFEval-format prompts; None = sfteval's set.")
    if_limit: int = Field(default=20, ge=0, description="Instruction-following prompts (a seeded sample).")
    mc_items: str = Field(
        default="tasks/world_facts.jsonl", description="Multiple-choice JSONL (suite-relative)."
    )
    mc_limit: int = Field(default=40, ge=0, description="Multiple-choice items (the file's first N).")
    sft_pairs: str | None = Field(
        default=None, description="Prompt/response pairs JSONL; None = the manifest's held-out sample."
    )
    sft_limit: int = Field(
        default=24, ge=0, description="Held-out SFT pairs scored (a seeded sample); 0 = off."
    )
    formats: int = Field(default=8, ge=2, description="FormatSpread formats sampled with the suite seed.")
    limit: int | None = Field(
        default=None, ge=1, description="Caps if_limit, mc_limit and sft_limit (--limit)."
    )


@register_probe
class TemplateBrittlenessProbe(Probe):
    """Score spread across serving templates and prompt formats, per variant, base included."""

    name = NAME
    version = 2
    Params = TemplateBrittlenessParams
    metrics = METRICS

    params: TemplateBrittlenessParams

    def plan(self, context: ProbeContext) -> list[PlannedRequest]:
        """IF generations, MC option scores and SFT response scores under every template, then MC under formats."""
        from sfteval.templates import Message

        planned = []
        items = self.choice_items(context)
        pairs, _ = self.sft_pairs(context)
        for name, template in self.templates(context).items():
            for prompt in self.if_prompts(context):
                request = self.generation_request(
                    template.render_prompt([Message("user", prompt.prompt)]), context, template.stop_strings
                )
                planned.append(
                    PlannedRequest(f"if/{prompt.item_id}", f"if/{prompt.cluster_id}", name, request, "if")
                )
            for item in items:
                planned += _option_requests(
                    item, template.render_prompt([Message("user", item.question)]), name
                )
            if template.has_turns:  # e.g. raw: an answer glued to its prompt unmarked measures nothing
                planned += sft_requests(pairs, name, template)
        for prompt_format in sample_formats(self.params.formats, context.seed):
            for item in items:
                planned += _option_requests(
                    item, prompt_format.render(item.question, item.choices), prompt_format.name
                )
        return planned

    def records(
        self, context: ProbeContext, planned: Sequence[PlannedRequest], results: Sequence[EngineResult]
    ) -> list[ItemRecord]:
        """Per (template, item) records, then per-item PSS (and template-gap) records across conditions."""
        format_names = {
            prompt_format.name for prompt_format in sample_formats(self.params.formats, context.seed)
        }
        scored = self._scores(context, planned, results)
        by_item: dict[str, dict[str, float]] = defaultdict(dict)
        for (condition, item_id), (_, metrics, _) in scored.items():
            by_item[item_id][condition] = next(iter(metrics.values()))
        train = self.train_template(context)
        records: list[ItemRecord] = []
        first: dict[str, PlannedRequest] = {}
        for (condition, item_id), (request, metrics, fields) in scored.items():
            first.setdefault(item_id, request)
            if condition in format_names:
                continue
            train_score = by_item[item_id].get(train) if train and condition != train else None
            extra = {
                **fields.get("extra", {}),
                **({"train_score": train_score} if train_score is not None else {}),
            }
            output = fields.get("output")
            records.append(
                self.record(context, request, metrics, prompt=_prompt(request), output=output, extra=extra)
            )
        return records + self._across_records(context, by_item, first, format_names)

    def _across_records(
        self,
        context: ProbeContext,
        by_item: Mapping[str, Mapping[str, float]],
        first: Mapping[str, PlannedRequest],
        format_names: set[str],
    ) -> list[ItemRecord]:
        """Per item: PSS and the template gap across serving templates, and PSS and accuracy across formats."""
        train = self.train_template(context)
        records = []
        for item_id, conditions in by_item.items():
            family = item_id.split("/", 1)[0]
            templates = {name: value for name, value in conditions.items() if name not in format_names}
            formats = {name: value for name, value in conditions.items() if name in format_names}
            if len(templates) > 1:
                metrics = {f"{family}_pss": pss(list(templates.values()))}
                gap = template_gap(templates, train)
                if gap is not None:
                    metrics[f"{family}_template_gap"] = gap
                records.append(self._summary_record(context, first[item_id], ACROSS, metrics, templates))
            if formats:
                accuracy = sum(formats.values()) / len(formats)
                metrics = {"format_pss": pss(list(formats.values())), "format_accuracy": accuracy}
                records.append(self._summary_record(context, first[item_id], FORMATS, metrics, formats))
        return records

    def summarize(self, records: Sequence[ItemRecord]) -> dict[str, Any]:
        """Spreads with bootstrap CIs (across-condition cells) or paired deltas vs the training template."""
        if not records:
            return {}
        template = records[0].template
        if template in (ACROSS, FORMATS):
            summary: dict[str, Any] = {}
            for family in SCORES:
                rows = [record for record in records if record.item_id.startswith(f"{family}/")]
                if rows:
                    estimate = _spread(rows)
                    name = "format" if template == FORMATS else family
                    summary[f"{name}_spread"] = estimate
                    if template == FORMATS:
                        means = _condition_means(rows)
                        summary |= {"format_min": min(means.values()), "format_max": max(means.values())}
            return summary
        return {f"{family}_delta_vs_train": delta for family, delta in _deltas(records).items()}

    def findings(self, report_slice: ProbeSlice) -> list[Finding]:
        """The worst template per variant and axis when its drop is clear, spreads and template gaps vs base."""
        return delta_findings(report_slice) + spread_findings(report_slice) + gap_findings(report_slice)

    def templates(self, context: ProbeContext) -> dict[str, Any]:
        """Serving templates bound to the tokenizer; defaults the tokenizer cannot serve (e.g. native) are skipped."""
        from sfteval.templates import get_template

        train = self.train_template(context)
        names = self.params.templates or tuple(
            dict.fromkeys([*([train] if train else []), *DEFAULT_TEMPLATES])
        )
        bound = {}
        for name in names:
            try:
                bound[name] = get_template(name, context.tokenizer)
            except UserError:
                if self.params.templates or name == train:
                    raise
        return bound

    def train_template(self, context: ProbeContext) -> str | None:
        return self.params.train_template or context.train_template

    def if_prompts(self, context: ProbeContext) -> list[IFPrompt]:
        """A seeded sample of `if_limit` instruction-following prompts, in file order."""
        from sfteval.probes.instruction_following import load_prompts

        limit = min(self.params.if_limit, self.params.limit or self.params.if_limit)
        if limit == 0:
            return []
        source = find_data_file(self.params.if_prompts, context.suite_dir) if self.params.if_prompts else None
        prompts = load_prompts(str(source) if source else None)
        chosen = sorted(random.Random(context.seed).sample(range(len(prompts)), min(limit, len(prompts))))
        return [prompts[index] for index in chosen]

    def choice_items(self, context: ProbeContext) -> list[ChoiceItem]:
        limit = min(self.params.mc_limit, self.params.limit or self.params.mc_limit)
        return (
            load_choice_items(find_data_file(self.params.mc_items, context.suite_dir))[:limit]
            if limit
            else []
        )

    def sft_pairs(self, context: ProbeContext) -> tuple[list[Pair], str]:
        """Held-out SFT pairs (see template_gaps.sft_pairs) cut to `sft_limit`, and where they came from."""
        limit = min(self.params.sft_limit, self.params.limit or self.params.sft_limit)
        path = find_data_file(self.params.sft_pairs, context.suite_dir) if self.params.sft_pairs else None
        return sft_pairs(path, limit, context)

    def _scores(
        self, context: ProbeContext, planned: Sequence[PlannedRequest], results: Sequence[EngineResult]
    ) -> dict[tuple[str, str], tuple[PlannedRequest, dict[str, float], dict[str, Any]]]:
        """(condition, item) -> first request, its score metric, record fields (IF output, MC/SFT log-probs)."""
        from sfteval.probes.instruction_following import evaluate_prompt

        _, source = self.sft_pairs(context)
        prompts = {f"if/{prompt.item_id}": prompt for prompt in self.if_prompts(context)}
        answers = {f"mc/{item.id}": item.answer for item in self.choice_items(context)}
        options: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
        scored: dict[tuple[str, str], tuple[PlannedRequest, dict[str, float], dict[str, Any]]] = {}
        for request, result in zip(planned, results, strict=True):
            key = (request.template, request.item_id)
            if isinstance(result, Generation):
                evaluation = evaluate_prompt(prompts[request.item_id], result.text)
                metrics = {SCORES["if"]: sum(evaluation.loose) / len(evaluation.loose)}
                scored[key] = (request, metrics, {"output": result.text})
            elif isinstance(result, Score) and request.tag == SFT_TAG:
                response = mean_token_logprob(result, _prompt(request))
                if response is not None:
                    extra = {"tokens": response[1], "source": source}
                    scored[key] = (request, {SCORES["sft"]: response[0]}, {"extra": extra})
            elif isinstance(result, Score):
                options[key][int(request.tag.split("#")[1])] = result.logprob
                scored.setdefault(key, (request, {}, {}))
        for key, logprobs in options.items():
            chosen = max(logprobs, key=logprobs.__getitem__)
            scored[key][1][SCORES["mc"]] = float(chosen == answers[key[1]])
            scored[key][2]["extra"] = {"option_logprobs": [logprobs[index] for index in sorted(logprobs)]}
        return scored

    def _summary_record(
        self,
        context: ProbeContext,
        request: PlannedRequest,
        condition: str,
        metrics: dict[str, Any],
        scores: Mapping[str, float],
    ) -> ItemRecord:
        """An across-condition record of one item; the per-condition scores stay in `extra` for the spread."""
        extra = {"scores": dict(scores), "seed": context.seed}
        return self.record(context, replace(request, template=condition), metrics, extra=extra)


def _option_requests(item: ChoiceItem, context: str, condition: str) -> list[PlannedRequest]:
    """One scoring request per option of `item` after `context`."""
    item_id = f"mc/{item.id}"
    return [
        PlannedRequest(
            item_id,
            item_id,
            condition,
            ScoreRequest(context, continuation_after(context, choice)),
            f"mc#{index}",
        )
        for index, choice in enumerate(item.choices)
    ]


def _prompt(request: PlannedRequest) -> str:
    inner = request.request
    return inner.prompt if isinstance(inner, GenerationRequest) else inner.context


def _condition_means(records: Sequence[ItemRecord]) -> dict[str, float]:
    """Mean score per condition over the records' items (conditions every item has)."""
    conditions = set.intersection(*(set(record.extra["scores"]) for record in records))
    return {
        name: sum(record.extra["scores"][name] for record in records) / len(records) for name in conditions
    }


def _spread(records: Sequence[ItemRecord]) -> stats.Estimate:
    scores = [record.extra["scores"] for record in records]
    return spread_estimate(scores, [record.cluster_id for record in records], seed=records[0].extra["seed"])


def _deltas(records: Sequence[ItemRecord]) -> dict[str, stats.Estimate]:
    """Paired mean difference from the training template per family, with a (clustered) t interval."""
    deltas = {}
    for family, metric in SCORES.items():
        rows = [
            r
            for r in records
            if r.item_id.startswith(f"{family}/") and r.extra.get("train_score") is not None
        ]
        if len(rows) >= 2:
            differences = [row.metrics[metric] - row.extra["train_score"] for row in rows]
            clusters = [row.cluster_id for row in rows]
            deltas[family] = stats.mean_ci(
                differences, clusters if len(set(clusters)) < len(clusters) else None
            )
    return deltas
