"""The forgetting probe's name and metrics: lm-eval accuracy and flips vs base, held-out bits per byte, KL to base."""

from __future__ import annotations

from sfteval.core.metrics import MetricSpec

NAME = "forgetting"

METRICS = (
    MetricSpec("acc", "lm-eval accuracy (option log-likelihood)", binary=True, headline=True),
    MetricSpec("acc_norm", "lm-eval accuracy with byte-length-normalised log-likelihood", binary=True),
    MetricSpec("forgotten", "share of items the base got right that are now wrong", False, binary=True),
    MetricSpec("gained", "share of items the base got wrong that are now right", binary=True),
    MetricSpec("bits_per_byte", "held-out text: bits per UTF-8 byte", higher_is_better=False, headline=True,
               negligible=0.01),
    MetricSpec("kl_to_base", "held-out text: KL(base ‖ variant), nats per token (top-k lower bound)", False),
    MetricSpec("forgotten_adjusted", "forgotten, net of what random guessing explains (Harmon et al.)", False),
    MetricSpec("gained_adjusted", "gained, net of what random guessing explains (Harmon et al.)"),
)  # fmt: skip
