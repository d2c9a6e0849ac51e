"""The calibration probe's name and metrics: confidence of the chosen option against its correctness, per item, and
the expected calibration error per variant."""

from __future__ import annotations

from sfteval.core.metrics import MetricSpec

NAME = "calibration"
POOLED = "-"
"""The one template of its records: every task pooled (calibration is a property of the model's confidence, and
pooling gives the reliability diagram enough items per bin)."""

METRICS = (
    MetricSpec("overconfident_wrong", "wrong at confidence ≥ the threshold (0.9)", higher_is_better=False,
               binary=True, headline=True),
    MetricSpec("ece", "expected calibration error, 10 equal-width bins (bootstrap CI)", higher_is_better=False,
               headline=True),
    MetricSpec("brier", "Brier score Σ_k (p_k − y_k)² over the options", higher_is_better=False),
    MetricSpec("confidence", "probability of the chosen option (softmax over option log-likelihoods)", None,
               fraction=True),
    MetricSpec("correct", "the chosen option is the gold one (lm-eval's acc)", binary=True),
    MetricSpec("overconfidence", "confidence − correct (mean: confidence − accuracy; > 0 overconfident)",
               None),
)  # fmt: skip
