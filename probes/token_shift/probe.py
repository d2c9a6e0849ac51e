"""The token_shift probe: which tokens of a variant's answers would the base model not have chosen? (URIAL)

After Lin et al. 2023 ("The Unlocking Spell on Base LLMs", diagnostics.md §3): greedy-decode the variant, then
score its answer under the base model, teacher-forced, with each token's rank under the base's next-token
distribution. A token is unshifted when it is the base's top-1, marginal at rank 2-3, shifted beyond. Per answer:
the three fractions, the shifted fraction by position (first 5 tokens, 5-20, 20 on: alignment shifts concentrate
early and on style tokens; shift that does not decay suggests content drift), and the shifted token strings, whose
most frequent members the findings list (a learned "The sentiment is:" shows up there first). Summaries pool
tokens over answers, as URIAL reports them (5-8% shifted for well-known chat models).

The runner scores the answers under the base after the variant pass (`needs_base_scoring`). Answers are
re-tokenised from text, as every string-based engine must; the base's own answers give the reference row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from sfteval import stats
from sfteval.core.generation import GenerationPolicy
from sfteval.core.records import ItemRecord
from sfteval.core.requests import EngineResult, Generation, GenerationRequest, Score, ScoreRequest
from sfteval.core.results import Finding, ProbeSlice
from sfteval.probes.base import GenerationParams, PlannedRequest, Probe, ProbeContext, register_probe
from sfteval.probes.shared.params import OffTaskParams, serving_templates
from sfteval.probes.shared.token_scores import own_tokens
from sfteval.probes.token_shift.findings import token_shift_findings
from sfteval.probes.token_shift.metrics import BUCKETS, MARGINAL_RANK, METRICS, NAME

ANSWER_TOKENS = 48
"""Tokens generated per prompt by default: enough answer to see where shift concentrates (URIAL's positions)."""


class TokenShiftParams(GenerationParams, OffTaskParams):
    """Parameters of the token_shift probe (suite YAML)."""

    top_tokens: int = Field(default=8, ge=1, description="Shifted token strings named in the findings.")


@register_probe
class TokenShiftProbe(Probe):
    """Which answer tokens did SFT move away from the base model's top choice?"""

    name = NAME
    version = 1
    Params = TokenShiftParams
    needs_base_scoring = True
    metrics = METRICS
    generation_policy = GenerationPolicy(max_new_tokens_cap=ANSWER_TOKENS, greedy=True)

    params: TokenShiftParams

    def plan(self, context: ProbeContext) -> list[PlannedRequest]:
        """One greedy generation per prompt and template (URIAL compares greedy answers)."""
        from sfteval.templates import Message, get_template

        planned = []
        for name in serving_templates(self.params.templates, context):
            template = get_template(name, context.tokenizer)
            for item in self.params.sampled_prompts(context):
                request = self.generation_request(
                    template.render_prompt([Message("user", item.prompt)]), context, template.stop_strings
                )
                planned.append(PlannedRequest(item.id, item.id, name, request))
        return planned

    def records(
        self, context: ProbeContext, planned: Sequence[PlannedRequest], results: Sequence[EngineResult]
    ) -> list[ItemRecord]:
        """The variant's answers; their metrics come once the base has scored them (`finish`)."""
        records = []
        for request, result in zip(planned, results, strict=True):
            if not isinstance(result, Generation) or not isinstance(request.request, GenerationRequest):
                raise TypeError(f"{self.name} plans generations only, got {type(result).__name__}")
            extra = {"finish_reason": result.finish_reason, "num_tokens": result.num_tokens}
            records.append(
                self.record(
                    context, request, {}, prompt=request.request.prompt, output=result.text, extra=extra
                )
            )
        return records

    def base_requests(self, context: ProbeContext, records: Sequence[ItemRecord]) -> list[PlannedRequest]:
        """Score every non-empty answer under the base model, with ranks."""
        return [
            PlannedRequest(
                record.item_id,
                record.cluster_id,
                record.template,
                ScoreRequest(record.prompt or "", record.output, ranks=True),
            )
            for record in records
            if record.output
        ]

    def finish(
        self,
        context: ProbeContext,
        records: Sequence[ItemRecord],
        planned: Sequence[PlannedRequest],
        results: Sequence[EngineResult],
    ) -> list[ItemRecord]:
        """Rank classes of every answer token under the base; empty answers get no values."""
        ranks: dict[tuple[str, str], tuple[tuple[int, ...], tuple[str, ...]]] = {}
        for request, result in zip(planned, results, strict=True):
            if (
                not isinstance(result, Score)
                or result.ranks is None
                or not isinstance(request.request, ScoreRequest)
            ):
                raise TypeError(f"{self.name} needs scores with ranks from the base engine")
            own = own_tokens(result, request.request.context)
            token_ranks = own.ranks or ()
            ranks[(request.item_id, request.template)] = (token_ranks, own.tokens or ("",) * len(token_ranks))
        finished = []
        for record in records:
            token_ranks, tokens = ranks.get((record.item_id, record.template), ((), ()))
            shifted = [
                [position, token, rank]
                for position, (token, rank) in enumerate(zip(tokens, token_ranks, strict=True))
                if rank > MARGINAL_RANK
            ]
            extra = {**record.extra, "ranks": list(token_ranks), "shifted_tokens": shifted}
            finished.append(record.model_copy(update={"metrics": rank_metrics(token_ranks), "extra": extra}))
        return finished

    def summarize(self, records: Sequence[ItemRecord]) -> dict[str, Any]:
        """Pooled shifted and marginal fractions over all answer tokens, clustered by answer."""
        ranks, clusters = [], []
        for record in records:
            for rank in record.extra.get("ranks") or []:
                ranks.append(rank)
                clusters.append(record.item_id)
        if not ranks:
            return {}
        return {
            "shifted_pooled": stats.proportion([rank > MARGINAL_RANK for rank in ranks], clusters),
            "marginal_pooled": stats.proportion([1 < rank <= MARGINAL_RANK for rank in ranks], clusters),
        }

    def findings(self, report_slice: ProbeSlice) -> list[Finding]:
        """Each variant's shifted share vs the base with its most often shifted tokens; late shift as a warning."""
        return token_shift_findings(report_slice, self.params.top_tokens)


def rank_metrics(ranks: Sequence[int]) -> dict[str, float | None]:
    """Unshifted / marginal / shifted fractions of one answer, and the shifted fraction per position bucket."""
    metrics: dict[str, float | None] = {
        "unshifted": _fraction(ranks, lambda rank: rank == 1),
        "marginal": _fraction(ranks, lambda rank: 1 < rank <= MARGINAL_RANK),
        "shifted": _fraction(ranks, lambda rank: rank > MARGINAL_RANK),
    }
    for name, start, end in BUCKETS:
        metrics[f"shifted_{name}"] = _fraction(ranks[start:end], lambda rank: rank > MARGINAL_RANK)
    return metrics


def _fraction(ranks: Sequence[int], chosen: Any) -> float | None:
    """Share of `ranks` for which `chosen(rank)` holds; None for no ranks."""
    return sum(1 for rank in ranks if chosen(rank)) / len(ranks) if ranks else None
