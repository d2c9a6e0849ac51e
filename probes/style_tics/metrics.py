"""The style_tics probe's name and metrics: known distilled-data phrases per 1,000 words, and answers holding one."""

from __future__ import annotations

from sfteval.core.metrics import MetricSpec

NAME = "style_tics"

METRICS = (
    MetricSpec("tic_rate", "known distilled-data phrases per 1,000 words", higher_is_better=False,
               headline=True),
    MetricSpec("tic_any", "response holds at least one known distilled-data phrase", higher_is_better=False,
               binary=True),
)  # fmt: skip
