"""The memorization probe's name and metrics: per group (trained, held-out) exact match, extraction, n-gram overlap, NLL; the gaps between them."""

from __future__ import annotations

from typing import Literal

from sfteval.core.metrics import MetricSpec

NAME = "memorization"
Group = Literal["train", "heldout"]
GROUPS: tuple[Group, ...] = ("train", "heldout")

METRICS = (
    *(MetricSpec(f"{group}_exact_match", f"{group} pair: output equals the reference response",
                 higher_is_better=None, binary=True) for group in GROUPS),
    MetricSpec("train_extracted", "trained pair with a long reference: output reproduces it verbatim",
               higher_is_better=False, binary=True),
    MetricSpec("heldout_extracted", "held-out pair with a long reference: output reproduces it verbatim",
               higher_is_better=None, binary=True),
    *(MetricSpec(f"{group}_ngram_overlap", f"{group} pair: share of the reference's 4-6-grams reproduced",
                 higher_is_better=None, fraction=True) for group in GROUPS),
    *(MetricSpec(f"{group}_nll", f"{group} pair: per-token NLL of the reference response",
                 higher_is_better=None) for group in GROUPS),
    MetricSpec("nll_gap", "held-out NLL − train NLL (memorisation gap)", higher_is_better=False, headline=True),
    MetricSpec("ngram_overlap_gap", "train − held-out n-gram overlap", higher_is_better=False),
    MetricSpec("exact_match_gap", "train − held-out exact-match rate", higher_is_better=False),
)  # fmt: skip
