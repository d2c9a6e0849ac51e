"""The template_brittleness probe's name and metrics: per-template scores, their spread, PSS and template gaps, and the FormatSpread formats."""

from __future__ import annotations

from sfteval.core.metrics import MetricSpec

NAME = "template_brittleness"

METRICS = (
    MetricSpec("if_instruction_loose", "instructions followed (loose), per prompt, under this template",
               fraction=True),
    MetricSpec("mc_correct", "multiple-choice item right (option log-likelihood) under this template", binary=True),
    MetricSpec("sft_logprob", "held-out SFT pair: mean per-token log-prob of the reference, this template"),
    MetricSpec("if_pss", "instruction following: mean pairwise disagreement across templates (ProSA PSS)", False),
    MetricSpec("mc_pss", "multiple choice: mean pairwise disagreement across templates (ProSA PSS)", False),
    MetricSpec("sft_pss", "held-out SFT log-prob: mean pairwise |difference| across templates", False),
    MetricSpec("if_template_gap", "instruction following: training template − mean of the others", False),
    MetricSpec("mc_template_gap", "multiple choice: training template − mean of the others", False),
    MetricSpec("sft_template_gap", "held-out SFT log-prob: training template − mean of the others", False),
    MetricSpec("format_pss", "multiple choice: mean pairwise disagreement across formats (ProSA PSS)", False),
    MetricSpec("format_accuracy", "multiple choice: share of formats answered right"),
    MetricSpec("if_delta_vs_train", "instruction following vs the training template, same prompts"),
    MetricSpec("mc_delta_vs_train", "multiple-choice accuracy vs the training template, same items"),
    MetricSpec("sft_delta_vs_train", "held-out SFT log-prob vs the training template, same pairs"),
    MetricSpec("if_spread", "instruction following: max − min over templates", higher_is_better=False),
    MetricSpec("mc_spread", "multiple-choice accuracy: max − min over templates", higher_is_better=False),
    MetricSpec("sft_spread", "held-out SFT log-prob: max − min over templates", higher_is_better=False),
    MetricSpec("format_spread", "multiple-choice accuracy: max − min over formats", higher_is_better=False),
    MetricSpec("format_min", "multiple-choice accuracy of the worst format"),
    MetricSpec("format_max", "multiple-choice accuracy of the best format"),
)  # fmt: skip
