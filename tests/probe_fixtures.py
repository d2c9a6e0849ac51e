"""Test probes shared by the runner and shard tests."""

from __future__ import annotations

from sfteval.core.generation import GenerationPolicy
from sfteval.core.metrics import MetricSpec
from sfteval.core.records import ItemRecord
from sfteval.core.requests import GenerationRequest, ScoreRequest
from sfteval.probes.base import PlannedRequest, Probe, ProbeContext, register_probe


def base_scored_probe(name: str, stem: str, items: int, max_new_tokens: int) -> type[Probe]:
    """Register a probe that generates `items` answers to '<stem> <i>' and scores each under the base model (like
    token shift): `base_logprob` is filled in by `finish` from the base's scores."""

    class BaseScoredProbe(Probe):
        __doc__ = f"Scores each variant's answers to '{stem} <i>' under the base model."
        needs_base_scoring = True
        metrics = (MetricSpec("base_logprob", "log-probability of the answer under base"),)
        generation_policy = GenerationPolicy(max_new_tokens_cap=max_new_tokens)

        def plan(self, context: ProbeContext) -> list[PlannedRequest]:
            prefix = stem[0]
            return [
                PlannedRequest(
                    f"{prefix}{index}",
                    f"{prefix}{index}",
                    "-",
                    GenerationRequest(f"{stem} {index}", self.generation.max_new_tokens),
                )
                for index in range(items)
            ]

        def records(self, context, planned, results) -> list[ItemRecord]:
            return [
                self.record(
                    context,
                    request,
                    {"base_logprob": None},
                    prompt=request.request.prompt,
                    output=result.text,
                )
                for request, result in zip(planned, results, strict=True)
            ]

        def base_requests(self, context, records) -> list[PlannedRequest]:
            return [
                PlannedRequest(
                    record.item_id, record.cluster_id, "-", ScoreRequest(record.prompt, record.output)
                )
                for record in records
            ]

        def finish(self, context, records, planned, results) -> list[ItemRecord]:
            return [
                record.model_copy(update={"metrics": {"base_logprob": score.logprob}})
                for record, score in zip(records, results, strict=True)
            ]

    BaseScoredProbe.name = name
    return register_probe(BaseScoredProbe)
