"""Best-epoch recommendation: which checkpoint to carry on to DPO/RLHF, by one documented rule (RULE).

The deciding metric is the first per-item, higher-is-better headline metric of the instruction-following probe
(or, without it, of the first probe that has one). The rule weighs everything the report knows: a variant with a
warning-level defect finding or a broken gate fail-rule is never recommended, and a later epoch wins over the
earliest fit one only when it is significantly better on the same items. Advice never contradicts a finding
(STYLE.md decision 9).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sfteval import stats
from sfteval.core.formatting import format_delta, format_p
from sfteval.core.recommendation import CandidateScore, PairedDifference, Recommendation
from sfteval.core.report import Report
from sfteval.core.results import Finding, FindingGroup, MetricInfo, ProbeResult
from sfteval.core.run_info import RunInfo
from sfteval.core.variants import BASE
from sfteval.report.finding_groups import report_groups, subject

PREFERRED_PROBE = "instruction_following"
DEFECT_SEVERITIES = ("warning", "error")
RULE = (
    "Candidates are the non-base variants. A candidate with a warning- or error-level finding (a defect) or a "
    "broken fail-rule of the gate policy is excluded. Among the rest the earliest (least training, least "
    "forgetting) is recommended, unless later ones are significantly better on {metric} of {probe} than it "
    "(paired on the same items pooled over templates, Holm over the candidates, alpha {alpha:g}); then the "
    "highest-scoring of those. The recommended checkpoint is compared with base on the same metric."
)


def recommend(
    run: RunInfo,
    probes: Sequence[ProbeResult],
    findings: Sequence[Finding] = (),
    comparisons: Sequence[PairedDifference] = (),
    excluded: Mapping[str, str] | None = None,
    alpha: float = 0.05,
    groups: Sequence[FindingGroup] = (),
) -> Recommendation | None:
    """The recommendation, or None when no probe has a higher-is-better headline metric or nothing but base ran.

    `excluded` maps a variant to the fail-rule it broke (a gate policy was applied); `groups` (the findings
    grouped by defect) let the verdict name a defect every epoch shares.
    """
    decider = deciding_metric(probes)
    names = [variant.name for variant in run.variants if variant.name != BASE]
    if decider is None or not names:
        return None
    probe, metric = decider
    candidates = _screened(names, probe, metric, findings, excluded or {})
    eligible = [candidate.variant for candidate in candidates if candidate.eligible]
    vs_base = _holm(comparisons, [(name, BASE) for name in names], alpha)
    vs_earliest = _holm(comparisons, [(name, eligible[0]) for name in eligible[1:]], alpha)
    candidates = [_with_tests(candidate, vs_base, vs_earliest) for candidate in candidates]
    chosen = _choose(candidates, vs_earliest)
    beats_base = None if chosen is None or chosen not in vs_base else _better(vs_base[chosen])
    fit_vs_base = {name: tested for name, tested in vs_base.items() if name in eligible}
    reasons = _reasons(candidates, metric, vs_earliest, fit_vs_base, bool(comparisons))
    score = next((c.score for c in candidates if c.variant == chosen), None)
    return Recommendation(
        variant=chosen,
        probe=probe.name,
        metric=metric.name,
        score=score,
        rule=RULE.format(metric=metric.name, probe=probe.name, alpha=alpha),
        gates_applied=excluded is not None,
        candidates=tuple(candidates),
        verdict=_verdict(chosen, candidates, metric, fit_vs_base, groups),
        reasons=tuple(reasons),
        beats_base=beats_base,
        comparisons=tuple(comparisons),
    )


def recommend_report(report: Report, excluded: Mapping[str, str] | None = None) -> Recommendation | None:
    """The rule applied again to a finished report (e.g. under a gate policy), from what the report stores."""
    stored = report.recommendation.comparisons if report.recommendation is not None else ()
    return recommend(
        report.run,
        report.probes,
        report.findings,
        stored,
        excluded,
        alpha=report.stats.alpha,
        groups=report_groups(report),
    )


def deciding_metric(probes: Sequence[ProbeResult]) -> tuple[ProbeResult, MetricInfo] | None:
    """The preferred probe's first per-item higher-is-better headline metric, else the first probe's that has one."""
    ranked = sorted(probes, key=lambda result: result.name != PREFERRED_PROBE)
    for result in ranked:
        for info in result.metrics:
            if info.headline and info.per_item and info.higher_is_better is True:
                return result, info
    return None


Tested = dict[str, tuple[PairedDifference, stats.HolmResult]]
"""variant -> its comparison with one reference (base, or the earliest eligible candidate), Holm-corrected."""


def _screened(
    names: Sequence[str],
    probe: ProbeResult,
    metric: MetricInfo,
    findings: Sequence[Finding],
    failed: Mapping[str, str],
) -> list[CandidateScore]:
    """Every candidate with its score, excluded (and why) when it broke a fail-rule or has a defect finding."""
    candidates = []
    for name in names:
        defects = [f for f in findings if f.variant == name and f.severity in DEFECT_SEVERITIES]
        # A probe's own sentence says more than the generic "metric rose" one: it goes first.
        defects.sort(key=lambda finding: finding.kind.startswith("headline_"))
        labels = [failed[name].partition(":")[0]] if name in failed else []
        labels += list(dict.fromkeys(_label(finding) for finding in defects))
        why = [failed[name]] if name in failed else []
        if defects:
            more = len(defects) - 1
            plural = "s" if more > 1 else ""
            extra = f" (and {more} more defect finding{plural})" if more else ""
            why.append(f"{defects[0].severity} ({defects[0].probe or 'run'}): {defects[0].message}{extra}")
        candidates.append(
            CandidateScore(
                variant=name,
                score=_score(probe, metric.name, name),
                eligible=not labels,
                reason="; ".join(why) or None,
                exclusions=tuple(labels),
            )
        )
    return candidates


def _label(finding: Finding) -> str:
    """A defect in two or three words: 'prefix affinity', 'prompt_loose regression'."""
    if finding.kind.startswith("headline_") and finding.metric:
        return f"{finding.metric} {finding.kind.split('_')[1]}"
    return finding.kind.replace("_", " ")


def _holm(comparisons: Sequence[PairedDifference], pairs: Sequence[tuple[str, str]], alpha: float) -> Tested:
    """The stored comparisons of `pairs` (those present), Holm-corrected as one family."""
    index = {(c.variant, c.reference): c for c in comparisons}
    found = [index[pair] for pair in pairs if pair in index]
    corrected = stats.holm([c.p_value for c in found], alpha=alpha) if found else []
    return {c.variant: (c, result) for c, result in zip(found, corrected, strict=True)}


def _with_tests(candidate: CandidateScore, vs_base: Tested, vs_earliest: Tested) -> CandidateScore:
    """The candidate with its Δ and Holm p vs base and vs the earliest eligible one, where tested."""
    base, earliest = vs_base.get(candidate.variant), vs_earliest.get(candidate.variant)
    return candidate.model_copy(
        update={
            "delta_vs_base": None if base is None else base[0].delta,
            "p_vs_base": None if base is None else base[1].adjusted_p,
            "delta_vs_earliest": None if earliest is None else earliest[0].delta,
            "p_vs_earliest": None if earliest is None else earliest[1].adjusted_p,
        }
    )


def _better(tested: tuple[PairedDifference, stats.HolmResult]) -> bool:
    """Significantly higher after Holm."""
    return tested[0].delta > 0 and tested[1].significant


def _worse(tested: tuple[PairedDifference, stats.HolmResult]) -> bool:
    """Significantly lower after Holm."""
    return tested[0].delta < 0 and tested[1].significant


def _choose(candidates: Sequence[CandidateScore], vs_earliest: Tested) -> str | None:
    """The highest-scoring candidate significantly better than the earliest eligible one, else that one."""
    eligible = [c for c in candidates if c.eligible]
    better = [c for c in eligible if c.variant in vs_earliest and _better(vs_earliest[c.variant])]
    best = max(better, key=lambda c: c.score if c.score is not None else float("-inf"), default=None)
    if best is not None:
        return best.variant
    return eligible[0].variant if eligible else None


def _score(probe: ProbeResult, metric: str, variant: str) -> float | None:
    """Mean of the metric over the variant's templates that have a value; None when none has."""
    values = [
        value.value
        for cell in probe.cells
        if cell.variant == variant and (value := cell.metric(metric)) is not None and value.value is not None
    ]
    return sum(values) / len(values) if values else None


