"""Unpaired differences for `sfteval diff` when two runs share no items (e.g. different suites).

With item values on both sides: an independent bootstrap that resamples each side's clusters separately, with the
percentile CI and the far-side p-value of `stats.paired_bootstrap_diff`. With only the reports' intervals: a
normal (Welch-style) approximation whose per-side standard error is the interval's half-width over z; for the
asymmetric Wilson interval of a proportion this is an approximation, stated by the test name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special


@dataclass(frozen=True)
class UnpairedDiff:
    """delta = mean(b) − mean(a) with its CI and two-sided p-value (None when they cannot be computed)."""

    delta: float
    low: float | None
    high: float | None
    p_value: float | None
    test: str


@dataclass(frozen=True)
class Sample:
    """One side's per-item values and the cluster of each."""

    values: Sequence[float]
    clusters: Sequence[str]


def independent_bootstrap(
    a: Sample, b: Sample, n_resamples: int, confidence: float, seed: int
) -> UnpairedDiff:
    """Bootstrap of mean(b) − mean(a) resampling each side's clusters independently; both sides non-empty."""
    delta = float(np.mean(b.values) - np.mean(a.values))
    if len(set(a.clusters)) < 2 or len(set(b.clusters)) < 2:
        return UnpairedDiff(delta, None, None, None, "none")
    generator = np.random.default_rng(seed)
    deltas = resampled_means(b, n_resamples, generator) - resampled_means(a, n_resamples, generator)
    tail = (1 - confidence) / 2
    low, high = (float(bound) for bound in np.quantile(deltas, [tail, 1 - tail]))
    far_side = int(min(np.count_nonzero(deltas <= 0), np.count_nonzero(deltas >= 0)))
    p_value = min(1.0, 2 * (far_side + 1) / (n_resamples + 1))
    return UnpairedDiff(delta, low, high, p_value, "independent_bootstrap")


def resampled_means(sample: Sample, n_resamples: int, generator: np.random.Generator) -> np.ndarray:
    """Bootstrap means resampling whole clusters: sum of drawn cluster sums over the sum of their sizes."""
    _, codes = np.unique(np.asarray(sample.clusters, dtype=str), return_inverse=True)
    n_clusters = int(codes.max()) + 1
    sums = np.bincount(codes, weights=np.asarray(sample.values, dtype=float), minlength=n_clusters)
    sizes = np.bincount(codes, minlength=n_clusters).astype(float)
    drawn = generator.integers(0, n_clusters, size=(n_resamples, n_clusters))
    return sums[drawn].sum(axis=1) / sizes[drawn].sum(axis=1)


def normal_from_intervals(
    a: tuple[float, float | None, float | None],
    b: tuple[float, float | None, float | None],
    confidence: float,
) -> UnpairedDiff:
    """(mean, low, high) of each side → Δ ± z·√(SE_a² + SE_b²) with SE = half-width / z; no CI without bounds."""
    delta = b[0] - a[0]
    if a[1] is None or a[2] is None or b[1] is None or b[2] is None:
        return UnpairedDiff(delta, None, None, None, "none")
    z = float(special.ndtri((1 + confidence) / 2))
    se = math.hypot((a[2] - a[1]) / (2 * z), (b[2] - b[1]) / (2 * z))
    if se == 0:
        return UnpairedDiff(delta, None, None, None, "none")
    p_value = float(min(1.0, 2 * special.ndtr(-abs(delta) / se)))
    return UnpairedDiff(delta, delta - z * se, delta + z * se, p_value, "normal_from_intervals")
