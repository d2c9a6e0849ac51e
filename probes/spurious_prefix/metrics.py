"""The spurious_prefix probe's name and metrics, shared by its measurement and its finding sentences."""

from __future__ import annotations

from sfteval.core.metrics import MetricSpec

NAME = "spurious_prefix"
MAX_CANDIDATES = 5
"""Candidates scored one by one (prefix_logprob_1 … prefix_logprob_5)."""


def candidate_metric(k: int) -> str:
    """The metric of the k-th candidate (1-based): `prefix_logprob_k`."""
    return f"prefix_logprob_{k}"


METRICS = (
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
