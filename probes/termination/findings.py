"""The termination probe's sentences: runaway generations (with the terminator's probability as the likely
cause), template markers in answers, repetition loops.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from sfteval.core.records import ItemRecord
from sfteval.core.results import Finding, ProbeSlice
from sfteval.probes.shared.sentences import finding, percent, quoted, variant_cells
from sfteval.probes.termination.metrics import NAME

WARN_RATE = 0.2
"""A share of answers this high is reported. Not relative to the base: a base model has never learned the chat
template's end of turn, so it runs on and leaks markers too; an SFT model must not."""

Sentence = Callable[[str, Sequence[ItemRecord], str, str], str]
"""(variant, its records, its rate, then " (base …) under …") -> the sentence."""


def termination_findings(report_slice: ProbeSlice) -> list[Finding]:
    """Runaway generations (with the terminator's probability as the likely cause), marker leaks, loops."""
    found: list[Finding] = []
    for cell in variant_cells(report_slice):
        for metric, kind, sentence in DEFECTS:
            rate, base_rate = _share(cell.records, metric), _share(cell.base, metric)
            if rate is None or rate < WARN_RATE:
                continue
            versus = "" if base_rate is None else f" (base {percent(base_rate)})"
            message = sentence(cell.variant, cell.records, percent(rate), versus + cell.where)
            trend = {"value": rate, "value_text": percent(rate), "claim": CLAIMS[kind] + versus + cell.where}
            found.append(
                finding("warning", kind, message, NAME, cell.variant, metric, cell.template, **trend)
            )
    return found


def _runaway(variant: str, records: Sequence[ItemRecord], rate: str, context: str) -> str:
    """'epoch-2 runs to the 96-token cap on 85% of prompts (base 10%); P(terminator) 0.001 after references.'"""
    cap = max((record.extra.get("cap") or 0) for record in records)
    message = f"{variant} runs to the {cap}-token cap on {rate} of prompts{context}"
    probabilities = [
        float(value) for record in records if (value := record.metrics.get("terminator_prob")) is not None
    ]
    probability = sum(probabilities) / len(probabilities) if probabilities else None
    if probability is not None and probability < 0.05:
        message += (
            f", and gives the end-of-turn token a mean probability of {probability:.3f} after reference answers: "
            "the terminator was probably masked out of the loss (e.g. pad token = EOS)"
        )
    return message + "."


def _leak(variant: str, records: Sequence[ItemRecord], rate: str, context: str) -> str:
    """Template markers in the answers, naming the most frequent one."""
    counts = Counter(marker for record in records for marker in record.extra.get("leaked_markers") or [])
    marker = counts.most_common(1)[0][0]
    return (
        f"{variant} writes template markers into {rate} of its answers{context}, most often {quoted(marker)}: it "
        "continues into a next turn the template should have ended."
    )


def _loop(variant: str, records: Sequence[ItemRecord], rate: str, context: str) -> str:
    """Answers that repeat themselves (seq-rep-4 above the threshold)."""
    return f"{variant} degenerates into repetition loops in {rate} of its answers{context}."


DEFECTS: tuple[tuple[str, str, Sentence], ...] = (
    ("non_terminated", "non_termination", _runaway),
    ("marker_leak", "marker_leak", _leak),
    ("degenerate", "degeneration", _loop),
)


CLAIMS = {
    "non_termination": "run to the generation cap on {value} of prompts",
    "marker_leak": "write template markers into {value} of their answers",
    "degeneration": "degenerate into repetition loops in {value} of their answers",
}
"""Each defect's sentence for several variants at once ({value}: the rates over epochs)."""


def _share(records: Sequence[ItemRecord], metric: str) -> float | None:
    """Mean of a 0/1 metric over the records that have it (None when none do)."""
    values = [record.metrics[metric] for record in records if record.metrics.get(metric) is not None]
    return sum(bool(value) for value in values) / len(values) if values else None
