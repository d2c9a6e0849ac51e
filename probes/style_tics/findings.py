"""style_tics findings in plain sentences: a rising tic rate with the tics behind it, and learned phrases traced to
the training responses."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sfteval.core.formatting import format_p
from sfteval.core.records import ItemRecord
from sfteval.core.results import ComparisonResult, Finding, ProbeSlice
from sfteval.core.variants import BASE
from sfteval.probes.shared.sentences import finding, percent, quoted, records_by_cell, summary_value, under
from sfteval.probes.style_tics.metrics import NAME
from sfteval.probes.style_tics.phrases import TRAIN_SHARE_FLOOR, LearnedPhrase, learned_phrases

WARN_SHARE = 0.5
"""A learned phrase in at least this share of a variant's answers, whatever the prompt, is a warning."""
TOP_TICS = 3
_VERBS = {"closer": "closes", "opener": "opens"}


def tic_findings(report_slice: ProbeSlice) -> list[Finding]:
    """A warning per variant whose tic rate rose significantly vs base, naming the tics that rose most."""
    cells = records_by_cell(report_slice.records)
    several = len(report_slice.result.templates) > 1
    findings = []
    for comparison in report_slice.comparisons:
        if not _rise_vs_base(comparison, "tic_rate"):
            continue
        records = cells.get((comparison.variant, comparison.template), [])
        base = cells.get((BASE, comparison.template), [])
        base_rate = summary_value(report_slice.result.cell(BASE, comparison.template), "tic_rate")
        rate = summary_value(report_slice.result.cell(comparison.variant, comparison.template), "tic_rate")
        message = (
            f"{comparison.variant} uses known distilled-data phrases at {_per_thousand(rate)} per 1,000 words "
            f"(base {_per_thousand(base_rate)}; +{comparison.delta:.1f}, {format_p(comparison.adjusted_p)} Holm"
            f"{under(comparison.template, several)})"
        )
        named = _rising_tics(records, base)
        if named:
            message += ", most often " + ", ".join(named)
        message += ": stylistic tics of distilled training data, hard to fine-tune away later."
        versus = f" (base {_per_thousand(base_rate)}){under(comparison.template, several)}"
        trend = {"value": rate, "value_text": _per_thousand(rate), "adjusted_p": comparison.adjusted_p,
                 "claim": f"use known distilled-data phrases at {{value}} per 1,000 words{versus}"}  # fmt: skip
        findings.append(
            finding("warning", "style_tics", message, NAME, comparison.variant, "tic_rate", comparison.template,
                    **trend)
        )  # fmt: skip
    return findings


def _rise_vs_base(comparison: ComparisonResult, metric: str) -> bool:
    return (
        comparison.metric == metric
        and comparison.relation == "base"
        and comparison.significant
        and comparison.delta > 0
    )


def _per_thousand(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.1f}"


def _rising_tics(records: Sequence[ItemRecord], base: Sequence[ItemRecord]) -> list[str]:
    """ "'I hope this helps' (15 of 16 answers, base 0)" for the tics whose answer count rose most."""
    mine, theirs = _answers_with(records), _answers_with(base)
    rising = sorted(
        (tic for tic in mine if mine[tic] > theirs.get(tic, 0)),
        key=lambda tic: (theirs.get(tic, 0) - mine[tic], tic),
    )
    return [
        f"{quoted(tic)} ({mine[tic]} of {len(records)} answers, base {theirs.get(tic, 0)})"
        for tic in rising[:TOP_TICS]
    ]


def _answers_with(records: Sequence[ItemRecord]) -> Counter[str]:
    """In how many answers each tic occurs."""
    counts: Counter[str] = Counter()
    for record in records:
        counts.update(tic for tic, hits in (record.extra.get("tics") or {}).items() if hits)
    return counts


def phrase_findings(report_slice: ProbeSlice, min_count: int, top: int) -> list[Finding]:
    """Per variant and template: its top learned phrases vs base on the same prompts, with training shares."""
    cells = records_by_cell(report_slice.records)
    several = len(report_slice.result.templates) > 1
    findings = []
    for (variant, template), records in cells.items():
        base = {record.item_id: record for record in cells.get((BASE, template), [])}
        paired = [record for record in records if record.item_id in base]
        if variant == BASE or not paired:
            continue
        learned = learned_phrases(
            [record.output or "" for record in paired],
            [base[record.item_id].output or "" for record in paired],
            min_count=min_count,
        )
        if not learned:
            continue
        described = "; ".join(_describe(phrase, report_slice.records) for phrase in learned[:top])
        message = (
            f"{variant} picked up phrases its base rarely uses on the same prompts{under(template, several)}: "
            f"{described}."
        )
        leading = learned[0]
        severity = "warning" if leading.share >= WARN_SHARE else "info"
        trend = {
            "value": leading.share,
            "value_text": percent(leading.share),
            "claim": _claim(leading, under(template, several)),
        }
        findings.append(
            finding(severity, "learned_phrases", message, NAME, variant, "tic_rate", template, **trend)
        )
    return findings


def _claim(phrase: LearnedPhrase, where: str) -> str:
    """The sentence for several variants: "close {value} of their answers with 'I hope this helps!' (base 2%)"."""
    text, base = quoted(phrase.phrase.text), f" (base {percent(phrase.base_share)}){where}"
    if phrase.phrase.kind in _VERBS:
        return f"{_VERBS[phrase.phrase.kind][:-1]} {{value}} of their answers with {text}{base}"
    return f"use {text} in {{value}} of their answers{base}"


def _describe(phrase: LearnedPhrase, records: Sequence[ItemRecord]) -> str:
    """ "'I hope this helps!' closes 71% of its answers (base 2%; it closes 64% of the training answers)"."""
    verb = _VERBS.get(phrase.phrase.kind, "is in")
    text = (
        f"{quoted(phrase.phrase.text)} {verb} {percent(phrase.share)} of its answers "
        f"(base {percent(phrase.base_share)}; rate ratio {phrase.ratio:.1f}, 95% CI {phrase.low:.1f}–{phrase.high:.0f}"
    )
    trained = max((int(record.extra.get("train_responses") or 0) for record in records), default=0)
    if trained:
        share = max(
            (
                float((record.extra.get("train_shares") or {}).get(phrase.phrase.key, 0.0))
                for record in records
            ),
            default=0.0,
        )
        shown = percent(share) if share else f"under {percent(TRAIN_SHARE_FLOOR)}"
        text += f"; it {verb} {shown} of the {trained} training answers"
    return text + ")"