def _difference(tested: tuple[PairedDifference, stats.HolmResult], metric: MetricInfo) -> str:
    """'+8.3 points, Holm p=0.400' (binary metrics in points)."""
    comparison, corrected = tested
    units = " points" if metric.binary else ""
    return f"{format_delta(comparison.delta, metric.binary)}{units}, Holm {format_p(corrected.adjusted_p)}"


def _reasons(
    candidates: Sequence[CandidateScore],
    metric: MetricInfo,
    vs_earliest: Tested,
    vs_base: Tested,
    have_comparisons: bool,
) -> list[str]:
    """The exclusions, the tests against the earliest eligible candidate, and the comparisons with base."""
    reasons = [f"{c.variant} is excluded: {c.reason}" for c in candidates if not c.eligible]
    eligible = [c.variant for c in candidates if c.eligible]
    for variant, tested in vs_earliest.items():
        state = "significantly better" if _better(tested) else "not significantly better"
        reasons.append(
            f"{variant} is {state} than {eligible[0]} on {metric.name} ({_difference(tested, metric)})."
        )
    if len(eligible) > 1 and not have_comparisons:
        reasons.append(
            "The report holds no paired comparisons between epochs, so none could be shown better."
        )
    for variant, tested in vs_base.items():
        if _better(tested):
            state = "significantly better than"
        elif _worse(tested):
            state = "significantly worse than"
        else:
            state = "not significantly different from"
        reasons.append(f"{variant} is {state} base on {metric.name} ({_difference(tested, metric)}).")
    return reasons


