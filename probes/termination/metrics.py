"""The termination probe's name and metrics: stop or cap, marker leaks, P(terminator), repetition."""

from __future__ import annotations

from sfteval.core.metrics import MetricSpec

NAME = "termination"

METRICS = (
    MetricSpec("non_terminated", "ran to the generation cap without ending the turn", higher_is_better=False,
               binary=True, headline=True),
    MetricSpec("marker_leak", "output contains a template role/turn marker", higher_is_better=False,
               binary=True),
    MetricSpec("terminator_prob", "P(terminator | prompt + reference response)", fraction=True),
    MetricSpec("rep_4", "seq-rep-4: share of repeated word 4-grams", higher_is_better=False, fraction=True),
    MetricSpec("distinct_2", "distinct word bigrams / bigrams", fraction=True),
    MetricSpec("degenerate", "rep_4 above the degeneration threshold (short answers never are)",
               higher_is_better=False, binary=True),
)  # fmt: skip
