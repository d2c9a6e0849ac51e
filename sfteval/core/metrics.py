"""Metric declarations: what a probe measures per item, how it aggregates and which direction is good."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricSpec:
    """Declares one per-item metric: how to aggregate it and which direction is good."""

    name: str
    description: str
    higher_is_better: bool | None = True
    binary: bool = False
    headline: bool = False
    # Per-item values are fractions in [0, 1] (e.g. the share of a prompt's instructions followed): their intervals
    # stay in [0, 1] like a binary metric's, but values are shown as numbers. Binary metrics are fractions too.
    fraction: bool = False
    # A change smaller than this (in the metric's units) is practically negligible: a significant one is told as
    # info, not as a warning (e.g. bits per byte +0.004 after one more epoch).
    negligible: float = 0.0