def _verdict(
    chosen: str | None,
    candidates: Sequence[CandidateScore],
    metric: MetricInfo,
    vs_base: Tested,
    groups: Sequence[FindingGroup],
) -> str:
    """The decision in words: what is recommended and why, or why nothing is."""
    if chosen is None:
        return _none_fit([c.variant for c in candidates], candidates, groups)
    eligible = [c.variant for c in candidates if c.eligible]
    excluded = [c.variant for c in candidates if not c.eligible]
    if chosen != eligible[0]:
        why = f"significantly better on {metric.name} than {eligible[0]}, the earliest fit epoch"
    elif len(eligible) > 1:
        why = f"no later fit epoch is significantly better on {metric.name}, so the earliest: least training"
    elif excluded:
        why = "the only epoch without a defect or a broken gate rule"
    else:
        why = "the only epoch"
    sentence = f"Recommended: {chosen} ({why})."
    if excluded:
        sentence += f" Excluded for defects or gate rules: {subject(excluded)}."
    if chosen in vs_base and not _better(vs_base[chosen]):
        if any(_better(tested) for tested in vs_base.values()):
            sentence += f" {chosen} itself is not significantly better than base on {metric.name}."
        else:
            sentence += f" No fit epoch is significantly better than base on {metric.name}."
    return sentence


def _none_fit(
    names: Sequence[str], candidates: Sequence[CandidateScore], groups: Sequence[FindingGroup]
) -> str:
    """'None is recommended: epochs 1–3 open 58% → 74% of off-task answers with ...' when one defect covers all."""
    shared = next(
        (g for g in groups if g.severity in DEFECT_SEVERITIES and set(names) <= set(g.variants)), None
    )
    if shared is not None:
        return f"None is recommended: every epoch has the same defect. {capitalized(shared.message)}"
    gated = [c.variant for c in candidates if any(label.startswith("gate") for label in c.exclusions)]
    if gated and len(gated) == len(candidates):
        return "None is recommended: every epoch breaks a fail-rule of the gate policy."
    return "None is recommended: every epoch has a warning-level defect or breaks a gate fail-rule."


def capitalized(sentence: str) -> str:
    """The sentence with its first letter in upper case ('Epochs 1–3 make ...')."""
    return sentence[:1].upper() + sentence[1:]
