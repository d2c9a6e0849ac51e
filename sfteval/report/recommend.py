"""Best-epoch recommendation: which checkpoint to carry on to DPO/RLHF, by one documented rule.

Rule: among the non-base variants that pass the gates, pick the highest score, where the score is the first
headline metric (higher is better, per item) of the instruction-following probe — or, without that probe, of the
first probe that has such a metric — averaged over the serving templates the variant was probed with. Equal
scores go to the variant earlier in run order (the earlier epoch: less training, less forgetting). Without a gate
policy (`excluded` is None) every variant passes; a gate policy passes `excluded`: variant → why it failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sfteval.core.report import CandidateScore, Recommendation
from sfteval.core.results import MetricInfo, ProbeResult
from sfteval.core.run_info import RunInfo

PREFERRED_PROBE = "instruction_following"
# Scores closer than this are a tie (they come from the same finite item set, so real ties are exact).
_TIE_TOLERANCE = 1e-12


def recommend(
    run: RunInfo, probes: Sequence[ProbeResult], excluded: Mapping[str, str] | None = None
) -> Recommendation | None:
    """The recommendation, or None when no probe has a higher-is-better headline metric or nothing but base ran."""
    decider = _deciding_metric(probes)
    candidates = [variant.name for variant in run.variants if variant.name != "base"]
    if decider is None or not candidates:
        return None
    probe, metric = decider
    failed = excluded or {}
    scores = [
        CandidateScore(
            variant=name,
            score=_score(probe, metric.name, name),
            eligible=name not in failed,
            reason=failed.get(name),
        )
        for name in candidates
    ]
    best: CandidateScore | None = None
    best_score = -float("inf")
    for candidate in scores:
        if (
            candidate.eligible
            and candidate.score is not None
            and candidate.score > best_score + _TIE_TOLERANCE
        ):
            best, best_score = candidate, candidate.score
    return Recommendation(
        variant=None if best is None else best.variant,
        probe=probe.name,
        metric=metric.name,
        score=None if best is None else best.score,
        rule=(
            f"highest {metric.name} of {probe.name} (mean over serving templates) among non-base variants "
            f"passing the gates{' (no gate policy: all pass)' if excluded is None else ''}; ties go to the earlier epoch"
        ),
        gates_applied=excluded is not None,
        candidates=tuple(scores),
    )


def _deciding_metric(probes: Sequence[ProbeResult]) -> tuple[ProbeResult, MetricInfo] | None:
    """The preferred probe's first per-item higher-is-better headline metric, else the first probe's that has one."""
    ranked = sorted(probes, key=lambda result: result.name != PREFERRED_PROBE)
    for result in ranked:
        for info in result.metrics:
            if info.headline and info.per_item and info.higher_is_better is True:
                return result, info
    return None


def _score(probe: ProbeResult, metric: str, variant: str) -> float | None:
    """Mean of the metric over the variant's templates that have a value; None when none has."""
    values = [
        value.value
        for cell in probe.cells
        if cell.variant == variant and (value := cell.metric(metric)) is not None and value.value is not None
    ]
    return sum(values) / len(values) if values else None
